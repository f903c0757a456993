package redact

import (
	"strings"
	"testing"
)

// noSkip makes scanArg look at every position: the
// reference that keywordStart's skipping must agree with.
var noSkip = func() (t pairTable) {
	for i := range t {
		t[i] = ^uint64(0)
	}
	return t
}()

func TestMayContainSecretTable(t *testing.T) {
	words := []string{"pass", "pwd", "secret", "token", "key", "auth", "bearer", "cookie", "credential", "creds",
		"eyJ", "-----BEGIN", "://", "PASS", "Pwd", "SeCrEt", "CRED", "EyJ", "x", "", "\x1a//", "\x10ass", "\x0d----BEGIN",
		" -p", "\t-w", "\n-a", " --user", " --proxy-user", " -x", "\x00-p", " -"}
	for _, f := range tokenFormats {
		words = append(words, f.prefix, strings.ToLower(f.prefix), f.prefix[:len(f.prefix)-1])
	}
	n := 0
	for b := range 256 {
		for _, w := range words {
			for _, s := range []string{string(rune(b)) + w, w + string([]byte{byte(b)}), string([]byte{byte(b)}) + w[min(1, len(w)):], "ab" + string([]byte{byte(b)}) + w} {
				gotS, gotF := scanArg(s, &keywordStart)
				wantS, wantF := scanArg(s, &noSkip)
				if gotS != wantS || gotF != wantF {
					t.Errorf("scanArg(%q) = %v, %v, want %v, %v", s, gotS, gotF, wantS, wantF)
				}
				n++
			}
		}
	}
	t.Logf("%d strings", n)
}
