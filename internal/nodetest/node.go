// Package nodetest runs a real single-node Kubernetes node on this machine for the end-to-end tests: kubetest's
// etcd and kube-apiserver, containerd with its CRI plugin and the overlayfs snapshotter (runc from the host), and a
// kubelet registered as a Node with the cgroupfs driver. Pods get their own network namespaces from the CNI
// bridge plugin, with no masquerade and no route: pod traffic reaches other pods and the host's HostIP, never
// leaves the node.
// Images are built locally and imported with ctr; nothing is pulled.
// No kube-controller-manager or scheduler runs: tests bind pods to the node by spec.nodeName, and DeploymentPod
// creates a Deployment with the ReplicaSet and Pod its controllers would.
//
// The binaries are built from the Go module proxy by kubetest's build-k8s-binaries.sh and cached next to
// kube-apiserver. Only one node runs on a machine at a time (kubelet owns CgroupRoot in every cgroup hierarchy and
// a few fixed host paths); Start serializes on a lock file. Cleanup stops every process, removes the pods'
// mounts, cgroups, network devices and the fixed host paths kubelet and containerd create, and restores the host
// sysctls kubelet rewrites at start.
package nodetest // import "github.com/compilerwatch/compilerwatch/internal/nodetest"

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

const (
	// NodeName is the Node kubelet registers.
	NodeName = "cw-node"
	// PauseImage is the sandbox image: static busybox sleeping as the pod's first process.
	PauseImage = "localhost/cw/pause:1"
	// BusyboxImage holds /bin/busybox and the applet links of BusyboxFiles.
	BusyboxImage = "localhost/cw/busybox:1"
	// Bridge is the host side of the pods' network: a bridge without an address.
	Bridge = "cwnode0"
	// PodSubnet is the pods' address range, inside TEST-NET-2: it routes nowhere.
	PodSubnet = "198.51.100.0/24"
	// HostIP is the host's address on Bridge: pods reach the host there (and only there, with no route off the
	// subnet), and kubelet's probes reach the pods.
	HostIP = "198.51.100.1"

	// CgroupRoot is kubelet's cgroupRoot: pods live under CgroupRoot/kubepods in every hierarchy, as on kind nodes
	// (cgroupRoot /kubelet). The testenv runc containers, which other test packages run in parallel, use
	// /kubepods itself; kubelet would take their cgroups for orphaned pods and kill them.
	CgroupRoot = "/compilerwatch-nodetest"

	lockPath = "/var/tmp/compilerwatch-nodetest.lock"
)

// Binaries are the node binaries Start needs in kubetest.BinDir().
var Binaries = []string{"kubelet", "containerd", "containerd-shim-runc-v2", "ctr", "crictl", "bridge", "host-local", "loopback"}

// hostSysctls are the host settings kubelet rewrites at start (and the neighbours it reads); they are restored.
var hostSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// Node is a running single-node cluster.
type Node struct {
	*kubetest.Cluster
	// Dir holds every state, socket and log directory of the node.
	Dir string
	// Socket is containerd's gRPC socket.
	Socket string
	// IP is the node's InternalIP.
	IP string

	bin     string
	runc    string // the host's runc (Debian's), which containerd's shim runs
	procs   []*proc
	sysctls map[string]string
	created []string // fixed host paths that did not exist before Start
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start brings up the node and waits until it is Ready with the images imported. It skips (fails under CI=true)
// without root, runc or the binaries, and always under -short.
func Start(t testing.TB, images ...ImageSpec) *Node {
	t.Helper()
	testenv.SkipShort(t, "a real kubelet and containerd")
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	bin := kubetest.BinDir()
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			msg := fmt.Sprintf("nodetest: %s not found in %s; build it with %s (cached outside the clone)", b, bin, kubetest.BuildScript)
			if testenv.InCI() {
				t.Fatal(msg + " (CI=true: node tests must run, not skip)")
			}
			t.Skip(msg)
		}
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("nodetest: lock: %v", err)
	}
	t.Cleanup(func() { _ = lock.Close() })

	cluster := kubetest.Start(t)
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("/var/tmp", "cw-node-")
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	n := &Node{Cluster: cluster, Dir: dir, Socket: filepath.Join(dir, "run", "containerd.sock"), bin: bin}
	t.Cleanup(func() { n.stop(t) })
	if err := n.start(t, images); err != nil {
		t.Fatalf("nodetest: %v\n%s", err, n.logTails())
	}
	return n
}

