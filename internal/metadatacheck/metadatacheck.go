// Package metadatacheck checks what a component says about itself against
// its metadata.yaml, the one source of its type, stability and internal
// metrics: the hand-written internal/metadata package (status constants and
// TelemetryBuilder), and the documentation. Each component's
// internal/metadata tests call it; the module's metadata test reads the
// metric names from it.
package metadatacheck // import "github.com/compilerwatch/compilerwatch/internal/metadatacheck"

import (
	"context"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.yaml.in/yaml/v3"
)

// Metadata is the part of a component's metadata.yaml (mdatagen's format)
// that the checks read.
type Metadata struct {
	Type      string `yaml:"type"`
	ScopeName string `yaml:"scope_name"`
	Status    struct {
		Class     string              `yaml:"class"`
		Stability map[string][]string `yaml:"stability"`
	} `yaml:"status"`
	Telemetry struct {
		Metrics map[string]Metric `yaml:"metrics"`
	} `yaml:"telemetry"`
	Attributes map[string]any `yaml:"attributes"`
}

// Metric is one internal metric of metadata.yaml.
type Metric struct {
	Enabled     bool       `yaml:"enabled"`
	Stability   string     `yaml:"stability"`
	Description string     `yaml:"description"`
	Unit        string     `yaml:"unit"`
	Sum         *Aggregate `yaml:"sum"`
	Gauge       *Aggregate `yaml:"gauge"`
	Attributes  []string   `yaml:"attributes"`
}

// Aggregate is a metric's sum or gauge.
type Aggregate struct {
	ValueType string `yaml:"value_type"`
	Monotonic bool   `yaml:"monotonic"`
	Async     bool   `yaml:"async"`
}

// Load reads a component's metadata.yaml.
func Load(t testing.TB, path string) Metadata {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var md Metadata
	require.NoError(t, yaml.Unmarshal(b, &md), path)
	require.NotEmpty(t, md.Type, "%s: type", path)
	return md
}

// MetricNames are the component's internal metrics as the collector
// exports them (otelcol_ and the metadata.yaml key), sorted.
func (md Metadata) MetricNames() []string {
	var names []string
	for key := range md.Telemetry.Metrics {
		names = append(names, "otelcol_"+key)
	}
	slices.Sort(names)
	return names
}

// Status checks the generated_status.go constants against metadata.yaml.
func Status(t *testing.T, md Metadata, class string, typ component.Type, scopeName string, logs component.StabilityLevel) {
	t.Helper()
	assert.Equal(t, class, md.Status.Class)
	assert.Equal(t, md.Type, typ.String())
	assert.Equal(t, md.ScopeName, scopeName)
	// Receivers and processors here handle logs; an extension's stability is its own.
	signal := "logs"
	if class == "extension" {
		signal = "extension"
	}
	assert.Equal(t, map[string][]string{strings.ToLower(logs.String()): {signal}}, md.Status.Stability,
		"stability in metadata.yaml vs the component's stability")
}

// Telemetry builds the component's TelemetryBuilder with newBuilder,
// records once on every instrument of it (registering a callback for each
// observable one), and checks what it exports against metadata.yaml in both
// directions: names, descriptions, units, sum or gauge, monotonic, value
// type, sync or async, and the attributes each metric declares.
func Telemetry(t *testing.T, md Metadata, newBuilder func(component.TelemetrySettings) (any, error)) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	set := componenttest.NewNopTelemetrySettings()
	set.MeterProvider = mp
	builder, err := newBuilder(set)
	require.NoError(t, err)
	if s, ok := builder.(interface{ Shutdown() }); ok {
		defer s.Shutdown()
	}

	ctx := context.Background()
	v := reflect.ValueOf(builder).Elem()
	instruments := 0
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		switch inst := v.Field(i).Interface().(type) {
		case metric.Int64Counter:
			inst.Add(ctx, 1)
		case metric.Int64UpDownCounter:
			inst.Add(ctx, 1)
		case metric.Int64Gauge:
			inst.Record(ctx, 1)
		case metric.Int64Histogram:
			inst.Record(ctx, 1)
		case metric.Int64Observable:
		default:
			t.Fatalf("field %s: the check does not know instrument %T", v.Type().Field(i).Name, inst)
		}
		instruments++
	}
	sync := collect(t, reader)

	// Observable instruments export only once a callback is registered.
	callbacks := 0
	bv := reflect.ValueOf(builder)
	for i := 0; i < bv.NumMethod(); i++ {
		name := bv.Type().Method(i).Name
		if !strings.HasPrefix(name, "Register") || !strings.HasSuffix(name, "Callback") {
			continue
		}
		cb := metric.Int64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1)
			return nil
		})
		out := bv.Method(i).Call([]reflect.Value{reflect.ValueOf(cb)})
		if errV := out[0].Interface(); errV != nil {
			require.NoError(t, errV.(error), name)
		}
		callbacks++
	}
	got := collect(t, reader)
	require.Len(t, got, instruments, "every instrument of the builder exports one metric")
	assert.Len(t, got, len(sync)+callbacks, "one Register...Callback per observable instrument")

	prefix := md.Status.Class + "_" + md.Type + "_"
	var want []string
	for key, ym := range md.Telemetry.Metrics {
		name := "otelcol_" + key
		want = append(want, name)
		assert.True(t, strings.HasPrefix(key, prefix), "%s: a %s's metric starts with %s", key, md.Status.Class, prefix)
		assert.True(t, ym.Enabled, name)
		for _, a := range ym.Attributes {
			assert.Contains(t, md.Attributes, a, "%s uses attribute %q, which metadata.yaml does not define", name, a)
		}
		m, ok := got[name]
		if !assert.True(t, ok, "metric %s of metadata.yaml is not in the TelemetryBuilder", name) {
			continue
		}
		assert.Equal(t, ym.Description+" ["+titleCase(ym.Stability)+"]", m.Description, name)
		assert.Equal(t, ym.Unit, m.Unit, name)
		_, isSync := sync[name]
		switch data := m.Data.(type) {
		case metricdata.Sum[int64]:
			if assert.NotNil(t, ym.Sum, "%s is a sum in the code, not in metadata.yaml", name) {
				assert.Equal(t, "int", ym.Sum.ValueType, name)
				assert.Equal(t, ym.Sum.Monotonic, data.IsMonotonic, "%s: monotonic", name)
				assert.Equal(t, ym.Sum.Async, !isSync, "%s: async", name)
			}
		case metricdata.Gauge[int64]:
			if assert.NotNil(t, ym.Gauge, "%s is a gauge in the code, not in metadata.yaml", name) {
				assert.Equal(t, "int", ym.Gauge.ValueType, name)
				assert.Equal(t, ym.Gauge.Async, !isSync, "%s: async", name)
			}
		default:
			t.Errorf("%s: the check does not know data %T", name, data)
		}
	}
	slices.Sort(want)
	assert.Equal(t, want, slices.Sorted(func(yield func(string) bool) {
		for n := range got {
			if !yield(n) {
				return
			}
		}
	}), "the TelemetryBuilder's metrics vs metadata.yaml")
	for _, sm := range collectScopes(t, reader) {
		assert.Equal(t, md.ScopeName, sm.Scope.Name)
	}
}

func collectScopes(t *testing.T, reader *sdkmetric.ManualReader) []metricdata.ScopeMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	return rm.ScopeMetrics
}

func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	got := map[string]metricdata.Metrics{}
	for _, sm := range collectScopes(t, reader) {
		for _, m := range sm.Metrics {
			got[m.Name] = m
		}
	}
	return got
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
