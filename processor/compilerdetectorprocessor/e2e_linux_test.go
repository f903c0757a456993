//go:build linux

package compilerdetectorprocessor_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"
)

// The end-to-end test runs the real ebpf_exec receiver (the BPF program attached to the kernel) into the real
// compiler_detector processor and a sink, runs real compilers in a runc container and on the host, and asserts
// exactly which exec records come out flagged. Attribute names are spelled out rather than taken from the
// package: they are the user-facing contract, which a rename in the code must not change silently.

const helloC = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"

var containerIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// rec is one exported record with its resource, flattened for assertions.
type rec struct {
	res   map[string]any
	attrs map[string]any
	lr    plog.LogRecord
}

func (r rec) str(k string) string { s, _ := r.attrs[k].(string); return s }
func (r rec) num(k string) int64  { n, _ := r.attrs[k].(int64); return n }
func (r rec) pid() int64          { return r.num("process.pid") }
func (r rec) containerID() string { s, _ := r.res["container.id"].(string); return s }
func (r rec) flagged() bool       { _, ok := r.attrs["security_rule.uuid"]; return ok }

func (r rec) list(k string) []string {
	raw, _ := r.attrs[k].([]any)
	out := make([]string, len(raw))
	for i, a := range raw {
		out[i], _ = a.(string)
	}
	return out
}

// descendsFrom reports whether pid is among r's ancestors ("pid:comm", nearest first).
func (r rec) descendsFrom(pid int64) bool {
	p := strconv.FormatInt(pid, 10) + ":"
	return slices.ContainsFunc(r.list("compilerwatch.ancestors"), func(a string) bool { return strings.HasPrefix(a, p) })
}

func (r rec) String() string {
	return fmt.Sprintf("pid %d %s %q (exe %s) severity %s compiler %q match %q", r.pid(), r.str("compilerwatch.exec.comm"),
		r.list("process.command_args"), r.str("process.executable.path"), r.lr.SeverityText(),
		r.str("compilerwatch.compiler.name"), r.str("compilerwatch.compiler.match"))
}

// execRecords returns every process.exec record in the sink.
func execRecords(sink *consumertest.LogsSink) []rec {
	var out []rec
	for _, r := range testenv.Records(sink.AllLogs()) {
		if r.Log.EventName() == "process.exec" {
			out = append(out, rec{res: r.Resource, attrs: r.Attrs, lr: r.Log})
		}
	}
	return out
}

// one returns the only record that match selects; it fails t on none or several.
func one(t *testing.T, recs []rec, what string, match func(rec) bool) rec {
	t.Helper()
	var found []rec
	for _, r := range recs {
		if match(r) {
			found = append(found, r)
		}
	}
	require.Len(t, found, 1, "records for %s: %v", what, found)
	return found[0]
}

// startPipeline runs the real receiver → the real processor → a sink. configure adjusts the processor's default
// configuration before it is validated.
func startPipeline(t *testing.T, configure func(*compilerdetectorprocessor.Config)) *consumertest.LogsSink {
	t.Helper()
	return startPipelineOn(t, componenttest.NewNopHost(), configure)
}

// startPipelineOn is startPipeline with the processor started on host (a status-recording host).
func startPipelineOn(t *testing.T, host component.Host, configure func(*compilerdetectorprocessor.Config)) *consumertest.LogsSink {
	t.Helper()
	return startPipelineThrough(t, host, configure, func(next consumer.Logs) consumer.Logs { return next })
}

// startPipelineThrough is startPipelineOn with the processor's output passed through the consumer downstream
// builds in front of the sink.
func startPipelineThrough(t *testing.T, host component.Host, configure func(*compilerdetectorprocessor.Config),
	downstream func(consumer.Logs) consumer.Logs,
) *consumertest.LogsSink {
	t.Helper()
	ctx := context.Background()
	sink := new(consumertest.LogsSink)

	pf := compilerdetectorprocessor.NewFactory()
	pcfg := pf.CreateDefaultConfig().(*compilerdetectorprocessor.Config)
	configure(pcfg)
	require.NoError(t, pcfg.Validate())
	proc, err := pf.CreateLogs(ctx, processortest.NewNopSettings(pf.Type()), pcfg, downstream(sink))
	require.NoError(t, err)
	require.NoError(t, proc.Start(ctx, host))

	rf := ebpfexecreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*ebpfexecreceiver.Config)
	rcfg.Batch.FlushInterval = 50 * time.Millisecond
	require.NoError(t, rcfg.Validate())
	rcv, err := rf.CreateLogs(ctx, receivertest.NewNopSettings(rf.Type()), rcfg, proc)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() {
		// Upstream first, so the processor sees the receiver's final batch before it stops.
		assert.NoError(t, rcv.Shutdown(ctx))
		assert.NoError(t, proc.Shutdown(ctx))
	})
	return sink
}

