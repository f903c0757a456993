package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
)

// namespacesRule is the rule the chart adds when namespace labels or annotations are configured.
var namespacesRule = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}}

// TestIntegrationConventions runs contrib's spellings of the kubernetes settings against a real kube-apiserver:
// auth_type kubeConfig with context, serviceAccount, none and tls; filter.node_from_env_var; wait_for_metadata: true
// (Start returns synced, or fails after wait_for_metadata_timeout); and namespace labels and annotations, with and
// without RBAC on namespaces, including an update of a namespace's labels.
func TestIntegrationConventions(t *testing.T) {
	cluster := kubetest.Start(t)
	e := &itEnv{cluster: cluster, admin: cluster.Client}
	ctx := t.Context()
	_, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        itNamespace,
		Labels:      map[string]string{"team": "payments", "env": "prod"},
		Annotations: map[string]string{"owner": "alice@example.com", "unselected": "x"},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	pod := e.createPod(t, newPod("web", container("app", "reg.example/web:1", "containerd://"+testID(7), "sha256:"+testID(9))))

	// No RBAC yet: Start with wait_for_metadata: true fails after the timeout, naming the setting.
	t.Run("wait_for_metadata true fails Start when the cache cannot sync", func(t *testing.T) {
		cfg := Config{Enabled: ModeTrue, NodeName: testNode, Kubeconfig: e.cluster.Kubeconfig(t, e.cluster.AgentConfig),
			WaitForMetadata: WaitForMetadata{AtStart: true, IsBool: true}, WaitForMetadataTimeout: 2 * time.Second}
		c, err := New(cfg, Settings{Logger: zaptest.NewLogger(t)})
		require.NoError(t, err)
		start := time.Now()
		err = c.Start(ctx)
		assert.ErrorContains(t, err, `"kubernetes.wait_for_metadata" is true and the pod cache of node node-a is not synced after 2s: RBAC does not allow list`)
		assert.ErrorContains(t, err, "forbidden", "the reason: RBAC refuses the pod list")
		assert.Less(t, time.Since(start), 20*time.Second)
		require.NoError(t, c.Shutdown(ctx))
	})

	e.grant(t, agentRules)
	t.Run("kubeConfig, context, node_from_env_var and wait_for_metadata true", func(t *testing.T) {
		// The kubeconfig's current context points at a closed port; the context names the real API server.
		kc := clientcmdapi.NewConfig()
		kc.Clusters["dead"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", InsecureSkipTLSVerify: true}
		kc.Clusters["test"] = &clientcmdapi.Cluster{Server: e.cluster.AgentConfig.Host, InsecureSkipTLSVerify: true}
		kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{Token: e.cluster.AgentConfig.BearerToken}
		kc.Contexts["dead"] = &clientcmdapi.Context{Cluster: "dead", AuthInfo: "agent"}
		kc.Contexts["agent"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "agent"}
		kc.CurrentContext = "dead"
		path := filepath.Join(t.TempDir(), "kubeconfig")
		require.NoError(t, clientcmd.WriteToFile(*kc, path))
		t.Setenv("MY_NODE_NAME", testNode)

		cfg := Config{Enabled: ModeAuto, AuthType: AuthTypeKubeConfig, Kubeconfig: path, Context: "agent",
			Filter: Filter{NodeFromEnvVar: "MY_NODE_NAME"}, WaitForMetadata: WaitForMetadata{AtStart: true, IsBool: true}}
		require.NoError(t, cfg.Validate())
		// A short start timeout for the ordinary path: with wait_for_metadata true, Start waits for the sync itself.
		c, err := New(cfg, Settings{Logger: zaptest.NewLogger(t), StartTimeout: time.Millisecond})
		require.NoError(t, err)
		require.NoError(t, c.Start(ctx))
		defer func() { require.NoError(t, c.Shutdown(context.Background())) }()
		// Start returned synced: the pod created before it resolves at once, with no waiting.
		assert.True(t, c.Status().Synced)
		r, st := c.Resolve(testID(7), "")
		require.Equal(t, StateFound, st)
		assert.Equal(t, pod.Name, r.Pod.Name)
		assert.Equal(t, "sha256:"+testID(9), ImageID(r.Container.ImageID))
	})

	host, err := url.Parse(e.cluster.AgentConfig.Host)
	require.NoError(t, err)
	inPod := func(t *testing.T, token bool) *environment {
		dir := t.TempDir()
		env := &environment{tokenPath: filepath.Join(dir, "token"), caPath: e.cluster.ServingCertFile()}
		if token {
			require.NoError(t, os.WriteFile(env.tokenPath, []byte(e.cluster.AgentConfig.BearerToken), 0o600))
		}
		vars := map[string]string{serviceHostEnv: host.Hostname(), servicePortEnv: host.Port(), nodeNameEnv: testNode}
		env.lookupEnv = func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
		return env
	}
	startWith := func(t *testing.T, cfg Config, env *environment) *Cache {
		cfg.WaitForMetadata = WaitForMetadata{AtStart: true, IsBool: true}
		cfg.WaitForMetadataTimeout = 30 * time.Second
		require.NoError(t, cfg.Validate())
		c, err := New(cfg, Settings{Logger: zaptest.NewLogger(t), env: env})
		require.NoError(t, err)
		require.NotNil(t, c)
		require.NoError(t, c.Start(ctx))
		t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })
		return c
	}

	t.Run("serviceAccount: token file, server verified with the CA", func(t *testing.T) {
		c := startWith(t, Config{Enabled: ModeAuto, AuthType: AuthTypeServiceAccount}, inPod(t, true))
		_, st := c.Resolve(testID(7), "")
		assert.Equal(t, StateFound, st)
	})

	t.Run("none: anonymous, server verified with the CA", func(t *testing.T) {
		_, err := e.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "compilerwatch-anonymous"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "compilerwatch"},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "system:anonymous"}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		defer func() {
			require.NoError(t, e.admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), "compilerwatch-anonymous", metav1.DeleteOptions{}))
		}()
		c := startWith(t, Config{Enabled: ModeTrue, AuthType: AuthTypeNone}, inPod(t, false))
		_, st := c.Resolve(testID(7), "")
		assert.Equal(t, StateFound, st)
	})

	t.Run("tls: a client certificate, server verified with ca_file", func(t *testing.T) {
		cert, key := e.cluster.ClientCert(t, kubetest.AgentUser)
		c := startWith(t, Config{Enabled: ModeTrue, AuthType: AuthTypeTLS, CAFile: e.cluster.ServingCertFile(),
			CertFile: cert, KeyFile: key}, inPod(t, false))
		_, st := c.Resolve(testID(7), "")
		assert.Equal(t, StateFound, st)
	})

	t.Run("tls: a certificate for a user without RBAC is refused", func(t *testing.T) {
		cert, key := e.cluster.ClientCert(t, "nobody")
		cfg := Config{Enabled: ModeTrue, AuthType: AuthTypeTLS, CertFile: cert, KeyFile: key,
			WaitForMetadata: WaitForMetadata{AtStart: true, IsBool: true}, WaitForMetadataTimeout: 2 * time.Second}
		c, err := New(cfg, Settings{Logger: zaptest.NewLogger(t), env: inPod(t, false)})
		require.NoError(t, err)
		assert.ErrorContains(t, c.Start(ctx), `User "nobody" cannot list resource "pods"`, "authenticated as the certificate's user")
		require.NoError(t, c.Shutdown(ctx))
	})

	t.Run("none: a CA that does not sign the server fails verification", func(t *testing.T) {
		cfg := Config{Enabled: ModeTrue, AuthType: AuthTypeNone, CAFile: otherCA(t),
			WaitForMetadata: WaitForMetadata{AtStart: true, IsBool: true}, WaitForMetadataTimeout: 2 * time.Second}
		c, err := New(cfg, Settings{Logger: zaptest.NewLogger(t), env: inPod(t, false)})
		require.NoError(t, err)
		assert.ErrorContains(t, c.Start(ctx), "certificate signed by unknown authority")
		require.NoError(t, c.Shutdown(ctx))
	})

	nsCfg := Config{Enabled: ModeTrue, NodeName: testNode, NamespaceLabels: []string{"team", "env"}, NamespaceAnnotations: []string{"owner"}}

	t.Run("namespaces refused: logged once, pods still followed", func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		cfg := nsCfg
		cfg.Kubeconfig = e.cluster.Kubeconfig(t, e.cluster.AgentConfig)
		c, err := New(cfg, Settings{Logger: zap.New(core), StartTimeout: 30 * time.Second})
		require.NoError(t, err)
		require.NoError(t, c.Start(ctx))
		defer func() { require.NoError(t, c.Shutdown(context.Background())) }()
		require.Eventually(t, func() bool { return c.Stats().APIErrors >= 2 }, 30*time.Second, 10*time.Millisecond)
		// The refusal of the first request (a watch-list, then a list) is logged, once.
		assert.Len(t, messages(logs, zapcore.ErrorLevel, "on namespaces; records get no namespace labels"), 1)
		assert.True(t, c.Following(), "the pod cache is not affected: %+v", c.Status())
		r, st := c.Resolve(testID(7), "")
		require.Equal(t, StateFound, st)
		assert.Empty(t, r.Namespace.Labels)
	})

	e.grant(t, append(append([]rbacv1.PolicyRule(nil), agentRules...), namespacesRule))
	t.Run("namespace labels and annotations, and an update", func(t *testing.T) {
		cfg := nsCfg
		cfg.Kubeconfig = e.cluster.Kubeconfig(t, e.cluster.AgentConfig)
		cfg.WaitForMetadata = WaitForMetadata{AtStart: true, IsBool: true}
		c, err := New(cfg, Settings{Logger: zaptest.NewLogger(t)})
		require.NoError(t, err)
		require.NoError(t, c.Start(ctx))
		defer func() { require.NoError(t, c.Shutdown(context.Background())) }()

		res := resourceWith("container.id", testID(7))
		require.Equal(t, StateFound, c.Enrich(res))
		got := res.Attributes().AsRaw()
		assert.Equal(t, "payments", got["k8s.namespace.label.team"])
		assert.Equal(t, "prod", got["k8s.namespace.label.env"])
		assert.Equal(t, "alice@example.com", got["k8s.namespace.annotation.owner"])
		assert.NotContains(t, got, "k8s.namespace.annotation.unselected")
		assert.Equal(t, "sha256:"+testID(9), got["container.image.id"])

		ns, err := e.admin.CoreV1().Namespaces().Get(ctx, itNamespace, metav1.GetOptions{})
		require.NoError(t, err)
		ns.Labels["team"] = "billing"
		updated := time.Now()
		_, err = e.admin.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			res := resourceWith("container.id", testID(7))
			c.Enrich(res)
			v, _ := res.Attributes().Get("k8s.namespace.label.team")
			return v.Str() == "billing"
		}, 30*time.Second, time.Millisecond)
		t.Logf("namespace label update seen by the cache %s after the Update call started",
			time.Since(updated).Round(time.Millisecond))
	})
}

// otherCA writes a self-signed CA certificate that signed nothing the test API server presents.
func otherCA(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unrelated-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return path
}
