//go:build linux

package ebpfexecreceiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// execRecord is one exported record with its resource, flattened for
// assertions.
type execRecord struct {
	res   map[string]any
	attrs map[string]any
	body  string
	rec   plog.LogRecord
}

func (e execRecord) str(k string) string { s, _ := e.attrs[k].(string); return s }
func (e execRecord) num(k string) int64  { n, _ := e.attrs[k].(int64); return n }
func (e execRecord) args() []string {
	raw, _ := e.attrs["process.command_args"].([]any)
	out := make([]string, len(raw))
	for i, a := range raw {
		out[i], _ = a.(string)
	}
	return out
}

func flatten(sink *consumertest.LogsSink) []execRecord {
	var out []execRecord
	for _, r := range testenv.Records(sink.AllLogs()) {
		out = append(out, execRecord{res: r.Resource, attrs: r.Attrs, body: r.Log.Body().AsString(), rec: r.Log})
	}
	return out
}

// waitFor polls the sink until match finds a record.
func waitFor(t *testing.T, sink *consumertest.LogsSink, what string, match func(execRecord) bool) execRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range flatten(sink) {
			if match(r) {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no exec record for %s within 10s", what)
	return execRecord{}
}

func hasArg(tag string) func(execRecord) bool {
	return func(r execRecord) bool { return slices.Contains(r.args(), tag) }
}

// startReceiver runs the real receiver (real BPF program) into a sink.
func startReceiver(t *testing.T, mutate func(*Config)) (*execReceiver, *consumertest.LogsSink) {
	t.Helper()
	sink := new(consumertest.LogsSink)
	return startReceiverWith(t, mutate, sink), sink
}

func startReceiverWith(t *testing.T, mutate func(*Config), next consumer.Logs) *execReceiver {
	t.Helper()
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	cfg := createDefaultConfig().(*Config)
	cfg.Batch.FlushInterval = 50 * time.Millisecond
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	rcv, err := NewFactory().CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), nil))
	r := rcv.(*execReceiver)
	t.Cleanup(func() {
		if r.src != nil {
			assert.NoError(t, r.Shutdown(context.Background()))
		}
	})
	return r
}

