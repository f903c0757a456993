//go:build linux

package e2e_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// advFinding is one flagged record of a case: the executable it was for (process.executable.name) and what the
// detector said.
type advFinding struct {
	exe, compiler, match string
}

// TestAdversaryInContainer runs, in a real runc container, what an adversary inside it does to run a compiler
// unseen, through the distribution to an OTLP sink, and checks that every case gives exactly its findings: fileless
// compilers (memfd, deleted file), a parent that renames its comm to a compiler's, renamed drivers and stages in
// odd directories, wrapper chains, and arguments shaped by the byte limit and by shebang lines.
func TestAdversaryInContainer(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	testenv.RequireBinary(t, "runc", "busybox", "gcc", "go")

	helper := filepath.Join(t.TempDir(), "helper")
	out, err := exec.Command("gcc", "-static", "-O2", "-o", helper, filepath.Join("testdata", "adversary", "helper.c")).CombinedOutput()
	require.NoError(t, err, "gcc -static (libc6-dev provides the static libc): %s", out)
	cc1 := strings.TrimSpace(mustOutput(t, "gcc", "-print-prog-name=cc1"))
	require.True(t, filepath.IsAbs(cc1), "cc1 at %q", cc1)
	gccPath, err := exec.LookPath("gcc")
	require.NoError(t, err)
	gccReal, err := filepath.EvalSymlinks(gccPath)
	require.NoError(t, err)
	gccExe := filepath.Base(gccReal)

	mounts := testenv.HostGCCMounts(t)
	goMounts, goEnv := testenv.HostGoMounts(t)
	mounts = append(mounts, goMounts...)
	mounts = append(mounts, testenv.Mount{Destination: "/opt/adv/helper", Source: helper})

	addr, sink := startOTLPSink(t)
	col := distro.Start(t, fmt.Sprintf(`
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
processors:
  compiler_detector:
    scan_for_compilers: false
    dedup: {window: 0s}
    kubernetes: {enabled: false}
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
service:
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [compiler_detector, batch], exporters: [otlp_grpc]}
  telemetry:
    metrics: {level: none}
`, addr))

	ctr := testenv.NewContainer(t, testenv.Options{Mounts: mounts, Env: goEnv, TmpfsTmp: true})
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	ctr.WriteFile(t, "/src/hello.c", []byte("int main(void) { return 0; }\n"), 0o644)
	ctr.WriteFile(t, "/src/gohello/go.mod", []byte("module hello\n\ngo 1.22\n"), 0o644)
	ctr.WriteFile(t, "/src/gohello/main.go", []byte(fmt.Sprintf("package main\n\nconst run = %q\n\nfunc main() { println(run) }\n", run)), 0o644)
	// A Java source-file program via shebang: the kernel passes "--source 21" as one argument, and the script
	// does not end in .java.
	ctr.WriteFile(t, "/src/tool", []byte("#!/tmp/bin/java --source 21\nclass T { public static void main(String[] a) {} }\n"), 0o755)
	// "java" here is the helper under that name: the detector sees only names and arguments, which is what the
	// adversary shapes, and the container needs no JDK.
	ctr.MustExec(t, "sh", "-c", "mkdir -p /tmp/bin '/tmp/odd dir' '/usr/odd dir' && cp /opt/adv/helper /tmp/bin/java && "+
		"cp /usr/bin/gcc /tmp/x && cp /usr/bin/gcc '/usr/odd dir/build tool' && cp "+cc1+" '/tmp/odd dir/cc1'")

	pad := strings.Repeat("p", 8192)
	stage := advFinding{"cc1", "gcc", "compiler_stage"}
	java := advFinding{"java", "java", "arguments"}
	goBuild := advFinding{"go", "go", "arguments"}
	gcc := advFinding{gccExe, "gcc", "executable_name"}
	cases := []struct {
		name string
		argv []string // {tag} is replaced by the case's tag, which must appear in argv
		want []advFinding
	}{
		// Fileless: the kernel's name is "/memfd:gcc (deleted)" or "/tmp/gcc (deleted)"; argv[0] says nothing.
		{"memfd gcc", []string{"/opt/adv/helper", "memfd", "gcc", "/usr/bin/gcc", "x", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/m1.o"},
			[]advFinding{{"memfd:gcc (deleted)", "gcc", "executable_name"}}},
		{"memfd of another name runs its stage", []string{"/opt/adv/helper", "memfd", "x", "/usr/bin/gcc", "x", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/m2.o"},
			[]advFinding{stage}},
		{"deleted gcc", []string{"/opt/adv/helper", "deleted", "/usr/bin/gcc", "/tmp/gcc", "x", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/d.o"},
			[]advFinding{{"gcc (deleted)", "gcc", "executable_name"}}},
		// A parent that calls itself gcc (prctl) vouches for nothing.
		{"comm gcc runs a stage", []string{"/opt/adv/helper", "comm", "gcc", cc1, "cc1", "-quiet", "-D{tag}", "/src/hello.c", "-o", "/tmp/c1.s"},
			[]advFinding{stage}},
		{"comm gcc runs a renamed driver", []string{"/opt/adv/helper", "comm", "gcc", "/tmp/x", "x", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/c2.o"},
			[]advFinding{stage}},
		{"comm cut to a cross gcc's prefix", []string{"/opt/adv/helper", "comm", "x86_64-linux-gnu-gcc", "/tmp/x", "x", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/c3.o"},
			[]advFinding{stage}},
		// Renamed drivers and stages in odd places.
		{"renamed driver in a directory with a space", []string{"/usr/odd dir/build tool", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/o1.o"},
			[]advFinding{stage}},
		{"stage copied to an odd directory", []string{"/tmp/odd dir/cc1", "-quiet", "-D{tag}", "/src/hello.c", "-o", "/tmp/o2.s"},
			[]advFinding{stage}},
		// Wrapper chains: the compiler they run is the finding, once.
		{"env gcc", []string{"env", "gcc", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/w1.o"}, []advFinding{gcc}},
		{"timeout gcc", []string{"busybox", "timeout", "60", "gcc", "-D{tag}", "-c", "/src/hello.c", "-o", "/tmp/w2.o"}, []advFinding{gcc}},
		{"xargs gcc", []string{"sh", "-c", "echo /src/hello.c | xargs gcc -D{tag} -c -o /tmp/w3.o"}, []advFinding{gcc}},
		{"sh -c gcc", []string{"sh", "-c", "gcc -D{tag} -c /src/hello.c -o /tmp/w4.o"}, []advFinding{gcc}},
		{"an interpreter's subprocess", []string{"busybox", "awk", `BEGIN { system("gcc -D{tag} -c /src/hello.c -o /tmp/w5.o") }`}, []advFinding{gcc}},
		{"env go build", []string{"env", "go", "-C", "/src/gohello", "build", "-o", "/tmp/{tag}", "."}, []advFinding{goBuild}},
		// Arguments past max_args_bytes (4096).
		{"go build with 8 KiB of ldflags", []string{"go", "-C", "/src/gohello", "build", "-o", "/tmp/{tag}", "-ldflags=-X=main.pad=" + pad, "."},
			[]advFinding{goBuild}},
		{"go env with 8 KiB of arguments", append([]string{"go", "env", "{tag}"}, slices.Repeat([]string{"GOROOT"}, 1400)...), nil},
		{"java -Dpad of 8 KiB before the source file", []string{"/tmp/bin/java", "-D{tag}", "-Dpad=" + pad, "X.java"}, []advFinding{java}},
		{"java 2000 options before the source file", append(append([]string{"/tmp/bin/java", "-D{tag}"}, slices.Repeat([]string{"-Da=b"}, 2000)...), "X.java"),
			[]advFinding{java}},
		{"java 100 options before the source file, untruncated", append(append([]string{"/tmp/bin/java", "-D{tag}"}, slices.Repeat([]string{"-Da"}, 100)...), "X.java"),
			[]advFinding{java}},
		{"java -jar with 8 KiB of program arguments", []string{"/tmp/bin/java", "-D{tag}", "-jar", "app.jar", pad}, nil},
		{"java main class after a 3 KiB classpath", []string{"/tmp/bin/java", "-D{tag}", "-cp", pad[:3000], "com.example.Main"}, nil},
		{"java source script via shebang", []string{"/src/tool", "{tag}"}, []advFinding{java}},
	}

	tags := make([]string, len(cases))
	for i, tc := range cases {
		tags[i] = fmt.Sprintf("ADV%d_%s", i, run)
		argv := make([]string, len(tc.argv))
		for j, a := range tc.argv {
			argv[j] = strings.ReplaceAll(a, "{tag}", tags[i])
		}
		require.True(t, slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, tags[i]) }), tc.name)
		r, err := ctr.Exec(t, argv...)
		require.NoError(t, err, tc.name)
		require.Zero(t, r.ExitCode, "%s: %s\n%s", tc.name, r.Stdout, r.Stderr)
	}

	// Wait for every case's records, then for stragglers a stage flagged by mistake would be.
	group := func(all []sinkRecord, tag string) []sinkRecord {
		pids := map[int64]bool{}
		for _, r := range all {
			if slices.ContainsFunc(r.strs("process.command_args"), func(a string) bool { return strings.Contains(a, tag) }) {
				pids[r.num("process.pid")] = true
			}
		}
		var out []sinkRecord
		for _, r := range all {
			in := pids[r.num("process.pid")]
			for _, a := range r.strs("compilerwatch.ancestors") {
				pid, _, _ := strings.Cut(a, ":")
				n, _ := strconv.ParseInt(pid, 10, 64)
				in = in || pids[n]
			}
			if in {
				out = append(out, r)
			}
		}
		return out
	}
	mine := func() []sinkRecord {
		var out []sinkRecord
		for _, r := range sinkRecords(sink.AllLogs()) {
			if r.res["container.id"] == ctr.ID() && r.rec.EventName() == "process.exec" {
				out = append(out, r)
			}
		}
		return out
	}
	flaggedIn := func(recs []sinkRecord) []advFinding {
		var out []advFinding
		for _, r := range recs {
			if _, ok := r.attrs["security_rule.uuid"]; ok {
				out = append(out, advFinding{r.str("process.executable.name"), r.str("compilerwatch.compiler.name"), r.str("compilerwatch.compiler.match")})
			}
		}
		return out
	}
	// A missing finding is reported per case below, so the wait ends at a deadline without failing.
	ready := func() bool {
		all := mine()
		for i, tc := range cases {
			if g := group(all, tags[i]); len(g) == 0 || len(flaggedIn(g)) < len(tc.want) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !ready() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)

	all := mine()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := group(all, tags[i])
			require.NotEmpty(t, g, "no record of the case reached the sink")
			// Where a driver is the finding, its stage ran and was seen: suppressed, not lost.
			for _, w := range tc.want {
				if stageOf := map[string]string{"gcc": "cc1", "go": "compile"}[w.compiler]; stageOf != "" && w.match != "compiler_stage" {
					assert.True(t, slices.ContainsFunc(g, func(r sinkRecord) bool { return r.str("process.executable.name") == stageOf }),
						"the %s stage of the %s finding reached the sink", stageOf, w.compiler)
				}
			}
			if !assert.ElementsMatch(t, tc.want, flaggedIn(g)) {
				for _, r := range g {
					t.Logf("pid %d exe %q args %.120q ancestors %q exes %q: %q %q", r.num("process.pid"), r.str("process.executable.path"),
						r.strs("process.command_args"), r.strs("compilerwatch.ancestors"), r.strs("compilerwatch.ancestors.executable.name"),
						r.str("compilerwatch.compiler.name"), r.str("compilerwatch.compiler.match"))
				}
			}
		})
	}

	// Fileless and runtime-written compilers are errors.
	for _, r := range flaggedRecords(all) {
		switch r.str("compilerwatch.executable.origin") {
		case "memfd", "deleted", "tmpfs":
			assert.Equal(t, "ERROR", r.rec.SeverityText(), "%s", r.str("process.executable.path"))
			assert.Equal(t, true, r.attrs["compilerwatch.compiler.installed_at_runtime"], "%s", r.str("process.executable.path"))
		}
	}
	col.Stop(t)
}

func flaggedRecords(recs []sinkRecord) []sinkRecord {
	var out []sinkRecord
	for _, r := range recs {
		if _, ok := r.attrs["security_rule.uuid"]; ok {
			out = append(out, r)
		}
	}
	return out
}

func mustOutput(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	require.NoError(t, err, "%v", argv)
	return string(out)
}
