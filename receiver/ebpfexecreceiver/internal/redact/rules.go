package redact

import "strings"

// mayContainSecret is the cheap pre-check: one pass, no allocation, true
// when s contains a keyword some built-in rule needs. A false positive only
// costs the (still regexp-free) scanners below.
func mayContainSecret(s string) bool { return mayContainSecretSkipping(s, &keywordStart) }

// mayContainSecretSkipping is mayContainSecret with the table of bytes that
// can start a keyword as a parameter, so a test can check keywordStart
// against an all-true table (no skipping) instead of a copy of the switch.
func mayContainSecretSkipping(s string, start *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !start[s[i]] {
			continue // most bytes: one load, no switch
		}
		switch c := s[i] | 0x20; c { // ASCII lower case (harmless for non-letters)
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
		case ':': // already lower: ':'|0x20 == ':'
			if strings.HasPrefix(s[i:], "://") {
				return true
			}
		}
	}
	return false
}

// keywordStart marks the bytes that can start a keyword of
// mayContainSecret: those whose s[i]|0x20 is one of its cases.
var keywordStart = func() (t [256]bool) {
	for b := range 256 {
		switch byte(b) | 0x20 {
		case 'p', 's', 't', 'k', 'a', 'b', 'c', 'g', ':':
			t[b] = true
		}
	}
	return t
}()

// builtinSpans appends the spans of every built-in single-argument rule.
func builtinSpans(s string, spans []span) []span {
	spans = keyValueSpans(s, spans)
	spans = headerSpans(s, spans)
	spans = bearerSpans(s, spans)
	spans = urlUserinfoSpans(s, spans)
	spans = passPrefixSpans(s, spans)
	spans = tokenFormatSpans(s, spans)
	return spans
}

// keyValueSpans masks the value of key=value pairs whose key looks secret:
// --password=x, -Dkeystore.password=x, AWS_SECRET_ACCESS_KEY=x, and pairs
// inside one argument (query strings, connection strings, sh -c scripts).
// A pair that starts the argument owns the rest of it: a password may hold
// '&', ';' or spaces. A pair inside the argument ends at the next delimiter.
func keyValueSpans(s string, spans []span) []span {
	for from := 0; from < len(s); {
		eq := strings.IndexByte(s[from:], '=')
		if eq < 0 {
			break
		}
		eq += from
		from = eq + 1
		start := eq
		for start > 0 && isKeyChar(s[start-1]) {
			start--
		}
		name := s[start:eq]
		bare := strings.TrimLeft(name, "-")
		if bare == "" || !isSecretName(bare, len(bare) == len(name)) {
			continue
		}
		vs := eq + 1
		if vs == len(s) {
			continue // empty value
		}
		ve := len(s)
		switch {
		case s[vs] == '"' || s[vs] == '\'':
			if q := strings.IndexByte(s[vs+1:], s[vs]); q >= 0 {
				ve = vs + 1 + q
			}
			vs++
		case start > 0:
			if d := strings.IndexAny(s[vs:], " \t\r\n&;,'\""); d >= 0 {
				ve = vs + d
			}
		}
		if ve > vs {
			spans = append(spans, span{vs, ve})
		}
		if ve == len(s) {
			break
		}
		from = ve
	}
	return spans
}

// headerSpans masks HTTP header values: "Authorization: <scheme> <secret>"
// anywhere in the argument (curl -H, git -c http.extraHeader=, sh -c
// strings), and "<secret-looking-name>: <value>" when the argument is one
// header (X-Api-Key: x, Cookie: x).
func headerSpans(s string, spans []span) []span {
	// Authorization and Proxy-Authorization, anywhere.
	for from := 0; ; {
		i := indexFold(s[from:], "authorization")
		if i < 0 {
			break
		}
		i += from
		from = i + len("authorization")
		j := skipSpaces(s, from)
		if j >= len(s) || s[j] != ':' {
			continue
		}
		vs := skipSpaces(s, j+1)
		ve := valueEnd(s, i, vs)
		// Keep the scheme (Bearer, Basic, AWS4-HMAC-SHA256…) when there is one.
		if sp := strings.IndexByte(s[vs:ve], ' '); sp >= 0 {
			vs = skipSpaces(s, vs+sp)
		}
		if ve > vs {
			spans = append(spans, span{vs, ve})
		}
		from = ve
	}

	// One header per argument: "Name: value", optionally after --header=.
	h := strings.TrimPrefix(s, "--header=")
	off := len(s) - len(h)
	c := strings.IndexByte(h, ':')
	if c <= 0 {
		return spans
	}
	name := strings.TrimRight(h[:c], " ")
	if name == "" || hasSuffixFold(name, "authorization") {
		return spans
	}
	for i := 0; i < len(name); i++ {
		if !isHeaderChar(name[i]) {
			return spans
		}
	}
	if !isSecretName(name, true) {
		return spans
	}
	vs := skipSpaces(h, c+1)
	if vs < len(h) && h[vs] != '/' { // not a URL scheme ("token://")
		spans = append(spans, span{off + vs, len(s)})
	}
	return spans
}