func (n *Node) path(p ...string) string { return filepath.Join(append([]string{n.Dir}, p...)...) }

func (n *Node) start(t testing.TB, images []ImageSpec) error {
	for _, d := range []string{"run", "logs", "cni/net.d", "cni/bin", "cni/ipam", "kubelet/root", "kubelet/manifests", "kubelet/pod-logs", "images"} {
		if err := os.MkdirAll(n.path(d), 0o755); err != nil {
			return err
		}
	}
	for _, p := range []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/log/containers", "/run/containerd/s", "/run/containerd/fifo", "/run/containerd"} {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			n.created = append(n.created, p)
		}
	}
	n.sysctls = map[string]string{}
	for _, s := range hostSysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			n.sysctls[s] = strings.TrimSpace(string(b))
		}
	}
	ip, err := nodeIP()
	if err != nil {
		return err
	}
	if n.runc, err = exec.LookPath("runc"); err != nil {
		return err
	}
	n.IP = ip
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if err := os.Symlink(filepath.Join(n.bin, p), n.path("cni/bin", p)); err != nil {
			return err
		}
	}
	// The bridge exists, with the host's address, before the first pod: the bridge plugin (isGateway false)
	// only attaches pods to it and never enables IP forwarding.
	_ = exec.Command("ip", "link", "del", Bridge).Run() // left by a test binary that was killed
	for _, args := range [][]string{
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", HostIP + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.WriteFile(n.path("cni/net.d/10-cw.conflist"), []byte(n.cniConfig()), 0o644); err != nil {
		return err
	}
	crictl := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n", n.Socket, n.Socket)
	if err := os.WriteFile(n.path("crictl.yaml"), []byte(crictl), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(n.path("containerd.toml"), []byte(n.containerdConfig()), 0o644); err != nil {
		return err
	}
	if err := n.run(t, "containerd", "--config", n.path("containerd.toml")); err != nil {
		return err
	}
	if err := waitFor(60*time.Second, func() bool { _, err := os.Stat(n.Socket); return err == nil }); err != nil {
		return fmt.Errorf("containerd socket: %w", err)
	}
	pause, err := pauseImage()
	if err != nil {
		return err
	}
	busybox, err := busyboxImage()
	if err != nil {
		return err
	}
	if err := n.importImages(t, append([]ImageSpec{pause, busybox}, images...)); err != nil {
		return err
	}

	if err := makeCgroupRoot(); err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	if err := os.WriteFile(n.path("kubelet.yaml"), []byte(n.kubeletConfig(ports[0], ports[1])), 0o644); err != nil {
		return err
	}
	kubeconfig := n.Kubeconfig(t, n.Config)
	if err := n.run(t, "kubelet", "--config="+n.path("kubelet.yaml"), "--kubeconfig="+kubeconfig,
		"--hostname-override="+NodeName, "--node-ip="+n.IP, "--root-dir="+n.path("kubelet/root"),
		"--cert-dir="+n.path("kubelet/pki"), "--v=2"); err != nil {
		return err
	}
	// kubelet rewrites the sysctls once, when its container manager starts, before the node registers.
	ready := func() bool {
		node, err := n.Client.CoreV1().Nodes().Get(context.Background(), NodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}
	err = waitFor(120*time.Second, ready)
	n.restoreSysctls(t)
	if err != nil {
		return fmt.Errorf("node %s not Ready: %w", NodeName, err)
	}
	return nil
}

// cniConfig: the bridge (isGateway false: the plugin neither addresses it nor enables forwarding), no
// masquerade, and no routes, so pods reach only each other and HostIP; loopback gives each pod its lo.
func (n *Node) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "cw-node",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": false, "isDefaultGateway": false, "ipMasq": false, "hairpinMode": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}},
    {"type": "loopback"}
  ]
}
`, Bridge, PodSubnet, n.path("cni/ipam"))
}

func (n *Node) containerdConfig() string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing", "io.containerd.nri.v1.nri"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = %[5]q
  level = "info"
[metrics]
  address = ""

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = %[6]q
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    # This machine lacks CAP_SYS_RESOURCE: without the clamp, the sandbox's oom_score_adj (-998) fails runc.
    restrict_oom_score_adj = true
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = %[7]q
          Root = %[8]q
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%[9]q]
      conf_dir = %[10]q
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
`, n.path("containerd/root"), n.path("containerd/state"), n.Socket, n.Socket+".ttrpc", n.path("run/debug.sock"),
		PauseImage, n.runc, n.path("run/runc"), n.path("cni/bin"), n.path("cni/net.d"))
}

