package redact

import "strings"

// tokenFormat is a credential recognisable by its shape: a fixed prefix
// (kept in the output) and a body of minLen or more allowed characters
// (exactly minLen when exact).
type tokenFormat struct {
	prefix string
	minLen int
	exact  bool
	body   func(byte) bool
}

// tokenFormats are the shapes masked wherever they appear. The list follows
// the prefixes secret scanners agree on (gitleaks' rules, GitHub's and
// GitLab's token formats). A longer prefix must come before a shorter one
// that it extends.
var tokenFormats = [...]tokenFormat{
	// AWS access key ids (their secret is handled by awsSecretAfter).
	{"AKIA", 16, true, isUpperAlnum},
	{"ASIA", 16, true, isUpperAlnum},
	{"ABIA", 16, true, isUpperAlnum},
	{"ACCA", 16, true, isUpperAlnum},
	{"AIza", 35, false, isTokenChar}, // Google API key
	{"AGE-SECRET-KEY-1", 58, false, isUpperAlnum},
	// GitHub and GitLab.
	{"ghp_", 36, false, isAlnum},
	{"gho_", 36, false, isAlnum},
	{"ghu_", 36, false, isAlnum},
	{"ghs_", 36, false, isAlnum},
	{"ghr_", 36, false, isAlnum},
	{"github_pat_", 22, false, isWordChar},
	{"glpat-", 20, false, isTokenChar},
	{"glptt-", 20, false, isTokenChar},
	{"gldt-", 20, false, isTokenChar},
	{"glrt-", 20, false, isTokenChar},
	{"glcbt-", 20, false, isTokenChar},
	{"glft-", 20, false, isTokenChar},
	{"glimt-", 20, false, isTokenChar},
	{"glsoat-", 20, false, isTokenChar},
	{"gloas-", 20, false, isTokenChar},
	{"glagent-", 20, false, isTokenChar},
	{"glffct-", 20, false, isTokenChar},
	{"glc_", 32, false, isBase64Char},
	{"glsa_", 32, false, isWordChar},
	// Slack.
	{"xoxb-", 10, false, isTokenChar},
	{"xoxp-", 10, false, isTokenChar},
	{"xoxa-", 10, false, isTokenChar},
	{"xoxr-", 10, false, isTokenChar},
	{"xoxs-", 10, false, isTokenChar},
	{"xoxo-", 10, false, isTokenChar},
	{"xoxe.", 10, false, isTokenChar},
	{"xoxe-", 10, false, isTokenChar},
	{"xapp-", 10, false, isTokenChar},
	// Stripe secret and restricted keys, webhook secrets.
	{"sk_live_", 10, false, isAlnum},
	{"sk_test_", 10, false, isAlnum},
	{"sk_prod_", 10, false, isAlnum},
	{"rk_live_", 10, false, isAlnum},
	{"rk_test_", 10, false, isAlnum},
	{"rk_prod_", 10, false, isAlnum},
	{"whsec_", 24, false, isAlnum},
	// AI providers.
	{"sk-proj-", 20, false, isTokenChar},
	{"sk-svcacct-", 20, false, isTokenChar},
	{"sk-admin-", 20, false, isTokenChar},
	{"sk-ant-", 20, false, isTokenChar},
	{"sk-", 40, false, isAlnum},
	{"hf_", 30, false, isAlnum},
	// Package registries, clouds, SaaS.
	{"npm_", 36, false, isAlnum},
	{"pypi-", 50, false, isTokenChar},
	{"dop_v1_", 64, false, isAlnum},
	{"doo_v1_", 64, false, isAlnum},
	{"dor_v1_", 64, false, isAlnum},
	{"dp.pt.", 40, false, isAlnum},
	{"dapi", 32, false, isAlnum},
	{"hvs.", 24, false, isTokenChar},
	{"hvb.", 24, false, isTokenChar},
	{"sha256~", 43, false, isTokenChar}, // OpenShift user token
	{"shpat_", 32, false, isAlnum},
	{"shpss_", 32, false, isAlnum},
	{"shpca_", 32, false, isAlnum},
	{"shppa_", 32, false, isAlnum},
	{"SG.", 60, false, isSendGridChar},
	{"PMAK-", 24, false, isTokenChar},
	{"pul-", 40, false, isAlnum},
	{"lin_api_", 40, false, isAlnum},
}

// formatsByFirst lists, for each byte, the tokenFormats whose prefix starts
// with it, in table order.
var formatsByFirst = func() (t [256][]uint8) {
	for k, f := range tokenFormats {
		t[f.prefix[0]] = append(t[f.prefix[0]], uint8(k))
	}
	return t
}()

// formatPairs marks the first two bytes of every token format prefix: one
// bit test rules out most positions before any prefix is compared.
var formatPairs = func() (t [256][4]uint64) {
	for _, f := range tokenFormats {
		b := f.prefix[1]
		t[f.prefix[0]][b>>6] |= 1 << (b & 63)
	}
	return t
}()

// tokenPrefixAt reports whether t starts with the prefix of a token format.
func tokenPrefixAt(t string) bool { return tokenPrefixLen(t) > 0 }