// bearerSpans masks the credential after a "Bearer " scheme that is not in
// an Authorization header (--header-value "Bearer x", env values).
func bearerSpans(s string, spans []span) []span {
	for from := 0; ; {
		i := indexFold(s[from:], "bearer ")
		if i < 0 {
			return spans
		}
		i += from
		from = i + len("bearer ")
		if i > 0 && isAlnum(s[i-1]) {
			continue
		}
		vs := skipSpaces(s, from)
		ve := vs
		for ve < len(s) && !isSpace(s[ve]) && s[ve] != '"' && s[ve] != '\'' {
			ve++
		}
		if ve > vs {
			spans = append(spans, span{vs, ve})
		}
		from = ve
	}
}

// urlUserinfoSpans masks the password of scheme://user:password@host, and
// keeps the user.
func urlUserinfoSpans(s string, spans []span) []span {
	for from := 0; ; {
		i := strings.Index(s[from:], "://")
		if i < 0 {
			return spans
		}
		as := from + i + len("://")
		ae := as
		for ae < len(s) && !strings.ContainsRune("/?# \t\r\n\"'", rune(s[ae])) {
			ae++
		}
		from = ae
		at := strings.LastIndexByte(s[as:ae], '@')
		if at < 0 {
			continue
		}
		at += as
		c := strings.IndexByte(s[as:at], ':')
		if c < 0 || as+c+1 == at {
			continue // no password, or an empty one
		}
		spans = append(spans, span{as + c + 1, at})
	}
}

// passPrefixSpans masks OpenSSL-style "pass:secret" pass phrase arguments
// (-passin pass:x, -passout pass:x).
func passPrefixSpans(s string, spans []span) []span {
	for from := 0; ; {
		i := indexFold(s[from:], "pass:")
		if i < 0 {
			return spans
		}
		i += from
		from = i + len("pass:")
		if i > 0 && !isSpace(s[i-1]) && s[i-1] != '"' && s[i-1] != '\'' && s[i-1] != '=' {
			continue
		}
		ve := from
		for ve < len(s) && !isSpace(s[ve]) && s[ve] != '"' && s[ve] != '\'' {
			ve++
		}
		if ve > from {
			spans = append(spans, span{from, ve})
		}
	}
}

// tokenFormats are credentials recognisable by shape. The prefix is kept.
var tokenFormats = [...]struct {
	prefix string
	minLen int             // of the part after the prefix
	exact  bool            // exactly minLen characters (AWS key ids)
	body   func(byte) bool // allowed characters after the prefix
}{
	{"AKIA", 16, true, isUpperAlnum}, // AWS access key id
	{"ASIA", 16, true, isUpperAlnum}, // AWS temporary access key id
	{"ghp_", 36, false, isAlnum},     // GitHub tokens
	{"gho_", 36, false, isAlnum},
	{"ghu_", 36, false, isAlnum},
	{"ghs_", 36, false, isAlnum},
	{"ghr_", 36, false, isAlnum},
	{"github_pat_", 22, false, isWordChar},
	{"glpat-", 20, false, isTokenChar}, // GitLab personal access token
}

func tokenFormatSpans(s string, spans []span) []span {
	for _, f := range tokenFormats {
		for from := 0; ; {
			i := strings.Index(s[from:], f.prefix)
			if i < 0 {
				break
			}
			i += from
			bs := i + len(f.prefix)
			from = bs
			if i > 0 && isAlnum(s[i-1]) {
				continue
			}
			be := bs
			for be < len(s) && f.body(s[be]) {
				be++
			}
			n := be - bs
			if n < f.minLen || (f.exact && n != f.minLen) {
				continue
			}
			spans = append(spans, span{bs, be})
			from = be
		}
	}
	return spans
}

// isSecretFlag reports whether a is a flag whose value is the next argument:
// --password, -token, --client-secret (but not --password=x, handled by
// keyValueSpans, nor --no-password or --password-file).
func isSecretFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' || strings.IndexByte(a, '=') >= 0 {
		return false
	}
	name := strings.TrimLeft(a, "-")
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isKeyChar(name[i]) {
			return false
		}
	}
	return isSecretName(name, false)
}

// Words that, as the last segment of a key or flag name (case-insensitive;
// segments split on '-', '_' and '.'), mark its value as secret.
var (
	secretSuffixes = [...]string{
		"password", "passwd", "passphrase", "secret", "token",
		"credential", "credentials", "storepass", "keypass",
	}
	secretExact = [...]string{
		"pass", "pwd", "auth", "authorization", "bearer", "cookie",
	}
	// A "key" is secret when qualified: api_key, accessKey, AWS_SECRET_ACCESS_KEY.
	keyQualifiers = [...]string{
		"api", "access", "secret", "private", "auth", "client", "master",
		"encryption", "signing", "session", "account", "subscription",
		"license", "shared", "app",
	}
	// First segments of boolean flags that mention a secret without taking
	// one: --no-password, --ask-become-pass, --prompt-password.
	booleanFirst = [...]string{"no", "ask", "prompt"}
)

