// Package redact masks secrets in a process's argument vector before it
// leaves the collector.
//
// Only the secret part is replaced with Mask; the key, flag, header name,
// URL user or token prefix stays, so a responder still sees what was there:
//
//	--password=hunter2                 → --password=****
//	--token abc                        → --token ****
//	-H "Authorization: Bearer abc"     → -H "Authorization: Bearer ****"
//	https://bob:pw@git.example/x       → https://bob:****@git.example/x
//	AWS_SECRET_ACCESS_KEY=wJalr…       → AWS_SECRET_ACCESS_KEY=****
//	AKIAIOSFODNN7EXAMPLE               → AKIA****
//
// The built-in rules are hand-written scanners, not regular expressions.
// Those that look at one argument run only on arguments that pass a one-pass
// keyword check (most argv carry no secret); the per-command rules follow
// the words of the command line (command.go), into shell strings only when
// one holds a keyword or a password-like short flag. User patterns are Go regexps; one union regexp decides whether
// any of them matches before the individual patterns locate the spans.
package redact // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/redact"

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every redacted secret.
const Mask = "****"

// Redactor masks secrets in argv. The zero value and a nil *Redactor do
// nothing. A Redactor is immutable after New and safe for concurrent use.
type Redactor struct {
	enabled bool
	extra   []*regexp.Regexp
	union   *regexp.Regexp // matches wherever any of extra matches
}

// New builds a Redactor. patterns are extra Go regexps added to the built-in
// rules: with a capture group only group 1 is masked, otherwise the whole
// match. A disabled Redactor masks nothing.
func New(enabled bool, patterns []string) (*Redactor, error) {
	r := &Redactor{enabled: enabled}
	if len(patterns) == 0 {
		return r, nil
	}
	var union strings.Builder
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("pattern %d: %w", i, err)
		}
		r.extra = append(r.extra, re)
		if i > 0 {
			union.WriteByte('|')
		}
		union.WriteString("(?:")
		union.WriteString(p)
		union.WriteString(")")
	}
	var err error
	if r.union, err = regexp.Compile(union.String()); err != nil {
		return nil, fmt.Errorf("combining patterns: %w", err)
	}
	return r, nil
}

// Enabled reports whether the Redactor masks anything.
func (r *Redactor) Enabled() bool { return r != nil && r.enabled }

// Args masks secrets in args IN PLACE: each argument holding a secret is
// replaced by a new string; args without secrets are left untouched (no
// allocation). It returns how many arguments were changed. Callers that need
// the raw argv must copy it first.
func (r *Redactor) Args(args []string) int {
	if !r.Enabled() || len(args) == 0 {
		return 0
	}
	changed := 0
	var spanBuf [8]span
	var wk walker
	for i := 0; i < len(args); i++ {
		a := args[i]
		spans := spanBuf[:0]
		secretish, commandFlag := scanArg(a, &keywordStart)
		var next nextRule
		spans, next = wk.word(a, 0, spans, secretish)
		if secretish {
			var shaped nextRule
			spans, shaped = builtinSpans(a, spans)
			if next == noNext {
				next = shaped
			}
		}
		if hasShellWords(a, secretish, commandFlag) {
			spans = shellSpans(a, 0, spans, 0, secretish)
		}
		if r.union != nil && r.union.MatchString(a) {
			spans = r.extraSpans(a, spans)
		}
		if len(spans) > 0 {
			if out := apply(a, spans); out != a {
				args[i] = out
				changed++
			}
		}

		if next == noNext || i+1 >= len(args) {
			continue
		}
		v := args[i+1]
		sp, consume := next.valueSpan(v)
		if !consume {
			continue // another flag: the flag was a boolean or prompts
		}
		i++
		if sp.end > sp.start {
			if out := v[:sp.start] + Mask + v[sp.end:]; out != v {
				args[i] = out
				changed++
			}
		}
	}
	return changed
}

func (r *Redactor) extraSpans(s string, spans []span) []span {
	for _, re := range r.extra {
		group := re.NumSubexp() > 0
		for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
			start, end := m[0], m[1]
			if group {
				start, end = m[2], m[3] // -1 when group 1 did not take part
			}
			if start >= 0 && end > start {
				spans = append(spans, span{start, end})
			}
		}
	}
	return spans
}

// span is a byte range [start, end) of an argument to mask. Every built-in
// rule starts and ends spans at ASCII bytes or at the ends of the string,
// so masking valid UTF-8 gives valid UTF-8.
type span struct{ start, end int }

// apply replaces the spans of s with Mask. Spans may overlap and come in any
// order.
func apply(s string, spans []span) string {
	if len(spans) > 1 {
		slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	}
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for k, sp := range spans {
		if sp.end <= pos {
			continue // inside what was already masked
		}
		// A span that overlaps or touches the previous one extends its mask.
		if k == 0 || sp.start > pos {
			b.WriteString(s[pos:sp.start])
			b.WriteString(Mask)
		}
		pos = sp.end
	}
	b.WriteString(s[pos:])
	return b.String()
}

// nextRule says what to do with the word after a flag.
type nextRule uint8

const (
	noNext               nextRule = iota
	maskNextWhole                 // --password VALUE
	maskNextAfterColon            // curl -u user:VALUE, --creds user:VALUE
	maskNextAfterPercent          // smbclient -U user%VALUE
	maskNextNotPorts              // mongo -p VALUE, but not docker's -p 27017:27017
	maskNextAWSSecret             // AKIA… followed by its 40-character secret
)

// valueSpan says which part of v, the word after a flag, to mask. consume
// is false when v is not the flag's value (it is empty or another flag);
// an empty span with consume true means the value holds no secret
// (curl -u user prompts for the password).
func (n nextRule) valueSpan(v string) (sp span, consume bool) {
	if !isFlagValue(v) {
		return span{}, false
	}
	switch n {
	case maskNextWhole:
		return span{0, len(v)}, true
	case maskNextAfterColon, maskNextAfterPercent:
		sep := byte(':')
		if n == maskNextAfterPercent {
			sep = '%'
		}
		if c := strings.IndexByte(v, sep); c >= 0 && c+1 < len(v) {
			return span{c + 1, len(v)}, true
		}
		return span{}, true
	case maskNextNotPorts:
		if isPortMapping(v) {
			return span{}, false
		}
		return span{0, len(v)}, true
	case maskNextAWSSecret:
		if isAWSSecret(v) {
			return span{0, len(v)}, true
		}
		return span{}, false
	}
	return span{}, false
}

// isFlagValue reports whether v, the word after a flag that takes a secret,
// is that secret rather than the next flag. Like getopt and Go's flag
// packages, a value may start with '-'; only a lone short flag (-h) or a
// well-formed long flag (--host, --host=db) is taken for the next flag.
func isFlagValue(v string) bool {
	if v == "" {
		return false
	}
	if v[0] != '-' {
		return true
	}
	if len(v) <= 2 {
		return false
	}
	if v[1] != '-' {
		return true // -s3cr3t, or an attached short flag: masking wins
	}
	name := v[2:]
	if e := strings.IndexByte(name, '='); e >= 0 {
		name = name[:e]
	}
	if name == "" || !isAlpha(name[0]) {
		return true
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return true
		}
	}
	return false
}

// isPortMapping reports whether v looks like a port publication
// (27017:27017, 127.0.0.1:80:80/tcp) rather than a password.
func isPortMapping(v string) bool {
	v = strings.TrimSuffix(strings.TrimSuffix(v, "/tcp"), "/udp")
	if strings.IndexByte(v, ':') < 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != ':' && c != '.' && c != '-' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