// tokenPrefixLen is the length of the first token format prefix that starts
// t, or 0.
func tokenPrefixLen(t string) int {
	if len(t) < 2 || formatPairs[t[0]][t[1]>>6]&(1<<(t[1]&63)) == 0 {
		return 0
	}
	for _, k := range formatsByFirst[t[0]] {
		if p := tokenFormats[k].prefix; strings.HasPrefix(t, p) {
			return len(p)
		}
	}
	return 0
}

// tokenFormatSpans masks the body of every token format in s. An AWS key id
// followed by its secret in the same argument masks the secret too; one
// that ends the argument sets next, for a secret in the next argument.
func tokenFormatSpans(s string, spans []span) (_ []span, next nextRule) {
	for i := 0; i < len(s); i++ {
		if tokenPrefixLen(s[i:]) == 0 || (i > 0 && isAlnum(s[i-1])) {
			continue
		}
		ks := formatsByFirst[s[i]]
		for _, k := range ks {
			f := &tokenFormats[k]
			if !strings.HasPrefix(s[i:], f.prefix) {
				continue
			}
			bs := i + len(f.prefix)
			be := bs
			for be < len(s) && f.body(s[be]) {
				be++
			}
			n := be - bs
			if n < f.minLen || (f.exact && n != f.minLen) {
				continue // a longer prefix failed; a shorter one may fit
			}
			spans = append(spans, span{bs, be})
			if f.exact && f.prefix[0] == 'A' { // an AWS key id
				if ss, se, ok := awsSecretAfter(s, be); ok {
					spans = append(spans, span{ss, se})
				} else if be == len(s) {
					next = maskNextAWSSecret
				}
			}
			i = be - 1
			break
		}
	}
	return spans, next
}

// awsSecretAfter finds the 40-character secret access key that follows an
// access key id ending at i, after one to three separators
// (AKIA…:secret, AKIA… secret, "AKIA…", "secret").
func awsSecretAfter(s string, i int) (start, end int, ok bool) {
	j := i
	for j < len(s) && j-i < 3 && strings.IndexByte(" \t:,;|/=\"'", s[j]) >= 0 {
		j++
	}
	if j == i {
		return 0, 0, false
	}
	e := j
	for e < len(s) && isBase64Char(s[e]) {
		e++
	}
	if !isAWSSecret(s[j:e]) {
		return 0, 0, false
	}
	return j, e, true
}

// isAWSSecret reports whether v has the shape of an AWS secret access key:
// 40 base64 characters, mixed case or with '/' or '+'.
func isAWSSecret(v string) bool {
	if len(v) != 40 {
		return false
	}
	var lower, upper bool
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == '/' || c == '+':
			lower, upper = true, true
		case '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return lower && upper
}

// jwtSpans masks JSON Web Tokens: eyJ<header>.<payload>[.<signature>…].
// The header (algorithm, key id) is kept; payload and signature are masked.
func jwtSpans(s string, spans []span) []span {
	for from := 0; ; {
		i := strings.Index(s[from:], "eyJ")
		if i < 0 {
			return spans
		}
		i += from
		from = i + 3
		if i > 0 && isBase64URLChar(s[i-1]) {
			continue
		}
		h := i
		for h < len(s) && isBase64URLChar(s[h]) {
			h++
		}
		if h-i < 10 || h >= len(s) || s[h] != '.' {
			continue
		}
		p := h + 1
		e := p
		for e < len(s) && (isBase64URLChar(s[e]) || s[e] == '.' || s[e] == '=') {
			e++
		}
		if e-p < 10 {
			continue
		}
		spans = append(spans, span{p, e})
		from = e
	}
}

// pemSpans masks the body of PEM private key blocks, keeping the BEGIN and
// END lines. A block cut off before its END line is masked to the end.
func pemSpans(s string, spans []span) []span {
	for from := 0; ; {
		i := strings.Index(s[from:], "-----BEGIN ")
		if i < 0 {
			return spans
		}
		i += from
		le := strings.Index(s[i+len("-----BEGIN "):], "-----")
		if le < 0 {
			return spans
		}
		bs := i + len("-----BEGIN ") + le + len("-----")
		label := s[i+len("-----BEGIN ") : bs-len("-----")]
		from = bs
		if !strings.Contains(label, "PRIVATE KEY") {
			continue // certificates and public keys are not secret
		}
		be := len(s)
		if e := strings.Index(s[bs:], "-----END "); e >= 0 {
			be = bs + e
		}
		if be > bs {
			spans = append(spans, span{bs, be})
		}
		from = be
	}
}

func isUpper(c byte) bool         { return 'A' <= c && c <= 'Z' }
func isAlpha(c byte) bool         { return isUpper(c) || ('a' <= c && c <= 'z') }
func isBase64Char(c byte) bool    { return isAlnum(c) || c == '+' || c == '/' || c == '=' }
func isBase64URLChar(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }
func isSendGridChar(c byte) bool  { return isTokenChar(c) || c == '.' || c == '=' }
