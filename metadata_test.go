package compilerwatch_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.yaml.in/yaml/v3"

	"github.com/compilerwatch/compilerwatch/internal/metadatacheck"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension"
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
	} `yaml:"components"`
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
// the distribution builds it, and the component's README status table agrees. Each component's metadata.yaml is
// the one source of its metrics: its internal/metadata tests check the code against it, and
// TestMetricsDocumented the docs.
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
		"extension": {catalogextension.NewFactory().Type(), catalogextension.NewFactory().Stability()},
	}
	require.Len(t, m.Components, len(factories))
	for _, c := range m.Components {
		t.Run(c.Type, func(t *testing.T) {
			f, ok := factories[c.Kind]
			require.True(t, ok, "unknown kind %q", c.Kind)
			// Receivers and processors here handle logs; an extension has a stability of its own.
			signal := "logs"
			if c.Kind == "extension" {
				signal = "extension"
			}
			assert.Equal(t, c.Type, f.typ.String(), "factory type")
			assert.Equal(t, c.Stability[signal], strings.ToLower(f.stability.String()), "%s stability", signal)

			cm := metadatacheck.Load(t, filepath.Join(c.Package, "metadata.yaml"))
			assert.Equal(t, c.Type, cm.Type)
			assert.Equal(t, c.Kind, cm.Status.Class)
			assert.Equal(t, []string{signal}, cm.Status.Stability[c.Stability[signal]])
			if c.Kind != "extension" {
				assert.NotEmpty(t, cm.MetricNames(), "%s/metadata.yaml declares the component's metrics", c.Package)
			}
			readmePath := filepath.Join(c.Package, "README.md")
			readme, err := os.ReadFile(readmePath)
			require.NoError(t, err)
			// The README's status table says the type and stability this file says.
			assert.Contains(t, string(readme), "| Type          | `"+c.Type+"` |", "%s status table: type", readmePath)
			assert.Contains(t, string(readme), "| Stability     | ["+c.Stability[signal]+"]: "+signal+" |", "%s status table: stability", readmePath)

			assert.Contains(t, string(builder), "import: "+m.Module+"/"+c.Package, "builder-config.yaml builds %s", c.Type)
		})
	}
}

// metricName is how the docs write an internal metric of this module's
// components; a name ending in "_" is a prefix (all of a component's).
var metricName = regexp.MustCompile(`otelcol_(?:receiver_ebpf_exec|processor_compiler_detector)_[a-z0-9_]*`)

// TestMetricsDocumented checks the docs against each component's
// metadata.yaml: the component's README (the module's README.md while it
// has none) names every metric the component declares, and no doc names a
// metric that no component declares.
func TestMetricsDocumented(t *testing.T) {
	var m moduleMetadata
	readYAML(t, "metadata.yaml", &m, true)
	declared := map[string]bool{}
	for _, c := range m.Components {
		names := metadatacheck.Load(t, filepath.Join(c.Package, "metadata.yaml")).MetricNames()
		doc := filepath.Join(c.Package, "README.md")
		if _, err := os.Stat(doc); errors.Is(err, fs.ErrNotExist) {
			doc = "README.md"
		}
		text, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, name := range names {
			declared[name] = true
			assert.Contains(t, string(text), name, "%s documents %s", doc, name)
		}
	}

	docs := []string{"README.md"}
	for _, pattern := range []string{"docs/*.md", "*.md", "receiver/*/README.md", "processor/*/README.md"} {
		more, err := filepath.Glob(pattern)
		require.NoError(t, err)
		docs = append(docs, more...)
	}
	slices.Sort(docs)
	for _, doc := range slices.Compact(docs) {
		text, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, name := range metricName.FindAllString(string(text), -1) {
			if strings.HasSuffix(name, "_") {
				continue
			}
			assert.True(t, declared[name] || declared[strings.TrimSuffix(name, "_total")],
				"%s names %s, which no component's metadata.yaml declares", doc, name)
		}
	}
}
