package compilerwatch_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.yaml.in/yaml/v3"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"
)

// moduleMetadata is the root metadata.yaml: the module's descriptor.
type moduleMetadata struct {
	Module       string `yaml:"module"`
	Distribution struct {
		Name   string `yaml:"name"`
		Binary string `yaml:"binary"`
	} `yaml:"distribution"`
	Semconv    string `yaml:"semconv"`
	Components []struct {
		Type      string            `yaml:"type"`
		Kind      string            `yaml:"kind"`
		Package   string            `yaml:"package"`
		Stability map[string]string `yaml:"stability"`
		Telemetry struct {
			Metrics []string `yaml:"metrics"`
		} `yaml:"telemetry"`
	} `yaml:"components"`
}

// componentMetadata is a component's own metadata.yaml, in mdatagen's format.
type componentMetadata struct {
	Type   string `yaml:"type"`
	Status struct {
		Class     string              `yaml:"class"`
		Stability map[string][]string `yaml:"stability"`
	} `yaml:"status"`
	Telemetry struct {
		Metrics map[string]any `yaml:"metrics"`
	} `yaml:"telemetry"`
}

// readYAML decodes path into v; strict refuses keys v does not know.
func readYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(strict)
	require.NoError(t, dec.Decode(v), path)
}

// TestModuleMetadata keeps the root metadata.yaml true: every component it
// lists exists with that type and stability, its own metadata.yaml agrees,
// its metrics are the ones it declares, the distribution builds it, and the
// component's README documents each metric users alert on.
func TestModuleMetadata(t *testing.T) {
	var m moduleMetadata
	readYAML(t, "metadata.yaml", &m, true)

	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	assert.Contains(t, string(gomod), "module "+m.Module+"\n")

	builder, err := os.ReadFile("builder-config.yaml")
	require.NoError(t, err)
	assert.Contains(t, string(builder), "name: "+m.Distribution.Name)
	assert.Contains(t, string(builder), "output_path: ./"+filepath.Dir(m.Distribution.Binary))

	factories := map[string]struct {
		typ       component.Type
		stability component.StabilityLevel
	}{
		"receiver":  {ebpfexecreceiver.NewFactory().Type(), ebpfexecreceiver.NewFactory().LogsStability()},
		"processor": {compilerdetectorprocessor.NewFactory().Type(), compilerdetectorprocessor.NewFactory().LogsStability()},
	}
	require.Len(t, m.Components, len(factories))
	for _, c := range m.Components {
		t.Run(c.Type, func(t *testing.T) {
			f, ok := factories[c.Kind]
			require.True(t, ok, "unknown kind %q", c.Kind)
			assert.Equal(t, c.Type, f.typ.String(), "factory type")
			assert.Equal(t, c.Stability["logs"], strings.ToLower(f.stability.String()), "logs stability")

			var cm componentMetadata
			// mdatagen files carry more keys than this test reads.
			readYAML(t, filepath.Join(c.Package, "metadata.yaml"), &cm, false)
			assert.Equal(t, c.Type, cm.Type)
			assert.Equal(t, c.Kind, cm.Status.Class)
			assert.Equal(t, []string{"logs"}, cm.Status.Stability[c.Stability["logs"]])

			var declared []string
			for k := range cm.Telemetry.Metrics {
				declared = append(declared, "otelcol_"+k)
			}
			slices.Sort(declared)
			listed := slices.Sorted(slices.Values(c.Telemetry.Metrics))
			assert.Equal(t, declared, listed, "metrics in %s/metadata.yaml", c.Package)
			readmePath := filepath.Join(c.Package, "README.md")
			readme, err := os.ReadFile(readmePath)
			require.NoError(t, err)
			// The README's status table says the type and stability this file says.
			assert.Contains(t, string(readme), "| Type          | `"+c.Type+"` |", "%s status table: type", readmePath)
			assert.Contains(t, string(readme), "| Stability     | ["+c.Stability["logs"]+"]: logs |", "%s status table: stability", readmePath)
			for _, metric := range c.Telemetry.Metrics {
				assert.Contains(t, string(readme), metric, "%s documents %s", readmePath, metric)
			}

			assert.Contains(t, string(builder), "import: "+m.Module+"/"+c.Package, "builder-config.yaml builds %s", c.Type)
		})
	}
}
