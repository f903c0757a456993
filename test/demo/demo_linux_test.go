//go:build linux

package demo_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// TestDemo is `make demo`: the collector with the console pipeline of
// `make run`, a real runc container that compiles a C file, and the finding
// the debug exporter prints. Everything is cleaned up afterwards.
func TestDemo(t *testing.T) {
	if os.Getenv("COMPILERWATCH_DEMO") != "1" {
		t.Skip("run by `make demo` (COMPILERWATCH_DEMO=1)")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	config, err := os.ReadFile(filepath.Join(distro.RepoRoot(t), "testdata", "config.yaml"))
	require.NoError(t, err)
	c := distro.Start(t, string(config))
	fmt.Println("==> collector started with testdata/config.yaml (ebpf_exec -> compiler_detector -> debug)")

	ctr := testenv.NewContainer(t, testenv.Options{Mounts: testenv.HostGCCMounts(t)})
	fmt.Printf("==> runc container %s (pod uid %s) with the host's gcc bind-mounted\n", ctr.ID()[:12], ctr.PodUID())
	ctr.WriteFile(t, "/tmp/hello.c", []byte("#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"), 0o644)
	fmt.Println("==> in the container: gcc -o /tmp/hello /tmp/hello.c && /tmp/hello")
	ctr.MustExec(t, "gcc", "-o", "/tmp/hello", "/tmp/hello.c")
	fmt.Print("    ", ctr.MustExec(t, "/tmp/hello"))

	c.WaitOutput(t, "compilerwatch.compiler.name: Str(gcc)", 30*time.Second)
	time.Sleep(300 * time.Millisecond) // let the debug exporter finish the record
	out := c.Out.String()
	start := strings.LastIndex(out[:strings.Index(out, "compilerwatch.compiler.name: Str(gcc)")], "ResourceLog #")
	if start < 0 {
		start = 0
	}
	fmt.Println("==> the finding, as the debug exporter printed it:")
	fmt.Println(out[start:])
	c.Stop(t)
	fmt.Println("==> collector stopped; the container, its cgroups and mounts are removed")
}
