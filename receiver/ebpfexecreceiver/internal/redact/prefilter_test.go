package redact

import (
	"strings"
	"testing"
)

// noSkip makes mayContainSecretSkipping look at every position: the
// reference that keywordStart's skipping must agree with.
var noSkip = func() (t pairTable) {
	for i := range t {
		t[i] = ^uint64(0)
	}
	return t
}()

func TestMayContainSecretTable(t *testing.T) {
	words := []string{"pass", "pwd", "secret", "token", "key", "auth", "bearer", "cookie", "credential", "creds",
		"eyJ", "-----BEGIN", "://", "PASS", "Pwd", "SeCrEt", "CRED", "EyJ", "x", "", "\x1a//", "\x10ass", "\x0d----BEGIN"}
	for _, f := range tokenFormats {
		words = append(words, f.prefix, strings.ToLower(f.prefix), f.prefix[:len(f.prefix)-1])
	}
	n := 0
	for b := range 256 {
		for _, w := range words {
			for _, s := range []string{string(rune(b)) + w, w + string([]byte{byte(b)}), string([]byte{byte(b)}) + w[min(1, len(w)):], "ab" + string([]byte{byte(b)}) + w} {
				if got, want := mayContainSecret(s), mayContainSecretSkipping(s, &noSkip); got != want {
					t.Errorf("mayContainSecret(%q) = %v, want %v", s, got, want)
				}
				n++
			}
		}
	}
	t.Logf("%d strings", n)
}
