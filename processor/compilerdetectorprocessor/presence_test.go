package compilerdetectorprocessor

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRoot builds a container root: files are created with their mode, links with their target.
func fakeRoot(t *testing.T, files map[string]os.FileMode, links map[string]string) string {
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

func TestScanRoot(t *testing.T) {
	root := fakeRoot(t, map[string]os.FileMode{
		"/usr/bin/x86_64-linux-gnu-gcc-12":            0o755,
		"/usr/lib/gcc/x86_64-linux-gnu/12/cc1":        0o755,
		"/usr/lib/gcc/x86_64-linux-gnu/12/collect2":   0o755,
		"/usr/lib/gcc/x86_64-linux-gnu/12/crtbegin.o": 0o644,
		"/usr/local/go/bin/go":                        0o755,
		"/usr/lib/jvm/java-17/bin/javac":              0o755,
		"/usr/lib/jvm/java-17/bin/java":               0o755, // a JRE is not a compiler
		"/usr/bin/clangd":                             0o755, // a language server
		"/usr/bin/python3":                            0o755,
		"/usr/bin/as":                                 0o644, // not executable
		"/etc/alternatives/placeholder":               0o644,
		"/home/user/gcc":                              0o755, // not a place compilers are installed
	}, map[string]string{
		"/usr/bin/gcc":         "x86_64-linux-gnu-gcc-12", // relative
		"/etc/alternatives/cc": "/usr/bin/gcc",            // absolute, resolved inside the root
		"/usr/bin/cc":          "/etc/alternatives/cc",
		"/usr/bin/g++":         "/usr/bin/x86_64-linux-gnu-g++-12", // dangling: the package is gone
		// Absolute, pointing at a file that exists on the HOST but not in the root: must not count.
		"/usr/bin/tcc": "/bin/true",
	})
	r, err := scanRoot(context.Background(), root, newMatcher(builtinCatalog()))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"cc:/usr/bin/cc",
		"gcc:/usr/bin/gcc",
		"gcc:/usr/bin/x86_64-linux-gnu-gcc-12",
		"gcc:/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
		"gcc:/usr/lib/gcc/x86_64-linux-gnu/12/collect2",
		"go:/usr/local/go/bin/go",
		"javac:/usr/lib/jvm/java-17/bin/javac",
	}, r.found)
	assert.False(t, r.limited)
	assert.Positive(t, r.entries)
}

func TestScanRootClean(t *testing.T) {
	root := fakeRoot(t, map[string]os.FileMode{"/bin/busybox": 0o755, "/usr/bin/python3": 0o755}, map[string]string{"/bin/sh": "busybox"})
	r, err := scanRoot(context.Background(), root, newMatcher(builtinCatalog()))
	require.NoError(t, err)
	assert.Empty(t, r.found)
}

func TestScanRootStopsWhenCanceled(t *testing.T) {
	root := fakeRoot(t, map[string]os.FileMode{"/usr/bin/gcc": 0o755, "/usr/bin/ls": 0o755}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := scanRoot(ctx, root, newMatcher(builtinCatalog()))
	require.NoError(t, err)
	assert.True(t, r.limited, "a canceled scan reports itself as limited")
}

// BenchmarkScanRootHost scans this machine's own root, a realistic Debian root with gcc, Go and a JDK: the
// cost of one container's presence scan, with the entries it examined.
func BenchmarkScanRootHost(b *testing.B) {
	m := newMatcher(builtinCatalog())
	var r scanResult
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if r, err = scanRoot(context.Background(), "/", m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.entries), "entries/scan")
	b.ReportMetric(float64(len(r.found)), "found/scan")
}
