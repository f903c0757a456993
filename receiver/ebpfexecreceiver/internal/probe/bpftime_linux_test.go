//go:build linux

package probe

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// TestBPFTimePerExec measures the BPF run time per exec of both programs,
// interleaved in one session, over a static no-op program executed in a
// vfork loop. It needs root, gcc with a static libc and a few minutes, so
// it runs only when asked:
//
//	COMPILERWATCH_BPF_TIME=1 go test -count=1 -v -timeout 30m -run '^TestBPFTimePerExec$' ./receiver/ebpfexecreceiver/internal/probe
//
// COMPILERWATCH_BPF_TIME_ROUNDS (default 5) and COMPILERWATCH_BPF_TIME_EXECS
// (default 20000) size it. COMPILERWATCH_BPF_TIME_BASELINE names another
// BPF object (an exec_bpfel.o of an earlier commit): each round then also
// measures its programs, and the test reports this object's time over it,
// both taken in the same session. kernel.bpf_stats_enabled is switched on for the
// run and restored after it; run_time_ns/run_cnt counts every exec on the
// machine while the program is attached, the loop's and any other.
func TestBPFTimePerExec(t *testing.T) {
	if os.Getenv("COMPILERWATCH_BPF_TIME") != "1" {
		t.Skip("set COMPILERWATCH_BPF_TIME=1 to measure the BPF time per exec")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "gcc")
	rounds := envInt(t, "COMPILERWATCH_BPF_TIME_ROUNDS", 5)
	execs := envInt(t, "COMPILERWATCH_BPF_TIME_EXECS", 20000)

	dir := t.TempDir()
	noop := buildStatic(t, dir, "noop", "int main(void) { return 0; }\n")
	loop := buildStatic(t, dir, "vforkloop", vforkLoopC)

	enableBPFStats(t)

	type run struct {
		v        Variant
		baseline bool
	}
	runs := []run{{VariantPortable, false}, {VariantDirect, false}}
	baseline := os.Getenv("COMPILERWATCH_BPF_TIME_BASELINE")
	if baseline != "" {
		runs = append(runs, run{VariantPortable, true}, run{VariantDirect, true})
	}
	ns := map[run][]float64{}
	for r := range rounds {
		order := runs
		if r%2 == 1 { // alternate which one goes first
			order = slices.Clone(runs)
			slices.Reverse(order)
		}
		for _, x := range order {
			obj := ""
			if x.baseline {
				obj = baseline
			}
			perExec, runs, wall := measure(t, x.v, obj, loop, noop, execs)
			ns[x] = append(ns[x], perExec)
			t.Logf("round %d %-8s %-8s %7.0f ns/exec over %d runs (loop %.1fs)", r+1, x.v, map[bool]string{true: "baseline"}[x.baseline], perExec, runs, wall.Seconds())
		}
	}
	mp, md := median(ns[run{VariantPortable, false}]), median(ns[run{VariantDirect, false}])
	t.Logf("portable: median %.0f ns/exec %v", mp, roundAll(ns[run{VariantPortable, false}]))
	t.Logf("direct:   median %.0f ns/exec %v", md, roundAll(ns[run{VariantDirect, false}]))
	t.Logf("direct/portable: %.2f", md/mp)
	if baseline != "" {
		bp, bd := median(ns[run{VariantPortable, true}]), median(ns[run{VariantDirect, true}])
		t.Logf("baseline portable: median %.0f ns/exec %v", bp, roundAll(ns[run{VariantPortable, true}]))
		t.Logf("baseline direct:   median %.0f ns/exec %v", bd, roundAll(ns[run{VariantDirect, true}]))
		t.Logf("this/baseline: portable %.2f, direct %.2f", mp/bp, md/bd)
	}
}

