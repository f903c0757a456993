//go:build linux

package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// TestDistributionKubernetesAPIDown runs the distribution with kubernetes.enabled: true, as the DaemonSet ships
// it, while the API server refuses connections: the collector starts and keeps running, records flow, the
// health_check endpoint the kubelet's liveness probe hits answers 200 (with the legacy health_check and with the
// component-status one behind its feature gate), and the k8s_synced gauge reads 0.
func TestDistributionKubernetesAPIDown(t *testing.T) {
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	distro.Binary(t)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"legacy health_check", nil},
		{"component status health_check", []string{"--feature-gates=+extension.healthcheck.useComponentStatus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Nothing listens on the API server's address: connections are refused, as during an outage.
			apiAddr := distro.FreePort(t)
			kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
			require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+apiAddr+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
			healthAddr, metricsAddr := distro.FreePort(t), distro.FreePort(t)
			config := fmt.Sprintf(`
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
processors:
  compiler_detector:
    only_flagged: false
    kubernetes:
      enabled: true
      kubeconfig: %s
      node_name: node-outage
exporters:
  debug:
    verbosity: detailed
extensions:
  health_check:
    endpoint: %s
service:
  extensions: [health_check]
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [compiler_detector], exporters: [debug]}
  telemetry:%s
`, kubeconfig, healthAddr, promConfig(metricsAddr))
			argv := append([]string{distro.Binary(t), "--config", distro.WriteConfig(t, config)}, tc.flags...)
			c := distro.Launch(t, argv...)
			c.WaitOutput(t, "Everything is ready", 60*time.Second)
			c.WaitOutput(t, "Kubernetes API server not reachable", 10*time.Second)

			tag := fmt.Sprintf("k8s-outage-%d", time.Now().UnixNano())
			require.NoError(t, exec.Command("/bin/true", tag).Run())
			c.WaitOutput(t, "Body: Str(/bin/true "+tag+")", 20*time.Second)

			// Probed like the kubelet does, for a while: the reflector keeps retrying meanwhile.
			for range 5 {
				resp, err := http.Get("http://" + healthAddr + "/")
				require.NoError(t, err)
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, "liveness stays OK during an API outage")
				time.Sleep(time.Second)
			}
			m := metricsWhenReady(t, metricsAddr)
			synced, ok := m["otelcol_processor_compiler_detector_k8s_synced"]
			assert.True(t, ok, "the k8s_synced gauge is exported")
			assert.Zero(t, synced)
			select {
			case err := <-c.Done:
				c.Done <- err
				t.Fatalf("the collector exited during the API outage (%v):\n%s", err, c.Out.String())
			default:
			}
			c.Stop(t)
			assert.Len(t, logLines(c.Out.String(), "Kubernetes API server not reachable"), 1,
				"logged once, not per retry")
			assert.Empty(t, logLines(c.Out.String(), "Invalid transition"), "status reports the host accepts")
		})
	}
}
