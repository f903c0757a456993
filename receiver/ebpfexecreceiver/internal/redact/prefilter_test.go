package redact

import (
	"testing"
)

// noSkip makes mayContainSecretSkipping look at every byte: the reference
// that keywordStart's skipping must agree with.
var noSkip = func() (t [256]bool) {
	for b := range t {
		t[b] = true
	}
	return t
}()

func TestMayContainSecretTable(t *testing.T) {
	words := []string{"pass", "pwd", "secret", "token", "key", "auth", "AKIA", "ASIA", "bearer", "cookie", "credential",
		"ghp_", "gho_x", "github_pat_", "glpat-", "://", "PASS", "Pwd", "SeCrEt", "x", "", "\x1a//", "\x10ass"}
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
