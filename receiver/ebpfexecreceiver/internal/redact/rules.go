package redact

import "strings"

// scanArg is the one pass over an argument, the cheap pre-check: no
// allocation, and a false positive only costs the (still regexp-free)
// scanners below. secret reports a keyword some
// built-in rule needs; commandFlag, a blank followed by a flag that some
// command's rule reads (-p, -w, --user…), which makes a shell string worth
// walking without any keyword. commandFlag is complete only when secret is
// false (the scan stops at the first keyword).
//
// start is the table of byte pairs that can start a keyword, a parameter so
// a test can check keywordStart against an all-true table (no skipping)
// instead of a copy of the switch. Keywords that are words (pass, token…)
// match in any case; token prefixes (eyJ, xoxb-, sk_live_, AKIA…) in their
// own case only.
func scanArg(s string, start *pairTable) (secret, commandFlag bool) {
	for i := 0; i+1 < len(s); i++ {
		if !start.has(s[i], s[i+1]) {
			continue // most positions: one load, no switch
		}
		if c := s[i]; c == ' ' || c == '\t' || c == '\n' {
			if s[i+1] == '-' && isCommandFlagStart(s[i+1:]) {
				commandFlag = true
			}
			continue
		}
		t := s[i:]
		switch s[i] | 0x20 { // ASCII lower case (harmless for '-' and ':')
		case 'p':
			if hasPrefixFold(t, "pass") || hasPrefixFold(t, "pwd") {
				return true, commandFlag
			}
		case 's':
			if hasPrefixFold(t, "secret") {
				return true, commandFlag
			}
		case 't':
			if hasPrefixFold(t, "token") {
				return true, commandFlag
			}
		case 'k':
			if hasPrefixFold(t, "key") {
				return true, commandFlag
			}
		case 'a':
			if hasPrefixFold(t, "auth") {
				return true, commandFlag
			}
		case 'b':
			if hasPrefixFold(t, "bearer") {
				return true, commandFlag
			}
		case 'c':
			if hasPrefixFold(t, "cookie") || hasPrefixFold(t, "cred") {
				return true, commandFlag
			}
		case 'e':
			if strings.HasPrefix(t, "eyJ") {
				return true, commandFlag
			}
		case '-':
			if strings.HasPrefix(t, "-----BEGIN") {
				return true, commandFlag
			}
		case ':':
			if strings.HasPrefix(t, "://") {
				return true, commandFlag
			}
		}
		if tokenPrefixAt(t) {
			return true, commandFlag
		}
	}
	return false, commandFlag
}

// pairTable is a set of byte pairs.
type pairTable [256 * 256 / 64]uint64

func (t *pairTable) has(a, b byte) bool {
	k := uint(a)<<8 | uint(b)
	return t[k>>6]&(1<<(k&63)) != 0
}

func (t *pairTable) add(a, b byte) {
	k := uint(a)<<8 | uint(b)
	t[k>>6] |= 1 << (k & 63)
}

// keywordStart holds the first two bytes of every keyword scanArg looks
// for: the word keywords in any case, and the token prefixes.
// Every keyword is at least two bytes long.
var keywordStart = func() (t pairTable) {
	upper := func(c byte) byte {
		if 'a' <= c && c <= 'z' {
			return c - ('a' - 'A')
		}
		return c
	}
	for _, w := range []string{"pass", "pwd", "secret", "token", "key", "auth", "bearer", "cookie", "cred"} {
		for _, a := range []byte{w[0], upper(w[0])} {
			for _, b := range []byte{w[1], upper(w[1])} {
				t.add(a, b)
			}
		}
	}
	for _, w := range []string{"eyJ", "-----BEGIN", "://", " -", "\t-", "\n-"} {
		t.add(w[0], w[1])
	}
	for _, f := range tokenFormats {
		t.add(f.prefix[0], f.prefix[1])
	}
	return t
}()