func tag(t *testing.T) string {
	return fmt.Sprintf("cw-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
}

func TestKernelHostExecs(t *testing.T) {
	_, sink := startReceiver(t, nil)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)

	run := func(argv ...string) *exec.Cmd {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		require.NoError(t, cmd.Run(), "%v", argv)
		return cmd
	}

	t.Run("bin true", func(t *testing.T) {
		tg := tag(t)
		cmd := run("/bin/true", tg)
		r := waitFor(t, sink, "/bin/true", hasArg(tg))
		truePath, _ := filepath.EvalSymlinks("/bin/true")
		assert.Equal(t, int64(cmd.Process.Pid), r.num("process.pid"))
		assert.Equal(t, int64(os.Getpid()), r.num("process.parent_pid"))
		assert.Equal(t, truePath, r.str("process.executable.path"))
		assert.Equal(t, filepath.Base(truePath), r.str("process.executable.name"))
		assert.Equal(t, "/bin/true", r.str("compilerwatch.exec.filename"))
		assert.Equal(t, "/bin/true", r.str("process.command"))
		assert.Equal(t, []string{"/bin/true", tg}, r.args())
		assert.Equal(t, int64(2), r.num("process.args_count"))
		assert.Equal(t, dir, r.str("process.working_directory"))
		assert.Equal(t, int64(os.Geteuid()), r.num("process.user.id"))
		assert.Equal(t, int64(os.Getuid()), r.num("process.real_user.id"))
		assert.Equal(t, int64(os.Getegid()), r.num("compilerwatch.process.group.id"))
		assert.Equal(t, "true", r.str("compilerwatch.exec.comm"))
		self, _ := os.Executable()
		assert.Equal(t, self, r.str("compilerwatch.parent.executable.path"))
		assert.Equal(t, "/bin/true "+tg, r.body)
		assert.Equal(t, "process.exec", r.rec.EventName())
		assert.WithinDuration(t, time.Now(), r.rec.Timestamp().AsTime(), 10*time.Second)
		assert.NotContains(t, r.res, "container.id")
		assert.NotEmpty(t, r.res["host.name"])
		anc, _ := r.attrs["compilerwatch.ancestors"].([]any)
		require.NotEmpty(t, anc)
		assert.True(t, strings.HasPrefix(anc[0].(string), strconv.Itoa(os.Getpid())+":"), "nearest ancestor is the parent: %v", anc)
		names, _ := r.attrs["compilerwatch.ancestors.executable.name"].([]any)
		require.Len(t, names, len(anc), "parallel to compilerwatch.ancestors")
		assert.Equal(t, filepath.Base(self), names[0], "the parent's executable, not its comm")
	})

	t.Run("gcc --version", func(t *testing.T) {
		testenv.RequireBinary(t, "gcc")
		tg := tag(t)
		// gcc rejects unknown arguments, so the tag rides in a -D define.
		run("gcc", "-D"+tg, "--version")
		r := waitFor(t, sink, "gcc", hasArg("-D"+tg))
		gccPath, _ := exec.LookPath("gcc")
		real, _ := filepath.EvalSymlinks(gccPath)
		assert.Equal(t, real, r.str("process.executable.path"))
		assert.Equal(t, gccPath, r.str("compilerwatch.exec.filename"))
		assert.Equal(t, "gcc", r.str("process.command"))
	})

	t.Run("symlinked cc", func(t *testing.T) {
		testenv.RequireBinary(t, "gcc")
		gccPath, _ := exec.LookPath("gcc")
		real, _ := filepath.EvalSymlinks(gccPath)
		link := filepath.Join(dir, "cc")
		require.NoError(t, os.Symlink(real, link))
		tg := tag(t)
		run(link, "-D"+tg, "--version")
		r := waitFor(t, sink, "cc symlink", hasArg("-D"+tg))
		assert.Equal(t, real, r.str("process.executable.path"), "the resolved file")
		assert.Equal(t, link, r.str("compilerwatch.exec.filename"), "the name as invoked")
		assert.Equal(t, "cc", r.str("compilerwatch.exec.comm"))
	})

	t.Run("shebang script", func(t *testing.T) {
		script := filepath.Join(dir, "hello.sh")
		require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755))
		tg := tag(t)
		run(script, tg)
		r := waitFor(t, sink, "script", hasArg(tg))
		sh, _ := filepath.EvalSymlinks("/bin/sh")
		assert.Equal(t, sh, r.str("process.executable.path"), "/proc/<pid>/exe of a script is its interpreter")
		assert.Equal(t, script, r.str("compilerwatch.exec.filename"))
		assert.Equal(t, []string{"/bin/sh", script, tg}, r.args())
	})

	t.Run("matches /proc for a live process", func(t *testing.T) {
		cmd := exec.Command("/bin/sleep", "5")
		cmd.Dir = dir
		require.NoError(t, cmd.Start())
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		r := waitFor(t, sink, "sleep", func(r execRecord) bool { return r.num("process.pid") == int64(cmd.Process.Pid) })
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		require.NoError(t, err)
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", cmd.Process.Pid))
		require.NoError(t, err)
		assert.Equal(t, exe, r.str("process.executable.path"))
		assert.Equal(t, cwd, r.str("process.working_directory"))
	})

	t.Run("failed exec gives no record", func(t *testing.T) {
		tg := tag(t)
		err := exec.Command(filepath.Join(dir, "does-not-exist"), tg).Run()
		require.Error(t, err)
		// A later exec proves the pipeline flushed past the failed one.
		tg2 := tag(t) + "-after"
		run("/bin/true", tg2)
		waitFor(t, sink, "the exec after", hasArg(tg2))
		for _, r := range flatten(sink) {
			assert.NotContains(t, r.args(), tg)
		}
	})
}

