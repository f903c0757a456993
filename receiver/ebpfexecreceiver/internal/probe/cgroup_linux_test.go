//go:build linux

package probe_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/cgroup"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

const (
	// deepCgroupLevels is how many sub-cgroups the test nests below the
	// container's cgroup: more than the deepest max_path_depth (128).
	deepCgroupLevels = 140
	// keptCgroupLevels is how many levels from the root the kernel keeps.
	keptCgroupLevels = probe.CgroupDepthMax
	cgroupRoot       = "/sys/fs/cgroup"
)

// TestKernelDeepCgroupKeepsTheContainer nests sub-cgroups far below a runc
// container's kubelet-shaped cgroup, as a process that can write its
// cgroupfs may, moves a process of the container to the bottom and lets it
// exec. The record must keep the top of the cgroup path, which names the
// container and its pod, flagged truncated: in the cgroup v2 hierarchy, and
// in a v1 hierarchy with the process at the v2 root. A path of exactly the
// kept depth is complete. Four programs record
// each exec at once: the portable and direct ones, each also relocated
// against this kernel's types renamed as before 6.0 (no
// cgroup->ancestors[]), which makes them climb one parent at a time. All four records must be
// byte for byte the same.
func TestKernelDeepCgroupKeepsTheContainer(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	unified := filepath.Join(cgroupRoot, "unified")
	if _, err := os.Stat(filepath.Join(unified, "cgroup.procs")); err != nil {
		unified = cgroupRoot // a pure cgroup v2 host
	}
	preV60 := typesBefore60(t)
	probes := map[string]*probe.Probe{
		"portable": load(t, probe.VariantPortable),
		"direct":   load(t, probe.VariantDirect),
	}
	for _, v := range []probe.Variant{probe.VariantPortable, probe.VariantDirect} {
		p, err := probe.LoadWithKernelTypes(testConfig(v), preV60, nil)
		if err != nil {
			t.Fatalf("%s, types as before 6.0: %v", v, err)
		}
		t.Cleanup(func() { _ = p.Close() })
		probes[string(v)+" as before 6.0"] = p
	}
	prefix := fmt.Sprintf("cw-deepcg-%d-", time.Now().UnixNano())
	cols := map[string]*collector{}
	for name, p := range probes {
		cols[name] = collect(t, p, prefix)
	}

	c := testenv.NewContainer(t, testenv.Options{})
	want := cgroup.Info{ContainerID: c.ID(), PodUID: c.PodUID()}
	if got := cgroup.Parse(c.CgroupPath()); got != want {
		t.Fatalf("the container's own cgroup %s parses as %+v, want %+v", c.CgroupPath(), got, want)
	}
	// The container's cgroup with levels sub-cgroups "d" below it.
	below := func(levels int) string {
		return c.CgroupPath() + strings.Repeat("/d", levels)
	}
	top := keptCgroupLevels - strings.Count(c.CgroupPath(), "/") // sub-cgroup levels that fit

	type testCase struct {
		name      string
		hierarchy string   // where the chain of sub-cgroups is made
		toRoot    []string // hierarchies whose root the process moves to first
		levels    int      // sub-cgroups below the container's
		v1        bool
		wantPath  string
		truncated bool
	}
	cases := []testCase{
		{"cgroup v2", unified, nil, deepCgroupLevels, false, below(top), true},
		{"cgroup v2, exactly the kept levels: complete", unified, nil, top, false, below(top), false},
		{"cgroup v2, one level more: truncated", unified, nil, top + 1, false, below(top), true},
	}
	if unified != cgroupRoot {
		// The v1 fallback takes the first controller, in the kernel's
		// order, in which the task is below the root: cpuset comes before
		// cpu, so the process leaves the container's cpuset cgroup.
		cases = append(cases, testCase{"cgroup v1", filepath.Join(cgroupRoot, "cpu"),
			[]string{unified, filepath.Join(cgroupRoot, "cpuset")}, deepCgroupLevels, true, below(top), true})
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tag := fmt.Sprintf("%s%d", prefix, i)
			leaf := nestCgroups(t, filepath.Join(tc.hierarchy, c.CgroupPath()), tc.levels)
			execFromCgroup(t, c, tag, filepath.Join(unified, c.CgroupPath()), leaf, tc.toRoot)

			recs := map[string][]byte{}
			for name, col := range cols {
				recs[name] = col.wait(t, []string{tag})[tag]
			}
			ref := recs["portable"]
			for name, b := range recs {
				if len(b) != len(ref) || !bytes.Equal(b[8:], ref[8:]) {
					t.Errorf("%s: the record differs from the portable program's", name)
				}
			}
			var ev event.Event
			if err := event.NewDecoder().Decode(ref, 0, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.CgroupPath != tc.wantPath || (ev.Truncated&event.TruncCgroup != 0) != tc.truncated || ev.CgroupV1 != tc.v1 {
				t.Errorf("cgroup %q (v1 %v), truncated %v; want %q (v1 %v), cgroup truncated %v",
					ev.CgroupPath, ev.CgroupV1, ev.Truncated.Names(), tc.wantPath, tc.v1, tc.truncated)
			}
			if got := cgroup.Parse(ev.CgroupPath); got != want {
				t.Errorf("the recorded cgroup parses as %+v, want the container's %+v", got, want)
			}
		})
	}
}

