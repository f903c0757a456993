package metadata

import (
	"context"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// yamlMetric is the part of a metadata.yaml telemetry metric the Go code
// must agree with.
type yamlMetric struct {
	Enabled     bool   `mapstructure:"enabled"`
	Stability   string `mapstructure:"stability"`
	Description string `mapstructure:"description"`
	Unit        string `mapstructure:"unit"`
	Sum         struct {
		ValueType string `mapstructure:"value_type"`
		Monotonic bool   `mapstructure:"monotonic"`
		Async     bool   `mapstructure:"async"`
	} `mapstructure:"sum"`
	Attributes []string `mapstructure:"attributes"`
}

type yamlMetadata struct {
	Type      string `mapstructure:"type"`
	ScopeName string `mapstructure:"scope_name"`
	Status    struct {
		Class         string              `mapstructure:"class"`
		Stability     map[string][]string `mapstructure:"stability"`
		Distributions []string            `mapstructure:"distributions"`
	} `mapstructure:"status"`
	Tests     map[string]any `mapstructure:"tests"`
	Telemetry struct {
		Metrics map[string]yamlMetric `mapstructure:"metrics"`
	} `mapstructure:"telemetry"`
	Attributes map[string]map[string]any `mapstructure:"attributes"`
}

func loadMetadata(t *testing.T) yamlMetadata {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("..", "..", "metadata.yaml"))
	require.NoError(t, err)
	var md yamlMetadata
	require.NoError(t, cm.Unmarshal(&md))
	return md
}

func TestStatusMatchesMetadataYAML(t *testing.T) {
	md := loadMetadata(t)
	assert.Equal(t, md.Type, Type.String())
	assert.Equal(t, md.ScopeName, ScopeName)
	assert.Equal(t, "receiver", md.Status.Class)
	assert.Equal(t, map[string][]string{strings.ToLower(LogsStability.String()): {"logs"}},
		lowerKeys(md.Status.Stability), "stability in metadata.yaml vs LogsStability")
}

// TestTelemetryMatchesMetadataYAML records once on every counter of the
// TelemetryBuilder and checks the exported names, descriptions and units
// against metadata.yaml, in both directions.
func TestTelemetryMatchesMetadataYAML(t *testing.T) {
	md := loadMetadata(t)

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	set := componenttest.NewNopTelemetrySettings()
	set.MeterProvider = mp
	tb, err := NewTelemetryBuilder(set)
	require.NoError(t, err)
	defer tb.Shutdown()

	v := reflect.ValueOf(tb).Elem()
	counters := 0
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		if c, ok := v.Field(i).Interface().(metric.Int64Counter); ok {
			c.Add(context.Background(), 1)
			counters++
		}
	}

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			got[m.Name] = m
		}
	}
	require.Len(t, got, counters, "every counter of the builder exports one metric")

	var want []string
	for key, ym := range md.Telemetry.Metrics {
		name := "otelcol_" + key
		want = append(want, name)
		m, ok := got[name]
		if !assert.True(t, ok, "metric %s of metadata.yaml is not in the TelemetryBuilder", name) {
			continue
		}
		assert.True(t, ym.Enabled, name)
		assert.Equal(t, ym.Description+" ["+titleCase(ym.Stability)+"]", m.Description, name)
		assert.Equal(t, ym.Unit, m.Unit, name)
		sum, ok := m.Data.(metricdata.Sum[int64])
		if assert.True(t, ok, "%s is an int sum", name) {
			assert.Equal(t, ym.Sum.Monotonic, sum.IsMonotonic, name)
			assert.Equal(t, "int", ym.Sum.ValueType, name)
			assert.False(t, ym.Sum.Async, "%s: the builder has no observable instruments", name)
		}
		for _, a := range ym.Attributes {
			assert.Contains(t, md.Attributes, a, "%s uses attribute %q, which metadata.yaml does not define", name, a)
		}
	}
	var gotNames []string
	for n := range got {
		gotNames = append(gotNames, n)
	}
	sort.Strings(want)
	sort.Strings(gotNames)
	assert.Equal(t, want, gotNames)
}

func lowerKeys(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
