package compilerwatch

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	// [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// [label]: target
	referenceLink = regexp.MustCompile(`^\[[^\]]+\]:\s+(\S+)`)
	codeSpan      = regexp.MustCompile("`[^`]*`")
)

// markdownFiles lists the module's Markdown files, outside build output and version control.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (path == ".git" || path == "build" || path == "bench-results") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// proseLines returns the lines of a Markdown file, with the fenced code blocks blanked out.
func proseLines(text string) []string {
	lines := strings.Split(text, "\n")
	fenced := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			lines[i] = ""
		} else if fenced {
			lines[i] = ""
		}
	}
	return lines
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown file: lowercase, punctuation other
// than '-' and '_' removed, spaces turned into '-', a repeated anchor suffixed -1, -2...
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, l := range proseLines(text) {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(l, "#"))
		if title == "" || !strings.HasPrefix(strings.TrimLeft(l, "#"), " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

// TestMarkdownLinks: every relative link in the module's Markdown files names a file or directory that exists, and
// a link to a heading of a Markdown file names a heading that exists, so moving a section or a file cannot leave a
// dead link behind.
func TestMarkdownLinks(t *testing.T) {
	files := markdownFiles(t)
	require.Contains(t, files, "README.md")
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for n, l := range proseLines(string(b)) {
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(l, ""), -1) {
				targets = append(targets, m[1])
			}
			if m := referenceLink.FindStringSubmatch(l); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, anchor, _ := strings.Cut(target, "#")
				resolved := file
				if path != "" {
					resolved = filepath.Join(filepath.Dir(file), path)
					if _, err := os.Stat(resolved); err != nil {
						t.Errorf("%s, line %d: link %q: %s does not exist", file, n+1, target, resolved)
						continue
					}
				}
				if anchor == "" || !strings.HasSuffix(resolved, ".md") {
					continue
				}
				tb, err := os.ReadFile(resolved)
				require.NoError(t, err)
				assert.True(t, headingAnchors(string(tb))[anchor],
					"%s, line %d: link %q: %s has no heading with anchor #%s", file, n+1, target, resolved, anchor)
			}
		}
	}
}
