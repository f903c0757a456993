//go:build linux

package e2e_test

// Issue 6: hostile input, a dead backend, missing privileges, shutdown and
// reload, and redaction, each through the real distribution
// (build/otelcol-compilerwatch) exporting over OTLP gRPC to a sink in the test.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// helperEnv turns the test binary into a small exec helper (see init): Go
// cannot fork without exec, so execveat and the orphan's double fork run in
// a re-executed copy of this binary.
const helperEnv = "COMPILERWATCH_RELIABILITY_HELPER"

func init() {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
}

func runHelper(mode string, args []string) int {
	fail := func(err error) int { fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err); return 3 }
	switch mode {
	case "execveat-memfd": // args: source binary, memfd name, argv...
		data, err := os.ReadFile(args[0])
		if err != nil {
			return fail(err)
		}
		fd, err := unix.MemfdCreate(args[1], unix.MFD_CLOEXEC)
		if err != nil {
			return fail(err)
		}
		for b := data; len(b) > 0; {
			n, err := unix.Write(fd, b)
			if err != nil {
				return fail(err)
			}
			b = b[n:]
		}
		empty, _ := unix.BytePtrFromString("")
		argv, err := syscall.SlicePtrFromStrings(args[2:])
		if err != nil {
			return fail(err)
		}
		envv, _ := syscall.SlicePtrFromStrings(nil)
		// x/sys has no execveat wrapper; the raw call replaces this process.
		_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
			uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
		return fail(errno)
	case "orphan-parent": // args: tag. Starts the child, prints its pid, exits at once.
		self, err := os.Executable()
		if err != nil {
			return fail(err)
		}
		child := exec.Command(self, args[0], strconv.Itoa(os.Getpid()))
		child.Env = append(os.Environ(), helperEnv+"=orphan-child")
		if err := child.Start(); err != nil {
			return fail(err)
		}
		fmt.Println(child.Process.Pid)
		return 0
	case "orphan-child": // args: tag, parent pid. Execs once the parent is gone.
		parent, _ := strconv.Atoi(args[1])
		for deadline := time.Now().Add(20 * time.Second); os.Getppid() == parent; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fail(errors.New("the parent did not exit"))
			}
		}
		reaper := os.Getppid()
		return fail(syscall.Exec("/bin/true", []string{"/bin/true", args[0], "reaper=" + strconv.Itoa(reaper)}, nil))
	}
	return fail(errors.New("unknown mode"))
}

func helperCmd(t *testing.T, mode string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// relTag is a unique argument that finds an exec's record among every exec
// of the node.
func relTag(t *testing.T) string {
	return fmt.Sprintf("cwrel-%s-%d", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), time.Now().UnixNano())
}

// realTempDir is a temp dir with symlinks resolved, as the kernel reports it.
func realTempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	return d
}

func resolve(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	require.NoError(t, err)
	return r
}

// truncated is compilerwatch.truncated without "ancestors": whether the
// ancestor chain is cut depends on how deep the test runs in the process
// tree, not on the case.
func truncated(r sinkRecord) []string {
	return slices.DeleteFunc(r.strs("compilerwatch.truncated"), func(s string) bool { return s == "ancestors" })
}

func runOK(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%v: %s", cmd.Args, out)
}

// pipelineConfig is the distribution's pipeline of every exec to OTLP gRPC,
// with host execs flagged too (containers_only: false) so the shebang cases
// show what the rule flags without a container, and dedup off so each case
// is flagged on its own.
func pipelineConfig(sinkAddr, telemetry string) string {
	return fmt.Sprintf(`
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
processors:
  compiler_detector:
    containers_only: false
    only_flagged: false
    scan_for_compilers: false
    dedup: {window: 0s}
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
service:
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [compiler_detector, batch], exporters: [otlp_grpc]}
  telemetry:%s
`, sinkAddr, telemetry)
}

const noMetrics = `
    metrics: {level: none}`

// assertCleanExport checks what every test through the distribution needs:
// valid UTF-8 everywhere at the sink and no export failure in the log.
func assertCleanExport(t *testing.T, c *distro.Collector, logs []plog.Logs) {
	t.Helper()
	for _, ld := range logs {
		assert.Empty(t, invalidUTF8(ld), "every string at the sink is valid UTF-8")
	}
	out := c.Out.String()
	assert.Empty(t, logLines(out, "Exporting failed"), "no batch rejected or dropped by the exporter")
	assert.Empty(t, logLines(out, "\terror\t"), "no error in the collector log")
}

