package compilerdetectorprocessor

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.yaml.in/yaml/v3"

	"github.com/compilerwatch/compilerwatch/internal/doccheck"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/findinglog"
)

const alertsDoc = "../../docs/alerts.md"

// promLabel is the Prometheus label name of an attribute, as the collector's Prometheus exporter (underscore
// escaping) writes it.
func promLabel(key string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(key, "_")
}

// TestAlertsMatchTelemetry: every PromQL alert of docs/alerts.md selects metrics the processor records, and every
// label it matches or groups by, and every value it matches, is on their series after real findings: an exec
// finding, a runtime-installed one and a presence finding, in a namespace.
func TestAlertsMatchTelemetry(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	ld := plog.NewLogs()
	sl := appendResource(ld, testContainer, k8sResource("prod", "web-7d9"))
	appendExec(sl, 11, recGCC)
	appendExec(sl, 14, execRec{exe: "/tmp/x", file: "/tmp/gcc", argv: []string{"-c", "e.c"}, anc: []string{"90:sh"}, parent: "/bin/sh", origin: "upper_layer"})
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	ld = plog.NewLogs()
	lr := appendResource(ld, testContainer, k8sResource("prod", "web-7d9")).LogRecords().AppendEmpty()
	lr.SetEventName(attr.EventCompilersPresent)
	_ = lr.Attributes().PutEmptySlice(attr.CompilersPresent).FromRaw([]any{"gcc:/usr/bin/gcc"})
	h.p.emitPresence(context.Background(), ld)

	// The series as Prometheus sees them: metric name → label name → values.
	series := map[string]map[string]map[string]bool{}
	rm := h.tel.Reader
	var data metricdata.ResourceMetrics
	require.NoError(t, rm.Collect(context.Background(), &data))
	for _, sm := range data.ScopeMetrics {
		for _, m := range sm.Metrics {
			labels := map[string]map[string]bool{}
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					for _, kv := range dp.Attributes.ToSlice() {
						l := promLabel(string(kv.Key))
						if labels[l] == nil {
							labels[l] = map[string]bool{}
						}
						labels[l][kv.Value.String()] = true
					}
				}
			}
			series[promLabel(m.Name)] = labels
		}
	}

	queries := doccheck.Queries(doccheck.Blocks(t, alertsDoc, "promql"))
	require.Len(t, queries, 3, "the three alerts of docs/alerts.md")
	for _, q := range queries {
		CheckPromQL(t, q, series)
	}

	// The Prometheus rule example is the first alert, word for word.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	blocks := doccheck.Blocks(t, alertsDoc, "yaml")
	require.NoError(t, yaml.Unmarshal([]byte(blocks[len(blocks)-1]), &rules))
	require.NotEmpty(t, rules.Groups)
	require.NotEmpty(t, rules.Groups[0].Rules)
	assert.Equal(t, strings.Fields(queries[0].Text), strings.Fields(rules.Groups[0].Rules[0].Expr))
}

// CheckPromQL fails when q refers to a metric, label or label value that series (metric → label → values) lacks.
func CheckPromQL(t *testing.T, q doccheck.Query, series map[string]map[string]map[string]bool) {
	t.Helper()
	p := doccheck.ParsePromQL(q.Text)
	require.NotEmpty(t, p.Metrics, "%q selects no metric", q.Text)
	for _, name := range p.Metrics {
		labels, ok := series[name]
		if !assert.True(t, ok, "alert %q: metric %s is not recorded", q.Comment, name) {
			continue
		}
		for _, l := range p.Grouping {
			assert.Contains(t, labels, l, "alert %q: %s has no label %s to group by", q.Comment, name, l)
		}
		for l, values := range p.Matchers {
			if assert.Contains(t, labels, l, "alert %q: %s has no label %s", q.Comment, name, l) {
				for _, v := range values {
					assert.True(t, labels[l][v], "alert %q: %s{%s} never has the value %q", q.Comment, name, l, v)
				}
			}
		}
	}
}

// TestAlertsDocStatesLimits: the numbers docs/alerts.md states are the code's.
func TestAlertsDocStatesLimits(t *testing.T) {
	raw, err := os.ReadFile(alertsDoc)
	require.NoError(t, err)
	doc := string(raw)
	assert.Contains(t, doc, "The first "+strconv.Itoa(maxMetricNamespaces)+" namespaces")
	assert.Contains(t, doc, "at most\n"+strconv.Itoa(maxMetricNamespaces+2)+" × (compiler names)")
	assert.Contains(t, doc, `k8s_namespace_name="`+otherNamespace+`"`)
	assert.Contains(t, doc, "cut to "+strconv.Itoa(findinglog.MaxValueLen)+" printed bytes")
	n := strconv.Itoa(findinglog.MaxLineLen)
	assert.Contains(t, doc, "a line is at most "+n[:len(n)-3]+","+n[len(n)-3:]+" bytes")
	assert.True(t, strings.Contains(doc, "log_findings: true"))
}
