package compilerwatch_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/nopexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/otelcol/otelcoltest"
	"go.opentelemetry.io/collector/pipeline"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
	"go.yaml.in/yaml/v3"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"
)

// distributionFactory is one component of the distribution: the gomod line
// of builder-config.yaml that brings it in, and its real factory.
type distributionFactory struct {
	gomod   string // module path, without version
	factory component.Factory
}

// distributionFactories mirrors builder-config.yaml, so example configs are
// validated by exactly the factories the distribution links.
// TestDistributionFactoriesMatchBuilderConfig keeps the two equal.
func distributionFactories() []distributionFactory {
	const self = "github.com/compilerwatch/compilerwatch"
	return []distributionFactory{
		{self, ebpfexecreceiver.NewFactory()},
		{self, compilerdetectorprocessor.NewFactory()},
		{self, catalogextension.NewFactory()},
		{"go.opentelemetry.io/collector/processor/batchprocessor", batchprocessor.NewFactory()},
		{"go.opentelemetry.io/collector/processor/memorylimiterprocessor", memorylimiterprocessor.NewFactory()},
		{"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor", resourceprocessor.NewFactory()},
		{"go.opentelemetry.io/collector/exporter/otlpexporter", otlpexporter.NewFactory()},
		{"go.opentelemetry.io/collector/exporter/otlphttpexporter", otlphttpexporter.NewFactory()},
		{"go.opentelemetry.io/collector/exporter/debugexporter", debugexporter.NewFactory()},
		{"go.opentelemetry.io/collector/exporter/nopexporter", nopexporter.NewFactory()},
		{"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension", healthcheckextension.NewFactory()},
	}
}

// collectorFactories builds otelcol.Factories the way ocb's components.go
// does, with the same telemetry factory, so service::telemetry is validated too.
func collectorFactories(t *testing.T) otelcol.Factories {
	t.Helper()
	var (
		receivers  []receiver.Factory
		processors []processor.Factory
		exporters  []exporter.Factory
		extensions []extension.Factory
	)
	for _, d := range distributionFactories() {
		switch f := d.factory.(type) {
		case receiver.Factory:
			receivers = append(receivers, f)
		case processor.Factory:
			processors = append(processors, f)
		case exporter.Factory:
			exporters = append(exporters, f)
		case extension.Factory:
			extensions = append(extensions, f)
		default:
			t.Fatalf("unexpected factory kind %T", f)
		}
	}
	var err error
	factories := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	factories.Receivers, err = otelcol.MakeFactoryMap(receivers...)
	require.NoError(t, err)
	factories.Processors, err = otelcol.MakeFactoryMap(processors...)
	require.NoError(t, err)
	factories.Exporters, err = otelcol.MakeFactoryMap(exporters...)
	require.NoError(t, err)
	factories.Extensions, err = otelcol.MakeFactoryMap(extensions...)
	require.NoError(t, err)
	return factories
}

// TestDistributionFactoriesMatchBuilderConfig fails when builder-config.yaml
// gains or loses a component that distributionFactories does not mirror.
func TestDistributionFactoriesMatchBuilderConfig(t *testing.T) {
	raw, err := os.ReadFile("builder-config.yaml")
	require.NoError(t, err)
	var manifest map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &manifest))

	// A kind lists modules; our own module provides two components.
	var inBuilder []string
	for _, kind := range []string{"receivers", "processors", "exporters", "extensions", "connectors"} {
		list, _ := manifest[kind].([]any)
		for _, e := range list {
			m, ok := e.(map[string]any)
			require.True(t, ok, "%s entry %v", kind, e)
			gomod, _ := m["gomod"].(string)
			path, _, _ := strings.Cut(gomod, " ")
			inBuilder = append(inBuilder, kind+" "+path)
		}
	}
	var inTest []string
	for _, d := range distributionFactories() {
		var kind string
		switch d.factory.(type) {
		case receiver.Factory:
			kind = "receivers"
		case processor.Factory:
			kind = "processors"
		case exporter.Factory:
			kind = "exporters"
		case extension.Factory:
			kind = "extensions"
		}
		inTest = append(inTest, kind+" "+d.gomod)
	}
	slices.Sort(inBuilder)
	slices.Sort(inTest)
	assert.Equal(t, inBuilder, inTest, "builder-config.yaml and distributionFactories() must list the same modules")
}

