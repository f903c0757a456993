//go:build linux

package presence

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/inroot"
	"github.com/compilerwatch/compilerwatch/internal/inroot/inroottest"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
)

// fakeRoot builds a container root: files are created with their mode, links with their target.
var fakeRoot = inroottest.FakeRoot

// scanDir scans the directory root as a container's root.
func scanDir(t *testing.T, ctx context.Context, root string) Result {
	t.Helper()
	r, err := inroot.Open(root)
	require.NoError(t, err)
	defer r.Close()
	return ScanTree(ctx, r, catalog.NewMatcher(catalog.Builtin()))
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
	r := scanDir(t, context.Background(), root)
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
	r := scanDir(t, context.Background(), root)
	assert.Empty(t, r.found)
}

func TestScanRootStopsWhenCanceled(t *testing.T) {
	root := fakeRoot(t, map[string]os.FileMode{"/usr/bin/gcc": 0o755, "/usr/bin/ls": 0o755}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := scanDir(t, ctx, root)
	assert.True(t, r.limited, "a canceled scan reports itself as limited")
}

// BenchmarkScanRootHost scans this machine's own root, a realistic Debian root with gcc, Go and a JDK: the
// cost of one container's presence scan, with the entries it examined.
func BenchmarkScanRootHost(b *testing.B) {
	m := catalog.NewMatcher(catalog.Builtin())
	var r Result
	root, err := inroot.Open("/")
	require.NoError(b, err)
	defer root.Close()
	b.ReportAllocs()
	for b.Loop() {
		r = ScanTree(context.Background(), root, m)
	}
	b.ReportMetric(float64(r.entries), "entries/scan")
	b.ReportMetric(float64(len(r.found)), "found/scan")
}

// TestScanTreeHostileLinks: links a container can write into the scanned directories resolve inside its root.
// This host has gcc in /usr/bin, so a scan that followed any of them out of the root would report it.
func TestScanTreeHostileLinks(t *testing.T) {
	root := fakeRoot(t, map[string]os.FileMode{
		"/srv/tools/tcc":       0o755, // the container's own compiler, reached only through links
		"/usr/local/go/bin/go": 0o755, // scanned after every broken place below
	}, map[string]string{
		"/opt/abs/bin":      "/srv/tools",                               // absolute: the container's /srv/tools
		"/opt/host/bin":     "/usr/bin",                                 // absolute: no /usr/bin in this root
		"/usr/bin":          "../../../../../../../../../../../usr/bin", // ".." chain: stops at the root, a loop
		"/usr/local/bin":    "../../../../../../../../../usr/lib/gcc",   // ".." chain to the host's gcc stages
		"/opt/proc/bin":     "/proc/1/root/usr/bin",                     // no /proc in this root
		"/opt/self/bin":     "/proc/self/root/usr/bin",
		"/opt/loop/bin":     "/opt/loop/bin", // loops
		"/opt/ping/bin":     "/opt/pong/bin",
		"/opt/pong/bin":     "/opt/ping/bin",
		"/usr/lib/jvm/x":    "/",            // a glob component linked to the root: /usr/lib/jvm/x/bin = /bin
		"/usr/lib/gcc/x":    "/usr/lib/gcc", // /usr/lib/gcc/*/* looks into itself, once
		"/usr/sbin":         "/srv/tools",   // a scanned directory replaced by a link
		"/sbin/gcc":         "/usr/bin/gcc", // a file link to the host's gcc: dangling here
		"/bin/cc":           "../../../../../../../../usr/bin/gcc",
		"/usr/lib/go-1/bin": "/proc/self/cwd", // a magic link target path; no /proc here either
		"/root/.local/bin":  "/root/.local/bin/../../../usr/bin",
	})
	r := scanDir(t, context.Background(), root)
	assert.Equal(t, []string{
		"go:/usr/local/go/bin/go",
		"tcc:/opt/abs/bin/tcc",
		"tcc:/usr/sbin/tcc",
	}, r.found)
	assert.Positive(t, r.errors, "the loops are errors, counted")
	assert.False(t, r.limited)
}

func TestScanTreeBoundsEntries(t *testing.T) {
	const max = 100
	files := map[string]os.FileMode{"/usr/local/go/bin/go": 0o755}
	for i := range max + 10 {
		files[fmt.Sprintf("/usr/bin/f%d", i)] = 0o644
	}
	root, err := inroot.Open(fakeRoot(t, files, nil))
	require.NoError(t, err)
	defer root.Close()
	s := treeScan{ctx: context.Background(), root: root, m: catalog.NewMatcher(catalog.Builtin()), maxEntries: max}
	r := s.run()
	assert.True(t, r.limited)
	assert.Equal(t, max+1, r.entries, "stops at the bound")
	assert.Empty(t, r.found, "/usr/local/go/bin comes after the bound")
}

func TestScanTreeBoundsGlobDirs(t *testing.T) {
	root := t.TempDir()
	for i := range scanMaxDirs + 1 {
		require.NoError(t, os.MkdirAll(filepath.Join(root, fmt.Sprintf("usr/lib/jvm/j%d/bin", i)), 0o755))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "usr/local/go/bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "usr/local/go/bin/go"), nil, 0o755))
	r := scanDir(t, context.Background(), root)
	assert.True(t, r.limited, "a glob expanding to more than scanMaxDirs directories")
	assert.Equal(t, []string{"go:/usr/local/go/bin/go"}, r.found, "the patterns after it are still scanned")
}
