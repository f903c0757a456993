package compilerdetectorprocessor

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/imagebuild"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
)

// TestCollectorImageHasNoCompiler unpacks each platform of the image `make image` wrote and matches every
// file in it, wherever it lies, against the catalog the presence scan uses: the collector's own container
// must never be flagged under the rule it enforces. Every catalog entry counts here, argument-dependent
// tools (go, cargo, java) included, which is stricter than the presence scan's directories and tool list.
func TestCollectorImageHasNoCompiler(t *testing.T) {
	out := filepath.Join("..", "..", "build", "image")
	if _, err := os.Stat(filepath.Join(out, imagebuild.LayoutDir, "index.json")); err != nil {
		msg := out + " is not built: run `make image` (make test does)"
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	m := catalog.NewMatcher(catalog.Builtin())
	require.NotNil(t, m.Lookup("gcc"), "the matcher knows compilers")
	idx, err := imagebuild.LayoutIndex(out)
	require.NoError(t, err)
	for _, p := range imagebuild.Platforms {
		t.Run(p.Architecture, func(t *testing.T) {
			img, err := imagebuild.PlatformImage(idx, p.Architecture)
			require.NoError(t, err)
			root := t.TempDir()
			require.NoError(t, imagebuild.Unpack(img, root))
			var files int
			require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				files++
				rel, _ := filepath.Rel(root, path)
				assert.Nil(t, m.Lookup(d.Name()), "/%s is a catalog entry", rel)
				return nil
			}))
			assert.Equal(t, len(imagebuild.Files), files)
		})
	}
}
