// Package doccheck reads the queries that the documentation shows (fenced code blocks of a language) so that tests
// can check every name in them against what the components really emit. Import it from _test.go files only.
package doccheck // import "github.com/compilerwatch/compilerwatch/internal/doccheck"

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Blocks returns the fenced code blocks of lang (```lang) in the Markdown file at path, in order.
func Blocks(t testing.TB, path, lang string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	var cur *strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```"+lang:
			cur = &strings.Builder{}
		case cur != nil && trimmed == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
			cur.WriteByte('\n')
		}
	}
	require.Nil(t, cur, "%s: unterminated ```%s block", path, lang)
	require.NotEmpty(t, out, "%s has no ```%s block", path, lang)
	return out
}

// Query is one expression of a query block: the text between comment lines, which start with #.
type Query struct {
	Text string
	// Comment is the comment above the expression.
	Comment string
}

// Queries splits blocks into their expressions: consecutive non-comment, non-blank lines form one.
func Queries(blocks []string) []Query {
	var out []Query
	for _, b := range blocks {
		var comment, text []string
		flush := func() {
			if len(text) > 0 {
				out = append(out, Query{Text: strings.Join(text, "\n"), Comment: strings.Join(comment, " ")})
			}
			comment, text = nil, nil
		}
		for _, line := range strings.Split(b, "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case trimmed == "":
				flush()
			case strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "//"):
				if len(text) > 0 {
					flush()
				}
				comment = append(comment, strings.TrimSpace(strings.TrimLeft(trimmed, "#/")))
			default:
				text = append(text, line)
			}
		}
		flush()
	}
	return out
}

// PromQL is what a PromQL expression refers to.
type PromQL struct {
	// Metrics are the metric names it selects.
	Metrics []string
	// Matchers are the label matchers of its selectors: label name → value (for every operator).
	Matchers map[string][]string
	// Grouping are the labels of its by (...) and without (...) clauses.
	Grouping []string
}

var (
	promSelector = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	promGrouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	promKeywords = map[string]bool{
		"sum": true, "by": true, "without": true, "increase": true, "rate": true, "max": true, "min": true,
		"unless": true, "or": true, "and": true, "offset": true, "count": true, "avg": true, "on": true,
		"ignoring": true, "group_left": true, "group_right": true, "bool": true, "topk": true, "changes": true,
	}
)

// ParsePromQL extracts the metric names, matchers and grouping labels of expr. It knows the subset of PromQL the
// documentation uses: selectors with matchers, aggregations with by/without, functions and set operators.
func ParsePromQL(expr string) PromQL {
	out := PromQL{Matchers: map[string][]string{}}
	noGrouping := promGrouping.ReplaceAllStringFunc(expr, func(g string) string {
		for _, l := range strings.Split(promGrouping.FindStringSubmatch(g)[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out.Grouping = append(out.Grouping, l)
			}
		}
		return " "
	})
	// Durations ([5m]) and numbers are not names.
	noGrouping = regexp.MustCompile(`\[[^\]]*\]|\boffset\s+\w+`).ReplaceAllString(noGrouping, " ")
	seen := map[string]bool{}
	for _, m := range promSelector.FindAllStringSubmatch(noGrouping, -1) {
		name := m[1]
		if promKeywords[name] || regexp.MustCompile(`^[0-9]`).MatchString(name) {
			continue
		}
		if !seen[name] {
			seen[name] = true
			out.Metrics = append(out.Metrics, name)
		}
		for _, mm := range promMatcher.FindAllStringSubmatch(m[3], -1) {
			out.Matchers[mm[1]] = append(out.Matchers[mm[1]], mm[3])
		}
	}
	return out
}