// isSecretName classifies a key or flag name without its leading dashes.
// bareKey allows a lone "key" (key=value, env style); as a flag, --key
// nearly always names a file, and masking it hides more than it protects.
func isSecretName(name string, bareKey bool) bool {
	last, prev, first := segments(name)
	if last == "" {
		return false
	}
	if first != last {
		for _, w := range booleanFirst {
			if strings.EqualFold(first, w) {
				return false
			}
		}
	}
	for _, w := range secretExact {
		if strings.EqualFold(last, w) {
			return true
		}
	}
	for _, w := range secretSuffixes {
		if hasSuffixFold(last, w) {
			return true
		}
	}
	if !hasSuffixFold(last, "key") {
		return false
	}
	qual := last[:len(last)-len("key")]
	if qual == "" {
		if prev == "" {
			return bareKey
		}
		qual = prev
	}
	for _, w := range keyQualifiers {
		if hasSuffixFold(qual, w) {
			return true
		}
	}
	return false
}

// segments returns the last, second-to-last and first segments of name.
func segments(name string) (last, prev, first string) {
	isSep := func(c byte) bool { return c == '-' || c == '_' || c == '.' }
	end := len(name)
	for end > 0 && isSep(name[end-1]) {
		end--
	}
	i := end
	for i > 0 && !isSep(name[i-1]) {
		i--
	}
	last = name[i:end]
	j := i
	for j > 0 && isSep(name[j-1]) {
		j--
	}
	k := j
	for k > 0 && !isSep(name[k-1]) {
		k--
	}
	prev = name[k:j]
	f := 0
	for f < len(name) && !isSep(name[f]) {
		f++
	}
	first = name[:f]
	return last, prev, first
}

// command names the few programs whose short flags carry passwords. Other
// programs use -p, -a and -u for ports, users and paths, so those flags are
// only masked for these commands.
type command uint8

const (
	cmdOther    command = iota
	cmdCurl             // -u / --user / -U / --proxy-user user:password
	cmdSSHPass          // -p password, -ppassword
	cmdMySQL            // -ppassword (attached only: a bare -p prompts)
	cmdRedisCLI         // -a password
)

func commandOf(argv0 string) command {
	base := argv0[strings.LastIndexByte(argv0, '/')+1:]
	switch base {
	case "curl":
		return cmdCurl
	case "sshpass":
		return cmdSSHPass
	case "mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow",
		"mysqlcheck", "mysqlpump", "mariadb", "mariadb-dump", "mariadb-admin":
		return cmdMySQL
	case "redis-cli", "valkey-cli":
		return cmdRedisCLI
	}
	return cmdOther
}

// rule applies the command's own flags to one argument.
func (c command) rule(a string, spans []span) ([]span, nextRule) {
	switch c {
	case cmdCurl:
		switch {
		case a == "-u" || a == "--user" || a == "-U" || a == "--proxy-user":
			return spans, maskNextAfterColon
		case len(a) > 2 && (strings.HasPrefix(a, "-u") || strings.HasPrefix(a, "-U")):
			if i := strings.IndexByte(a[2:], ':'); i >= 0 && 2+i+1 < len(a) {
				spans = append(spans, span{2 + i + 1, len(a)})
			}
		}
	case cmdSSHPass:
		if a == "-p" {
			return spans, maskNextWhole
		}
		if len(a) > 2 && strings.HasPrefix(a, "-p") {
			spans = append(spans, span{2, len(a)})
		}
	case cmdMySQL:
		if len(a) > 2 && strings.HasPrefix(a, "-p") {
			spans = append(spans, span{2, len(a)})
		}
	case cmdRedisCLI:
		if a == "-a" {
			return spans, maskNextWhole
		}
	}
	return spans, noNext
}

// valueEnd finds where a header value starting at vs ends: at the quote
// that opened the header (sh -c "curl -H 'Authorization: …' url"), or at the
// end of the argument.
func valueEnd(s string, nameStart, vs int) int {
	if nameStart > 0 {
		if q := s[nameStart-1]; q == '"' || q == '\'' {
			if e := strings.IndexByte(s[vs:], q); e >= 0 {
				return vs + e
			}
		}
	}
	return len(s)
}

func skipSpaces(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isAlnum(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isUpperAlnum(c byte) bool { return ('0' <= c && c <= '9') || ('A' <= c && c <= 'Z') }
func isWordChar(c byte) bool   { return isAlnum(c) || c == '_' }
func isTokenChar(c byte) bool  { return isWordChar(c) || c == '-' }
func isKeyChar(c byte) bool    { return isTokenChar(c) || c == '.' }
func isHeaderChar(c byte) bool { return isTokenChar(c) }

// hasPrefixFold is strings.HasPrefix with ASCII case folding of s; prefix
// must be lower case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if c := s[i]; c != prefix[i] && ('A' > c || c > 'Z' || c+('a'-'A') != prefix[i]) {
			return false
		}
	}
	return true
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && hasPrefixFold(s[len(s)-len(suffix):], suffix)
}

// indexFold is strings.Index with ASCII case folding; sub must be lower case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if hasPrefixFold(s[i:], sub) {
			return i
		}
	}
	return -1
}
