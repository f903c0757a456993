package redact

import (
	"strings"
	"testing"
)

// mayContainSecretRef is mayContainSecret without its keywordStart table.
func mayContainSecretRef(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i] | 0x20; c {
		case 'p':
			if hasPrefixFold(s[i:], "pass") || hasPrefixFold(s[i:], "pwd") {
				return true
			}
		case 's':
			if hasPrefixFold(s[i:], "secret") {
				return true
			}
		case 't':
			if hasPrefixFold(s[i:], "token") {
				return true
			}
		case 'k':
			if hasPrefixFold(s[i:], "key") {
				return true
			}
		case 'a':
			if hasPrefixFold(s[i:], "auth") || strings.HasPrefix(s[i:], "AKIA") || strings.HasPrefix(s[i:], "ASIA") {
				return true
			}
		case 'b':
			if hasPrefixFold(s[i:], "bearer") {
				return true
			}
		case 'c':
			if hasPrefixFold(s[i:], "cookie") || hasPrefixFold(s[i:], "credential") {
				return true
			}
		case 'g':
			if (len(s)-i >= 4 && s[i+1] == 'h' && s[i+3] == '_') || strings.HasPrefix(s[i:], "github_pat_") || strings.HasPrefix(s[i:], "glpat-") {
				return true
			}
		case ':':
			if strings.HasPrefix(s[i:], "://") {
				return true
			}
		}
	}
	return false
}

func TestMayContainSecretTable(t *testing.T) {
	words := []string{"pass", "pwd", "secret", "token", "key", "auth", "AKIA", "ASIA", "bearer", "cookie", "credential",
		"ghp_", "gho_x", "github_pat_", "glpat-", "://", "PASS", "Pwd", "SeCrEt", "x", "", "\x1a//", "\x10ass"}
	n := 0
	for b := range 256 {
		for _, w := range words {
			for _, s := range []string{string(rune(b)) + w, w + string([]byte{byte(b)}), string([]byte{byte(b)}) + w[min(1, len(w)):], "ab" + string([]byte{byte(b)}) + w} {
				if got, want := mayContainSecret(s), mayContainSecretRef(s); got != want {
					t.Errorf("mayContainSecret(%q) = %v, want %v", s, got, want)
				}
				n++
			}
		}
	}
	t.Logf("%d strings", n)
}