func TestReliabilityBadInputMatrix(t *testing.T) {
	testenv.RequireRoot(t)
	sink := newOTLPSink(t)
	metricsAddr := distro.FreePort(t)
	c := distro.Start(t, pipelineConfig(sink.addr, promConfig(metricsAddr)))
	dir := realTempDir(t)
	trueBin := resolve(t, "/bin/true")
	const wait = 30 * time.Second
	const maxArgsBytes = 4096 // the default max_args_bytes
	flagged := func(r sinkRecord) bool { _, ok := r.attrs["security_rule.uuid"]; return ok }

	t.Run("invalid UTF-8 in argv", func(t *testing.T) {
		tg := relTag(t)
		bad := "caf\xe9-\xff\xfe-end\xc3"
		runOK(t, exec.Command("/bin/true", tg, bad))
		r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
		want := strings.ToValidUTF8(bad, "\uFFFD")
		assert.Equal(t, []string{"/bin/true", tg, want}, r.strs("process.command_args"))
		assert.Equal(t, "/bin/true "+tg+" "+want, r.body)
		assert.Empty(t, truncated(r))
	})

	t.Run("one argument of 100 KiB", func(t *testing.T) {
		tg := relTag(t)
		runOK(t, exec.Command("/bin/true", tg, strings.Repeat("A", 100<<10)))
		r := waitRecord(t, sink.logs, t.Name(), wait, func(r sinkRecord) bool { return withArg(tg)(r) && r.str("process.command") == "/bin/true" })
		args := r.strs("process.command_args")
		require.Len(t, args, 3)
		// argv is "/bin/true\0<tag>\0AAA…": the first max_args_bytes bytes.
		kept := maxArgsBytes - len("/bin/true") - 1 - len(tg) - 1
		assert.Equal(t, strings.Repeat("A", kept), args[2])
		assert.Equal(t, int64(3), r.num("process.args_count"), "the real argc")
		assert.Equal(t, []string{"args"}, truncated(r))
		assert.Equal(t, strings.Join(args, " "), r.body)
	})

	t.Run("1000 arguments", func(t *testing.T) {
		tg := relTag(t)
		argv := []string{"/bin/true", tg}
		for i := len(argv); i < 1000; i++ {
			argv = append(argv, fmt.Sprintf("arg-%04d", i))
		}
		runOK(t, exec.Command(argv[0], argv[1:]...))
		r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
		args := r.strs("process.command_args")
		require.NotEmpty(t, args)
		assert.Equal(t, int64(1000), r.num("process.args_count"))
		assert.Equal(t, []string{"args"}, truncated(r))
		last := len(args) - 1
		assert.Equal(t, argv[:last], args[:last], "a prefix of argv")
		assert.True(t, strings.HasPrefix(argv[last], args[last]), "the last argument is cut: %q", args[last])
		n := len(strings.Join(args, "\x00"))
		assert.True(t, n == maxArgsBytes || n == maxArgsBytes-1, "captured %d argv bytes, limit %d", n, maxArgsBytes)
	})

	// deepDir makes base/<comp>/<comp>/… and a copy of /bin/true in it, the
	// executable's path exactly 4,000 bytes long.
	deepDir := func(t *testing.T, comp string) (string, string) {
		const pathLen = 4000
		d := realTempDir(t)
		for len(d)+len("/"+comp)+len("/x/true") <= pathLen {
			d += "/" + comp
		}
		d += "/" + strings.Repeat("x", pathLen-len(d)-len("/true")-1)
		require.NoError(t, os.MkdirAll(d, 0o755))
		exe := d + "/true"
		require.Len(t, exe, pathLen)
		require.NoError(t, testenv.CopyFile(trueBin, exe, 0o755))
		return d, exe
	}

	t.Run("path of 4000 bytes, 40 levels", func(t *testing.T) {
		d, exe := deepDir(t, strings.Repeat("p", 99))
		tg := relTag(t)
		cmd := exec.Command(exe, tg)
		cmd.Args[0] = "deep-true" // argv[0] short: the path is what is tested
		cmd.Dir = d
		runOK(t, cmd)
		r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
		assert.Equal(t, exe, r.str("process.executable.path"), "under max_path_depth and PATH_MAX: complete")
		assert.Equal(t, d, r.str("process.working_directory"))
		assert.Equal(t, exe, r.str("compilerwatch.exec.filename"))
		assert.Equal(t, "true", r.str("process.executable.name"))
		assert.Empty(t, truncated(r))
	})

	t.Run("path of 4000 bytes, 1999 levels", func(t *testing.T) {
		d, exe := deepDir(t, "d")
		tg := relTag(t)
		cmd := exec.Command(exe, tg)
		cmd.Args[0] = "deep-true"
		cmd.Dir = d
		runOK(t, cmd)
		r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
		// Deeper than max_path_depth (64): the deepest 64 components, without
		// the leading slash that would claim a complete path.
		got := r.str("process.executable.path")
		assert.False(t, strings.HasPrefix(got, "/"), "a truncated path is not absolute: %.80q", got)
		assert.Len(t, strings.Split(got, "/"), 64)
		assert.True(t, strings.HasSuffix(exe, "/"+got), "the deepest components of the real path")
		cwd := r.str("process.working_directory")
		assert.Len(t, strings.Split(cwd, "/"), 64)
		assert.True(t, strings.HasSuffix(d, "/"+cwd))
		assert.Equal(t, exe, r.str("compilerwatch.exec.filename"), "the invoked name fits PATH_MAX")
		assert.Equal(t, []string{"path", "cwd"}, truncated(r))
		assert.Equal(t, "true", r.str("process.executable.name"))
	})

	t.Run("newlines and control characters in file names", func(t *testing.T) {
		cwd := filepath.Join(dir, "cwd\nwith\x02ctl")
		require.NoError(t, os.Mkdir(cwd, 0o755))
		for _, name := range []string{"new\nline\ttab\x01\x1b[31mred\x7f", "bad\xff\xfeutf8"} {
			exe := filepath.Join(cwd, name)
			require.NoError(t, testenv.CopyFile(trueBin, exe, 0o755))
			tg := relTag(t)
			cmd := exec.Command(exe, tg)
			cmd.Dir = cwd
			runOK(t, cmd)
			r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
			want := strings.ToValidUTF8(exe, "\uFFFD")
			assert.Equal(t, want, r.str("process.executable.path"))
			assert.Equal(t, strings.ToValidUTF8(name, "\uFFFD"), r.str("process.executable.name"))
			assert.Equal(t, want, r.str("compilerwatch.exec.filename"))
			assert.Equal(t, []string{want, tg}, r.strs("process.command_args"))
			assert.Equal(t, cwd, r.str("process.working_directory"))
		}
	})

	t.Run("exec of a deleted file", func(t *testing.T) {
		p := filepath.Join(dir, "deleted-true")
		require.NoError(t, testenv.CopyFile(trueBin, p, 0o755))
		f, err := os.Open(p)
		require.NoError(t, err)
		defer func() { _ = f.Close() }()
		require.NoError(t, os.Remove(p))
		tg := relTag(t)
		cmd := exec.Command("/proc/self/fd/3", tg)
		cmd.ExtraFiles = []*os.File{f}
		runOK(t, cmd)
		r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
		assert.Equal(t, p+" (deleted)", r.str("process.executable.path"), "as /proc/<pid>/exe shows it")
		assert.Equal(t, "deleted", r.str("compilerwatch.executable.origin"))
		assert.Equal(t, "/proc/self/fd/3", r.str("compilerwatch.exec.filename"))
	})

	t.Run("execveat AT_EMPTY_PATH of a memfd", func(t *testing.T) {
		tg := relTag(t)
		cmd := helperCmd(t, "execveat-memfd", trueBin, "cw-memfd", "memfd-true", tg)
		runOK(t, cmd)
		// The helper's own exec carries the tag too: match the memfd's argv[0].
		r := waitRecord(t, sink.logs, t.Name(), wait, func(r sinkRecord) bool { return withArg(tg)(r) && r.str("process.command") == "memfd-true" })
		assert.Equal(t, "/memfd:cw-memfd (deleted)", r.str("process.executable.path"))
		assert.Equal(t, "memfd", r.str("compilerwatch.executable.origin"))
		assert.Regexp(t, `^/dev/fd/\d+$`, r.str("compilerwatch.exec.filename"), "the kernel's name for an AT_EMPTY_PATH exec")
		assert.Equal(t, []string{"memfd-true", tg}, r.strs("process.command_args"))
		assert.Equal(t, int64(cmd.Process.Pid), r.num("process.pid"))
	})

	t.Run("shebang script", func(t *testing.T) {
		script := filepath.Join(dir, "plain.sh")
		require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755))
		tg := relTag(t)
		runOK(t, exec.Command(script, tg))
		r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
		assert.Equal(t, resolve(t, "/bin/sh"), r.str("process.executable.path"), "the interpreter runs")
		assert.Equal(t, script, r.str("compilerwatch.exec.filename"), "the script was invoked")
		assert.Equal(t, []string{"/bin/sh", script, tg}, r.strs("process.command_args"))
		assert.False(t, flagged(r))
	})

	t.Run("shebang whose interpreter is gcc", func(t *testing.T) {
		testenv.RequireBinary(t, "gcc")
		gcc, err := exec.LookPath("gcc")
		require.NoError(t, err)
		script := filepath.Join(dir, "gcc-shebang")
		require.NoError(t, os.WriteFile(script, []byte("#!"+gcc+" --version\n"), 0o755))
		tg := relTag(t)
		runOK(t, exec.Command(script, tg))
		r := waitRecord(t, sink.logs, t.Name(), wait, withArg(tg))
		assert.Equal(t, resolve(t, gcc), r.str("process.executable.path"))
		assert.Equal(t, script, r.str("compilerwatch.exec.filename"))
		assert.Equal(t, []string{gcc, "--version", script, tg}, r.strs("process.command_args"))
		require.True(t, flagged(r), "a compiler run through a shebang is flagged: %v", r.attrs)
		assert.Equal(t, "gcc", r.str("compilerwatch.compiler.name"))
		t.Logf("flagged by %s", r.str("compilerwatch.compiler.match"))
	})

	t.Run("wrapper script that execs gcc", func(t *testing.T) {
		testenv.RequireBinary(t, "gcc")
		script := filepath.Join(dir, "cc-wrapper")
		require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexec gcc \"$@\"\n"), 0o755))
		tg := "-D" + relTag(t)
		runOK(t, exec.Command(script, tg, "--version"))
		wrapper := waitRecord(t, sink.logs, "the wrapper", wait, func(r sinkRecord) bool { return withArg(tg)(r) && r.str("process.command") == "/bin/sh" })
		gccRec := waitRecord(t, sink.logs, "the gcc it execs", wait, func(r sinkRecord) bool { return withArg(tg)(r) && r.str("process.command") == "gcc" })
		assert.False(t, flagged(wrapper), "the shell script is not a compiler")
		require.True(t, flagged(gccRec), "the gcc it execs is: %v", gccRec.attrs)
		assert.Equal(t, "gcc", gccRec.str("compilerwatch.compiler.name"))
		assert.Equal(t, wrapper.num("process.pid"), gccRec.num("process.pid"), "exec replaces the shell")
		t.Logf("flagged by %s", gccRec.str("compilerwatch.compiler.match"))
	})

	t.Run("failing execve gives no record", func(t *testing.T) {
		noPerm := filepath.Join(dir, "not-executable")
		require.NoError(t, testenv.CopyFile(trueBin, noPerm, 0o644))
		badInterp := filepath.Join(dir, "bad-interpreter")
		require.NoError(t, os.WriteFile(badInterp, []byte("#!/nonexistent/interpreter\n"), 0o755))
		cases := []struct {
			path string
			want error
		}{
			{filepath.Join(dir, "does-not-exist"), fs.ErrNotExist}, // ENOENT
			{noPerm, fs.ErrPermission},                             // EACCES, even for root
			{badInterp, fs.ErrNotExist},                            // ENOENT from the interpreter
		}
		var tags []string
		for _, tc := range cases {
			tg := relTag(t)
			tags = append(tags, tg)
			err := exec.Command(tc.path, tg).Run()
			require.ErrorIs(t, err, tc.want, tc.path)
		}
		// The ring buffer is ordered: once a later exec arrives, the failed
		// ones would have arrived before it.
		after := relTag(t) + "-after"
		runOK(t, exec.Command("/bin/true", after))
		waitRecord(t, sink.logs, "the exec after the failures", wait, withArg(after))
		for _, tg := range tags {
			for _, r := range sinkRecords(sink.logs.AllLogs()) {
				assert.False(t, withArg(tg)(r), "a failed execve gave a record: %v", r.attrs)
			}
		}
	})

	t.Run("exec after the parent exited", func(t *testing.T) {
		tg := relTag(t)
		cmd := helperCmd(t, "orphan-parent", tg)
		out, err := cmd.Output()
		require.NoError(t, err)
		childPID, err := strconv.Atoi(strings.TrimSpace(string(out)))
		require.NoError(t, err)
		r := waitRecord(t, sink.logs, t.Name(), wait, func(r sinkRecord) bool { return withArg(tg)(r) && r.str("process.command") == "/bin/true" })
		args := r.strs("process.command_args")
		require.Len(t, args, 3)
		reaper, err := strconv.Atoi(strings.TrimPrefix(args[2], "reaper="))
		require.NoError(t, err)
		assert.Equal(t, int64(childPID), r.num("process.pid"))
		assert.NotEqual(t, cmd.Process.Pid, reaper, "reparented")
		assert.Equal(t, int64(reaper), r.num("process.parent_pid"), "the parent is the reaper the process saw")
		anc := r.strs("compilerwatch.ancestors")
		require.NotEmpty(t, anc)
		assert.True(t, strings.HasPrefix(anc[0], strconv.Itoa(reaper)+":"), "ancestors start at the reaper: %v", anc)
		assert.NotEmpty(t, r.str("compilerwatch.parent.command"))
		t.Logf("orphan pid %d reparented from %d to %d (%s)", childPID, cmd.Process.Pid, reaper, anc[0])
	})

	assertCleanExport(t, c, sink.logs.AllLogs())
	m := metricsWhenReady(t, metricsAddr)
	assert.Positive(t, m["otelcol_exporter_sent_log_records"])
	for _, name := range []string{
		"otelcol_exporter_send_failed_log_records",
		"otelcol_exporter_enqueue_failed_log_records",
		"otelcol_receiver_refused_log_records",
		"otelcol_receiver_ebpf_exec_dropped_records",
		"otelcol_receiver_ebpf_exec_kernel_dropped_records",
	} {
		assert.Zero(t, m[name], name)
	}
	assert.Positive(t, m["otelcol_receiver_ebpf_exec_truncated_records"], "the truncated cases are counted")
	c.Stop(t)
}