// TestExampleConfigs loads every example config with the distribution's real
// factories, exactly as the collector does at start (env expansion, unknown
// keys refused, every component's Validate), and checks its pipeline.
func TestExampleConfigs(t *testing.T) {
	tests := []struct {
		file       string
		env        map[string]string
		processors []string
		exporters  []string
		extensions []string
		check      func(t *testing.T, cfg *otelcol.Config)
	}{
		{
			// `make run`: findings printed to the console.
			file:       "config.yaml",
			processors: []string{"compiler_detector"},
			exporters:  []string{"debug"},
			extensions: []string{"health_check"},
			check: func(t *testing.T, cfg *otelcol.Config) {
				assert.True(t, detectorConfig(t, cfg).OnlyFlagged)
			},
		},
		{
			file:       "otlp-grpc.yaml",
			processors: []string{"memory_limiter", "compiler_detector", "batch"},
			exporters:  []string{"otlp_grpc"},
			extensions: []string{"health_check"},
			check: func(t *testing.T, cfg *otelcol.Config) {
				assert.False(t, detectorConfig(t, cfg).OnlyFlagged, "every exec is exported")
				exp := otlpConfig(t, cfg)
				assert.Equal(t, "localhost:4317", exp.ClientConfig.Endpoint, "the documented default")
				assert.False(t, exp.ClientConfig.TLS.Insecure, "TLS unless OTLP_INSECURE=true")
				assert.True(t, exp.QueueConfig.HasValue(), "sending_queue enabled")
				assert.True(t, exp.RetryConfig.Enabled)
			},
		},
		{
			file:       "otlp-grpc.yaml",
			env:        map[string]string{"OTLP_ENDPOINT": "backend.example:4317", "OTLP_INSECURE": "true"},
			processors: []string{"memory_limiter", "compiler_detector", "batch"},
			exporters:  []string{"otlp_grpc"},
			extensions: []string{"health_check"},
			check: func(t *testing.T, cfg *otelcol.Config) {
				exp := otlpConfig(t, cfg)
				assert.Equal(t, "backend.example:4317", exp.ClientConfig.Endpoint)
				assert.True(t, exp.ClientConfig.TLS.Insecure, "OTLP_INSECURE=true is a boolean after expansion")
			},
		},
		{
			file:       "only-findings.yaml",
			processors: []string{"memory_limiter", "compiler_detector", "batch"},
			exporters:  []string{"otlp_grpc"},
			extensions: []string{"health_check"},
			check: func(t *testing.T, cfg *otelcol.Config) {
				assert.True(t, detectorConfig(t, cfg).OnlyFlagged)
				assert.True(t, otlpConfig(t, cfg).QueueConfig.HasValue())
			},
		},
		{
			// The DaemonSet's config. It has no default endpoint: the
			// DaemonSet sets OTLP_ENDPOINT (deploy_test checks it does).
			file:       "k8s-daemonset.yaml",
			env:        map[string]string{"OTLP_ENDPOINT": "otel-gateway.observability.svc:4317", "K8S_NODE_NAME": "node-1"},
			processors: []string{"memory_limiter", "compiler_detector", "batch"},
			exporters:  []string{"otlp_grpc"},
			extensions: []string{"health_check"},
			check: func(t *testing.T, cfg *otelcol.Config) {
				det := detectorConfig(t, cfg)
				assert.True(t, det.OnlyFlagged)
				assert.Equal(t, "true", string(det.Kubernetes.Enabled), "a pod without API access must fail to start")
				exp := otlpConfig(t, cfg)
				assert.Equal(t, "otel-gateway.observability.svc:4317", exp.ClientConfig.Endpoint)
				assert.False(t, exp.ClientConfig.TLS.Insecure)
				assert.True(t, exp.QueueConfig.HasValue())
				assert.True(t, exp.RetryConfig.Enabled)
			},
		},
	}
	for _, tt := range tests {
		name := tt.file
		if len(tt.env) > 0 {
			name += "/env"
		}
		t.Run(name, func(t *testing.T) {
			// Unset variables the config reads, so a developer's shell
			// cannot change the result; then set the case's own.
			for _, k := range []string{"OTLP_ENDPOINT", "OTLP_INSECURE", "K8S_NODE_NAME"} {
				t.Setenv(k, "")
				require.NoError(t, os.Unsetenv(k))
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := otelcoltest.LoadConfigAndValidate(filepath.Join("testdata", tt.file), collectorFactories(t))
			require.NoError(t, err)

			logs := cfg.Service.Pipelines[pipeline.NewID(pipeline.SignalLogs)]
			require.NotNil(t, logs, "a logs pipeline")
			assert.Equal(t, []string{"ebpf_exec"}, idStrings(logs.Receivers))
			assert.Equal(t, tt.processors, idStrings(logs.Processors))
			assert.Equal(t, tt.exporters, idStrings(logs.Exporters))
			assert.Equal(t, tt.extensions, idStrings(cfg.Service.Extensions))
			tt.check(t, cfg)
		})
	}
}

// TestK8sDaemonSetConfigNeedsEndpoint: without OTLP_ENDPOINT the DaemonSet
// config is refused, rather than exporting to a guessed address.
func TestK8sDaemonSetConfigNeedsEndpoint(t *testing.T) {
	t.Setenv("OTLP_ENDPOINT", "")
	require.NoError(t, os.Unsetenv("OTLP_ENDPOINT"))
	_, err := otelcoltest.LoadConfigAndValidate(filepath.Join("testdata", "k8s-daemonset.yaml"), collectorFactories(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "otlp_grpc")
}

func idStrings[T interface{ String() string }](ids []T) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id.String())
	}
	return out
}

func detectorConfig(t *testing.T, cfg *otelcol.Config) *compilerdetectorprocessor.Config {
	t.Helper()
	c, ok := cfg.Processors[component.MustNewID("compiler_detector")].(*compilerdetectorprocessor.Config)
	require.True(t, ok, "compiler_detector config")
	return c
}

func otlpConfig(t *testing.T, cfg *otelcol.Config) *otlpexporter.Config {
	t.Helper()
	c, ok := cfg.Exporters[component.MustNewID("otlp_grpc")].(*otlpexporter.Config)
	require.True(t, ok, "otlp_grpc config")
	return c
}
