package compilerdetectorprocessor

import (
	"context"
	"flag"
	"path/filepath"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/plogtest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
)

var update = flag.Bool("update", false, "rewrite testdata/golden input and expected files")

// goldenInput is what testdata/golden/input.yaml holds (regenerate with -update): two containers, one with
// Kubernetes attributes, and host processes.
func goldenInput() plog.Logs {
	ld := plog.NewLogs()
	yes, no := true, false
	sl := appendResource(ld, testContainer, map[string]string{
		attr.K8sNamespace: "prod", attr.K8sPodUID: testPodUID, attr.K8sPodLabel + "app": "web",
		attr.ContainerImage: "registry.example/team/web",
	})
	appendExec(sl, 10, recSh)
	appendExec(sl, 11, recGCC)
	appendExec(sl, 12, under(recCC1, 11, recGCC))
	appendExec(sl, 13, under(recAs, 11, recGCC))
	appendExec(sl, 14, recGCC) // same key within the window: suppressed
	// A build step of the entrypoint, and a compiler typed at a terminal entered with kubectl exec: the process
	// context passes through.
	appendExec(sl, 15, execRec{exe: "/usr/local/go/bin/go", argv: []string{"build", "-o", "/app", "."}, anc: []string{"9:make", "8:bash"}, parent: "/usr/bin/make", inInitTree: &yes})
	appendExec(sl, 16, execRec{exe: "/usr/local/go/pkg/tool/linux_amd64/compile", argv: []string{"-o", "b001/_pkg_.a"}, anc: []string{"15:go", "9:make"}, parent: "/usr/local/go/bin/go"})
	// /tmp/y renames itself gcc (prctl) after its exec; its stage is reported all the same, and the finding then
	// vouches for the assembler it runs next.
	appendExec(sl, 22, execRec{exe: "/tmp/y", anc: bashAnc, parent: "/usr/bin/bash", origin: "upper_layer"})
	appendExec(sl, 23, execRec{exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus", anc: []string{"22:gcc", "100:bash"}, ancExe: []string{"y"}, parent: "/tmp/y", origin: "image", parentOrigin: "upper_layer"})
	appendExec(sl, 24, execRec{exe: "/usr/bin/x86_64-linux-gnu-as", file: "/usr/bin/as", anc: []string{"22:gcc", "100:bash"}, ancExe: []string{"y"}, parent: "/tmp/y", parentOrigin: "upper_layer"})
	appendExec(sl, 17, execRec{exe: "/usr/local/go/bin/go", argv: []string{"version"}, anc: bashAnc, parent: "/usr/bin/bash"})
	appendExec(sl, 18, execRec{exe: "/tmp/x", argv: []string{"-c", "evil.c"}, anc: bashAnc, parent: "/usr/bin/bash", origin: "upper_layer", interactive: true, inInitTree: &no})
	appendExec(sl, 19, execRec{exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", argv: []string{"evil.c"}, anc: []string{"18:x", "100:bash"}, parent: "/tmp/x", origin: "image", parentOrigin: "upper_layer"})
	appendExec(sl, 20, execRec{exe: "/usr/lib/jvm/java-17/bin/javac", file: "/usr/bin/javac", argv: []string{"Main.java"}, anc: bashAnc, parent: "/usr/bin/bash", origin: "upper_layer"})
	appendExec(sl, 21, execRec{exe: "/usr/lib/llvm-19/bin/clangd", anc: bashAnc, parent: "/usr/bin/bash"})

	sl = appendResource(ld, testContainer2, map[string]string{attr.K8sNamespace: "ci"})
	appendExec(sl, 30, execRec{exe: "/usr/bin/rustc", argv: []string{"main.rs"}, anc: bashAnc, parent: "/usr/bin/bash"})
	appendExec(sl, 31, recSh)

	sl = appendResource(ld, "", nil)
	appendExec(sl, 40, recGCC)
	appendExec(sl, 41, recSh)
	return ld
}

func TestGolden(t *testing.T) {
	inputPath := filepath.Join("testdata", "golden", "input.yaml")
	if *update {
		require.NoError(t, golden.WriteLogs(t, inputPath, goldenInput()))
	}
	tests := []struct {
		name string
		cfg  func(*Config)
	}{
		{name: "default", cfg: func(*Config) {}},
		{name: "only_flagged", cfg: func(c *Config) { c.OnlyFlagged = true }},
		{name: "host_scope", cfg: func(c *Config) { c.ContainersOnly = false }},
		{name: "exclusions", cfg: func(c *Config) {
			c.Exclude.Namespaces = []string{"ci"}
			c.Exclude.ParentExecutables = []string{"make"}
		}},
		{name: "no_dedup", cfg: func(c *Config) { c.Dedup.Window = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			tt.cfg(cfg)
			h := newHarness(t, cfg, nil)
			require.NoError(t, h.p.Start(context.Background(), componenttest.NewNopHost()))

			input, err := golden.ReadLogs(inputPath)
			require.NoError(t, err)
			require.NoError(t, h.p.ConsumeLogs(context.Background(), input))
			require.Len(t, h.sink.AllLogs(), 1)
			actual := h.sink.AllLogs()[0]

			expectedPath := filepath.Join("testdata", "golden", tt.name+".yaml")
			if *update {
				require.NoError(t, golden.WriteLogs(t, expectedPath, actual))
			}
			expected, err := golden.ReadLogs(expectedPath)
			require.NoError(t, err)
			require.NoError(t, plogtest.CompareLogs(expected, actual))
			require.NoError(t, h.p.Shutdown(context.Background()))
		})
	}
}
