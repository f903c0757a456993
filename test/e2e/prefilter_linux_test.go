//go:build linux

package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// TestDistributionPrefilterCompilers runs the built distribution with "prefilter: [containers, compilers]" and
// the compiler_catalog extension, whose names come from the compiler_detector's catalog, a user entry included.
// In one container gcc compiles: it is flagged once. In it and in a second container that only runs busybox, no
// other exec reaches the exporter (only_flagged is off, so every record the kernel sends would), yet the
// presence scan reports the gcc in the second container's root: its first exec was sent as a
// compilerwatch.container.seen record, which the processor drops.
func TestDistributionPrefilterCompilers(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	addr, sink := startOTLPSink(t)
	c := distro.Start(t, fmt.Sprintf(`
extensions:
  compiler_catalog:
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
    prefilter: [containers, compilers]
processors:
  compiler_detector:
    compilers:
      entries:
        - {name: busyboxcc, language: c, executables: [busyboxcc]}
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
service:
  extensions: [compiler_catalog]
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [compiler_detector, batch], exporters: [otlp_grpc]}
  telemetry:
    metrics: {level: none}
`, addr))
	assert.Contains(t, c.Out.String(), "candidate_names")

	compiling := testenv.NewContainer(t, testenv.Options{Mounts: append(testenv.HostGCCMounts(t),
		testenv.Mount{Destination: "/opt/busyboxcc", Source: "/bin/busybox"})})
	idle := testenv.NewContainer(t, testenv.Options{Mounts: testenv.HostGCCMounts(t)})
	tag := fmt.Sprintf("cw-prefilter-%d", time.Now().UnixNano())
	compiling.MustExec(t, "/bin/busybox", "echo", tag)
	compiling.WriteFile(t, "/tmp/hello.c", []byte("int main(void) { return 0; }\n"), 0o644)
	compiling.MustExec(t, "gcc", "-c", "-o", "/tmp/hello.o", "/tmp/hello.c")
	// A user entry of the processor's catalog passes the kernel's filter too (busybox knows no such applet: the
	// exec succeeds, the command fails).
	_, _ = compiling.Exec(t, "/opt/busyboxcc", tag+"-usercc")
	for range 5 {
		idle.MustExec(t, "/bin/busybox", "echo", tag)
	}

	compilers := func() map[string]int {
		n := map[string]int{}
		for _, r := range findings(sink, "process.exec", compiling.ID()) {
			v, _ := r.Attributes().Get("compilerwatch.compiler.name")
			n[v.Str()]++
		}
		return n
	}
	require.Eventually(t, func() bool { n := compilers(); return n["gcc"] > 0 && n["busyboxcc"] > 0 },
		30*time.Second, 100*time.Millisecond, "gcc and the user entry are flagged")
	require.Eventually(t, func() bool { return len(findings(sink, "container.compilers_present", idle.ID())) > 0 },
		30*time.Second, 100*time.Millisecond, "the container that ran no compiler still gets its presence scan")
	time.Sleep(500 * time.Millisecond)

	assert.Equal(t, map[string]int{"gcc": 1, "busyboxcc": 1}, compilers(), "one finding for one gcc -c, one for the user's compiler")
	assert.Empty(t, findings(sink, "process.exec", idle.ID()))
	for _, r := range sinkRecords(sink.AllLogs()) {
		assert.NotEqual(t, "compilerwatch.container.seen", r.rec.EventName(), "a seen record is never exported")
		for _, a := range r.strs("process.command_args") {
			assert.NotEqual(t, tag, a, "a busybox echo passed the kernel's filter: %v", r.attrs)
		}
	}
	c.Stop(t)
}

// TestDistributionPrefilterCompilersNeedsTheCatalog: without the extension, the collector does not start, and
// says what to add.
func TestDistributionPrefilterCompilersNeedsTheCatalog(t *testing.T) {
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	c := distro.Launch(t, distro.Binary(t), "--config", distro.WriteConfig(t, `
receivers:
  ebpf_exec:
    prefilter: compilers
processors:
  compiler_detector:
exporters:
  debug:
service:
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [compiler_detector], exporters: [debug]}
  telemetry:
    metrics: {level: none}
`))
	select {
	case err := <-c.Done:
		require.Error(t, err, "the collector must not start")
	case <-time.After(60 * time.Second):
		t.Fatalf("the collector kept running:\n%s", c.Out.String())
	}
	assert.Contains(t, c.Out.String(), `"prefilter: compilers" reads the catalog from a compiler_catalog extension, and the collector runs none`)
}