// typesBefore60 returns this kernel's types as a kernel before 6.0
// names them: no cgroup->ancestors[], and kernfs_node's parent link named
// parent (renamed __parent in 6.15). Type ids are unchanged, so every other
// relocation still matches the running kernel.
func typesBefore60(t *testing.T) *btf.Spec {
	t.Helper()
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec := kernel.Copy()
	rename := func(typ, from, to string) {
		var st *btf.Struct
		if err := spec.TypeByName(typ, &st); err != nil {
			t.Fatal(err)
		}
		for i := range st.Members {
			if st.Members[i].Name == from {
				st.Members[i].Name = to
				return
			}
		}
		if typ == "cgroup" {
			t.Fatalf("struct cgroup of this kernel has no %s: it already runs the fallback", from)
		}
	}
	rename("cgroup", "ancestors", "ancestors_hidden")
	rename("kernfs_node", "__parent", "parent") // already so before 6.15
	return spec
}

// nestCgroups makes levels nested sub-cgroups "d" below parent, which must
// exist, and returns the deepest. A cleanup kills what is left in them and
// removes them, deepest first.
func nestCgroups(t *testing.T, parent string, levels int) string {
	t.Helper()
	if _, err := os.Stat(parent); err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 0, levels)
	t.Cleanup(func() {
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := removeCgroupDir(dirs[i]); err != nil {
				t.Errorf("remove %s: %v", dirs[i], err)
				return
			}
		}
	})
	d := parent
	for range levels {
		d = filepath.Join(d, "d")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	return d
}

// removeCgroupDir kills the processes left in dir and removes it. A cgroup
// stays busy for a moment after its last task exits.
func removeCgroupDir(dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// execFromCgroup starts a shell in c that waits on a fifo, finds it in
// from (the container's cgroup directory), moves it to the root of each of
// toRoot and then into leaf, and lets it exec `busybox echo tag`.
func execFromCgroup(t *testing.T, c *testenv.Container, tag, from, leaf string, toRoot []string) {
	t.Helper()
	fifo := "/tmp/" + tag
	if err := unix.Mkfifo(filepath.Join(c.Rootfs(), fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   testenv.ExecResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.Exec(t, "sh", "-c", "read x < "+fifo+"; exec /bin/busybox echo "+tag)
		done <- result{r, err}
	}()
	// A writer opened without blocking fails (ENXIO) until the shell has
	// the fifo open for reading; once it succeeds, the shell reads a line
	// and execs.
	released := false
	release := func() error {
		f, err := os.OpenFile(filepath.Join(c.Rootfs(), fifo), os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		released = true
		_, err = f.WriteString("go\n")
		_ = f.Close()
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	defer func() {
		// Whatever failed, the shell must not wait forever.
		for !released && time.Now().Before(deadline) {
			if release() == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		res := <-done
		if res.err != nil || res.r.ExitCode != 0 || strings.TrimSpace(res.r.Stdout) != tag {
			t.Errorf("exec in the container: %v, exit %d, stdout %q, stderr %q", res.err, res.r.ExitCode, res.r.Stdout, res.r.Stderr)
		}
	}()

	// The shell: its argv holds the tag once runc has exec'd it.
	pid := ""
	for pid == "" {
		if time.Now().After(deadline) {
			t.Fatal("the shell waiting on the fifo never showed up")
		}
		time.Sleep(20 * time.Millisecond)
		procs, _ := os.ReadFile(filepath.Join(from, "cgroup.procs"))
		for _, f := range strings.Fields(string(procs)) {
			cmdline, _ := os.ReadFile("/proc/" + f + "/cmdline")
			if bytes.Contains(cmdline, []byte("echo "+tag)) {
				pid = f
			}
		}
	}
	for _, dir := range append(toRoot, leaf) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0); err != nil {
			t.Fatalf("move %s to %s: %v", pid, dir, err)
		}
	}
	for {
		err := release()
		if err == nil {
			return
		}
		if !errors.Is(err, unix.ENXIO) || time.Now().After(deadline) {
			t.Fatalf("release the shell: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
