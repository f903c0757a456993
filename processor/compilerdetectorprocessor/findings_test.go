package compilerdetectorprocessor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

const (
	metricFindings         = "otelcol_processor_compiler_detector_findings"
	metricPresenceFindings = "otelcol_processor_compiler_detector_presence_findings"
)

// points returns a counter's data points as attribute maps (values as strings) with their values.
func (h *harness) points(t *testing.T, name string) map[string]int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	require.NoError(t, err, name)
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok)
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		var kv []string
		for _, a := range dp.Attributes.ToSlice() {
			kv = append(kv, string(a.Key)+"="+a.Value.String())
		}
		out[strings.Join(kv, " ")] = dp.Value
	}
	return out
}

func k8sResource(ns, pod string) map[string]string {
	return map[string]string{
		attr.K8sNamespace: ns, attr.K8sPodName: pod, attr.K8sContainerName: "app",
		attr.ContainerImage: "registry.example/team/web",
	}
}

// TestFindingsMetricsAndLines: each finding is counted by namespace, compiler, severity and installed_at_runtime,
// and with log_findings written as one line; records that are not findings are neither.
func TestFindingsMetricsAndLines(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.LogFindings = true
	h := newHarness(t, cfg, nil)
	require.NotNil(t, h.p.report.out, "log_findings writes to stdout")
	var out bytes.Buffer
	h.p.report.out = &out

	ld := plog.NewLogs()
	res := k8sResource("prod", "web-7d9")
	sl := appendResource(ld, testContainer, res)
	rl := ld.ResourceLogs().At(0)
	_ = rl.Resource().Attributes().PutEmptySlice(attr.ContainerImageTags).FromRaw([]any{"1.2"})
	appendExec(sl, 10, recSh)
	appendExec(sl, 11, recGCC)
	appendExec(sl, 12, under(recCC1, 11, recGCC)) // a stage: not a finding
	appendExec(sl, 13, recGCC)                    // a repeat: deduplicated
	appendExec(sl, 14, execRec{exe: "/tmp/x", file: "/tmp/gcc", argv: []string{"-c", "e.c"}, anc: []string{"90:sh"}, parent: "/bin/sh", origin: "upper_layer"})
	sl = appendResource(ld, testContainer2, nil) // no Kubernetes metadata
	appendExec(sl, 20, execRec{exe: "/usr/bin/rustc", argv: []string{"main.rs"}, anc: []string{"7:sh"}})
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))

	assert.Equal(t, map[string]int64{
		"compilerwatch.compiler.installed_at_runtime=false compilerwatch.compiler.name=gcc k8s.namespace.name=prod severity=WARN": 1,
		"compilerwatch.compiler.installed_at_runtime=true compilerwatch.compiler.name=gcc k8s.namespace.name=prod severity=ERROR": 1,
		"compilerwatch.compiler.installed_at_runtime=false compilerwatch.compiler.name=rustc severity=WARN":                       1,
	}, h.points(t, metricFindings))
	assert.Equal(t, int64(3), h.counter(t, metricFlagged), "the findings metric sums to flagged_records")
	assert.Equal(t, ""+
		"WARN def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry.example/team/web:1.2 parent=/usr/bin/bash origin=- cid=0f1e2d3c4b5a\n"+
		"ERROR def-000-krp gcc ns=prod pod=web-7d9 ctr=app image=registry.example/team/web:1.2 parent=/bin/sh origin=upper_layer cid=0f1e2d3c4b5a\n"+
		"WARN def-000-krp rustc ns=- pod=- ctr=- image=- parent=sh origin=- cid=aaaabbbbcccc\n", out.String())
}

// TestFindingsMetricNamespaceCap: past maxMetricNamespaces, new namespaces share one series, whatever their
// number; the namespaces seen first keep theirs.
func TestFindingsMetricNamespaceCap(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	h := newHarness(t, cfg, nil)
	require.Nil(t, h.p.report.out, "no line without log_findings")
	const namespaces = maxMetricNamespaces + 40
	ld := plog.NewLogs()
	for i := range namespaces {
		sl := appendResource(ld, fmt.Sprintf("%064x", i+1), map[string]string{attr.K8sNamespace: fmt.Sprintf("ns-%03d", i)})
		appendExec(sl, 10, recGCC)
	}
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	pts := h.points(t, metricFindings)
	assert.Len(t, pts, maxMetricNamespaces+1)
	const rest = "compilerwatch.compiler.installed_at_runtime=false compilerwatch.compiler.name=gcc k8s.namespace.name=%s severity=WARN"
	assert.Equal(t, int64(1), pts[fmt.Sprintf(rest, "ns-000")])
	assert.Equal(t, int64(1), pts[fmt.Sprintf(rest, fmt.Sprintf("ns-%03d", maxMetricNamespaces-1))])
	assert.Equal(t, int64(namespaces-maxMetricNamespaces), pts[fmt.Sprintf(rest, otherNamespace)])
}

// TestPresenceFindingsMetricAndLine: a presence finding counts once per distinct compiler it names, and prints
// one line listing them.
func TestPresenceFindingsMetricAndLine(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.LogFindings = true
	h := newHarness(t, cfg, nil)
	var out bytes.Buffer
	h.p.report.out = &out

	ld := plog.NewLogs()
	sl := appendResource(ld, testContainer, k8sResource("prod", "web-7d9"))
	lr := sl.LogRecords().AppendEmpty()
	lr.SetEventName(attr.EventCompilersPresent)
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	attr.PutRule(lr.Attributes())
	_ = lr.Attributes().PutEmptySlice(attr.CompilersPresent).FromRaw([]any{
		"gcc:/usr/bin/gcc-12", "as:/usr/bin/as", "gcc:/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "cc:/usr/bin/cc",
	})
	h.p.emitPresence(context.Background(), ld)

	assert.Equal(t, map[string]int64{
		"compilerwatch.compiler.name=as k8s.namespace.name=prod":  1,
		"compilerwatch.compiler.name=cc k8s.namespace.name=prod":  1,
		"compilerwatch.compiler.name=gcc k8s.namespace.name=prod": 1,
	}, h.points(t, metricPresenceFindings))
	assert.Equal(t, "WARN def-000-krp present=as,cc,gcc ns=prod pod=web-7d9 ctr=app image=registry.example/team/web cid=0f1e2d3c4b5a\n", out.String())
	assert.Len(t, h.sink.AllLogs(), 1, "the presence finding is delivered too")
}

// BenchmarkReportFinding: the cost a finding adds for its metric and its stdout line (to io.Discard), once its
// series exists.
func BenchmarkReportFinding(b *testing.B) {
	cfg := createDefaultConfig().(*Config)
	tel := componenttest.NewTelemetry()
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	p, err := newCompilerDetector(set, cfg, new(consumertest.LogsSink), nil)
	require.NoError(b, err)
	p.report.out = io.Discard
	ld := plog.NewLogs()
	sl := appendResource(ld, testContainer, k8sResource("prod", "web-7d9"))
	lr := appendExec(sl, 11, recGCC)
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	attr.PutRule(lr.Attributes())
	res := ld.ResourceLogs().At(0).Resource().Attributes()
	m := catalog.Match{Name: "gcc", Language: "c", Signal: catalog.MatchExecutableName}
	b.ReportAllocs()
	for b.Loop() {
		p.report.finding(res, lr, m, false)
	}
}
