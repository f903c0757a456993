//go:build linux

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestContainerBusybox(t *testing.T) {
	start := time.Now()
	c := NewContainer(t, Options{})
	t.Logf("NewContainer (bundle + runc run): %v", time.Since(start))

	start = time.Now()
	if r, err := c.Exec(t, "true"); err != nil || r.ExitCode != 0 {
		t.Fatalf("true: %+v, %v", r, err)
	}
	t.Logf("runc exec true: %v", time.Since(start))
	if r, err := c.Exec(t, "sh", "-c", "exit 7"); err != nil || r.ExitCode != 7 {
		t.Errorf("exit 7: %+v, %v", r, err)
	}
	if r, err := c.Exec(t, "/no/such/binary"); err != nil || r.ExitCode == 0 || r.Stderr == "" {
		t.Errorf("missing binary: %+v, %v; want non-zero exit and runc's message", r, err)
	}

	inside := c.MustExec(t, "cat", "/proc/self/cgroup")
	hostView, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.InitPID()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host /proc/%d/cgroup:\n%s", c.InitPID(), hostView)
	for name, text := range map[string]string{"container": inside, "host": string(hostView)} {
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			// hierarchy-id:controllers:path. Every hierarchy, v1 and the
			// unified "0::" one, holds the container at the same path.
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 || parts[2] != c.CgroupPath() {
				t.Errorf("%s view: line %q, want path %s", name, line, c.CgroupPath())
			}
		}
		if !strings.Contains(text, "0::"+c.CgroupPath()) {
			t.Errorf("%s view has no cgroup2 line for the container:\n%s", name, text)
		}
		if !strings.Contains(text, "/pod"+c.PodUID()+"/"+c.ID()) {
			t.Errorf("%s view lacks pod uid %s and id %s", name, c.PodUID(), c.ID())
		}
	}
}

func TestContainerSystemdLayout(t *testing.T) {
	c := NewContainer(t, Options{CgroupLayout: SystemdLayout, QoS: QoSBurstable})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.InitPID()))
	if err != nil {
		t.Fatal(err)
	}
	want := "kubepods-burstable-pod" + strings.ReplaceAll(c.PodUID(), "-", "_") + ".slice/cri-containerd-" + c.ID() + ".scope"
	if !strings.Contains(string(b), "0::/kubepods.slice/kubepods-burstable.slice/"+want) {
		t.Errorf("/proc/%d/cgroup = %s\nwant the systemd-shaped path ending %s", c.InitPID(), b, want)
	}
}

const helloC = `#include <stdio.h>
int main(void) { puts("hello from c"); return 0; }
`

func TestContainerGCC(t *testing.T) {
	mounts := HostGCCMounts(t)
	for _, m := range mounts {
		t.Logf("mount %+v", m)
	}
	c := NewContainer(t, Options{Mounts: mounts})
	c.WriteFile(t, "/tmp/hello.c", []byte(helloC), 0o644)
	in := ExecOptions{Cwd: "/tmp"}
	steps := [][]string{
		{"gcc", "-c", "hello.c", "-o", "hello.o"},
		{"gcc", "hello.o", "-o", "hello-gcc"},
		{"./hello-gcc"},
		{"cc", "hello.c", "-o", "hello-cc"},
		{"./hello-cc"},
		// A renamed copy of the driver, in a writable directory.
		{"cp", "/usr/bin/gcc", "/tmp/x"},
		{"/tmp/x", "-c", "hello.c", "-o", "x.o"},
		{"/tmp/x", "x.o", "-o", "hello-x"},
		{"./hello-x"},
	}
	for _, argv := range steps {
		start := time.Now()
		r, err := c.ExecWith(t, in, argv...)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%q: exit %d, err %v\nstdout: %s\nstderr: %s", argv, r.ExitCode, err, r.Stdout, r.Stderr)
		}
		t.Logf("%q: %v", argv, time.Since(start))
		if strings.HasPrefix(argv[0], "./") && r.Stdout != "hello from c\n" {
			t.Errorf("%q printed %q", argv, r.Stdout)
		}
	}
	if got := strings.TrimSpace(c.MustExec(t, "readlink", "/usr/bin/cc")); got != "/etc/alternatives/cc" {
		t.Errorf("/usr/bin/cc is a link to %q, want the host's /etc/alternatives/cc", got)
	}
}

