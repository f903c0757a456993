// Package findinglog formats the one-line form of a finding that log_findings writes to stdout, for `kubectl logs`:
//
//	WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent=/bin/sh origin=image cid=0f1e2d3c4b5a
//	WARN def-000-krp present=as,cc,gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 cid=0f1e2d3c4b5a
//
// The fields are space-separated, in a fixed order; a new field is only ever appended. Most values come from the
// container (paths, comm) or from whoever names images and pods, so each value is printed bare only when it is
// made of safe characters; otherwise it is a double-quoted JSON string (\" \\ \n \uXXXX; every byte outside
// printable ASCII escaped), which logfmt and JSON parsers read back. A value can therefore never hold a raw space,
// quote or newline, and cannot forge a field or a line. Each value is cut to MaxValueLen printed bytes (ending in
// "..."), so a line is at most MaxLineLen bytes, far below the 16 KiB at which container runtimes split log lines.
// A missing value prints as "-" (a value that is literally "-" is quoted).
package findinglog // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/findinglog"

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxValueLen bounds the printed form of one value, quotes excluded, "..." included.
const MaxValueLen = 128

// Missing is what a value that is absent or empty prints as.
const Missing = "-"

// Finding is one compiler execution. ContainerID is cut to its first 12 characters, as crictl and docker print it.
type Finding struct {
	Severity, Rule, Compiler                         string
	Namespace, Pod, Container, Image, Parent, Origin string
	ContainerID                                      string
}

// Presence is one presence finding: the distinct names of the compilers present in a container.
type Presence struct {
	Severity, Rule                   string
	Compilers                        []string
	Namespace, Pod, Container, Image string
	ContainerID                      string
}

// shortID is how many characters of container.id a line shows.
const shortID = 12

// fields is the most a line has: 3 positional values and 7 key=value pairs.
const fields = 10

// MaxLineLen bounds a line, newline included: every value at its longest and quoted, the keys and the separators.
const MaxLineLen = fields*(MaxValueLen+2+1) + len("ns=pod=ctr=image=parent=origin=cid=") + 1

// Line returns f as one line, newline included.
func (f Finding) Line() []byte {
	var b lineBuilder
	b.positional(f.Severity)
	b.positional(f.Rule)
	b.positional(f.Compiler)
	b.common(f.Namespace, f.Pod, f.Container, f.Image)
	b.field("parent", f.Parent)
	b.field("origin", f.Origin)
	b.field("cid", cut(f.ContainerID, shortID))
	return b.done()
}

// Line returns p as one line, newline included.
func (p Presence) Line() []byte {
	var b lineBuilder
	b.positional(p.Severity)
	b.positional(p.Rule)
	b.field("present", strings.Join(p.Compilers, ","))
	b.common(p.Namespace, p.Pod, p.Container, p.Image)
	b.field("cid", cut(p.ContainerID, shortID))
	return b.done()
}

// typicalLine is the capacity a line starts with: a line of short values fits without growing.
const typicalLine = 256

type lineBuilder struct{ b []byte }

func (l *lineBuilder) sep() {
	if l.b == nil {
		l.b = make([]byte, 0, typicalLine)
	} else {
		l.b = append(l.b, ' ')
	}
}

func (l *lineBuilder) positional(v string) {
	l.sep()
	l.b = appendValue(l.b, v)
}

func (l *lineBuilder) field(key, v string) {
	l.sep()
	l.b = append(l.b, key...)
	l.b = append(l.b, '=')
	l.b = appendValue(l.b, v)
}

func (l *lineBuilder) common(ns, pod, ctr, image string) {
	l.field("ns", ns)
	l.field("pod", pod)
	l.field("ctr", ctr)
	l.field("image", image)
}

func (l *lineBuilder) done() []byte { return append(l.b, '\n') }

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// safe reports whether c may appear in a bare value: letters, digits and the punctuation of image references,
// paths and names, none of which a log parser splits on.
func safe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._/:@+,~%", c) >= 0
}

func isBare(v string) bool {
	if v == Missing || len(v) > MaxValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !safe(v[i]) {
			return false
		}
	}
	return true
}

const ellipsis = "..."

// appendValue appends v bare, as Missing, or quoted and escaped, cut to MaxValueLen printed bytes.
func appendValue(b []byte, v string) []byte {
	if v == "" {
		return append(b, Missing...)
	}
	if isBare(v) {
		return append(b, v...)
	}
	b = append(b, '"')
	start := len(b)
	var esc [12]byte
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		e := escapeRune(esc[:0], r)
		// Room for this rune, and for the ellipsis unless it is the last one.
		room := MaxValueLen - (len(b) - start)
		if i+size < len(v) {
			room -= len(ellipsis)
		}
		if len(e) > room {
			b = append(b, ellipsis...)
			break
		}
		b = append(b, e...)
		i += size
	}
	return append(b, '"')
}

// escapeRune appends r the way a JSON string holds it, with everything outside printable ASCII escaped: control
// characters, and Unicode that could reorder or hide text on a terminal (bidi overrides, zero-width characters).
// An invalid byte decodes as U+FFFD and is written as such.
func escapeRune(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	switch {
	case r == '"' || r == '\\':
		return append(b, '\\', byte(r))
	case r == '\n':
		return append(b, '\\', 'n')
	case r == '\r':
		return append(b, '\\', 'r')
	case r == '\t':
		return append(b, '\\', 't')
	case r >= 0x20 && r < 0x7f:
		return append(b, byte(r))
	case r > 0xffff:
		r1, r2 := utf16.EncodeRune(r)
		b = escapeRune(b, r1)
		return escapeRune(b, r2)
	}
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
