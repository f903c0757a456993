//go:build linux

package probe_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

func testConfig(v probe.Variant) probe.Config {
	return probe.Config{RingBufferSize: 16 << 20, MaxArgsBytes: 4096, MaxPathDepth: 64, MaxAncestors: 4, Variant: v}
}

func load(t *testing.T, v probe.Variant) *probe.Probe {
	t.Helper()
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	p, err := probe.Load(testConfig(v))
	if err != nil {
		t.Fatalf("load %q: %v", v, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close %s: %v", p.Variant(), err)
		}
	})
	return p
}

// TestKernelVariantSelection loads each program by name and lets Load pick:
// on this kernel (6.2 or later) it picks the direct program.
func TestKernelVariantSelection(t *testing.T) {
	names := map[probe.Variant]string{probe.VariantDirect: "handle_exec_btf", probe.VariantPortable: "handle_exec"}
	for _, v := range []probe.Variant{probe.VariantPortable, probe.VariantDirect} {
		p := load(t, v)
		if p.Variant() != v {
			t.Errorf("asked for %s, loaded %s", v, p.Variant())
		}
		id, err := p.ProgramID()
		if err != nil {
			t.Fatal(err)
		}
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			t.Fatal(err)
		}
		info, err := prog.Info()
		_ = prog.Close()
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != names[v] {
			t.Errorf("%s: the kernel runs %q, want %q", v, info.Name, names[v])
		}
		if err := p.DirectRefused(); err != nil {
			t.Errorf("%s forced: DirectRefused() = %v, want nil", v, err)
		}
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	_, _ = fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor)
	auto := load(t, probe.VariantAuto)
	if major > 6 || (major == 6 && minor >= 2) {
		if auto.Variant() != probe.VariantDirect {
			t.Errorf("kernel %d.%d: auto loaded %s (direct refused: %v), want direct", major, minor, auto.Variant(), auto.DirectRefused())
		}
	} else if auto.Variant() != probe.VariantPortable || auto.DirectRefused() == nil {
		t.Errorf("kernel %d.%d: auto loaded %s, refusal %v; want portable with a refusal", major, minor, auto.Variant(), auto.DirectRefused())
	}

	if _, err := probe.Load(testConfig("fastest")); err == nil || !strings.Contains(err.Error(), `unknown BPF program variant "fastest"`) {
		t.Errorf("unknown variant: err = %v", err)
	}
}

// collector keeps the raw records of one probe whose argv holds a tag.
type collector struct {
	mu   sync.Mutex
	recs map[string][]byte // tag -> record
	done chan struct{}
}

func collect(t *testing.T, p *probe.Probe, prefix string) *collector {
	c := &collector{recs: map[string][]byte{}, done: make(chan struct{})}
	rd := p.Reader()
	go func() {
		defer close(c.done)
		dec := event.NewDecoder()
		var rec ringbuf.Record
		var ev event.Event
		for {
			// The program wakes the reader only when a quarter of the ring
			// is in use: poll.
			rd.SetDeadline(time.Now().Add(20 * time.Millisecond))
			err := rd.ReadInto(&rec)
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, ringbuf.ErrFlushed) {
				return
			}
			if err != nil {
				continue
			}
			// runc exec carries the container command's argv too.
			if dec.Decode(rec.RawSample, 0, &ev) != nil || filepath.Base(ev.Filename) == "runc" {
				continue
			}
			for _, a := range ev.Args {
				if strings.HasPrefix(a, prefix) {
					c.mu.Lock()
					if _, dup := c.recs[a]; dup {
						t.Errorf("two records carry %s", a)
					}
					c.recs[a] = bytes.Clone(rec.RawSample)
					c.mu.Unlock()
				}
			}
		}
	}()
	return c
}

func (c *collector) wait(t *testing.T, tags []string) map[string][]byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mu.Lock()
		n := 0
		for _, tg := range tags {
			if _, ok := c.recs[tg]; ok {
				n++
			}
		}
		c.mu.Unlock()
		if n == len(tags) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d tagged records arrived", n, len(tags))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps(c.recs)
}

