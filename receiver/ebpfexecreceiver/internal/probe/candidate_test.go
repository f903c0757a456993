package probe

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FlaggingSuite is the compiler detector's flagging_execs.json: for a catalog, its candidate names and the four
// names of every exec its detection tests flag. Exported for the receiver's kernel tests.
type FlaggingSuite struct {
	Catalog    string `json:"catalog"`
	Candidates []string
	Execs      []struct {
		Case     string `json:"case"`
		ExeName  string `json:"exe_name"`
		Filename string `json:"filename"`
		Argv0    string `json:"argv0"`
		Comm     string `json:"comm"`
		Compiler string `json:"compiler"`
	} `json:"execs"`
}

// flaggingSuitePath is written by the processor's catalog tests (TestFlaggingExecsGolden).
var flaggingSuitePath = filepath.Join("..", "..", "..", "..", "processor", "compilerdetectorprocessor", "internal",
	"catalog", "testdata", "flagging_execs.json")

func readFlaggingSuites(t *testing.T) []FlaggingSuite {
	t.Helper()
	b, err := os.ReadFile(flaggingSuitePath)
	require.NoError(t, err)
	var suites []FlaggingSuite
	require.NoError(t, json.Unmarshal(b, &suites))
	require.NotEmpty(t, suites)
	return suites
}

// TestCandidateFilterLosesNoFinding checks the kernel's name check, as MayMatch mirrors it step for step, on the
// whole detection suite: every exec the detector flags is sent on account of at least one of its names. The
// kernel test TestKernelCandidateFilterLosesNoFinding runs the same execs through the real program.
func TestCandidateFilterLosesNoFinding(t *testing.T) {
	for _, s := range readFlaggingSuites(t) {
		b := NewCandidateBloom(s.Candidates)
		assert.Equal(t, len(s.Candidates), b.Names())
		require.NotEmpty(t, s.Execs)
		for _, e := range s.Execs {
			names := []string{e.ExeName, e.Filename, e.Argv0, e.Comm}
			sent := false
			for _, n := range names {
				sent = sent || b.MayMatch(n)
			}
			assert.True(t, sent, "%s: %q flagged as %s, dropped by the filter (names %q)", s.Catalog, e.Case, e.Compiler, names)
		}
	}
}

// TestCandidateMayMatch is the name check on its own: the decorations, version fields and prefixes the
// detector's matcher accepts, and names it does not.
func TestCandidateMayMatch(t *testing.T) {
	b := NewCandidateBloom([]string{"gcc", "g++", "cc1", "clang-cl", "as", "go", "compile"})
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"gcc", true},
		{"/usr/bin/gcc", true},
		{"gcc-12", true},
		{"gcc-12.2.0", true},
		{"g++-posix", true},
		{"x86_64-linux-gnu-gcc-12", true},
		{"x86_64-w64-mingw32-g++-10-posix", true},
		{"memfd:gcc", true},
		{"gcc (deleted)", true},
		{"/proc/self/fd/3/memfd:cc1 (deleted)", true},
		{"clang-cl", true},
		{"clang-cl-19", true},
		{"aarch64-linux-gnu-as", true},
		{"go", true},
		{"compile", true},
		// Not candidates.
		{"", false},
		{"sh", false},
		{"true", false},
		{"/usr/bin/make", false},
		{"gccx", false},
		{"gcc-ar", false},
		{"python3.11", false},
		{"gcc/", false}, // the base name is empty
		{"containerd-shim-runc-v2", false},
		// Undecidable: sent.
		{strings.Repeat("a", CandScanMax), true},
		{strings.Repeat("a-", candGroupsMax), true},
		{strings.Repeat("x", PathBytesMax+1), true},
	} {
		assert.Equal(t, tt.want, b.MayMatch(tt.name), "%q", tt.name)
	}
	// A long path with a short base name is decided.
	assert.False(t, b.MayMatch(strings.Repeat("d/", 1000)+"true"))
	assert.True(t, b.MayMatch(strings.Repeat("d/", 1000)+"gcc"))
}

// TestCandidateBloomFalsePositives bounds how often a name outside the set is sent on a hash collision: with the
// built-in catalog's hundred names, well under one in a thousand.
func TestCandidateBloomFalsePositives(t *testing.T) {
	var names []string
	for _, s := range readFlaggingSuites(t) {
		names = append(names, s.Candidates...)
	}
	b := NewCandidateBloom(names)
	fp := 0
	const n = 100000
	for i := range n {
		if b.probe(candHash("not-a-compiler-" + string(rune('a'+i%26)) + itoa(i))) {
			fp++
		}
	}
	t.Logf("%d of %d names outside the %d candidates hit the filter", fp, n, b.Names())
	assert.Less(t, fp, n/1000, "false positives per %d", n)
}

func itoa(i int) string {
	var buf [20]byte
	p := len(buf)
	for {
		p--
		buf[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(buf[p:])
		}
	}
}
