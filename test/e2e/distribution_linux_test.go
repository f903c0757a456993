//go:build linux

package e2e_test

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

func TestDistributionPrintsExecRecords(t *testing.T) {
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	c := distro.Start(t, `
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
	c.WaitOutput(t, "Body: Str(/bin/true "+tag+")", 20*time.Second)
	assert.Contains(t, c.Out.String(), "EventName: process.exec")
	c.Stop(t)
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
	c := distro.Start(t, fmt.Sprintf(`
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
	c.Stop(t)
}