func maps(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestKernelVariantsWriteTheSameRecords attaches both programs at once, so
// every exec below is recorded by each, and requires the two records of
// each exec to be byte for byte the same but for the boot-clock stamp:
// executables on the host filesystem, a tmpfs, a memfd and unlinked; names
// on both sides of the dentry's inline name size (32 bytes before 6.14, 40
// since) and past it; paths deeper than max_path_depth; a shebang script;
// and a runc container with an overlayfs rootfs in its own cgroup.
func TestKernelVariantsWriteTheSameRecords(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	portable, direct := load(t, probe.VariantPortable), load(t, probe.VariantDirect)
	prefix := fmt.Sprintf("cw-variants-%d-", time.Now().UnixNano())
	cp, cd := collect(t, portable, prefix), collect(t, direct, prefix)

	var tags []string
	n := 0
	next := func() string {
		n++
		tg := fmt.Sprintf("%s%d", prefix, n)
		tags = append(tags, tg)
		return tg
	}
	run := func(cmd *exec.Cmd) {
		t.Helper()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}

	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}

	// Name lengths around both inline sizes, and past them.
	for _, l := range []int{1, 30, 31, 32, 33, 38, 39, 40, 41, 64, 200, 255} {
		d := filepath.Join(dir, "n"+strings.Repeat("d", l-1))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(d, strings.Repeat("x", l))
		if err := testenv.CopyFile(trueBin, exe, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, next())
		cmd.Dir = d
		run(cmd)
	}
	// Deeper than max_path_depth (64): both truncate the same way.
	deep := dir + strings.Repeat("/deep", 70)
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CopyFile(trueBin, filepath.Join(deep, "true"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(deep, "true"), next())
	cmd.Dir = deep
	run(cmd)
	// Host binaries, a symlink and a shebang script.
	run(exec.Command("/bin/true", next()))
	if err := os.Symlink(trueBin, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	run(exec.Command(filepath.Join(dir, "link"), next()))
	script := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(exec.Command(script, next()))

	// A tmpfs, a memfd, and an unlinked file.
	tmpfs := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(tmpfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(tmpfs, 0); err != nil {
			t.Errorf("unmount %s: %v", tmpfs, err)
			_ = unix.Unmount(tmpfs, unix.MNT_DETACH)
		}
	})
	if err := testenv.CopyFile(trueBin, filepath.Join(tmpfs, "true"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(exec.Command(filepath.Join(tmpfs, "true"), next()))
	for _, f := range []*os.File{memfd(t, trueBin), unlinked(t, trueBin, filepath.Join(dir, "gone"))} {
		cmd := &exec.Cmd{Path: "/proc/self/fd/3", Args: []string{"true", next()}, ExtraFiles: []*os.File{f}}
		run(cmd)
		_ = f.Close()
	}

	// Ancestors' executable names around both inline sizes, past them, and
	// a memfd: a shell run by that name execs the tagged child.
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	ancName := map[string]string{}
	for _, l := range []int{1, 31, 32, 33, 39, 40, 41, 255} {
		d := filepath.Join(dir, "anc", strconv.Itoa(l))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(d, strings.Repeat("a", l))
		if err := testenv.CopyFile(busybox, exe, 0o755); err != nil {
			t.Fatal(err)
		}
		tg := next()
		ancName[tg] = filepath.Base(exe)
		run(&exec.Cmd{Path: exe, Args: []string{"sh", "-c", trueBin + " " + tg + "; true"}})
	}
	{
		f := memfd(t, busybox)
		tg := next()
		ancName[tg] = "memfd:cw-variants"
		run(&exec.Cmd{Path: "/proc/self/fd/3", Args: []string{"sh", "-c", trueBin + " " + tg + "; true"}, ExtraFiles: []*os.File{f}})
		_ = f.Close()
	}

	// A runc container: overlayfs rootfs, own mount namespace and cgroup,
	// a bind-mounted binary, and a file created in the upper layer.
	c := testenv.NewContainer(t, testenv.Options{
		Overlay: true,
		Mounts:  []testenv.Mount{{Destination: "/opt/tools/busybox", Source: "/bin/busybox"}},
	})
	c.MustExec(t, "/bin/busybox", "echo", next())
	c.MustExec(t, "/opt/tools/busybox", "echo", next())
	c.MustExec(t, "sh", "-c", "mkdir -p /tmp/up && cp /bin/busybox /tmp/up/busybox && cd /tmp/up && /tmp/up/busybox echo "+next()+"; true")

	rp, rd := cp.wait(t, tags), cd.wait(t, tags)
	dec := event.NewDecoder()
	for _, tg := range tags {
		a, b := rp[tg], rd[tg]
		var ev event.Event
		if err := dec.Decode(b, 0, &ev); err != nil {
			t.Fatalf("%s: %v", tg, err)
		}
		// The header's first field is the boot-clock stamp: each program
		// reads the clock itself.
		if len(a) != len(b) || !bytes.Equal(a[8:], b[8:]) {
			var evp event.Event
			_ = dec.Decode(a, 0, &evp)
			t.Errorf("%s (%s): the records differ\nportable: %+v\ndirect:   %+v", tg, ev.ExePath, evp, ev)
			continue
		}
		if want, ok := ancName[tg]; ok && (len(ev.Ancestors) == 0 || ev.Ancestors[0].ExeName != want) {
			t.Errorf("%s: ancestors %+v, want the parent's executable name %q", tg, ev.Ancestors, want)
		}
		if ev.ExePath == "" || ev.Cwd == "" || ev.CgroupPath == "" {
			t.Errorf("%s: empty path in %+v", tg, ev)
		}
	}
	// Spot checks against what the records must hold.
	var ev event.Event
	_ = dec.Decode(rd[tags[len(tags)-1]], 0, &ev)
	if ev.ExePath != "/tmp/up/busybox" || ev.Cwd != "/tmp/up" || ev.ExeFile.Origin(true) != event.OriginUpperLayer ||
		ev.CgroupPath != c.CgroupPath() {
		t.Errorf("container exec: exe %q cwd %q origin %v cgroup %q; want /tmp/up/busybox, /tmp/up, upper_layer, %s",
			ev.ExePath, ev.Cwd, ev.ExeFile.Origin(true), ev.CgroupPath, c.CgroupPath())
	}
	_ = dec.Decode(rd[tags[11]], 0, &ev) // the 255-byte name
	if want := filepath.Join(dir, "n"+strings.Repeat("d", 254), strings.Repeat("x", 255)); ev.ExePath != want {
		t.Errorf("255-byte name: exe %q, want %q", ev.ExePath, want)
	}
	_ = dec.Decode(rd[tags[7]], 0, &ev) // 40 bytes: one past the longest inline name (39 and a NUL)
	if want := filepath.Join(dir, "n"+strings.Repeat("d", 39), strings.Repeat("x", 40)); ev.ExePath != want || ev.Cwd != filepath.Dir(want) {
		t.Errorf("40-byte name: exe %q cwd %q, want %q", ev.ExePath, ev.Cwd, want)
	}
	if len(tags) != len(rp) || len(tags) != len(rd) {
		t.Errorf("records: %d tags, %d portable, %d direct", len(tags), len(rp), len(rd))
	}
}

func memfd(t *testing.T, src string) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("cw-variants", unix.MFD_CLOEXEC|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("cw-variants", unix.MFD_CLOEXEC)
	}
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	if _, err := io.Copy(f, in); err != nil {
		t.Fatal(err)
	}
	return f
}

func unlinked(t *testing.T, src, path string) *os.File {
	t.Helper()
	if err := testenv.CopyFile(src, path, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	return f
}
