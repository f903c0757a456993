package compilerdetectorprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	def := func() *Config { return createDefaultConfig().(*Config) }
	tests := []struct {
		id       component.ID
		expected *Config
		errs     []string // substrings of the Validate error; nil = valid
	}{
		{id: component.NewID(metadata.Type), expected: def()},
		{
			id: component.NewIDWithName(metadata.Type, "all"),
			expected: &Config{
				ContainersOnly:   false,
				OnlyFlagged:      true,
				ScanForCompilers: false,
				Compilers: CompilersConfig{Mode: modeExtend, Entries: []CompilerEntry{
					{Name: "bazel", Language: "other", Executables: []string{"bazel", "bazelisk"}, Args: []string{"build", "test"}},
					{Name: "mycc", Language: "c", Executables: []string{"/opt/tools/bin/mycc"}},
				}},
				Exclude: ExcludeConfig{
					Namespaces:        []string{"ci", "build-system"},
					Images:            []string{"registry.example/team/builder", "docker.io/library/golang*"},
					PodLabels:         map[string]string{"app.kubernetes.io/component": "builder"},
					ParentExecutables: []string{"/usr/bin/make", "dpkg*"},
					ContainerIDs:      []string{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
				},
				Dedup: DedupConfig{Window: 10 * time.Minute, Key: []string{"container.id", "compiler"}, MaxKeys: 1000, MaxKeysPerContainer: 10},
				Kubernetes: kube.Config{
					Enabled: "true", Kubeconfig: "/etc/kube/config", NodeName: "node-1",
					WaitForMetadata: kube.WaitForMetadata{Hold: 2 * time.Second}, PodLabels: []string{"*"}, PodAnnotations: []string{"team"},
				},
			},
		},
		{id: component.NewIDWithName(metadata.Type, "k8s_off"), expected: func() *Config {
			c := def()
			c.Kubernetes.Enabled = "false"
			return c
		}()},
		{id: component.NewIDWithName(metadata.Type, "no_dedup"), expected: func() *Config {
			c := def()
			c.Dedup.Window = 0
			return c
		}()},
		{id: component.NewIDWithName(metadata.Type, "bad_mode"), errs: []string{`"compilers.mode" must be "extend" or "replace", got "merge"`}},
		{id: component.NewIDWithName(metadata.Type, "replace_empty"), errs: []string{`"compilers.entries" is empty`}},
		{id: component.NewIDWithName(metadata.Type, "bad_entry"), errs: []string{
			`"compilers.entries[0]": "name" "MyCC" must be lowercase`,
			`"compilers.entries[1]": "language" "pascal" must be one of`,
			`"compilers.entries[2]": "executables[0]" "bin/y" must be a basename or an absolute path`,
			`"compilers.entries[3]": "args[0]" "--build" must be a subcommand`,
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_globs"), errs: []string{
			`"exclude.images[0]": bad glob "registry.example/[abc"`,
			`"exclude.images[1]" "golang:1.22" has a tag or digest`,
			`"exclude.parent_executables[0]": bad glob "/usr/bin/["`,
			`"exclude.parent_executables[1]": empty pattern`,
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_container_id"), errs: []string{`"exclude.container_ids[0]" "0123456789ab" must be a full container id`}},
		{id: component.NewIDWithName(metadata.Type, "bad_dedup"), errs: []string{
			`"dedup.window" must not be negative, got -1s`,
			`"dedup.key[1]" "pod" is unknown`,
			`"dedup.key[3]" "compiler" is repeated`,
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_dedup_limits"), errs: []string{
			`"dedup.max_keys_per_container" (11) must not exceed "dedup.max_keys" (10)`,
		}},
		{id: component.NewIDWithName(metadata.Type, "negative_dedup_limits"), errs: []string{
			`"dedup.max_keys" must not be negative, got -1`,
			`"dedup.max_keys_per_container" must not be negative, got -1`,
		}},
		{id: component.NewIDWithName(metadata.Type, "zero_dedup_max_keys"), errs: []string{
			`"dedup.max_keys" must be at least 1 while "dedup.window" is set`,
		}},
		{id: component.NewIDWithName(metadata.Type, "empty_dedup_key"), errs: []string{`"dedup.key" must not be empty`}},
		// The kubernetes section stops at its first error; internal/kube's tests cover each rule.
		{id: component.NewIDWithName(metadata.Type, "bad_k8s"), errs: []string{
			`"kubernetes.enabled" must be auto, true or false, got "sometimes"`,
		}},
		{id: component.NewIDWithName(metadata.Type, "wait_unbounded"), errs: []string{
			`"kubernetes.wait_for_metadata" must be between 0s and 1m0s, got 10m0s`,
		}},
		{id: component.NewIDWithName(metadata.Type, "contrib_spellings"), expected: func() *Config {
			c := def()
			c.Kubernetes.AuthType = kube.AuthTypeKubeConfig
			c.Kubernetes.Context = "staging"
			c.Kubernetes.Filter.NodeFromEnvVar = "MY_NODE_NAME"
			// The boolean spelling leaves the hold at its default.
			c.Kubernetes.WaitForMetadata = kube.WaitForMetadata{Hold: 5 * time.Second, AtStart: true, IsBool: true}
			c.Kubernetes.WaitForMetadataTimeout = 30 * time.Second
			c.Kubernetes.NamespaceLabels = []string{"team"}
			c.Kubernetes.NamespaceAnnotations = []string{"*"}
			return c
		}()},
		{id: component.NewIDWithName(metadata.Type, "service_account_no_hold"), expected: func() *Config {
			c := def()
			c.Kubernetes.AuthType = kube.AuthTypeServiceAccount
			c.Kubernetes.WaitForMetadata = kube.WaitForMetadata{}
			return c
		}()},
		{id: component.NewIDWithName(metadata.Type, "tls"), expected: func() *Config {
			c := def()
			c.Kubernetes.AuthType = kube.AuthTypeTLS
			c.Kubernetes.CAFile, c.Kubernetes.CertFile, c.Kubernetes.KeyFile = "/etc/kube/ca.crt", "/etc/kube/client.crt", "/etc/kube/client.key"
			return c
		}()},
		{id: component.NewIDWithName(metadata.Type, "wait_false"), expected: func() *Config {
			c := def()
			c.Kubernetes.WaitForMetadata = kube.WaitForMetadata{Hold: 5 * time.Second, IsBool: true}
			return c
		}()},
		{id: component.NewIDWithName(metadata.Type, "both_node_spellings"), errs: []string{
			`"kubernetes.node_name" and "kubernetes.filter.node_from_env_var" are two spellings of the node: set one`,
		}},
		{id: component.NewIDWithName(metadata.Type, "timeout_with_hold"), errs: []string{
			`"kubernetes.wait_for_metadata_timeout" bounds the wait at start of "kubernetes.wait_for_metadata: true"; ` +
				`with "kubernetes.wait_for_metadata" a duration (the hold) or unset it has no effect`,
		}},
		{id: component.NewIDWithName(metadata.Type, "timeout_without_wait"), errs: []string{
			`"kubernetes.wait_for_metadata_timeout" bounds the wait at start of "kubernetes.wait_for_metadata: true"`,
		}},
		{id: component.NewIDWithName(metadata.Type, "kubeconfig_with_service_account"), errs: []string{
			`"kubernetes.kubeconfig" is a kubeconfig setting, but "kubernetes.auth_type" is "serviceAccount"`,
		}},
		{id: component.NewIDWithName(metadata.Type, "context_with_none"), errs: []string{
			`"kubernetes.context" is a kubeconfig setting, but "kubernetes.auth_type" is "none"`,
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_auth_type"), errs: []string{
			`"kubernetes.auth_type" must be serviceAccount, kubeConfig, none or tls, got "token"`,
		}},
		{id: component.NewIDWithName(metadata.Type, "tls_without_key"), errs: []string{
			`"kubernetes.auth_type" tls needs "kubernetes.cert_file" and "kubernetes.key_file"`,
		}},
		{id: component.NewIDWithName(metadata.Type, "namespace_star_with_keys"), errs: []string{
			`"kubernetes.namespace_labels": "*" selects every key and must be the only entry`,
		}},
		{id: component.NewIDWithName(metadata.Type, "dedup_window_unbounded"), errs: []string{
			`"dedup.window" must be at most 24h0m0s, got 168h0m0s`,
		}},
		{id: component.NewIDWithName(metadata.Type, "dedup_window_longest"), expected: func() *Config {
			c := def()
			c.Dedup.Window = 24 * time.Hour
			return c
		}()},
		{id: component.NewIDWithName(metadata.Type, "k8s_exclusions_without_k8s"), errs: []string{
			`"exclude.namespaces" needs Kubernetes metadata, but "kubernetes.enabled" is false`,
			`"exclude.images" needs Kubernetes metadata`,
			`"exclude.pod_labels" needs Kubernetes metadata`,
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_exclude_values"), errs: []string{
			`"exclude.namespaces[0]" is empty`,
			`"exclude.pod_labels" has an empty label key`,
		}},
	}
	t.Run("bad_wait", func(t *testing.T) {
		sub, err := cm.Sub(component.NewIDWithName(metadata.Type, "bad_wait").String())
		require.NoError(t, err)
		assert.ErrorContains(t, sub.Unmarshal(createDefaultConfig()),
			`expected a duration (the hold, e.g. 5s) or true/false (wait at start), got "soon"`)
	})
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))

			err = confmap.Validate(cfg)
			if tt.errs == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.expected, cfg)
				return
			}
			require.Error(t, err)
			for _, want := range tt.errs {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cfg.Validate())
	assert.True(t, cfg.ContainersOnly)
	assert.False(t, cfg.OnlyFlagged)
	assert.True(t, cfg.ScanForCompilers)
	assert.Equal(t, time.Hour, cfg.Dedup.Window)
	assert.Equal(t, []string{"container.id", "compiler", "parent_executable"}, cfg.Dedup.Key)
	assert.Equal(t, 4096, cfg.Dedup.MaxKeys)
	assert.Equal(t, 64, cfg.Dedup.MaxKeysPerContainer)
	assert.Equal(t, kube.ModeAuto, cfg.Kubernetes.Enabled)
	assert.Equal(t, kube.WaitForMetadata{Hold: 5 * time.Second}, cfg.Kubernetes.WaitForMetadata)
}

// A configuration marshalled by confmap (as `otelcol print-config` does) reads back the same, with either spelling
// of kubernetes.wait_for_metadata.
func TestConfigMarshalRoundTrip(t *testing.T) {
	for _, wait := range []any{true, "7s"} {
		cfg := createDefaultConfig().(*Config)
		require.NoError(t, confmap.NewFromStringMap(map[string]any{"kubernetes": map[string]any{
			"wait_for_metadata": wait, "enabled": true, "namespace_labels": []any{"team"},
		}}).Unmarshal(cfg))
		conf := confmap.New()
		require.NoError(t, conf.Marshal(cfg))
		back := createDefaultConfig().(*Config)
		require.NoError(t, conf.Unmarshal(back))
		assert.Equal(t, cfg, back)
	}
}