func TestKernelContainerExec(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	_, sink := startReceiver(t, nil)
	c := testenv.NewContainer(t, testenv.Options{
		// busybox is static, so it runs from a bare rootfs; argv[1] picks the applet.
		Mounts: []testenv.Mount{{Destination: "/opt/tools/busybox", Source: "/bin/busybox"}},
	})
	tg := tag(t)
	c.MustExec(t, "/opt/tools/busybox", "echo", tg)
	// runc's own exec carries the same argv: match the container's argv[0].
	r := waitFor(t, sink, "container exec", func(r execRecord) bool {
		return hasArg(tg)(r) && r.str("process.command") == "/opt/tools/busybox"
	})

	assert.Equal(t, c.ID(), r.res["container.id"], "the full 64-hex container id")
	assert.Equal(t, c.PodUID(), r.res["k8s.pod.uid"], "the dashed pod uid")
	assert.NotEmpty(t, r.res["host.name"])
	assert.Equal(t, "/opt/tools/busybox", r.str("process.executable.path"), "a bind-mounted binary's path as the container sees it")
	assert.Equal(t, "/opt/tools/busybox", r.str("compilerwatch.exec.filename"))
	assert.Equal(t, "/", r.str("process.working_directory"))
	assert.NotEqual(t, r.num("process.pid"), r.num("process.vpid"), "a container pid namespace numbers it differently")
	assert.NotZero(t, r.num("process.vpid"))
}