func (n *Node) kubeletConfig(port, healthz int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%[1]s
cgroupDriver: cgroupfs
cgroupRoot: %[7]s
# The host's hierarchy is hybrid (v1 controllers): kubelet refuses it unless told not to.
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
# No CAP_SYS_RESOURCE: oom_score_adj cannot go below 0.
oomScoreAdj: 0
podLogsDir: %[2]q
volumePluginDir: %[3]q
staticPodPath: %[4]q
address: 127.0.0.1
port: %[5]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[6]d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
registerNode: true
resolvConf: /etc/resolv.conf
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
serializeImagePulls: false
`, n.Socket, n.path("kubelet/pod-logs"), n.path("kubelet/volume-plugins"), n.path("kubelet/manifests"), port, healthz, CgroupRoot)
}

func (n *Node) importImages(t testing.TB, images []ImageSpec) error {
	for i, img := range images {
		p := n.path("images", strconv.Itoa(i)+".tar")
		if err := WriteDockerArchive(p, img); err != nil {
			return fmt.Errorf("image %s: %w", img.Ref, err)
		}
		if out, err := n.Ctr("images", "import", p); err != nil {
			return fmt.Errorf("ctr images import %s: %w\n%s", img.Ref, err, out)
		}
	}
	t.Logf("nodetest: imported %d images", len(images))
	return nil
}

// APIProxy makes kube-apiserver, which listens on loopback only, reachable from the pods at HostIP: it returns
// the proxy's port and the PEM of the certificates the API server serves, for a pod's ca.crt. Clients must
// address it as kubernetes.default.svc, a name in the serving certificate (pods map it to HostIP with
// hostAliases). The proxy stops on t.Cleanup.
func (n *Node) APIProxy(t testing.TB) (port int, caPEM []byte) {
	t.Helper()
	target := strings.TrimPrefix(n.Config.Host, "https://")
	conn, err := tls.Dial("tcp", target, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the self-signed chain
	if err != nil {
		t.Fatalf("nodetest: API server TLS: %v", err)
	}
	for _, c := range conn.ConnectionState().PeerCertificates {
		caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	_ = conn.Close()
	l, err := net.Listen("tcp", net.JoinHostPort(HostIP, "0"))
	if err != nil {
		t.Fatalf("nodetest: API proxy: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, caPEM
}

// ImportArchive imports a docker or OCI archive (such as `make image`'s) into the node's containerd.
func (n *Node) ImportArchive(path string) error {
	if out, err := n.Ctr("images", "import", path); err != nil {
		return fmt.Errorf("ctr images import %s: %w\n%s", path, err, out)
	}
	return nil
}

// Ctr runs ctr against the node's containerd in the CRI namespace.
func (n *Node) Ctr(args ...string) ([]byte, error) {
	return exec.Command(filepath.Join(n.bin, "ctr"), append([]string{"-a", n.Socket, "-n", "k8s.io"}, args...)...).CombinedOutput()
}

// Crictl runs crictl against the node's containerd.
func (n *Node) Crictl(args ...string) ([]byte, error) {
	return exec.Command(filepath.Join(n.bin, "crictl"), append([]string{"--config", n.path("crictl.yaml")}, args...)...).CombinedOutput()
}

func (n *Node) run(t testing.TB, name string, args ...string) error {
	logPath := n.path("logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(n.bin, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "PATH="+n.bin+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = f.Close(); close(p.done) }()
	n.procs = append(n.procs, p)
	t.Logf("nodetest: started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	return nil
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (n *Node) logTails() string {
	var b strings.Builder
	for _, p := range n.procs {
		data, _ := os.ReadFile(p.log)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s log tail ---\n%s\n", p.name, data)
	}
	return b.String()
}

func (n *Node) restoreSysctls(t testing.TB) {
	for k, v := range n.sysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			t.Errorf("nodetest: restoring sysctl %s=%s: %v", k, v, err)
		}
	}
}

// stop tears the node down in the order that leaves nothing behind: kubelet first (so it recreates nothing),
// then the pods through CRI, containerd and its shims, then mounts, cgroups, the bridge, sysctls and host paths.
func (n *Node) stop(t testing.TB) {
	if t.Failed() {
		t.Logf("nodetest: node logs in %s\n%s", n.Dir, n.logTails())
	}
	byName := map[string]*proc{}
	for _, p := range n.procs {
		byName[p.name] = p
	}
	if p := byName["kubelet"]; p != nil {
		p.stop()
	}
	if p := byName["containerd"]; p != nil {
		if out, err := n.Crictl("rmp", "-fa"); err != nil {
			t.Logf("nodetest: crictl rmp -fa: %v\n%s", err, out)
		}
		p.stop()
	}
	n.killShims(t)
	var problems []string
	if err := n.unmountAll(); err != nil {
		problems = append(problems, err.Error())
	}
	if err := removeCgroups(); err != nil {
		problems = append(problems, err.Error())
	}
	if _, err := net.InterfaceByName(Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", Bridge).CombinedOutput(); err != nil {
			problems = append(problems, fmt.Sprintf("ip link del %s: %v: %s", Bridge, err, out))
		}
	}
	n.restoreSysctls(t)
	_ = filepath.Walk("/var/log/containers", func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode()&os.ModeSymlink != 0 {
			if dst, err := os.Readlink(p); err == nil && strings.HasPrefix(dst, n.Dir+"/") {
				_ = os.Remove(p)
			}
		}
		return nil
	})
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	for _, p := range n.created {
		if err := os.RemoveAll(p); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if err := os.RemoveAll(n.Dir); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		t.Errorf("nodetest: cleanup left state behind: %s", strings.Join(problems, "; "))
	}
}

// killShims kills the containerd-shim-runc-v2 processes of this node's containerd (named by its socket path).
func (n *Node) killShims(t testing.TB) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" || !bytes.Contains(cmdline, []byte(n.Socket)) {
			continue
		}
		t.Logf("nodetest: killing shim %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (n *Node) unmountAll() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == n.Dir || strings.HasPrefix(fields[4], n.Dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	_ = f.Close()
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupHierarchies returns the cgroup mounts under /sys/fs/cgroup (v1 controllers, named ones, and the v2 one).
func cgroupHierarchies() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

// makeCgroupRoot creates CgroupRoot in every hierarchy (kubelet requires it to exist), with the cpuset of the
// hierarchy's root so that tasks can join below it.
func makeCgroupRoot() error {
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h, CgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroup root: %w", err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroup root %s: %w", f, err)
				}
			}
		}
	}
	return nil
}

// removeCgroups removes CgroupRoot and what kubelet created below it, in every hierarchy, deepest first.
func removeCgroups() error {
	var roots []string
	for _, h := range cgroupHierarchies() {
		if _, err := os.Stat(filepath.Join(h, CgroupRoot)); err == nil {
			roots = append(roots, filepath.Join(h, CgroupRoot))
		}
	}
	var errs []error
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for range 50 {
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// nodeIP returns the source address of this machine's default route: kubelet rejects a loopback node IP.
func nodeIP() (string, error) {
	conn, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return "", fmt.Errorf("node IP: %w (kubelet needs a non-loopback address)", err)
	}
	defer conn.Close()
	ip := conn.LocalAddr().(*net.UDPAddr).IP
	if ip.IsLoopback() {
		return "", errors.New("node IP: only a loopback address (kubelet rejects it)")
	}
	return ip.String(), nil
}

func freePorts(k int) ([]int, error) {
	var ports []int
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// ContainerCgroups returns the /proc/<pid>/cgroup lines of a process whose cgroup path ends in the container id.
func ContainerCgroups(t testing.TB, id string) []string {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil || !bytes.Contains(data, []byte("/"+id+"\n")) {
			continue
		}
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	return nil
}

// ShellPod is a pod bound to this node (there is no scheduler) with one container that runs script with
// /bin/sh -c from a locally imported image (never pulled), and a 1 s termination grace period.
func ShellPod(name, container, image string, restart corev1.RestartPolicy, script string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:                      NodeName,
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: container, Image: image, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/sh", "-c", script},
			}},
		},
	}
}