// TestBPFTimePerExecCandidateFilter measures the direct program's BPF run time per exec with "prefilter:
// compilers": for an exec the filter drops (a no-op named noop) and one it sends (the same binary named gcc),
// against the program without a filter and with "prefilter: containers" (host execs, dropped), interleaved in
// one session like TestBPFTimePerExec, and opt-in the same way:
//
//	COMPILERWATCH_BPF_TIME=1 go test -count=1 -v -timeout 30m -run '^TestBPFTimePerExecCandidateFilter$' ./receiver/ebpfexecreceiver/internal/probe
func TestBPFTimePerExecCandidateFilter(t *testing.T) {
	if os.Getenv("COMPILERWATCH_BPF_TIME") != "1" {
		t.Skip("set COMPILERWATCH_BPF_TIME=1 to measure the BPF time per exec")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "gcc")
	rounds := envInt(t, "COMPILERWATCH_BPF_TIME_ROUNDS", 5)
	execs := envInt(t, "COMPILERWATCH_BPF_TIME_EXECS", 20000)

	dir := t.TempDir()
	noop := buildStatic(t, dir, "noop", "int main(void) { return 0; }\n")
	loop := buildStatic(t, dir, "vforkloop", vforkLoopC)
	gccDir := filepath.Join(dir, "cand")
	if err := os.Mkdir(gccDir, 0o755); err != nil {
		t.Fatal(err)
	}
	gcc := filepath.Join(gccDir, "gcc")
	if err := os.Link(noop, gcc); err != nil {
		t.Fatal(err)
	}
	hostNS, err := os.Readlink("/proc/2/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	var ns uint32
	if _, err := fmt.Sscanf(hostNS, "mnt:[%d]", &ns); err != nil {
		t.Fatal(err)
	}

	enableBPFStats(t)

	base := Config{RingBufferSize: 8 << 20, MaxArgsBytes: 4096, MaxPathDepth: 64, MaxAncestors: 4, Variant: VariantDirect}
	catalog := NewCandidateBloom([]string{"gcc", "g++", "cc", "cc1", "cc1plus", "as", "collect2", "go", "javac", "rustc"})
	type setup struct {
		name string
		cfg  Config
		bin  string
	}
	withCands, withNS := base, base
	withCands.Candidates = catalog
	withNS.HostMountNS = ns
	setups := []setup{
		{"no filter, sent", base, noop},
		{"compilers, dropped", withCands, noop},
		{"compilers, sent", withCands, gcc},
		{"containers, dropped", withNS, noop},
	}
	res, raw, wallPer := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for r := range rounds {
		for i := range setups {
			s := setups[(i+r)%len(setups)] // rotate which goes first
			m := measureNet(t, s.cfg, loop, s.bin, execs)
			res[s.name] = append(res[s.name], m.net)
			raw[s.name] = append(raw[s.name], m.raw)
			wallPer[s.name] = append(wallPer[s.name], float64(m.wall.Nanoseconds())/float64(execs))
			t.Logf("round %d %-20s %7.0f ns/exec net (%7.0f raw over %d runs; background %d runs at %.0f ns; loop %.0f µs/exec)",
				r+1, s.name, m.net, m.raw, m.runs, m.bgRuns, m.bgPer, float64(m.wall.Microseconds())/float64(execs))
		}
	}
	for _, s := range setups {
		w := median(wallPer[s.name])
		t.Logf("%-20s median %6.0f ns/exec net %v, raw %6.0f; %.3f%% of the exec's %.0f µs wall time", s.name,
			median(res[s.name]), roundAll(res[s.name]), median(raw[s.name]), 100*median(res[s.name])/w, w/1000)
	}
}

// netMeasure is one loop under one program: raw is run_time_ns/run_cnt over every exec on the machine while the
// loop ran; net subtracts the other execs at the per-exec cost the same program showed in a background window
// of the same length right after, with the loop stopped.
type netMeasure struct {
	raw, net, bgPer float64
	runs, bgRuns    uint64
	wall            time.Duration
}

func measureNet(t *testing.T, cfg Config, loop, bin string, execs int) netMeasure {
	t.Helper()
	p, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		drain(p, stop)
	}()
	rt0, n0 := runStats(t, p)
	start := time.Now()
	if out, err := exec.Command(loop, strconv.Itoa(execs), bin).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", loop, err, out)
	}
	wall := time.Since(start)
	rt1, n1 := runStats(t, p)
	time.Sleep(wall)
	rt2, n2 := runStats(t, p)
	close(stop)
	<-done
	m := netMeasure{runs: n1 - n0, bgRuns: n2 - n1, wall: wall}
	m.raw = float64(rt1-rt0) / float64(m.runs)
	if m.bgRuns > 0 {
		m.bgPer = float64(rt2-rt1) / float64(m.bgRuns)
	}
	others := float64(m.runs) - float64(execs)
	if others < 0 {
		others = 0
	}
	m.net = (float64(rt1-rt0) - others*m.bgPer) / float64(execs)
	return m
}