func TestKernelExecStorm(t *testing.T) {
	const loops, perLoop = 2, 10000
	run := fmt.Sprintf("storm%d", time.Now().UnixNano())
	var mu sync.Mutex
	seen := map[string]bool{}
	counter, err := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					args, ok := lrs.At(k).Attributes().Get("process.command_args")
					if ok && args.Slice().Len() == 2 && strings.HasPrefix(args.Slice().At(1).Str(), run+"-") {
						seen[args.Slice().At(1).Str()] = true
					}
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	r := startReceiverWith(t, nil, counter)

	var wg sync.WaitGroup
	errs := make(chan error, loops)
	for l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perLoop {
				if err := exec.Command("/bin/true", fmt.Sprintf("%s-%d-%d", run, l, i)).Run(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)

	want := loops * perLoop
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	deadline := time.Now().Add(30 * time.Second)
	for count() < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stats, err := r.src.Stats()
	require.NoError(t, err)
	t.Logf("storm: %d of %d tagged execs received; kernel: %d execs seen, %d ring-buffer drops, %d scratch misses",
		count(), want, stats.Execs, stats.RingbufDrops, stats.ScratchMisses)
	assert.Equal(t, want, count(), "every tagged exec is received")
	assert.Zero(t, stats.Dropped(), "no kernel-side drops")
}

func TestKernelShutdownLeavesNothing(t *testing.T) {
	r, _ := startReceiver(t, nil)
	id, err := r.src.(*probe.Probe).ProgramID()
	require.NoError(t, err)
	prog, err := ebpf.NewProgramFromID(id)
	require.NoError(t, err, "the program is loaded while running")
	require.NoError(t, prog.Close())

	require.NoError(t, r.Shutdown(context.Background()))
	// The kernel frees a program after an RCU grace period: poll briefly.
	var gone bool
	for range 100 {
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			gone = true
			break
		}
		if p != nil {
			_ = p.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.True(t, gone, "program %d still loaded after Shutdown", id)

	// Start, stop and start again in one process, as a config reload does.
	r2, sink := startReceiver(t, nil)
	tg := tag(t)
	require.NoError(t, exec.Command("/bin/true", tg).Run())
	waitFor(t, sink, "exec after restart", hasArg(tg))
	require.NoError(t, r2.Shutdown(context.Background()))
}

// TestKernelBothBPFPrograms runs the real receiver with each BPF program
// forced, and with the automatic choice, over the same kind of container
// exec, and checks the exported paths, cgroup-derived ids and origin.
// internal/probe's TestKernelVariantsWriteTheSameRecords compares the raw
// records of the two programs for the very same execs.
func TestKernelBothBPFPrograms(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	c := testenv.NewContainer(t, testenv.Options{
		Overlay: true,
		Mounts:  []testenv.Mount{{Destination: "/opt/tools/busybox", Source: "/bin/busybox"}},
	})
	auto := probe.VariantPortable
	if kernelAtLeast(t, 6, 2) { // bpf_rdonly_cast
		auto = probe.VariantDirect
	}
	for _, tc := range []struct{ force, want probe.Variant }{
		{force: probe.VariantPortable, want: probe.VariantPortable},
		{force: probe.VariantDirect, want: probe.VariantDirect},
		{force: probe.VariantAuto, want: auto},
	} {
		if tc.force == probe.VariantDirect && auto != probe.VariantDirect {
			continue // the kernel refuses it: the auto case checks the fallback
		}
		t.Run("variant="+string(tc.want)+",forced="+strconv.FormatBool(tc.force != ""), func(t *testing.T) {
			testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
			cfg := createDefaultConfig().(*Config)
			cfg.Batch.FlushInterval = 50 * time.Millisecond
			sink := new(consumertest.LogsSink)
			set := receivertest.NewNopSettings(metadata.Type)
			core, logs := observer.New(zap.InfoLevel)
			set.Logger = zap.New(core)
			r, err := newExecReceiver(set, cfg, sink, func(pc probe.Config) (source, error) {
				pc.Variant = tc.force
				return loadProbe(pc)
			})
			require.NoError(t, err)
			require.NoError(t, r.Start(context.Background(), nil))
			t.Cleanup(func() { assert.NoError(t, r.Shutdown(context.Background())) })
			attached := logs.FilterMessage("ebpf_exec: attached to tp_btf/sched_process_exec").All()
			require.Len(t, attached, 1)
			assert.Equal(t, string(tc.want), attached[0].ContextMap()["bpf_program"])

			tg := tag(t)
			c.MustExec(t, "sh", "-c", "mkdir -p /tmp/w && cd /tmp/w && /opt/tools/busybox echo "+tg+" && /bin/busybox echo "+tg+"-image; true")
			r1 := waitFor(t, sink, "bind-mounted busybox", func(r execRecord) bool {
				return hasArg(tg)(r) && r.str("process.command") == "/opt/tools/busybox"
			})
			r2 := waitFor(t, sink, "image busybox", func(r execRecord) bool {
				return hasArg(tg+"-image")(r) && r.str("process.command") == "/bin/busybox"
			})
			for _, r := range []execRecord{r1, r2} {
				assert.Equal(t, c.ID(), r.res["container.id"])
				assert.Equal(t, c.PodUID(), r.res["k8s.pod.uid"])
				assert.Equal(t, "/tmp/w", r.str("process.working_directory"))
				assert.Equal(t, "image", r.str(attrParentOrigin), "the parent shell is the image's busybox")
				names, _ := r.attrs["compilerwatch.ancestors.executable.name"].([]any)
				require.NotEmpty(t, names)
				assert.Equal(t, "busybox", names[0], "the parent shell's executable, from this program")
			}
			assert.Equal(t, "/opt/tools/busybox", r1.str("process.executable.path"))
			assert.Equal(t, "/bin/busybox", r2.str("process.executable.path"))
			assert.Equal(t, "image", r2.str(attrOrigin))
		})
	}
}

func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var uts unix.Utsname
	require.NoError(t, unix.Uname(&uts))
	var ma, mi int
	_, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &ma, &mi)
	require.NoError(t, err)
	return ma > major || (ma == major && mi >= minor)
}