// noDedupNoKube is the default configuration with dedup disabled, so that every finding is visible, and
// Kubernetes off: there is no cluster.
func noDedupNoKube(cfg *compilerdetectorprocessor.Config) {
	cfg.Dedup.Window = 0
	cfg.Kubernetes.Enabled = "false"
}

// waitForRecord polls the sink until match finds a record.
func waitForRecord(t *testing.T, sink *consumertest.LogsSink, what string, match func(rec) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if slices.ContainsFunc(execRecords(sink), match) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no exec record for %s within 15s", what)
}

// finding is what a flagged record must carry.
type finding struct {
	label                 string // the subtest name
	name, language, match string
	severity              plog.SeverityNumber
	installedAtRuntime    bool
}

func (f finding) severityText() string {
	if f.severity == plog.SeverityNumberError {
		return "ERROR"
	}
	return "WARN"
}

func TestEndToEndCompilersInContainer(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	testenv.RequireBinary(t, "runc", "busybox", "gcc", "go")
	mounts := testenv.HostGCCMounts(t)
	goMounts, goEnv := testenv.HostGoMounts(t)
	mounts = append(mounts, goMounts...)

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	goMod := "module hello\n\ngo 1.22\n"
	// The run id in the source makes the main package a build-cache miss, so compile and link really run.
	mainGo := fmt.Sprintf("package main\n\nconst run = %q\n\nfunc main() { println(run) }\n", run)
	warmGoCache(t, goMod)

	sink := startPipeline(t, func(cfg *compilerdetectorprocessor.Config) {
		require.True(t, cfg.ContainersOnly, "containers_only defaults to true")
		noDedupNoKube(cfg)
	})
	c := testenv.NewContainer(t, testenv.Options{Mounts: mounts, Env: goEnv, TmpfsTmp: true})
	// /tmp is a tmpfs inside the container, invisible from the host: sources go to /src, outputs to /tmp.
	c.WriteFile(t, "/src/hello.c", []byte(helloC), 0o644)
	c.WriteFile(t, "/src/gohello/go.mod", []byte(goMod), 0o644)
	c.WriteFile(t, "/src/gohello/main.go", []byte(mainGo), 0o644)
	script := "/src/benign-" + run + ".sh"
	c.WriteFile(t, script, []byte("#!/bin/sh\necho building\nls /src >/dev/null\ncat /src/hello.c | wc -l\n"), 0o755)

	// Each compiler exec carries a unique tag: gcc's in a -D define (it rejects unknown arguments), go's in its
	// output path, the script's in its file name.
	var (
		gccTag = "-DCW_GCC_" + run
		ccTag  = "-DCW_CC_" + run
		xTag   = "-DCW_X_" + run
		goOut  = "/tmp/hello-" + run
	)
	steps := []struct {
		cwd  string
		argv []string
	}{
		{"/tmp", []string{"gcc", gccTag, "-c", "/src/hello.c", "-o", "/tmp/gcc.o"}},
		// cc through its symlink chain, compiling and linking: cc1, as, collect2 and ld all run.
		{"/tmp", []string{"cc", ccTag, "/src/hello.c", "-o", "/tmp/hello-cc"}},
		{"/tmp", []string{"/tmp/hello-cc"}},
		// A renamed copy of the driver, written at runtime to the tmpfs /tmp.
		{"/tmp", []string{"cp", "/usr/bin/gcc", "/tmp/x"}},
		{"/tmp", []string{"/tmp/x", xTag, "-c", "/src/hello.c", "-o", "/tmp/x.o"}},
		{"/src/gohello", []string{"go", "build", "-o", goOut, "."}},
		{"/tmp", []string{goOut}},
		{"/tmp", []string{script}},
	}
	for _, s := range steps {
		r, err := c.ExecWith(t, testenv.ExecOptions{Cwd: s.cwd}, s.argv...)
		require.NoError(t, err)
		require.Zero(t, r.ExitCode, "%q\nstdout: %s\nstderr: %s", s.argv, r.Stdout, r.Stderr)
	}

	// The same gcc on the host.
	hostDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(hostDir, "hello.c"), []byte(helloC), 0o644))
	hostTag := "-DCW_HOST_" + run
	hostGCC := exec.Command("gcc", hostTag, "-c", "hello.c", "-o", "hello.o")
	hostGCC.Dir = hostDir
	out, err := hostGCC.CombinedOutput()
	require.NoError(t, err, "host gcc: %s", out)

	// Records leave the ring buffer in exec order and the pipeline is synchronous: once a sentinel exec made
	// after everything else is in the sink, every earlier record is too.
	sentinel := "cw-e2e-sentinel-" + run
	require.NoError(t, exec.Command("/bin/true", sentinel).Run())
	waitForRecord(t, sink, "the sentinel", func(r rec) bool { return slices.Contains(r.list("process.command_args"), sentinel) })

	all := execRecords(sink)
	var mine []rec // the container's records
	for _, r := range all {
		if r.containerID() == c.ID() {
			mine = append(mine, r)
		}
	}
	cmdWith := func(command, arg string) func(rec) bool {
		return func(r rec) bool {
			return r.str("process.command") == command && slices.Contains(r.list("process.command_args"), arg)
		}
	}
	gcc := one(t, mine, "gcc -c", cmdWith("gcc", gccTag))
	cc := one(t, mine, "cc", cmdWith("cc", ccTag))
	x := one(t, mine, "/tmp/x", cmdWith("/tmp/x", xTag))
	goBuild := one(t, mine, "go build", cmdWith("go", goOut))
	benign := one(t, mine, "benign script", func(r rec) bool { return r.str("compilerwatch.exec.filename") == script })

	children := func(parent rec) []rec {
		var out []rec
		for _, r := range mine {
			if r.descendsFrom(parent.pid()) {
				out = append(out, r)
			}
		}
		return out
	}
	child := func(parent rec, what string, match func(rec) bool) rec {
		t.Helper()
		return one(t, children(parent), what+" under pid "+strconv.FormatInt(parent.pid(), 10), match)
	}
	named := func(name string) func(rec) bool {
		return func(r rec) bool { return r.str("process.executable.name") == name }
	}
	toolDir := "/pkg/tool/linux_" + goArch(t) + "/"
	goTool := func(name string) func(rec) bool {
		return func(r rec) bool {
			return strings.HasSuffix(r.str("process.executable.path"), toolDir+name) &&
				!slices.Contains(r.list("process.command_args"), "-V=full") // go asks each tool its version first
		}
	}

	// Exactly these container records are flagged, with these findings.
	xCC1 := child(x, "cc1", named("cc1"))
	want := map[int64]finding{
		gcc.pid():     {label: "gcc -c", name: "gcc", language: "c", match: "executable_name", severity: plog.SeverityNumberWarn},
		cc.pid():      {label: "cc", name: "gcc", language: "c", match: "executable_name", severity: plog.SeverityNumberWarn},
		goBuild.pid(): {label: "go build", name: "go", language: "go", match: "arguments", severity: plog.SeverityNumberWarn},
		// The renamed driver itself is not recognised; its cc1 is, and the driver was written at runtime.
		xCC1.pid(): {label: "cc1 of /tmp/x", name: "gcc", language: "c", match: "compiler_stage", severity: plog.SeverityNumberError, installedAtRuntime: true},
	}
	// The assembler the renamed driver runs next is not a finding of its own: the cc1 finding made /tmp/x a
	// known compiler, so one compilation gives one finding.
	_ = child(x, "as", func(r rec) bool { return strings.HasSuffix(r.str("process.executable.name"), "as") })

	var got []int64
	for _, r := range mine {
		if r.flagged() {
			got = append(got, r.pid())
		}
	}
	var wantPids []int64
	for pid := range want {
		wantPids = append(wantPids, pid)
	}
	if !assert.ElementsMatch(t, wantPids, got, "flagged container records") {
		for _, r := range mine {
			t.Logf("container record: %v", r)
		}
	}
	for _, r := range mine {
		w, ok := want[r.pid()]
		if !ok || !r.flagged() {
			continue
		}
		t.Run(w.label, func(t *testing.T) {
			assert.Equal(t, w.name, r.str("compilerwatch.compiler.name"))
			assert.Equal(t, w.language, r.str("compilerwatch.compiler.language"))
			assert.Equal(t, w.match, r.str("compilerwatch.compiler.match"))
			assert.Equal(t, w.severity, r.lr.SeverityNumber())
			assert.Equal(t, w.severityText(), r.lr.SeverityText())
			if w.installedAtRuntime {
				assert.Equal(t, true, r.attrs["compilerwatch.compiler.installed_at_runtime"])
			} else {
				assert.NotContains(t, r.attrs, "compilerwatch.compiler.installed_at_runtime")
			}
			assert.Equal(t, "def-000-krp", r.str("security_rule.uuid"))
			assert.Equal(t, "Containers should not execute compilers", r.str("security_rule.name"))
			assert.Equal(t, "https://docs.datadoghq.com/security/default_rules/def-000-krp", r.str("security_rule.reference"))
			assert.Equal(t, "runtime", r.str("security_rule.category"))
			assert.Equal(t, "compilerwatch", r.str("security_rule.ruleset.name"))
			assert.Equal(t, catalog.Version, r.str("security_rule.version"))
			assert.Equal(t, attr.RuleDescriptionValue, r.str("security_rule.description"))
			assert.Equal(t, "T1027.004", r.str("compilerwatch.threat.technique.id"), "MITRE ATT&CK Compile After Delivery")
			// Run with runc exec, without a terminal: the receiver's process context passes through.
			assert.Equal(t, false, r.attrs["process.interactive"])
			assert.Equal(t, false, r.attrs["compilerwatch.process.in_init_tree"])
			assert.Regexp(t, containerIDRE, r.containerID())
			assert.Equal(t, c.ID(), r.containerID())
			assert.Equal(t, c.PodUID(), r.res["k8s.pod.uid"])
			assert.NotContains(t, r.attrs, "compilerwatch.dedup.suppressed_count", "dedup is off")
		})
	}

	// What the findings stand for: the paths and origins the receiver saw.
	assert.Equal(t, "gcc", cc.str("compilerwatch.compiler.name"), "cc is gcc here: the resolved binary names it")
	assert.Equal(t, "/usr/bin/cc", cc.str("compilerwatch.exec.filename"), "invoked through the symlink")
	assert.Equal(t, gcc.str("process.executable.path"), cc.str("process.executable.path"), "both resolve to the same driver")
	assert.Equal(t, "host", gcc.str("compilerwatch.executable.origin"), "the toolchain is bind-mounted from the host")
	assert.Equal(t, "tmpfs", x.str("compilerwatch.executable.origin"))
	assert.Equal(t, "tmpfs", xCC1.str("compilerwatch.parent.executable.origin"))
	assert.Equal(t, "/tmp/x", xCC1.str("compilerwatch.parent.executable.path"))

	// The stages of recognised drivers ran and were recorded, but are not findings of their own.
	stages := map[string][]rec{
		"gcc -c": {child(gcc, "cc1", named("cc1")), child(gcc, "as", func(r rec) bool { return strings.HasSuffix(r.str("process.executable.name"), "as") })},
		"cc": {
			child(cc, "cc1", named("cc1")),
			child(cc, "as", func(r rec) bool { return strings.HasSuffix(r.str("process.executable.name"), "as") }),
			child(cc, "collect2", named("collect2")),
			child(cc, "ld", func(r rec) bool { return strings.Contains(r.str("process.executable.name"), "ld") }),
		},
		"go build": {child(goBuild, "compile", goTool("compile")), child(goBuild, "link", goTool("link"))},
	}
	for driver, rs := range stages {
		for _, r := range rs {
			assert.False(t, r.flagged(), "%s: stage %v is not a finding", driver, r)
			assert.Equal(t, plog.SeverityNumberUnspecified, r.lr.SeverityNumber(), "%s: %v", driver, r)
		}
	}
	assert.False(t, x.flagged(), "the renamed driver is caught by its stage, not by name")
	assert.False(t, benign.flagged(), "the benign script")
	for _, r := range children(benign) {
		assert.False(t, r.flagged(), "under the benign script: %v", r)
	}

	// The host: the same gcc and its stages pass unflagged under containers_only. No host record is flagged at
	// all, whatever else runs on this machine.
	hostRecs := slices.DeleteFunc(slices.Clone(all), func(r rec) bool { return r.containerID() != "" })
	host := one(t, hostRecs, "host gcc", cmdWith("gcc", hostTag))
	hostStages := []rec{
		one(t, hostRecs, "host cc1", func(r rec) bool { return r.descendsFrom(host.pid()) && r.str("process.executable.name") == "cc1" }),
		one(t, hostRecs, "host as", func(r rec) bool {
			return r.descendsFrom(host.pid()) && strings.HasSuffix(r.str("process.executable.name"), "as")
		}),
	}
	for _, r := range append(hostStages, host) {
		assert.NotContains(t, r.attrs, "compilerwatch.compiler.name", "host: %v", r)
		assert.Equal(t, plog.SeverityNumberUnspecified, r.lr.SeverityNumber(), "host: %v", r)
	}
	for _, r := range hostRecs {
		assert.False(t, r.flagged(), "a host record is flagged: %v", r)
	}
}

// warmGoCache builds a trivial program on the host with the container's settings, so that the container's
// build finds the runtime and standard library in the shared cache instead of rebuilding them (tens of seconds
// here). It runs before the pipeline starts, so none of it is in the sink.
func warmGoCache(t *testing.T, goMod string) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644))
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "hello"), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=", "GOENV=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "host go build: %s", out)
}

// goArch is the GOARCH of the go tool on PATH, which names the pkg/tool directory.
func goArch(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOARCH").Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}