func TestReliabilityRedaction(t *testing.T) {
	testenv.RequireRoot(t)
	sink := newOTLPSink(t)
	metricsAddr := distro.FreePort(t)
	c := distro.Start(t, pipelineConfig(sink.addr, promConfig(metricsAddr)))

	secrets := []string{"hunter2", "t0k3n-value", "fl4g-t0ken", "b34rer-s3cret", "url-p4ss", "IOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	tg := relTag(t)
	argv := []string{
		"/bin/true", tg,
		"--password=hunter2",
		"token=t0k3n-value",
		"--token", "fl4g-t0ken",
		"-H", "Authorization: Bearer b34rer-s3cret",
		"https://user:url-p4ss@git.example/repo.git",
		"AKIAIOSFODNN7EXAMPLE",
		"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	}
	runOK(t, exec.Command(argv[0], argv[1:]...))
	r := waitRecord(t, sink.logs, "the exec with secrets", 30*time.Second, withArg(tg))
	want := []string{
		"/bin/true", tg,
		"--password=****",
		"token=****",
		"--token", "****",
		"-H", "Authorization: Bearer ****",
		"https://user:****@git.example/repo.git",
		"AKIA****",
		"AWS_SECRET_ACCESS_KEY=****",
	}
	assert.Equal(t, want, r.strs("process.command_args"))
	assert.Equal(t, strings.Join(want, " "), r.body)
	c.Stop(t) // everything the collector read is now at the sink

	var proto, js []byte
	for _, ld := range sink.logs.AllLogs() {
		b, err := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
		require.NoError(t, err)
		proto = append(proto, b...)
		b, err = (&plog.JSONMarshaler{}).MarshalLogs(ld)
		require.NoError(t, err)
		js = append(js, b...)
	}
	require.True(t, bytes.Contains(proto, []byte(tg)), "the exec's record is in the exported bytes")
	for _, s := range secrets {
		assert.False(t, bytes.Contains(proto, []byte(s)), "secret %q in the exported protobuf", s)
		assert.False(t, bytes.Contains(js, []byte(s)), "secret %q in the exported JSON", s)
	}
	assertCleanExport(t, c, sink.logs.AllLogs())
}

func TestReliabilityPrivileges(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "setpriv")
	// The unprivileged user must reach the binary and its config: a 0755
	// directory of its own (t.TempDir is 0700, build/ is 0750).
	dir, err := os.MkdirTemp("", "compilerwatch-privileges-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "otelcol-compilerwatch")
	require.NoError(t, testenv.CopyFile(distro.Binary(t), bin, 0o755))
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
exporters:
  debug: {verbosity: detailed}
service:
  pipelines:
    logs: {receivers: [ebpf_exec], exporters: [debug]}
  telemetry:
    metrics: {level: none}
`), 0o644))
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}

	t.Run("unprivileged user", func(t *testing.T) {
		start := time.Now()
		c := distro.Launch(t, append(nobody, "--inh-caps=-all", "--bounding-set=-all", bin, "--config", cfg)...)
		var err error
		select {
		case err = <-c.Done:
		case <-time.After(60 * time.Second):
			t.Fatalf("the unprivileged collector still runs after 60s:\n%s", c.Out.String())
		}
		t.Logf("exited after %s: %v", time.Since(start).Round(time.Millisecond), err)
		var exitErr *exec.ExitError
		require.ErrorAs(t, err, &exitErr, "a non-zero exit:\n%s", c.Out.String())
		assert.NotZero(t, exitErr.ExitCode())
		out := c.Out.String()
		assert.Contains(t, out, "missing capabilities CAP_BPF, CAP_PERFMON")
		// How to grant them: Kubernetes, systemd and shell.
		assert.Contains(t, out, "capabilities.add [BPF, PERFMON")
		assert.Contains(t, out, "AmbientCapabilities=CAP_BPF CAP_PERFMON")
		assert.Contains(t, out, "setpriv --inh-caps=+bpf,+perfmon")
		// From 5.11 the kernel charges BPF memory to the memory cgroup, not
		// RLIMIT_MEMLOCK: CAP_SYS_RESOURCE is then neither missing nor asked
		// for (this test host's bounding set does not even have it).
		if kernelAtLeast(t, 5, 11) {
			assert.NotContains(t, out, "SYS_RESOURCE")
			assert.NotContains(t, out, "sys_resource")
		} else {
			assert.Contains(t, out, "missing capabilities CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE")
		}
		t.Logf("%s", logLines(out, "Error: ")[0])
		assert.NotContains(t, out, "MEMLOCK", "not cilium/ebpf's misleading memlock hint")
	})

	t.Run("CAP_BPF and CAP_PERFMON only", func(t *testing.T) {
		c := distro.Launch(t, append(nobody,
			"--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=+bpf,+perfmon", "--bounding-set=-all,+bpf,+perfmon",
			bin, "--config", cfg)...)
		c.WaitOutput(t, "Everything is ready", 60*time.Second)
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Cmd.Process.Pid))
		require.NoError(t, err)
		assert.Contains(t, string(status), "CapEff:\t000000c000000000", "exactly CAP_BPF (39) and CAP_PERFMON (38)")
		assert.Regexp(t, `(?m)^Uid:\s+65534\s+65534\s+65534\s+65534$`, string(status))
		tg := relTag(t)
		runOK(t, exec.Command("/bin/true", tg))
		c.WaitOutput(t, "Body: Str(/bin/true "+tg+")", 30*time.Second)
		c.Stop(t)
	})
}

func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var uts unix.Utsname
	require.NoError(t, unix.Uname(&uts))
	var maj, min int
	_, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &maj, &min)
	require.NoError(t, err)
	return maj > major || maj == major && min >= minor
}

// execLoad runs /bin/true with numbered tags at a bounded rate until
// stopped, recording which execs completed.
type execLoad struct {
	prefix string
	stopCh chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	done   []int // indices of completed execs, in completion order
	errs   int
}

func startExecLoad(t *testing.T, prefix string, perSecond, workers int) *execLoad {
	t.Helper()
	l := &execLoad{prefix: prefix, stopCh: make(chan struct{})}
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	var next int
	var nextMu sync.Mutex
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stopCh:
					return
				case <-tick.C:
				}
				nextMu.Lock()
				i := next
				next++
				nextMu.Unlock()
				err := exec.Command("/bin/true", l.tag(i)).Run()
				l.mu.Lock()
				if err != nil {
					l.errs++
				} else {
					l.done = append(l.done, i)
				}
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { l.stop(); tick.Stop() })
	return l
}

func (l *execLoad) tag(i int) string { return l.prefix + "-" + strconv.Itoa(i) }

func (l *execLoad) stop() {
	select {
	case <-l.stopCh:
	default:
		close(l.stopCh)
	}
	l.wg.Wait()
}

func (l *execLoad) completed() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.done)
}

// loadTags returns the load's tag indices present at the sink.
func loadTags(logs []plog.Logs, prefix string) map[int]bool {
	seen := map[int]bool{}
	for _, r := range sinkRecords(logs) {
		for _, a := range r.strs("process.command_args") {
			if rest, ok := strings.CutPrefix(a, prefix+"-"); ok {
				if i, err := strconv.Atoi(rest); err == nil {
					seen[i] = true
				}
			}
		}
	}
	return seen
}

func TestReliabilityBackpressure(t *testing.T) {
	testenv.RequireRoot(t)
	const (
		outage     = 60 * time.Second
		limitMiB   = 100 // memory_limiter limit_mib below
		rssMargin  = 64 << 20
		queueBytes = 2 << 20
	)
	sink := newOTLPSink(t)
	metricsAddr := distro.FreePort(t)
	// The exporter batches (sending_queue::batch) instead of a batch
	// processor, so a full queue refuses records back to the receiver, which
	// counts and logs them; a batch processor would accept them and lose them
	// out of the receiver's sight. The queue is small, so a minute of outage
	// overflows it; the retry window outlasts the outage.
	c := distro.Start(t, fmt.Sprintf(`
receivers:
  ebpf_exec:
    batch: {flush_interval: 100ms}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: %d
    spike_limit_mib: 20
  compiler_detector:
    only_flagged: false
    scan_for_compilers: false
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
    timeout: 2s
    sending_queue:
      enabled: true
      sizer: bytes
      queue_size: %d
      num_consumers: 2
      batch: {flush_timeout: 200ms, sizer: items, min_size: 256, max_size: 256}
    retry_on_failure:
      enabled: true
      initial_interval: 1s
      max_interval: 2s
      max_elapsed_time: 10m
service:
  pipelines:
    logs:
      receivers: [ebpf_exec]
      processors: [memory_limiter, compiler_detector]
      exporters: [otlp_grpc]
  telemetry:%s
`, limitMiB, sink.addr, queueBytes, promConfig(metricsAddr)))
	pid := c.Cmd.Process.Pid
	prefix := fmt.Sprintf("cwbp%d", time.Now().UnixNano())
	load := startExecLoad(t, prefix, 200, 2)

	// Flowing: the load arrives.
	require.Eventually(t, func() bool { return len(loadTags(sink.logs.AllLogs(), prefix)) > 0 },
		30*time.Second, 100*time.Millisecond, "the load reaches the sink")
	baseRSS, err := rssBytes(pid)
	require.NoError(t, err)

	// Backend down for a minute under load.
	sink.stop(t)
	downAt := time.Now()
	var maxRSS int64
	for time.Since(downAt) < outage {
		rss, err := rssBytes(pid)
		require.NoError(t, err, "the collector is alive during the outage")
		maxRSS = max(maxRSS, rss)
		time.Sleep(250 * time.Millisecond)
	}
	during, err := scrapeMetrics(metricsAddr)
	require.NoError(t, err)
	execsDuring := len(load.completed())

	// Backend back on the same address: the same collector process resumes.
	sink.start(t)
	backAt := time.Now()
	firstAfter := len(load.completed()) + 50 // well after the return
	require.Eventually(t, func() bool {
		for i := range loadTags(sink.logs.AllLogs(), prefix) {
			if i >= firstAfter {
				return true
			}
		}
		return false
	}, 90*time.Second, 200*time.Millisecond, "records flow again after the backend returns")
	resumed := time.Since(backAt)
	load.stop()
	done := load.completed()

	// Drained: every record the receiver read is sent, or counted where it
	// was lost. Other processes on the node exec too, so poll for a moment
	// with nothing in flight.
	var m map[string]float64
	balanced := func() bool {
		m, err = scrapeMetrics(metricsAddr)
		if err != nil {
			return false
		}
		read := m["otelcol_receiver_accepted_log_records"] + m["otelcol_receiver_refused_log_records"] + m["otelcol_receiver_failed_log_records"]
		out := m["otelcol_exporter_sent_log_records"] + m["otelcol_exporter_send_failed_log_records"] + m["otelcol_exporter_enqueue_failed_log_records"]
		return m["otelcol_exporter_queue_size"] == 0 && read == out
	}
	assert.Eventually(t, balanced, 30*time.Second, 100*time.Millisecond,
		"read by the receiver = sent + send_failed + enqueue_failed at the exporter: %v", m)
	refused := m["otelcol_receiver_ebpf_exec_dropped_records"]
	c.Stop(t)

	seen := loadTags(sink.logs.AllLogs(), prefix)
	lost := 0
	for _, i := range done {
		if !seen[i] {
			lost++
		}
	}
	counted := refused + m["otelcol_receiver_ebpf_exec_kernel_dropped_records"] + m["otelcol_exporter_send_failed_log_records"]
	log := c.Out.String()
	refusedLines := logLines(log, "ebpf_exec: the next consumer refused exec records; they are lost")
	detached := logLines(log, "ebpf_exec: detached")
	t.Logf("load: %d execs (%d failed to start), %d by the end of the outage; %d at the sink, %d lost",
		len(done), load.errs, execsDuring, len(seen), lost)
	t.Logf("RSS: %.1f MiB before the outage, max %.1f MiB during it (memory_limiter limit_mib %d, queue %d bytes)",
		float64(baseRSS)/(1<<20), float64(maxRSS)/(1<<20), limitMiB, queueBytes)
	t.Logf("flow resumed %s after the backend returned", resumed.Round(100*time.Millisecond))
	t.Logf("metrics at the end of the outage: ebpf_exec dropped=%v receiver refused=%v enqueue_failed=%v send_failed=%v queue_size=%v",
		during["otelcol_receiver_ebpf_exec_dropped_records"], during["otelcol_receiver_refused_log_records"],
		during["otelcol_exporter_enqueue_failed_log_records"], during["otelcol_exporter_send_failed_log_records"],
		during["otelcol_exporter_queue_size"])
	t.Logf("metrics after recovery: accepted=%v refused=%v sent=%v enqueue_failed=%v send_failed=%v kernel dropped=%v",
		m["otelcol_receiver_accepted_log_records"], m["otelcol_receiver_refused_log_records"], m["otelcol_exporter_sent_log_records"],
		m["otelcol_exporter_enqueue_failed_log_records"], m["otelcol_exporter_send_failed_log_records"],
		m["otelcol_receiver_ebpf_exec_kernel_dropped_records"])
	t.Logf("log: %d loss lines; %s", len(refusedLines), strings.Join(detached, ""))

	assert.Less(t, maxRSS, int64(limitMiB<<20+rssMargin), "memory stays bounded during the outage")
	assert.Positive(t, during["otelcol_receiver_ebpf_exec_dropped_records"], "a minute of outage overflows the queue, and the receiver counts what is refused")
	assert.Equal(t, m["otelcol_receiver_refused_log_records"], refused, "ebpf_exec's count agrees with the receiver obsreport")
	assert.Equal(t, m["otelcol_exporter_enqueue_failed_log_records"], refused, "the same records the exporter could not queue")
	assert.Positive(t, lost, "records were lost, so the accounting below is exercised")
	assert.GreaterOrEqual(t, counted, float64(lost), "every lost record of the load is counted")
	assert.LessOrEqual(t, len(refusedLines), int(time.Since(downAt)/time.Second)+2, "loss is logged at most once a second")
	require.Len(t, detached, 1)
	assert.Contains(t, detached[0], fmt.Sprintf(`"refused_total": %d`, int64(refused)), "the log says how many were lost")
	// The last loss line usually carries the final total too, but the collector's default log sampling (10 per
	// message per 10 s, then 1 in 100) may drop the one written at shutdown, less than a second after the previous
	// one: the detached line above is the one that always carries it.
	if n := len(refusedLines); assert.Positive(t, n) {
		m := regexp.MustCompile(`"records_total": (\d+)`).FindStringSubmatch(refusedLines[n-1])
		if assert.Len(t, m, 2, "the loss line carries a running total: %s", refusedLines[n-1]) {
			last, err := strconv.ParseInt(m[1], 10, 64)
			require.NoError(t, err)
			assert.Positive(t, last)
			assert.LessOrEqual(t, last, int64(refused), "a running total never exceeds the final count")
		}
	}
	assert.Len(t, logLines(log, "Everything is ready"), 1, "no restart")
}

func TestReliabilityShutdownUnderLoad(t *testing.T) {
	testenv.RequireRoot(t)
	sink := newOTLPSink(t)
	c := distro.Start(t, pipelineConfig(sink.addr, noMetrics))
	objs := collectorBPF(t, c)

	prefix := fmt.Sprintf("cwsd%d", time.Now().UnixNano())
	load := startExecLoad(t, prefix, 200, 2)
	require.Eventually(t, func() bool { return len(loadTags(sink.logs.AllLogs(), prefix)) > 0 },
		30*time.Second, 100*time.Millisecond, "the load reaches the sink")
	time.Sleep(2 * time.Second)
	// Every exec completed now has its record in the ring buffer or beyond:
	// the tracepoint runs inside execve.
	before := load.completed()
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-c.Done:
		c.Done <- err
		require.NoError(t, err, "exit after SIGTERM:\n%s", c.Out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit within 60s of SIGTERM:\n%s", c.Out.String())
	}
	load.stop()
	assert.Contains(t, c.Out.String(), "Shutdown complete")

	seen := loadTags(sink.logs.AllLogs(), prefix)
	var missing []int
	for _, i := range before {
		if !seen[i] {
			missing = append(missing, i)
		}
	}
	t.Logf("%d execs before SIGTERM, %d load records at the sink in all", len(before), len(seen))
	assert.Empty(t, missing, "records of execs before SIGTERM are flushed to the backend")
	assertDetached(t, objs)
	assertCleanExport(t, c, sink.logs.AllLogs())
}

func TestReliabilityReloadOnSIGHUP(t *testing.T) {
	testenv.RequireRoot(t)
	sink := newOTLPSink(t)
	cfgPath := distro.WriteConfig(t, pipelineConfig(sink.addr, noMetrics))
	c := distro.Launch(t, distro.Binary(t), "--config", cfgPath)
	c.WaitOutput(t, "Everything is ready", 60*time.Second)
	first := collectorBPF(t, c)
	tg := relTag(t)
	runOK(t, exec.Command("/bin/true", tg))
	waitRecord(t, sink.logs, "an exec before the reload", 30*time.Second, withArg(tg))

	// The collector reloads its config on SIGHUP: the service, and so the
	// receiver, is shut down and started again in the same process.
	reloaded := strings.Replace(pipelineConfig(sink.addr, noMetrics), "batch: {flush_interval: 50ms}",
		"batch: {flush_interval: 50ms}\n    ring_buffer_size: 16MiB", 1)
	require.NoError(t, os.WriteFile(cfgPath, []byte(reloaded), 0o600))
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return len(logLines(c.Out.String(), "Everything is ready")) == 2 },
		60*time.Second, 100*time.Millisecond, "the service restarts:\n%s", c.Out.String())
	assert.NotEmpty(t, logLines(c.Out.String(), "Config updated, restart service"))
	assert.NotEmpty(t, logLines(c.Out.String(), `"ring_buffer_size": "16MiB"`), "the new config is in effect")
	second := collectorBPF(t, c)
	assert.NotEqual(t, first.progs, second.progs, "a new program after the reload")
	assertDetached(t, first)

	tg = relTag(t)
	runOK(t, exec.Command("/bin/true", tg))
	waitRecord(t, sink.logs, "an exec after the reload", 30*time.Second, withArg(tg))
	c.Stop(t)
	assertDetached(t, second)
	assertCleanExport(t, c, sink.logs.AllLogs())
}

// collectorBPF returns the BPF objects the collector holds, which must
// include the exec program.
func collectorBPF(t *testing.T, c *distro.Collector) bpfObjects {
	t.Helper()
	objs, err := bpfObjectsOf(c.Cmd.Process.Pid)
	require.NoError(t, err)
	var names []string
	for _, id := range objs.progs {
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		require.NoError(t, err)
		info, err := p.Info()
		_ = p.Close()
		require.NoError(t, err)
		names = append(names, info.Name)
	}
	require.True(t, slices.ContainsFunc(names, isExecProgram), "the collector holds an exec program: %v", names)
	require.NotEmpty(t, objs.links, "and its tracing link")
	require.NotEmpty(t, objs.maps)
	return objs
}

// assertDetached checks that objs are gone and that no exec program is
// left without a holder (another test binary may run its own meanwhile). The
// kernel frees programs after an RCU grace period, so it polls.
func assertDetached(t *testing.T, objs bpfObjects) {
	t.Helper()
	var left, orphans []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = stillLoaded(objs)
		orphans = orphans[:0]
		ids, err := programsNamed(execProgramNames...)
		require.NoError(t, err)
		holders := bpfProgramHolders()
		for _, id := range ids {
			if len(holders[id]) == 0 {
				orphans = append(orphans, fmt.Sprintf("program %d", id))
			}
		}
		if (len(left) == 0 && len(orphans) == 0) || time.Now().After(deadline) {
			break
		}
	}
	assert.Empty(t, left, "the collector's BPF objects are freed")
	assert.Empty(t, orphans, "no exec program is left without a holder")
}
