package kube

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "default"},
		{name: "true", mutate: func(c *Config) { c.Enabled = ModeTrue }},
		{name: "false", mutate: func(c *Config) { c.Enabled = ModeFalse }},
		{name: "bad mode", mutate: func(c *Config) { c.Enabled = "yes" }, wantErr: `"kubernetes.enabled" must be auto, true or false, got "yes"`},
		{name: "labels all", mutate: func(c *Config) { c.PodLabels = []string{"*"} }},
		{name: "star with keys", mutate: func(c *Config) { c.PodLabels = []string{"*", "app"} }, wantErr: `"kubernetes.pod_labels": "*" selects every key`},
		{name: "empty annotation key", mutate: func(c *Config) { c.PodAnnotations = []string{""} }, wantErr: `"kubernetes.pod_annotations" must not contain an empty key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			err := cfg.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestModeUnmarshal(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want Mode
	}{
		{"yaml bool true", true, ModeTrue},
		{"yaml bool false", false, ModeFalse},
		{"string", "auto", ModeAuto},
		{"string true", "true", ModeTrue},
		{"upper case", "FALSE", ModeFalse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			conf := confmap.NewFromStringMap(map[string]any{"enabled": tt.in, "node_name": "n1", "pod_labels": []any{"app"}})
			require.NoError(t, conf.Unmarshal(&cfg))
			assert.Equal(t, tt.want, cfg.Enabled)
			assert.Equal(t, "n1", cfg.NodeName)
			assert.Equal(t, []string{"app"}, cfg.PodLabels)
		})
	}
	cfg := DefaultConfig()
	assert.Error(t, confmap.NewFromStringMap(map[string]any{"enabled": 3}).Unmarshal(&cfg))
}

func confmapUnmarshal(m map[string]any, cfg *Config) error {
	return confmap.NewFromStringMap(m).Unmarshal(cfg)
}

func outsideCluster(t *testing.T) *environment {
	return &environment{
		lookupEnv: func(string) (string, bool) { return "", false },
		tokenPath: filepath.Join(t.TempDir(), "absent-token"),
	}
}

func TestNewModes(t *testing.T) {
	// enabled: true outside a cluster falls back to the default kubeconfig lookup; make it find nothing.
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	t.Setenv("HOME", t.TempDir())

	t.Run("false is off", func(t *testing.T) {
		c, err := New(Config{Enabled: ModeFalse}, Settings{Client: fakeAPI(), env: outsideCluster(t)})
		require.NoError(t, err)
		assert.Nil(t, c)
	})
	t.Run("auto outside a cluster is silently off", func(t *testing.T) {
		c, err := New(Config{Enabled: ModeAuto}, Settings{env: outsideCluster(t)})
		require.NoError(t, err)
		assert.Nil(t, c)
	})
	t.Run("auto with host env but no token is off", func(t *testing.T) {
		env := outsideCluster(t)
		env.lookupEnv = func(k string) (string, bool) { return map[string]string{serviceHostEnv: "10.0.0.1"}[k], true }
		c, err := New(Config{Enabled: ModeAuto}, Settings{env: env})
		require.NoError(t, err)
		assert.Nil(t, c)
	})
	t.Run("true outside a cluster without kubeconfig", func(t *testing.T) {
		_, err := New(Config{Enabled: ModeTrue, NodeName: "n"}, Settings{env: outsideCluster(t)})
		assert.ErrorContains(t, err, `"kubernetes.enabled" is true but this is not a pod with a service account and no kubeconfig was found`)
	})
	t.Run("unreadable kubeconfig", func(t *testing.T) {
		_, err := New(Config{Enabled: ModeAuto, Kubeconfig: "/nonexistent/kubeconfig", NodeName: "n"}, Settings{env: outsideCluster(t)})
		assert.ErrorContains(t, err, `cannot load "kubernetes.kubeconfig" "/nonexistent/kubeconfig"`)
	})
	t.Run("missing node name", func(t *testing.T) {
		_, err := New(Config{Enabled: ModeTrue}, Settings{Client: fakeAPI(), env: outsideCluster(t)})
		assert.ErrorContains(t, err, `the node name is unknown: set "kubernetes.node_name" or the K8S_NODE_NAME environment variable`)
	})
	t.Run("node name from the environment", func(t *testing.T) {
		env := outsideCluster(t)
		env.lookupEnv = func(k string) (string, bool) { return map[string]string{nodeNameEnv: "node-a"}[k], true }
		c, err := New(Config{Enabled: ModeAuto}, Settings{Client: fakeAPI(), env: env})
		require.NoError(t, err)
		require.NotNil(t, c)
		assert.Equal(t, "node-a", c.nodeName)
	})
	t.Run("in cluster", func(t *testing.T) {
		token := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(token, []byte("t"), 0o600))
		env := &environment{lookupEnv: func(k string) (string, bool) {
			return map[string]string{serviceHostEnv: "10.0.0.1"}[k], true
		}, tokenPath: token}
		assert.True(t, env.inCluster())
	})
}

func TestNilCache(t *testing.T) {
	var c *Cache
	require.NoError(t, c.Start(t.Context()))
	r, st := c.Resolve("containerd://"+testID(1), "uid")
	assert.Equal(t, StateUnknown, st)
	assert.Equal(t, Result{}, r)
	assert.False(t, c.WaitForContainer(t.Context(), testID(1)))
	assert.Equal(t, Stats{}, c.Stats())
	require.NoError(t, c.Shutdown(t.Context()))
}