func TestContainerGoBuild(t *testing.T) {
	mounts, env := HostGoMounts(t)
	const goMod = "module hello\n\ngo 1.22\n"
	const mainGo = "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello from go\\n\") }\n"

	// Warm the shared cache on the host with the container's settings, so
	// the container build does not rebuild the standard library on a fresh
	// runner. On a warm cache this is a no-op.
	host := t.TempDir()
	for name, data := range map[string]string{"go.mod": goMod, "main.go": mainGo} {
		if err := os.WriteFile(filepath.Join(host, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	warm := exec.Command("go", "build", "-o", filepath.Join(host, "hello"), ".")
	warm.Dir = host
	warm.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=", "GOENV=off")
	if out, err := warm.CombinedOutput(); err != nil {
		t.Fatalf("host go build: %v\n%s", err, out)
	}
	t.Logf("host warm-up go build: %v", time.Since(start))

	c := NewContainer(t, Options{Mounts: mounts, Env: env})
	c.WriteFile(t, "/tmp/hello/go.mod", []byte(goMod), 0o644)
	c.WriteFile(t, "/tmp/hello/main.go", []byte(mainGo), 0o644)
	start = time.Now()
	c.MustExec(t, "sh", "-c", "cd /tmp/hello && go build -o /tmp/hello/hello .")
	t.Logf("container go build: %v", time.Since(start))
	if out := c.MustExec(t, "/tmp/hello/hello"); out != "hello from go\n" {
		t.Errorf("built program printed %q", out)
	}
	// No network: the container has only a loopback interface, down.
	if r, _ := c.Exec(t, "sh", "-c", "cat /proc/net/dev | grep -v lo: | tail -n +3"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("container has network interfaces: %q", r.Stdout)
	}
}

func TestContainerOverlay(t *testing.T) {
	c := NewContainer(t, Options{
		Overlay: true,
		Populate: func(root string) error {
			return os.WriteFile(filepath.Join(root, "etc", "from-lower"), []byte("lower\n"), 0o644)
		},
	})
	entries, err := os.ReadDir(c.UpperDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("upper layer not empty after start: %v", entries)
	}
	if got := c.MustExec(t, "cat", "/etc/from-lower"); got != "lower\n" {
		t.Errorf("lower file reads %q", got)
	}
	// 794c7630 is OVERLAYFS_SUPER_MAGIC; busybox has no name for it.
	if got := strings.TrimSpace(c.MustExec(t, "stat", "-f", "-c", "%t", "/bin/busybox")); got != "794c7630" {
		t.Errorf("busybox is on filesystem type %q, want overlayfs (794c7630)", got)
	}
	// busybox picks the applet from argv[0]; a "busybox" prefix runs argv[1].
	c.MustExec(t, "sh", "-c", "echo runtime > /tmp/written && cp /bin/busybox /tmp/busybox-copy && /tmp/busybox-copy true")
	for _, name := range []string{"written", "busybox-copy"} {
		if _, err := os.Stat(filepath.Join(c.UpperDir(), "tmp", name)); err != nil {
			t.Errorf("runtime file %s not in upper layer: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(c.LowerDir(), "tmp", name)); err == nil {
			t.Errorf("runtime file %s reached the lower layer", name)
		}
	}
	c.WriteFile(t, "/tmp/from-host", []byte("x"), 0o755)
	if _, err := os.Stat(filepath.Join(c.UpperDir(), "tmp", "from-host")); err != nil {
		t.Errorf("WriteFile did not land in the upper layer: %v", err)
	}
}

// TestContainerCleanup runs a container in a subtest and checks, once the
// subtest's cleanups ran, that nothing of it is left on the host.
func TestContainerCleanup(t *testing.T) {
	// NewContainer's own gates, here too: a skip inside the subtest would
	// leave c nil and fail this test.
	RequireRoot(t)
	RequireBinary(t, "runc", "busybox")
	hierarchies := func() []string {
		m, err := readMountInfo()
		if err != nil {
			t.Fatal(err)
		}
		return cgroupHierarchies(m)
	}()
	var c *Container
	existedBefore := map[string]bool{}
	t.Run("container", func(t *testing.T) {
		cg, _ := CgroupPath(CgroupfsLayout, QoSBestEffort, testPod, testID)
		for _, h := range hierarchies {
			for _, a := range cgroupAncestors(cg)[:2] { // /kubepods, /kubepods/besteffort
				if _, err := os.Stat(filepath.Join(h, a)); err == nil {
					existedBefore[filepath.Join(h, a)] = true
				}
			}
		}
		c = NewContainer(t, Options{Overlay: true, Mounts: []Mount{{Destination: "/host-etc", Source: "/etc"}}})
		// Leftovers for the cleanup to kill. Their stdio is redirected:
		// runc exec waits for its output pipes to close.
		c.MustExec(t, "sh", "-c", "sleep 600 >/dev/null 2>&1 & sleep 600 >/dev/null 2>&1 & true")
	})
	if c == nil {
		t.Fatal("subtest did not create a container")
	}
	if _, err := os.Stat(c.dir); err == nil {
		t.Errorf("temp dir %s still exists", c.dir)
	}
	if out, err := exec.Command("runc", "--root", c.RuncRoot(), "list", "-q").CombinedOutput(); err == nil && strings.Contains(string(out), c.ID()) {
		t.Errorf("runc still lists %s", c.ID())
	}
	m, err := readMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	for _, mi := range m {
		if strings.HasPrefix(mi.MountPoint, c.dir) {
			t.Errorf("mount left behind: %+v", mi)
		}
	}
	for _, h := range hierarchies {
		for _, d := range []string{c.CgroupPath(), filepath.Dir(c.CgroupPath())} {
			if _, err := os.Stat(filepath.Join(h, d)); err == nil {
				t.Errorf("cgroup left behind: %s", filepath.Join(h, d))
			}
		}
		for _, a := range cgroupAncestors(c.CgroupPath())[:2] {
			d := filepath.Join(h, a)
			if existedBefore[d] {
				continue
			}
			// Created for this test: gone, unless a container of a
			// concurrently running test binary still lives below it.
			if entries, err := os.ReadDir(d); err == nil && !hasSubdir(entries) {
				t.Errorf("empty test-created cgroup ancestor left behind: %s", d)
			}
		}
	}
	// init may linger as a zombie: it was reparented to the host's pid 1,
	// which reaps it in its own time.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.InitPID())); err == nil && !strings.Contains(string(st), ") Z ") {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.InitPID())); strings.Contains(string(b), c.ID()) {
			t.Errorf("init pid %d still alive", c.InitPID())
		}
	}
}

func hasSubdir(entries []os.DirEntry) bool {
	for _, e := range entries {
		if e.IsDir() {
			return true
		}
	}
	return false
}
