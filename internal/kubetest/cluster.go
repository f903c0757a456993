// Package kubetest runs a real etcd and kube-apiserver on loopback for the integration tests of every component
// (the processor's pod cache, the end-to-end and outage tests), and adapts a clientset to the processor's kube API
// (ClientsetAPI). There is no kubelet: tests create Pods with spec.nodeName set, write status.containerStatuses
// themselves with UpdateStatus, and delete with grace period 0.
//
// The binaries are built from the Go module proxy by build-k8s-binaries.sh (next to this file) and cached outside
// the clone, in /var/tmp/compilerwatch-k8s-v1.37.2/bin (override with K8S_TEST_ROOT).
package kubetest // import "github.com/compilerwatch/compilerwatch/internal/kubetest"

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

const (
	// DefaultRoot is where build-k8s-binaries.sh caches the binaries (under bin/).
	DefaultRoot = "/var/tmp/compilerwatch-k8s-v1.37.2"
	// RootEnv overrides DefaultRoot, as it does for the build script.
	RootEnv = "K8S_TEST_ROOT"
	// BuildScript is the script that builds the binaries, relative to the repository root.
	BuildScript = "internal/kubetest/build-k8s-binaries.sh"

	// AgentUser is an unprivileged user (no groups beyond system:authenticated): tests grant it RBAC to check what
	// the processor's ClusterRole must contain.
	AgentUser = "compilerwatch-agent"

	adminToken = "compilerwatch-admin-token"
	agentToken = "compilerwatch-agent-token" //nolint:gosec // a throwaway test credential
)

// readyTimeout is generous: the test machine is shared and a cold kube-apiserver runs its RBAC bootstrap first.
const readyTimeout = 90 * time.Second

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// AgentConfig authenticates as AgentUser, who has no permissions until a test grants some.
	AgentConfig *rest.Config

	dir       string
	clientCA  *clientCA
	apiArgs   []string
	etcd      *process
	apiserver *process
	// releasePort closes the socket that holds the API server's port while kube-apiserver has never run.
	releasePort func()
}

// BinDir returns the directory holding etcd and kube-apiserver.
func BinDir() string {
	root := os.Getenv(RootEnv)
	if root == "" {
		root = DefaultRoot
	}
	return filepath.Join(root, "bin")
}

// Start starts etcd and kube-apiserver on free loopback ports with a fresh data directory, waits for /readyz, and
// stops both on t.Cleanup. It skips the test when the binaries are missing (fails it when CI=true), and always
// under -short.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return start(t, true)
}

// StartWithAPIServerDown is Start without kube-apiserver: etcd runs, and the API server's port is held without
// listening, so connections to it are refused as they are during a control-plane outage. Config, AgentConfig and
// Kubeconfig already point at that port (a kubeconfig can be written before the server exists); StartAPIServer
// brings the API server up on it. Client is usable once it is up.
func StartWithAPIServerDown(t testing.TB) *Cluster {
	t.Helper()
	return start(t, false)
}

func start(t testing.TB, withAPIServer bool) *Cluster {
	t.Helper()
	testenv.SkipShort(t, "a running etcd and kube-apiserver")
	bin := BinDir()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			msg := fmt.Sprintf("kubetest: %s not found in %s; build it with %s (6 to 20+ min on 2 cores, once: cached outside the clone)",
				name, bin, BuildScript)
			if testenv.InCI() {
				t.Fatal(msg + " (CI=true: integration tests must run, not skip)")
			}
			t.Skip(msg)
		}
	}

	// Free ports are picked, released, then bound by etcd and kube-apiserver: a test binary running in parallel
	// can take one in between. Such a start is retried on fresh ports.
	base := t.TempDir()
	for attempt := 1; ; attempt++ {
		c := &Cluster{dir: filepath.Join(base, strconv.Itoa(attempt))}
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			t.Fatalf("kubetest: %v", err)
		}
		err := c.start(t, bin, withAPIServer)
		if err == nil {
			t.Cleanup(c.stop)
			return c
		}
		c.stop()
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("kubetest: a port was taken before it was bound; retrying on fresh ports (attempt %d)", attempt+1)
			continue
		}
		t.Fatalf("kubetest: %v", err)
	}
}

