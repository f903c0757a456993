package compilerdetectorprocessor

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
)

// docSection returns the non-empty lines of docs/detection.md under the heading, up to the next heading.
func docSection(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "detection.md"))
	require.NoError(t, err)
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == heading:
			in = true
			continue
		case in && strings.HasPrefix(l, "#"):
			return out
		}
		if in && l != "" {
			out = append(out, l)
		}
	}
	require.True(t, in, "docs/detection.md has no heading %q", heading)
	return out
}

// runNotFlagged runs recs through the processor, in a container, and requires every record to pass unflagged.
func runNotFlagged(t *testing.T, recs []execRec) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Dedup.Window = 0
	h := newHarness(t, cfg, nil)
	ld := plog.NewLogs()
	sl := appendResource(ld, testContainer, nil)
	for i, r := range recs {
		appendExec(sl, int64(200+i), r)
	}
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	assert.Equal(t, len(recs), logCount(h.sink.AllLogs()))
	for _, lr := range flagged(h.sink.AllLogs()) {
		t.Errorf("flagged: %v", lr.Attributes().AsRaw())
	}
}

var backticked = regexp.MustCompile("`([^`]+)`")

// TestCatalogDocsNotFlagged runs every entry of the "Not flagged" list of docs/detection.md through the processor.
func TestCatalogDocsNotFlagged(t *testing.T) {
	sh := bashAnc
	cases := map[string][]execRec{
		"clangd":                {{exe: "/usr/lib/llvm-19/bin/clangd", anc: sh}},
		"clang-format":          {{exe: "/usr/bin/clang-format-19", argv: []string{"-i", "a.c"}, anc: sh}},
		"clang-tidy":            {{exe: "/usr/bin/clang-tidy", argv: []string{"a.c"}, anc: sh}},
		"gcc-ar":                {{exe: "/usr/bin/x86_64-linux-gnu-gcc-ar-12", file: "/usr/bin/gcc-ar", argv: []string{"rcs", "lib.a", "a.o"}, anc: sh}},
		"gcc-nm":                {{exe: "/usr/bin/x86_64-linux-gnu-gcc-nm-12", file: "/usr/bin/gcc-nm", argv: []string{"a.o"}, anc: sh}},
		"gcc-ranlib":            {{exe: "/usr/bin/x86_64-linux-gnu-gcc-ranlib-12", file: "/usr/bin/gcc-ranlib", argv: []string{"lib.a"}, anc: sh}},
		"cpp":                   {{exe: "/usr/bin/x86_64-linux-gnu-cpp-12", file: "/usr/bin/cpp", argv: []string{"a.c"}, anc: sh}},
		"ccache -s":             {{exe: "/usr/bin/ccache", argv: []string{"-s"}, anc: sh}},
		"go version":            {{exe: "/usr/local/go/bin/go", argv: []string{"version"}, anc: sh}},
		"go env":                {{exe: "/usr/local/go/bin/go", argv: []string{"env", "GOPATH"}, anc: sh}},
		"go mod download":       {{exe: "/usr/local/go/bin/go", argv: []string{"mod", "download"}, anc: sh}},
		"cargo fetch":           {{exe: "/root/.cargo/bin/cargo", argv: []string{"fetch"}, anc: sh}},
		"java -jar app.jar":     {{exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-Xmx1g", "-jar", "app.jar", "Foo.java"}, anc: sh}},
		"java -cp app.jar Main": {{exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp", "app.jar", "com.example.Main"}, anc: sh}},
		"dotnet app.dll":        {{exe: "/usr/share/dotnet/dotnet", argv: []string{"app.dll"}, anc: sh}},
		"make":                  {{exe: "/usr/bin/make", argv: []string{"-j8"}, anc: sh}},
		"cmake":                 {{exe: "/usr/bin/cmake", argv: []string{"--build", "."}, anc: sh}},
		"ld":                    {{exe: "/usr/bin/x86_64-linux-gnu-ld.bfd", file: "/usr/bin/ld", argv: []string{"-o", "a", "a.o"}, anc: sh}},
		"sh -c":                 {{exe: "/usr/bin/dash", file: "/bin/sh", argv: []string{"-c", "gcc -c a.c"}, anc: sh}},
		"bash":                  {{exe: "/usr/bin/bash", argv: []string{"build.sh"}, anc: sh}},
		"python3":               {{exe: "/usr/bin/python3.11", file: "/usr/bin/python3", argv: []string{"setup.py", "build"}, anc: sh}},
		"node":                  {{exe: "/usr/bin/node", argv: []string{"build.js"}, anc: sh}},
		"perl":                  {{exe: "/usr/bin/perl", argv: []string{"Makefile.PL"}, anc: sh}},
	}
	var listed []string
	// The list is the paragraph after the section's first line, which names this test.
	for _, l := range docSection(t, "## Not flagged")[1:] {
		for _, m := range backticked.FindAllStringSubmatch(l, -1) {
			listed = append(listed, m[1])
		}
	}
	for _, name := range listed {
		t.Run(name, func(t *testing.T) {
			recs, ok := cases[name]
			require.True(t, ok, "docs/detection.md lists %q as not flagged: add its case here", name)
			runNotFlagged(t, recs)
		})
	}
	for name := range cases {
		assert.True(t, slices.Contains(listed, name), "case %q is not in the Not flagged list of docs/detection.md", name)
	}
}

// TestCatalogDocsCannotCatch shows that each entry of the "What the catalog cannot catch" list of docs/detection.md
// is indeed not flagged: the list is the detector's known blind spots, stated and kept true.
func TestCatalogDocsCannotCatch(t *testing.T) {
	sh := bashAnc
	cases := map[string][]execRec{
		"renamed single-binary compiler": {
			{exe: "/tmp/x", argv: []string{"-c", "a.c"}, anc: sh, origin: "upper_layer"},              // tcc, copied
			{exe: "/tmp/y", argv: []string{"-c", "a.c", "-o", "a.o"}, anc: sh, origin: "upper_layer"}, // clang, copied
		},
		"renamed stage": {
			{exe: "/tmp/foo", argv: []string{"-quiet", "a.c", "-o", "a.s"}, anc: sh},                       // cc1, copied
			{exe: "/opt/tools/compile", argv: []string{"-o", "_pkg_.a", "-p", "main", "main.go"}, anc: sh}, // Go's compile, moved
		},
		"compiler inside another process": {
			{exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp", "tools.jar", "com.example.CompileWithJavaxTools"}, anc: sh},
			{exe: "/usr/share/dotnet/dotnet", argv: []string{"roslyn-host.dll", "Program.cs"}, anc: sh},
			{exe: "/usr/bin/python3.11", file: "/usr/bin/python3", argv: []string{"-c", "compile(open('x.py').read(), 'x.py', 'exec')"}, anc: sh},
		},
		"java argfile": {
			{exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"@sources"}, anc: sh},
			{exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"./script"}, anc: sh}, // JDK_JAVA_OPTIONS="--source 21"
		},
		"unknown compiler": {{exe: "/opt/mycc/bin/mycc", argv: []string{"-c", "a.c"}, anc: sh}},
	}
	label := regexp.MustCompile(`^- \*\*([^*]+)\*\*`)
	var listed []string
	for _, l := range docSection(t, "## What the catalog cannot catch") {
		if m := label.FindStringSubmatch(l); m != nil {
			listed = append(listed, m[1])
		}
	}
	for _, name := range listed {
		t.Run(name, func(t *testing.T) {
			recs, ok := cases[name]
			require.True(t, ok, "docs/detection.md lists %q as a blind spot: add its case here", name)
			runNotFlagged(t, recs)
		})
	}
	for name := range cases {
		assert.True(t, slices.Contains(listed, name), "case %q is not in the cannot-catch list of docs/detection.md", name)
	}
}
