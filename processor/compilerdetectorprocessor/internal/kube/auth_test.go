package kube

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// podEnvironment is a pod's environment: the API server's address, and a service account token and CA (each
// written unless absent).
func podEnvironment(t *testing.T, token, ca bool, vars map[string]string) environment {
	dir := t.TempDir()
	env := environment{tokenPath: filepath.Join(dir, "token"), caPath: filepath.Join(dir, "ca.crt")}
	if token {
		require.NoError(t, os.WriteFile(env.tokenPath, []byte("t"), 0o600))
	}
	if ca {
		require.NoError(t, os.WriteFile(env.caPath, []byte("ca"), 0o600))
	}
	all := map[string]string{serviceHostEnv: "10.0.0.1", servicePortEnv: "443"}
	for k, v := range vars {
		all[k] = v
	}
	env.lookupEnv = func(k string) (string, bool) { v, ok := all[k]; return v, ok }
	return env
}

// TestAuthTypes: each auth_type maps onto the client configuration contrib's k8sattributesprocessor builds for it,
// except that none and tls always verify the API server.
func TestAuthTypes(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	t.Setenv("HOME", t.TempDir())
	data := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://current.example:6443", insecure-skip-tls-verify: true}
- name: s
  cluster: {server: "https://staging.example:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
- name: staging
  context: {cluster: s, user: u}
current-context: x
`
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, []byte(data), 0o600))

	inPod := podEnvironment(t, true, true, nil)
	tests := []struct {
		name     string
		cfg      Config
		env      environment
		off      bool
		host     string
		token    string // BearerTokenFile
		ca       string
		cert     string
		anyError string
	}{
		{name: "default in a pod is the service account", cfg: Config{Enabled: ModeAuto}, env: inPod,
			host: "https://10.0.0.1:443", token: inPod.tokenPath, ca: inPod.caPath},
		{name: "serviceAccount", cfg: Config{Enabled: ModeTrue, AuthType: AuthTypeServiceAccount}, env: inPod,
			host: "https://10.0.0.1:443", token: inPod.tokenPath, ca: inPod.caPath},
		{name: "serviceAccount, auto, outside a pod", cfg: Config{Enabled: ModeAuto, AuthType: AuthTypeServiceAccount},
			env: *outsideCluster(t), off: true},
		{name: "serviceAccount, true, outside a pod", cfg: Config{Enabled: ModeTrue, AuthType: AuthTypeServiceAccount},
			env: *outsideCluster(t), anyError: `"kubernetes.auth_type" is serviceAccount but this is not a pod with a service account`},
		{name: "serviceAccount without the CA", cfg: Config{Enabled: ModeTrue, AuthType: AuthTypeServiceAccount},
			env: podEnvironment(t, true, false, nil), anyError: "the service account's CA"},
		{name: "kubeConfig with context", cfg: Config{Enabled: ModeAuto, AuthType: AuthTypeKubeConfig, Kubeconfig: kubeconfig, Context: "staging"},
			env: inPod, host: "https://staging.example:6443"},
		{name: "kubeconfig path alone: its current context", cfg: Config{Enabled: ModeAuto, Kubeconfig: kubeconfig},
			env: inPod, host: "https://current.example:6443"},
		{name: "context alone selects the kubeconfig", cfg: Config{Enabled: ModeAuto, Context: "staging"},
			env: inPod, anyError: `kubernetes: loading kubeconfig: context "staging" does not exist`},
		{name: "kubeConfig from $KUBECONFIG", cfg: Config{Enabled: ModeAuto, AuthType: AuthTypeKubeConfig, Context: "staging"},
			env: *outsideCluster(t), host: "https://staging.example:6443"},
		{name: "unknown context", cfg: Config{Enabled: ModeAuto, Kubeconfig: kubeconfig, Context: "prod"},
			env: inPod, anyError: `cannot load "kubernetes.kubeconfig"`},
		{name: "none: no credentials, the service account's CA", cfg: Config{Enabled: ModeTrue, AuthType: AuthTypeNone},
			env: podEnvironment(t, false, true, nil), host: "https://10.0.0.1:443", ca: inPod.caPath},
		{name: "none without any CA is refused", cfg: Config{Enabled: ModeTrue, AuthType: AuthTypeNone},
			env: podEnvironment(t, false, false, nil), anyError: `auth_type none verifies the API server with "kubernetes.ca_file" or the service account's CA`},
		{name: "none, auto, outside a pod", cfg: Config{Enabled: ModeAuto, AuthType: AuthTypeNone},
			env: *outsideCluster(t), off: true},
		{name: "none, true, outside a pod", cfg: Config{Enabled: ModeTrue, AuthType: AuthTypeNone},
			env: *outsideCluster(t), anyError: "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set"},
		{name: "tls: client certificate, ca_file", cfg: Config{Enabled: ModeTrue, AuthType: AuthTypeTLS,
			CAFile: inPod.caPath, CertFile: "/c.crt", KeyFile: "/c.key"}, env: podEnvironment(t, false, false, nil),
			host: "https://10.0.0.1:443", ca: inPod.caPath, cert: "/c.crt"},
		{name: "false is off whatever the auth type", cfg: Config{Enabled: ModeFalse, AuthType: AuthTypeKubeConfig},
			env: inPod, off: true},
	}
	// The CA path of the "none" case is the one its own environment wrote.
	for i := range tests {
		if tests[i].name == "none: no credentials, the service account's CA" {
			tests[i].ca = tests[i].env.caPath
		}
	}
	kcEnv := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kcEnv, []byte(data), 0o600))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "kubeConfig from $KUBECONFIG" {
				t.Setenv("KUBECONFIG", kcEnv)
			}
			require.NoError(t, tt.cfg.Validate())
			rc, err := restConfig(&tt.cfg, tt.env)
			switch {
			case tt.anyError != "":
				assert.ErrorContains(t, err, tt.anyError)
				return
			case tt.off:
				assert.ErrorIs(t, err, errDisabled)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.host, rc.Host)
			assert.Equal(t, tt.token, rc.BearerTokenFile)
			if tt.ca != "" {
				assert.Equal(t, tt.ca, rc.CAFile)
				assert.False(t, rc.Insecure, "the API server is verified")
			}
			assert.Equal(t, tt.cert, rc.CertFile)
			if tt.cfg.AuthType == AuthTypeNone {
				assert.Empty(t, rc.BearerToken)
				assert.Empty(t, rc.BearerTokenFile)
			}
		})
	}
}

func TestNodeFromEnvVar(t *testing.T) {
	env := podEnvironment(t, true, true, map[string]string{"MY_NODE": "node-b", nodeNameEnv: "node-a"})
	name, err := nodeName(&Config{Filter: Filter{NodeFromEnvVar: "MY_NODE"}}, env)
	require.NoError(t, err)
	assert.Equal(t, "node-b", name, "the named variable, not K8S_NODE_NAME")
	name, err = nodeName(&Config{}, env)
	require.NoError(t, err)
	assert.Equal(t, "node-a", name)
	name, err = nodeName(&Config{NodeName: "node-c"}, env)
	require.NoError(t, err)
	assert.Equal(t, "node-c", name)
	_, err = nodeName(&Config{Filter: Filter{NodeFromEnvVar: "UNSET"}}, env)
	assert.ErrorContains(t, err, `"kubernetes.filter.node_from_env_var" names UNSET, which is unset or empty`)
}
