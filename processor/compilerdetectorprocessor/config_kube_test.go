package compilerdetectorprocessor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

// With kubernetes.enabled: auto outside a cluster the pod cache is off, which
// Validate cannot know: Start warns that the Kubernetes exclusions never match.
func TestStartWarnsWhenKubernetesExclusionsCannotMatch(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not a pod: auto means off
	tests := []struct {
		name    string
		exclude ExcludeConfig
		keys    []string
	}{
		{name: "namespaces and labels", exclude: ExcludeConfig{Namespaces: []string{"ci"}, PodLabels: map[string]string{"team": "build"}},
			keys: []string{"exclude.namespaces", "exclude.pod_labels"}},
		{name: "images", exclude: ExcludeConfig{Images: []string{"golang*"}}, keys: []string{"exclude.images"}},
		{name: "container ids need no Kubernetes", exclude: ExcludeConfig{ContainerIDs: []string{testContainer}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Exclude = tt.exclude
			require.Equal(t, kube.ModeAuto, cfg.Kubernetes.Enabled)
			require.NoError(t, cfg.Validate())
			core, logs := observer.New(zapcore.WarnLevel)
			set := processortest.NewNopSettings(metadata.Type)
			set.Logger = zap.New(core)
			p, err := NewFactory().CreateLogs(t.Context(), set, cfg, consumertest.NewNop())
			require.NoError(t, err)
			require.NoError(t, p.Start(t.Context(), componenttest.NewNopHost()))
			t.Cleanup(func() { require.NoError(t, p.Shutdown(t.Context())) })
			warned := logs.FilterMessageSnippet("exclusions on Kubernetes attributes will never match").All()
			if tt.keys == nil {
				assert.Empty(t, warned)
				return
			}
			require.Len(t, warned, 1)
			assert.Equal(t, toAny(tt.keys), warned[0].ContextMap()["keys"])
		})
	}
}

// The pod cache keeps and copies the labels exclude.pod_labels names, even
// when kubernetes.pod_labels does not select them.
func TestExcludedPodLabelsAreKept(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Exclude.PodLabels = map[string]string{"team": "build", "app.kubernetes.io/component": "builder"}
	cfg.Kubernetes.PodLabels = []string{"app"}
	p, err := newCompilerDetector(processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop(), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"app.kubernetes.io/component", "team"}, p.kubeSettings().KeepLabels)
}