// builtinSpans appends the spans of every built-in rule that looks at one
// argument alone. next is set when the argument ends in an AWS access key
// id whose secret may be the next argument.
func builtinSpans(s string, spans []span) (_ []span, next nextRule) {
	spans = keyValueSpans(s, spans)
	spans = jsonSpans(s, spans)
	spans = headerSpans(s, spans)
	spans = bearerSpans(s, spans)
	spans = urlUserinfoSpans(s, spans)
	spans = passPrefixSpans(s, spans)
	spans = pemSpans(s, spans)
	spans = jwtSpans(s, spans)
	return tokenFormatSpans(s, spans)
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
		if isCredsName(bare) { // --src-creds=user:password keeps the user
			if c := strings.IndexByte(s[vs:ve], ':'); c >= 0 {
				vs += c + 1
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

// jsonSpans masks the values of secret-named keys in JSON and similar
// object notations held in one argument (curl -d '{"password":"x"}',
// Python reprs with single quotes, and JSON whose quotes are
// backslash-escaped inside a shell string). String, number and literal
// values are masked; an object or array value is masked whole.
func jsonSpans(s string, spans []span) []span {
	for from := 0; from < len(s); {
		c := strings.IndexByte(s[from:], ':')
		if c < 0 {
			break
		}
		c += from
		from = c + 1
		// The key: a quoted name right before the colon.
		ke := c
		for ke > 0 && (s[ke-1] == ' ' || s[ke-1] == '\t') {
			ke--
		}
		if ke == 0 || (s[ke-1] != '"' && s[ke-1] != '\'') {
			continue
		}
		q := s[ke-1]
		closeQ := ke - 1
		escaped := closeQ > 0 && s[closeQ-1] == '\\'
		nameEnd := closeQ
		if escaped {
			nameEnd--
		}
		open := strings.LastIndexByte(s[:nameEnd], q)
		if open < 0 || (escaped && (open == 0 || s[open-1] != '\\')) {
			continue
		}
		name := s[open+1 : nameEnd]
		if name == "" || !allKeyChars(name) || !isSecretName(name, true) {
			continue
		}
		// The value.
		vs := skipSpaces(s, c+1)
		if vs >= len(s) {
			break
		}
		var ve int
		switch {
		case s[vs] == q && !escaped:
			vs++
			ve = vs
			for ve < len(s) && s[ve] != q {
				if s[ve] == '\\' {
					ve++
				}
				ve++
			}
			ve = min(ve, len(s))
		case escaped && strings.HasPrefix(s[vs:], `\`+string(q)):
			vs += 2
			ve = len(s)
			if e := strings.Index(s[vs:], `\`+string(q)); e >= 0 {
				ve = vs + e
			}
		case s[vs] == '{' || s[vs] == '[':
			ve = matchBracket(s, vs)
		default:
			ve = vs
			for ve < len(s) && strings.IndexByte(",}] \t\r\n\"'\\", s[ve]) < 0 {
				ve++
			}
			if lit := s[vs:ve]; lit == "null" || lit == "true" || lit == "false" {
				continue
			}
		}
		if ve > vs {
			spans = append(spans, span{vs, ve})
		}
		from = max(from, ve)
	}
	return spans
}

// matchBracket returns the end of the object or array that opens at i (just
// past its closing bracket), or len(s) when it is cut off. Brackets inside
// double-quoted strings do not count.
func matchBracket(s string, i int) int {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		case '"':
			for j++; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
		}
	}
	return len(s)
}

func allKeyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isKeyChar(s[i]) {
			return false
		}
	}
	return true
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
		user := s[as:at]
		c := strings.IndexByte(user, ':')
		if c >= 0 {
			user = user[:c]
		}
		if looksLikeToken(user) { // https://TOKEN@host, https://TOKEN:x-oauth-basic@host
			spans = append(spans, span{as + tokenPrefixLen(user), as + len(user)})
		}
		if c < 0 || as+c+1 == at {
			continue // no password, or an empty one
		}
		spans = append(spans, span{as + c + 1, at})
	}
}

// looksLikeToken reports whether a URL user name is a credential rather
// than a name: 20 or more token characters with a digit, and either both
// letter cases or 32 or more characters (hex and base64 tokens). Names such
// as git, oauth2, x-access-token or deploy.bot.2024 stay.
func looksLikeToken(u string) bool {
	if len(u) < 20 {
		return false
	}
	var digit, lower, upper bool
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case '0' <= c && c <= '9':
			digit = true
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == '-' || c == '_' || c == '.' || c == '~' || c == '%':
		default:
			return false
		}
	}
	return digit && ((lower && upper) || len(u) >= 32)
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

// secretFlagNext reports what to mask after a flag whose value is the next
// argument: --password, -token, --client-secret mask it whole; --creds
// masks the password of user:password. Not --password=x (keyValueSpans),
// --no-password or --password-file.
func secretFlagNext(a string) nextRule {
	if len(a) < 2 || a[0] != '-' || strings.IndexByte(a, '=') >= 0 {
		return noNext
	}
	name := strings.TrimLeft(a, "-")
	if name == "" || !allKeyChars(name) || !isSecretName(name, false) {
		return noNext
	}
	if isCredsName(name) {
		return maskNextAfterColon
	}
	return maskNextWhole
}

// isCredsName reports whether a secret name takes user:password
// (skopeo --creds, --src-creds, --dest-creds).
func isCredsName(name string) bool {
	last, _, _ := segments(name)
	return hasSuffixFold(last, "creds")
}

// Words that, as the last segment of a key or flag name (case-insensitive;
// segments split on '-', '_' and '.'), mark its value as secret.
var (
	secretSuffixes = [...]string{
		"password", "passwd", "passphrase", "secret", "token",
		"credential", "credentials", "creds", "pass", "pwd",
	}
	// Words that end in a secret suffix without naming a secret.
	notSecret = [...]string{
		"bypass", "compass", "encompass", "surpass", "trespass", "overpass",
		"underpass", "multipass", "onepass", "twopass", "singlepass",
		"firstpass", "secondpass", "oldpwd",
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
			for _, n := range notSecret {
				if strings.EqualFold(last, n) {
					return false
				}
			}
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
