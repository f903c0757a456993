// Package inroottest builds container roots on disk for the tests of the in-root reader and its users.
package inroottest // import "github.com/compilerwatch/compilerwatch/internal/inroot/inroottest"

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FakeRoot builds a container root in a temporary directory: files are created with their mode (content "x"),
// links with their target.
func FakeRoot(t *testing.T, files map[string]os.FileMode, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, mode := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte("x"), mode))
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.Symlink(target, full))
	}
	return root
}
