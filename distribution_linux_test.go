//go:build linux

package compilerwatch_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

const distBinary = "build/otelcol-compilerwatch"

// requireDistribution returns the absolute path of the ocb-built collector.
// `make test` builds it first; a bare `go test` skips (fails under CI=true).
func requireDistribution(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(distBinary)
	require.NoError(t, err)
	if _, err := os.Stat(abs); err != nil {
		msg := fmt.Sprintf("%s is not built: run `make build` (make test does)", distBinary)
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return abs
}

// syncBuffer collects a process's output for polling from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// collector is the distribution running as a real process.
type collector struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startCollector(t *testing.T, config string) *collector {
	t.Helper()
	c := launchCollector(t, requireDistribution(t), "--config", writeConfig(t, config))
	c.waitOutput(t, "Everything is ready", 60*time.Second)
	return c
}

func (c *collector) waitOutput(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(c.out.String(), want) {
			return
		}
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("collector exited (%v) before printing %q:\n%s", err, want, c.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("collector did not print %q within %s:\n%s", want, timeout, c.out.String())
}

// stop sends SIGTERM and requires a clean exit.
func (c *collector) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-c.done:
		c.done <- err
		require.NoError(t, err, "exit after SIGTERM:\n%s", c.out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("collector did not exit within 30s of SIGTERM:\n%s", c.out.String())
	}
	assert.Contains(t, c.out.String(), "Shutdown complete")
}

func TestDistributionPrintsExecRecords(t *testing.T) {
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	c := startCollector(t, `
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
exporters:
  debug:
    verbosity: detailed
service:
  pipelines:
    logs: {receivers: [ebpf_exec], exporters: [debug]}
  telemetry:
    metrics: {level: none}
`)
	tag := fmt.Sprintf("dist-tag-%d", time.Now().UnixNano())
	require.NoError(t, exec.Command("/bin/true", tag).Run())
	c.waitOutput(t, "Body: Str(/bin/true "+tag+")", 20*time.Second)
	assert.Contains(t, c.out.String(), "EventName: process.exec")
	c.stop(t)
}

// freePort reserves a loopback port for a server the test starts.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// startOTLPSink runs the collector's own OTLP gRPC receiver on loopback: the
// backend the distribution exports to.
func startOTLPSink(t *testing.T) (string, *consumertest.LogsSink) {
	t.Helper()
	s := newOTLPSink(t)
	return s.addr, s.logs
}

// findings returns the flagged records of a sink: exec findings, or presence findings
// (container.compilers_present) when event says so.
// Only records of containerID count: the collector sees every exec on the node, including other tests' containers.
func findings(sink *consumertest.LogsSink, event, containerID string) (recs []plog.LogRecord) {
	for _, r := range sinkRecords(sink.AllLogs()) {
		if _, ok := r.attrs["security_rule.uuid"]; ok && r.rec.EventName() == event && r.res["container.id"] == containerID {
			recs = append(recs, r.rec)
		}
	}
	return recs
}

func TestDistributionEndToEndOTLP(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	addr, sink := startOTLPSink(t)
	c := startCollector(t, fmt.Sprintf(`
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
processors:
  compiler_detector:
    only_flagged: true
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
service:
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [compiler_detector, batch], exporters: [otlp_grpc]}
  telemetry:
    metrics: {level: none}
`, addr))

	ctr := testenv.NewContainer(t, testenv.Options{Mounts: testenv.HostGCCMounts(t)})
	ctr.WriteFile(t, "/tmp/hello.c", []byte("int main(void) { return 0; }\n"), 0o644)
	ctr.MustExec(t, "gcc", "-c", "-o", "/tmp/hello.o", "/tmp/hello.c")

	var recs []plog.LogRecord
	require.Eventually(t, func() bool {
		recs = findings(sink, "process.exec", ctr.ID())
		return len(recs) > 0
	}, 30*time.Second, 100*time.Millisecond, "a flagged record arrives at the OTLP sink")
	time.Sleep(500 * time.Millisecond) // a stage flagged by mistake would arrive in the same or the next batch
	recs = findings(sink, "process.exec", ctr.ID())
	require.Len(t, recs, 1, "one finding for one gcc -c (its cc1 and as stages are not findings)")
	attrs := recs[0].Attributes().AsRaw()
	assert.Equal(t, "gcc", attrs["compilerwatch.compiler.name"])
	assert.Equal(t, "def-000-krp", attrs["security_rule.uuid"])
	assert.Equal(t, "Containers should not execute compilers", attrs["security_rule.name"])
	assert.Equal(t, "https://docs.datadoghq.com/security/default_rules/def-000-krp", attrs["security_rule.reference"])
	assert.Equal(t, "WARN", recs[0].SeverityText())

	// The container's root carries the host's gcc toolchain: the presence scan reports it too, once.
	require.Eventually(t, func() bool {
		recs = findings(sink, "container.compilers_present", ctr.ID())
		return len(recs) > 0
	}, 30*time.Second, 100*time.Millisecond, "a presence finding arrives at the OTLP sink")
	require.Len(t, recs, 1)
	present, _ := recs[0].Attributes().Get("compilerwatch.compilers_present")
	assert.Contains(t, present.Slice().AsRaw(), "gcc:/usr/bin/gcc")
	c.stop(t)
}
