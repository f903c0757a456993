package findinglog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFindingLine(t *testing.T) {
	full := Finding{
		Severity: "WARN", Rule: "def-000-krp", Compiler: "gcc", Namespace: "prod", Pod: "web-7d9", Container: "app",
		Image: "registry/web:1.2", Parent: "/bin/sh", Origin: "image",
		ContainerID: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
	}
	tests := []struct {
		name string
		f    func(*Finding)
		want string
	}{
		{"every field", func(*Finding) {},
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent=/bin/sh origin=image cid=0f1e2d3c4b5a`},
		{"missing values print -", func(f *Finding) { *f = Finding{Severity: "ERROR", Rule: "def-000-krp", Compiler: "cc"} },
			`ERROR def-000-krp cc ns=- pod=- ctr=- image=- parent=- origin=- cid=-`},
		{"a value that is literally - is quoted", func(f *Finding) { f.Parent = "-" },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="-" origin=image cid=0f1e2d3c4b5a`},
		{"a space cannot forge a field", func(f *Finding) { f.Parent = "/tmp/x ns=kube-system" },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="/tmp/x ns=kube-system" origin=image cid=0f1e2d3c4b5a`},
		{"a newline cannot forge a line", func(f *Finding) { f.Parent = "/tmp/a\nERROR def-000-krp gcc ns=prod" },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="/tmp/a\nERROR def-000-krp gcc ns=prod" origin=image cid=0f1e2d3c4b5a`},
		{"quotes and backslashes", func(f *Finding) { f.Parent = `/tmp/"a\b` },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="/tmp/\"a\\b" origin=image cid=0f1e2d3c4b5a`},
		{"an equals sign is quoted", func(f *Finding) { f.Parent = "/tmp/a=b" },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="/tmp/a=b" origin=image cid=0f1e2d3c4b5a`},
		{"control, bidi, non-ASCII and astral runes are escaped", func(f *Finding) { f.Parent = "/tmp/\x1b[2J\u202egcc\u00e9\U0001F600\t\r" },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="/tmp/\u001b[2J\u202egcc\u00e9\ud83d\ude00\t\r" origin=image cid=0f1e2d3c4b5a`},
		{"invalid UTF-8 becomes U+FFFD", func(f *Finding) { f.Parent = "/tmp/\xff\xfe" },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="/tmp/\ufffd\ufffd" origin=image cid=0f1e2d3c4b5a`},
		{"a long bare value is cut and quoted", func(f *Finding) { f.Parent = "/" + strings.Repeat("a", 200) },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="/` + strings.Repeat("a", MaxValueLen-4) + `..." origin=image cid=0f1e2d3c4b5a`},
		{"a value of exactly MaxValueLen stays whole", func(f *Finding) { f.Parent = "/" + strings.Repeat("a", MaxValueLen-1) },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent=/` + strings.Repeat("a", MaxValueLen-1) + ` origin=image cid=0f1e2d3c4b5a`},
		{"escapes are never split by the cut", func(f *Finding) { f.Parent = strings.Repeat("\x01", 40) },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent="` + strings.Repeat(`\u0001`, 20) + `..." origin=image cid=0f1e2d3c4b5a`},
		{"a short container id is printed whole", func(f *Finding) { f.ContainerID = "abc" },
			`WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 parent=/bin/sh origin=image cid=abc`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := full
			tt.f(&f)
			line := string(f.Line())
			assert.Equal(t, tt.want+"\n", line)
			assert.Equal(t, 1, strings.Count(line, "\n"), "one line")
			assert.LessOrEqual(t, len(line), MaxLineLen)
		})
	}
}

func TestPresenceLine(t *testing.T) {
	p := Presence{Severity: "WARN", Rule: "def-000-krp", Compilers: []string{"as", "cc", "gcc"}, Namespace: "prod",
		Pod: "web-7d9", Container: "app", Image: "registry/web:1.2", ContainerID: strings.Repeat("ab", 32)}
	assert.Equal(t, "WARN def-000-krp present=as,cc,gcc ns=prod pod=web-7d9 ctr=app image=registry/web:1.2 cid=abababababab\n", string(p.Line()))
	assert.Equal(t, "WARN def-000-krp present=- ns=- pod=- ctr=- image=- cid=-\n", string(Presence{Severity: "WARN", Rule: "def-000-krp"}.Line()))
}

// TestLineParsesBack: a reader that splits on spaces outside quotes and reads a quoted value as a JSON string
// (what logfmt parsers do) gets every value back whatever it held, and exactly the documented keys.
func TestLineParsesBack(t *testing.T) {
	hostile := "/tmp/a b\"c\\d\ne=f \u202e\U0001F600 ns=kube-system"
	f := Finding{Severity: "ERROR", Rule: "def-000-krp", Compiler: "gcc", Namespace: "prod", Pod: hostile, Container: "x y",
		Image: hostile, Parent: hostile, Origin: "upper_layer", ContainerID: "0123456789abcdef"}
	line := f.Line()
	require.LessOrEqual(t, len(line), MaxLineLen)
	keys, vals := parseLine(t, string(line))
	assert.Equal(t, []string{"ERROR", "def-000-krp", "gcc", "ns", "pod", "ctr", "image", "parent", "origin", "cid"}, keys)
	assert.Equal(t, hostile, vals["parent"])
	assert.Equal(t, hostile, vals["pod"])
	assert.Equal(t, "x y", vals["ctr"])
	assert.Equal(t, "0123456789ab", vals["cid"])
}

// parseLine splits a line into its positional tokens and key=value pairs, unquoting quoted values as JSON.
func parseLine(t *testing.T, line string) (keys []string, vals map[string]string) {
	t.Helper()
	require.True(t, strings.HasSuffix(line, "\n"))
	line = strings.TrimSuffix(line, "\n")
	vals = map[string]string{}
	for line != "" {
		key, rest, hasValue := "", line, false
		if i := strings.IndexAny(line, "= "); i >= 0 && line[i] == '=' {
			key, rest, hasValue = line[:i], line[i+1:], true
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for ; end < len(rest) && rest[end] != '"'; end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			require.Less(t, end, len(rest), "unterminated quote in %q", rest)
			require.NoError(t, json.Unmarshal([]byte(rest[:end+1]), &v))
			rest = rest[end+1:]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		if !hasValue {
			key = v
		}
		keys = append(keys, key)
		vals[key] = v
		line = strings.TrimPrefix(rest, " ")
		if rest == " " {
			break
		}
	}
	return keys, vals
}

// TestMaxLineLen: every value at its worst (each byte escaped to six) stays within MaxLineLen.
func TestMaxLineLen(t *testing.T) {
	worst := strings.Repeat("\x01", 10*MaxValueLen)
	f := Finding{worst, worst, worst, worst, worst, worst, worst, worst, worst, worst}
	line := f.Line()
	assert.LessOrEqual(t, len(line), MaxLineLen)
	assert.Equal(t, 1, strings.Count(string(line), "\n"))
	p := Presence{worst, worst, []string{worst, worst}, worst, worst, worst, worst, worst}
	assert.LessOrEqual(t, len(p.Line()), MaxLineLen)
	assert.Less(t, MaxLineLen, 16<<10, "below the container runtimes' 16 KiB line split")
}
