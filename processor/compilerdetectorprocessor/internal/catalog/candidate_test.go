package catalog

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/flagging_execs.json")

func TestCandidateNames(t *testing.T) {
	for _, tt := range []struct {
		name    string
		replace bool
		user    []User
		in, out []string
	}{
		{
			name: "built-ins",
			in: []string{"gcc", "g++", "cc1", "cc1plus", "collect2", "as", "go", "cargo", "java", "ccache", "swift-frontend",
				"compile", "link", "asm", "cgo"},
			out: []string{"", "ld", "make", "sh", "gcc-ar", "cpp", "x86_64-linux-gn"},
		},
		{
			name: "user entries extend",
			user: []User{{Name: "mycc", Language: langC, Executables: []string{"mycc", "/opt/tools/bin/zcc"}}},
			in:   []string{"gcc", "mycc", "zcc"},
			out:  []string{"/opt/tools/bin/zcc"},
		},
		{
			name:    "replace keeps only the user's, and no Go stage without go",
			replace: true,
			user:    []User{{Name: "mycc", Language: langC, Executables: []string{"mycc"}}},
			in:      []string{"mycc"},
			out:     []string{"gcc", "cc1", "compile", "link"},
		},
		{
			name:    "a 15-byte comm that stands for one compiler",
			replace: true,
			user:    []User{{Name: "long", Language: langC, Executables: []string{"averylongcompilername"}}},
			in:      []string{"averylongcompilername", "averylongcompil"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := NewMatcher(Entries(tt.replace, tt.user)).CandidateNames()
			assert.True(t, slices.IsSorted(got), "sorted")
			assert.Equal(t, len(got), len(slices.Compact(slices.Clone(got))), "no duplicates")
			for _, n := range tt.in {
				assert.Contains(t, got, n)
			}
			for _, n := range tt.out {
				assert.NotContains(t, got, n)
			}
			if tt.replace {
				assert.Len(t, got, len(tt.in))
			}
		})
	}
}

// flaggingSuite is testdata/flagging_execs.json: for a catalog, its candidate names and the names of every exec
// the detection tests flag. The receiver's candidate-filter tests read it (they cannot import this package):
// every one of these execs must pass the kernel's filter.
type flaggingSuite struct {
	Catalog    string        `json:"catalog"`
	Candidates []string      `json:"candidates"`
	Execs      []flaggedExec `json:"execs"`
}

// flaggedExec is the four names the matcher reads of one exec the detection tests flag.
type flaggedExec struct {
	Case     string `json:"case"`
	ExeName  string `json:"exe_name"` // process.executable.name
	Filename string `json:"filename"` // the base name of compilerwatch.exec.filename
	Argv0    string `json:"argv0"`    // process.command
	Comm     string `json:"comm"`     // compilerwatch.exec.comm
	Compiler string `json:"compiler"` // what it is flagged as
}

// entryForms are the names a catalog executable is run by: as is, versioned, cross-prefixed, from a memfd and
// deleted.
var entryForms = []string{"%s", "%s-12", "x86_64-linux-gnu-%s", "x86_64-linux-gnu-%s-12.2.0", "aarch64-none-elf-%s-posix",
	"memfd:%s", "%s (deleted)", "memfd:%s-13 (deleted)"}

// entryArgs are arguments that make e a compiler execution.
func entryArgs(e *Entry) []string {
	if e.kind != kindTool {
		return nil
	}
	switch e.style {
	case argsGo, argsCargo:
		return []string{"build"}
	case argsJava:
		return []string{"Foo.java"}
	case argsWrapper:
		return []string{"gcc", "-c", "x.c"}
	}
	for sub := range e.subcommands {
		return []string{sub}
	}
	return nil
}

func buildSuite(name string, entries []*Entry, cases []execCase) flaggingSuite {
	m := NewMatcher(entries)
	suite := flaggingSuite{Catalog: name, Candidates: m.CandidateNames()}
	add := func(c execCase) {
		v := c.view()
		v.Known = catalogKnown{m}
		got, ok := m.match(v)
		if !ok {
			return
		}
		suite.Execs = append(suite.Execs, flaggedExec{
			Case: c.name, ExeName: v.ExeName, Filename: Basename(v.Filename), Argv0: v.Argv0, Comm: v.Comm,
			Compiler: got.Name,
		})
	}
	for _, c := range cases {
		add(c)
	}
	for _, e := range entries {
		for _, x := range e.executables {
			if x[0] == '/' {
				add(execCase{name: "catalog " + x, exe: x, argv: entryArgs(e)})
				continue
			}
			for _, f := range entryForms {
				form := fmt.Sprintf(f, x)
				add(execCase{name: "catalog " + form, exe: "/usr/bin/" + form, argv: entryArgs(e)})
			}
		}
	}
	if m.byName["go"] != nil {
		for _, st := range goToolStages {
			add(execCase{name: "go tool " + st, exe: "/usr/local/go/pkg/tool/linux_amd64/" + st})
		}
	}
	return suite
}

// TestFlaggingExecsGolden keeps testdata/flagging_execs.json equal to what the detection suite flags: the
// matcher's test cases, the user-entry cases, and every catalog executable in the forms it is run by. Run with
// -update after changing the catalog or its tests.
func TestFlaggingExecsGolden(t *testing.T) {
	got := []flaggingSuite{
		buildSuite("builtin", Builtin(), matcherCases()),
		buildSuite("user", Entries(false, userEntries()), userEntryCases()),
	}
	for _, s := range got {
		require.NotEmpty(t, s.Execs)
	}
	b, err := json.MarshalIndent(got, "", "  ")
	require.NoError(t, err)
	b = append(b, '\n')
	path := filepath.Join("testdata", "flagging_execs.json")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, b, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run TestFlaggingExecsGolden -update")
	assert.Equal(t, string(want), string(b), "%s is stale: run go test -run TestFlaggingExecsGolden -update", path)
}
