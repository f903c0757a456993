package kubetest

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestServiceAccountKeys(t *testing.T) {
	keyPath, pubPath, err := serviceAccountKeys(t.TempDir())
	require.NoError(t, err)
	keyPEM, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	pubPEM, err := os.ReadFile(pubPath)
	require.NoError(t, err)

	block, _ := pem.Decode(keyPEM)
	require.NotNil(t, block)
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	require.NoError(t, err)
	block, _ = pem.Decode(pubPEM)
	require.NotNil(t, block)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	require.NoError(t, err)
	assert.True(t, key.PublicKey.Equal(pub.(*rsa.PublicKey)), "the public key file matches the signing key")
}

func TestFreePortsDistinct(t *testing.T) {
	ports, err := freePorts(5)
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, p := range ports {
		assert.False(t, seen[p], "port %d twice", p)
		seen[p] = true
	}
}

// TestStartStopRestart checks the harness itself: a fresh cluster answers, the API server can be stopped and
// brought back with its data (etcd keeps running).
func TestStartStopRestart(t *testing.T) {
	c := Start(t)
	_, err := c.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	c.StopAPIServer(t)
	_, err = c.Client.CoreV1().Namespaces().Get(t.Context(), "kept", metav1.GetOptions{})
	require.Error(t, err)

	require.NoError(t, c.StartAPIServer(t))
	_, err = c.Client.CoreV1().Namespaces().Get(t.Context(), "kept", metav1.GetOptions{})
	require.NoError(t, err)
}

func TestReservePortRefusesConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the port is held only on Linux")
	}
	port, release, err := reservePort()
	require.NoError(t, err)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	_, err = net.Dial("tcp", addr)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "a reserved port refuses connections: %v", err)
	_, err = net.Listen("tcp", addr)
	assert.Error(t, err, "nobody else can bind it")
	release()
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err, "released, the server can bind it")
	require.NoError(t, l.Close())
}

// TestStartWithAPIServerDown: the kubeconfig exists before the API server, connections to it are refused, and the
// API server comes up on the port the kubeconfig names.
func TestStartWithAPIServerDown(t *testing.T) {
	c := StartWithAPIServerDown(t)
	kubeconfig := c.Kubeconfig(t, c.AgentConfig)
	require.FileExists(t, kubeconfig)
	_, err := c.Client.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "refused, like an API server that is down: %v", err)

	require.NoError(t, c.StartAPIServer(t))
	_, err = c.Client.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{})
	require.NoError(t, err)
}