func (c *Cluster) start(t testing.TB, bin string, withAPIServer bool) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	apiPort, release, err := reservePort()
	if err != nil {
		return err
	}
	c.releasePort = release

	saKey, saPub, err := serviceAccountKeys(c.dir)
	if err != nil {
		return err
	}
	if c.clientCA, err = newClientCA(c.dir); err != nil {
		return err
	}
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(
		adminToken+",admin,admin-uid,system:masters\n"+
			agentToken+","+AgentUser+","+AgentUser+"-uid\n"), 0o600); err != nil {
		return err
	}

	c.etcd, err = startProcess(t, c.dir, filepath.Join(bin, "etcd"),
		"--name=default",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		// Test data is thrown away: skip fsync, which dominates etcd latency on a shared disk.
		"--unsafe-no-fsync",
	)
	if err != nil {
		return err
	}

	c.apiArgs = []string{
		"--etcd-servers=" + clientURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(c.dir, "certs"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		// Required with a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--token-auth-file=" + tokens,
		"--client-ca-file=" + c.clientCA.path,
		// RBAC rather than AlwaysAllow, so tests can check the processor's documented permissions.
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
	}
	host := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	// The admin client sets up fixtures (a thousand pods for memory measurements): no client-side rate limit.
	c.Config = &rest.Config{Host: host, BearerToken: adminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: -1}
	c.AgentConfig = &rest.Config{Host: host, BearerToken: agentToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	// The clientset does not connect until used.
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	if withAPIServer {
		return c.StartAPIServer(t)
	}
	return nil
}

// StartAPIServer (re)starts kube-apiserver with the same port and etcd, and waits for /readyz. Start calls it; a
// test that stopped the API server, or started the cluster with StartWithAPIServerDown, calls it to bring it up.
func (c *Cluster) StartAPIServer(t testing.TB) error {
	if c.apiserver != nil {
		return errors.New("kube-apiserver already running")
	}
	if c.releasePort != nil {
		c.releasePort()
		c.releasePort = nil
	}
	p, err := startProcess(t, c.dir, filepath.Join(BinDir(), "kube-apiserver"), c.apiArgs...)
	if err != nil {
		return err
	}
	c.apiserver = p
	if err := waitReady(c.Config.Host+"/readyz", adminToken, p, c.etcd); err != nil {
		return fmt.Errorf("%w\n--- kube-apiserver log tail ---\n%s\n--- etcd log tail ---\n%s", err, p.tail(), c.etcd.tail())
	}
	return nil
}

// StopAPIServer kills kube-apiserver (etcd keeps running), to test behavior when the API server goes away. It
// kills rather than terminates: a graceful shutdown drains watches for over 10s, and a crash or a network
// partition is the case that matters.
func (c *Cluster) StopAPIServer(t testing.TB) {
	t.Helper()
	if c.apiserver == nil {
		return
	}
	c.apiserver.kill()
	c.apiserver = nil
}

// ServingCertFile is the API server's self-signed serving certificate (with its CA), for clients that verify the
// server, as a pod verifies it with its service account's ca.crt. It exists once the API server has started.
func (c *Cluster) ServingCertFile() string {
	return filepath.Join(c.dir, "certs", "apiserver.crt")
}

// Kubeconfig writes a kubeconfig file for cfg (Config or AgentConfig) and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, InsecureSkipTLSVerify: cfg.Insecure}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatalf("kubetest: writing kubeconfig: %v", err)
	}
	return path
}

func (c *Cluster) stop() {
	if c.releasePort != nil {
		c.releasePort()
		c.releasePort = nil
	}
	if c.apiserver != nil {
		c.apiserver.kill() // its state is in etcd, which is thrown away
		c.apiserver = nil
	}
	if c.etcd != nil {
		_ = c.etcd.stop()
		c.etcd = nil
	}
}

// process is a child started by this package, stopped by its PID only.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProcess(t testing.TB, dir, path string, args ...string) (*process, error) {
	name := filepath.Base(path)
	logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	t.Logf("kubetest: started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process's PID, then SIGKILL after 10s, and waits for it.
func (p *process) stop() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM; killed", p.name, p.cmd.Process.Pid)
}

// kill sends SIGKILL to the process's PID and waits for it.
func (p *process) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func waitReady(url, token string, procs ...*process) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback test server with a self-signed cert
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last string
	for {
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("%s exited before %s was ready: %v", p.name, url, p.err)
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last: %s)", url, readyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago. Binding all before closing any keeps
// them distinct; parallel test binaries could still race for them, which the readiness check would report.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// serviceAccountKeys writes the service-account signing key pair the API server requires, generated in Go so the
// tests do not depend on openssl.
func serviceAccountKeys(dir string) (keyPath, pubPath string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	keyPath, pubPath = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}