// enableBPFStats switches kernel.bpf_stats_enabled on for the test and restores it after.
func enableBPFStats(t *testing.T) {
	t.Helper()
	old, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(bpfStatsSysctl, old, 0o644); err != nil {
			t.Errorf("restoring kernel.bpf_stats_enabled: %v", err)
		}
	})
	if err := os.WriteFile(bpfStatsSysctl, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// measure loads v, from the BPF object obj ("" for the embedded one), runs
// the loop and returns run_time_ns/run_cnt of the program over the loop.
func measure(t *testing.T, v Variant, obj, loop, noop string, execs int) (float64, uint64, time.Duration) {
	t.Helper()
	if obj != "" {
		loadSpec = func() (*ebpf.CollectionSpec, error) { return ebpf.LoadCollectionSpec(obj) }
		defer func() { loadSpec = loadExec }()
	}
	p, err := Load(Config{RingBufferSize: 8 << 20, MaxArgsBytes: 4096, MaxPathDepth: 64, MaxAncestors: 4, Variant: v})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	if p.Variant() != v {
		t.Fatalf("loaded %s, asked for %s", p.Variant(), v)
	}
	// Nobody reads the ring: records that do not fit are dropped, which
	// costs the program less than a delivered one. Drain it meanwhile.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		drain(p, stop)
	}()
	rt0, n0 := runStats(t, p)
	start := time.Now()
	if out, err := exec.Command(loop, strconv.Itoa(execs), noop).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", loop, err, out)
	}
	wall := time.Since(start)
	rt1, n1 := runStats(t, p)
	close(stop)
	<-done
	if n1-n0 < uint64(execs) {
		t.Fatalf("%s: %d runs for %d execs", v, n1-n0, execs)
	}
	return float64(rt1-rt0) / float64(n1-n0), n1 - n0, wall
}

func runStats(t *testing.T, p *Probe) (time.Duration, uint64) {
	t.Helper()
	st, err := p.prog.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Runtime, st.RunCount
}

func buildStatic(t *testing.T, dir, name, src string) string {
	t.Helper()
	c := filepath.Join(dir, name+".c")
	bin := filepath.Join(dir, name)
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, c).CombinedOutput(); err != nil {
		t.Fatalf("gcc -static %s (libc6-dev provides the static libc): %v\n%s", name, err, out)
	}
	return bin
}

// vforkLoopC executes argv[2] argv[1] times, one vfork and execve each, and
// fails on the first child that does not exit 0.
const vforkLoopC = `#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
	if (argc < 3) return 2;
	long n = atol(argv[1]);
	char *av[] = {argv[2], NULL}, *ev[] = {NULL};
	for (long i = 0; i < n; i++) {
		int st;
		pid_t p = vfork();
		if (p == 0) { execve(argv[2], av, ev); _exit(127); }
		if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 1;
	}
	return 0;
}
`

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
