//go:build linux

package bench_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// idleConfig is the shipped DaemonSet's pipeline (memory_limiter, compiler_detector with only_flagged, batch)
// without its Kubernetes metadata and with the debug exporter in place of OTLP: an idle collector exports
// nothing, so only the timers and polls of the components remain. prefilter is the receiver's.
func idleConfig(t testing.TB, prefilter string) string {
	t.Helper()
	health, metrics := distro.FreePort(t), distro.FreePort(t)
	host, port, err := net.SplitHostPort(metrics)
	require.NoError(t, err)
	return fmt.Sprintf(`
receivers:
  ebpf_exec: {prefilter: %s}
processors:
  memory_limiter: {check_interval: 1s, limit_mib: 180, spike_limit_mib: 40}
  compiler_detector: {only_flagged: true, kubernetes: {enabled: false}}
  batch: {send_batch_size: 256, send_batch_max_size: 256, timeout: 1s}
exporters:
  debug: {verbosity: basic}
extensions:
  health_check: {endpoint: "%s"}
service:
  extensions: [health_check]
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [memory_limiter, compiler_detector, batch], exporters: [debug]}
  telemetry:
    metrics:
      level: normal
      readers:
        - pull: {exporter: {prometheus: {host: %s, port: %s}}}
`, prefilter, health, host, port)
}

// BenchmarkIdleCPU is the CPU an idle collector burns per second (ms-cpu/s), from /proc/<pid>/stat over
// COMPILERWATCH_IDLE_SECONDS (default 60) after 10 s to settle. Run it alone, on a quiet node, as root:
//
//	go test -run XXX -bench IdleCPU -benchtime 1x ./test/bench
//
// "prefilter_containers" keeps the host's execs out, so it measures the fixed cost even where other work execs.
func BenchmarkIdleCPU(b *testing.B) {
	testenv.RequireCaps(b, testenv.CapBPF, testenv.CapPerfmon)
	distro.Binary(b)
	window := time.Minute
	if v := os.Getenv("COMPILERWATCH_IDLE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err, "COMPILERWATCH_IDLE_SECONDS")
		window = time.Duration(n) * time.Second
	}
	for _, prefilter := range []string{"none", "containers"} {
		b.Run("prefilter_"+prefilter, func(b *testing.B) {
			var sum distro.CPUUse
			for b.Loop() {
				u := distro.MeasureIdle(b, idleConfig(b, prefilter), 10*time.Second, window)
				sum.CPU += u.CPU
				sum.Wall += u.Wall
			}
			b.ReportMetric(float64(sum.PerSecond())/float64(time.Millisecond), "ms-cpu/s")
		})
	}
}
