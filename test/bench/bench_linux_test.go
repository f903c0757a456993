//go:build linux

package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"golang.org/x/sys/unix"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// The benchmark harness of `make bench`. It is a test so that it
// shares the distribution tests' helpers, and it is opt-in: it runs for
// minutes, needs root, and measures the whole machine.
//
// Environment:
//
//	COMPILERWATCH_BENCH=1              run it (make bench sets it)
//	COMPILERWATCH_BENCH_ROUNDS=5       rounds; each runs every configuration once, in turn
//	COMPILERWATCH_BENCH_SECONDS=3      length of each load run
//	COMPILERWATCH_BENCH_IDLE_SECONDS=60  the idle CPU window
//	COMPILERWATCH_BENCH_STREAMS=N      parallel exec streams of the storm (default: CPUs)
//	COMPILERWATCH_BENCH_CONFIGS=a,b    only these configurations (none is always run): shipped, compilers,
//	                                   containers, full, execsnoop
//	COMPILERWATCH_BENCH_COMPRESSION    the full export's otlp_grpc compression (default gzip, its default)
const (
	benchEnv = "COMPILERWATCH_BENCH"
	// benchResultsDir and benchDoc are relative to the repository root.
	benchResultsDir = "bench-results"
	benchDoc        = "docs/benchmarks.md"
	benchDocBegin   = "<!-- bench-table:begin -->"
	benchDocEnd     = "<!-- bench-table:end -->"
	// benchSettle is how long a freshly started tracer is left alone before its idle CPU is measured.
	benchSettle = 5 * time.Second
)

// benchShort names each configuration in tags and in COMPILERWATCH_BENCH_CONFIGS.
var benchShort = map[benchConfig]string{
	cfgNone: "none", cfgShipped: "shipped", cfgCompilers: "compilers", cfgContainers: "containers",
	cfgFull: "full", cfgExecsnoop: "execsnoop",
}

// benchChartPrefilter is the receiver prefilter of each chart configuration. It is set through the chart's
// receiver.prefilter value; where the chart does not accept that value, the shipped render gets it as a config
// overlay instead (benchChart.prefilter), with the compiler_catalog extension that "compilers" reads the catalog
// from.
var benchChartPrefilter = map[benchConfig]string{
	cfgShipped:    "",
	cfgCompilers:  "compilers",
	cfgContainers: "containers",
}

func TestBench(t *testing.T) {
	if os.Getenv(benchEnv) != "1" {
		t.Skipf("the benchmark harness runs only with %s=1 (make bench)", benchEnv)
	}
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "gcc", "make", "execsnoop", "runc", "busybox")
	bin := distro.Binary(t)
	began := time.Now()
	progress := func(format string, args ...any) {
		t.Logf("bench %s: %s", time.Since(began).Round(time.Second), fmt.Sprintf(format, args...))
	}

	res := newBenchResults(benchSelectedConfigs(t), benchLoads)
	res.rounds = benchEnvInt(t, "COMPILERWATCH_BENCH_ROUNDS", 5)
	res.seconds = benchEnvInt(t, "COMPILERWATCH_BENCH_SECONDS", 3)
	res.streams = benchEnvInt(t, "COMPILERWATCH_BENCH_STREAMS", runtime.NumCPU())
	idleSeconds := benchEnvInt(t, "COMPILERWATCH_BENCH_IDLE_SECONDS", 60)

	progress("%d configurations × %d loads × %d rounds of %d s, %d s idle: about %s on a quiet machine",
		len(res.configs), len(res.loads), res.rounds, res.seconds, idleSeconds,
		benchEstimate(res.configs, len(res.loads), res.rounds, res.seconds, idleSeconds).Round(time.Minute/6))
	tools := buildBenchTools(t)
	// kernel.bpf_stats_enabled through the BPF_ENABLE_STATS fd: the kernel
	// turns it off again when the fd closes, even if this process dies.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	require.NoError(t, err, "enabling BPF run-time statistics")
	t.Cleanup(func() { _ = stats.Close() })
	benchEnsureTracefs(t)
	sink := startBenchSink(t)

	// The chart, rendered once per chart configuration. Every render sets only the exporter besides: its
	// endpoint (the bench's sink) and plaintext. The shipped render's ClusterRole is what the agent user gets.
	exporter := []string{"exporter.endpoint=" + sink.addr, "exporter.tls.insecure=true"}
	shipped, err := renderBenchChart(t, exporter...)
	require.NoError(t, err, "the chart's defaults render")
	charts := map[benchConfig]*benchChart{cfgShipped: shipped}
	for _, cfg := range res.configs {
		prefilter, ok := benchChartPrefilter[cfg]
		if !ok || prefilter == "" {
			continue
		}
		ch, err := renderBenchChart(t, append(exporter, "receiver.prefilter="+prefilter)...)
		if err != nil {
			progress("%s: %v; the shipped render with the prefilter as a config overlay instead", cfg, err)
			overlay := *shipped
			overlay.prefilter = prefilter
			ch = &overlay
		}
		charts[cfg] = ch
	}
	env := startBenchEnv(t, tools, shipped.clusterRole)
	progress("kube-apiserver, pods %s and %s ready", env.storm.ID()[:12], env.ci.ID()[:12])

	start := func(cfg benchConfig) (benchTracer, error) {
		switch cfg {
		case cfgNone:
			return benchNoTracer{}, nil
		case cfgExecsnoop:
			return startBenchExecsnoop(t, tools.dir)
		case cfgFull:
			return startBenchFullExport(t, bin, sink)
		}
		return startBenchChartCollector(t, bin, cfg, charts[cfg], env, sink)
	}

	// Idle: every tracer at once, left alone; then each one's CPU over the window and its anonymous memory.
	idle := map[benchConfig]benchTracer{}
	for _, cfg := range res.configs[1:] {
		if !res.available(cfg) {
			continue
		}
		tr, err := start(cfg)
		if err != nil {
			res.totals[cfg].unavailable = err.Error()
			progress("%s: not available: %v", cfg, err)
			continue
		}
		idle[cfg] = tr
	}
	progress("idle: %d tracers started; %s to settle, then %ds of idle CPU", len(idle), benchSettle, idleSeconds)
	time.Sleep(benchSettle)
	cpu0, wall0 := map[benchConfig]time.Duration{}, time.Now()
	for cfg, tr := range idle {
		cpu0[cfg] = benchProcCPU(t, tr.pid())
	}
	time.Sleep(time.Duration(idleSeconds) * time.Second)
	wall := time.Since(wall0)
	for cfg, tr := range idle {
		tot := res.totals[cfg]
		use := distro.CPUUse{CPU: benchProcCPU(t, tr.pid()) - cpu0[cfg], Wall: wall}
		tot.idleCPUMsPerS = float64(use.PerSecond()) / float64(time.Millisecond)
		tot.idleSeconds = idleSeconds
		tot.idleRssAnonKiB = benchProcStatusKiB(t, tr.pid(), "RssAnon")
	}
	for cfg, tr := range idle {
		tr.stop(t, nil)
		tot := res.totals[cfg]
		progress("idle: %s %.2f ms/s, RssAnon %.1f MiB", cfg, tot.idleCPUMsPerS, float64(tot.idleRssAnonKiB)/1024)
	}

	runID := fmt.Sprintf("cwb%d", time.Now().Unix())
	roundsBegan := time.Now()
	for round := range res.rounds {
		for _, cfg := range res.configs {
			if !res.available(cfg) {
				continue
			}
			tr, err := start(cfg)
			require.NoError(t, err, "%s started for the idle window, then failed", cfg)
			benchWarmUp(t, tr, env)
			var tags []string
			var line []string
			for _, l := range res.loads {
				tag := fmt.Sprintf("%s-%d-%s-%s", runID, round, benchShort[cfg], benchSlug(l.name))
				tags = append(tags, tag)
				s := runBenchLoad(t, tr, tools, env, l, tag, res.streams, res.seconds)
				res.add(cfg, l, s)
				if _, chart := charts[cfg]; chart && l == loadCIRunner {
					// The shipped pipeline's point: the CI runner's compiles are found, with their pod.
					require.Positive(t, s.records, "%s: no finding from the CI runner's build", cfg)
					require.Equal(t, s.records, sink.withPod(tag), "%s: every finding carries k8s.pod.name", cfg)
				}
				unit := "execs/s"
				if l.build {
					unit = "builds/s"
				}
				line = append(line, fmt.Sprintf("%s %.4g %s, %s µs/exec", l.name, s.rate, unit, benchNum(s.cpuUS, "%.1f")))
			}
			tot := res.totals[cfg]
			if pid := tr.pid(); pid > 0 {
				tot.peakHWMKiB = max(tot.peakHWMKiB, benchProcStatusKiB(t, pid, "VmHWM"))
			}
			counts, drops := tr.stop(t, tags)
			for name, v := range drops {
				tot.drops[name] += v
			}
			// execsnoop's file is only complete once it has exited.
			for i, l := range res.loads {
				if n, ok := counts[tags[i]]; ok && !l.build {
					s := res.samples[cfg][l.name]
					s[len(s)-1].records = n
				}
			}
			progress("round %d/%d, %s: %s", round+1, res.rounds, cfg, strings.Join(line, "; "))
		}
		per := time.Since(roundsBegan) / time.Duration(round+1)
		progress("round %d/%d done; about %s to go", round+1, res.rounds, (per * time.Duration(res.rounds-round-1)).Round(time.Second))
	}

	res.machine = benchMachine(res)
	report := formatBenchReport(res)
	fmt.Println(report)
	writeBenchReport(t, runID, report)
	progress("done")
}

// benchSelectedConfigs is COMPILERWATCH_BENCH_CONFIGS, or every configuration; nothing attached always runs.
func benchSelectedConfigs(t *testing.T) []benchConfig {
	t.Helper()
	v := os.Getenv("COMPILERWATCH_BENCH_CONFIGS")
	if v == "" {
		return benchConfigs
	}
	want := map[string]bool{"none": true}
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		found := false
		for _, short := range benchShort {
			found = found || short == s
		}
		require.True(t, found, "COMPILERWATCH_BENCH_CONFIGS: unknown configuration %q", s)
		want[s] = true
	}
	return slices.DeleteFunc(slices.Clone(benchConfigs), func(c benchConfig) bool { return !want[benchShort[c]] })
}

// benchTools are the load generators, built with the machine's gcc. Both are static, so the containers run the
// same binaries from a read-only bind mount.
type benchTools struct {
	dir, execload, noop, project string
}

func buildBenchTools(t *testing.T) benchTools {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	src, err := filepath.Abs("testdata")
	require.NoError(t, err)
	tl := benchTools{
		dir:      dir,
		execload: filepath.Join(dir, "execload"),
		noop:     filepath.Join(dir, "noop"),
		project:  filepath.Join(src, "project"),
	}
	for _, args := range [][]string{
		{"-O2", "-Wall", "-static", "-o", tl.execload, filepath.Join(src, "execload.c")},
		{"-O2", "-static", "-o", tl.noop, filepath.Join(src, "noop.c")},
	} {
		out, err := exec.Command("gcc", args...).CombinedOutput()
		require.NoError(t, err, "gcc %v:\n%s", args, out)
	}
	return tl
}

// benchWarmUp makes a freshly started tracer see each container once and waits until it has settled: the
// collector's first sight of a container starts its presence scan and its pod lookup, which a long-running
// collector has done long before.
func benchWarmUp(t *testing.T, tr benchTracer, env *benchCluster) {
	t.Helper()
	if tr.pid() == 0 {
		return
	}
	for _, c := range []*testenv.Container{env.storm, env.ci} {
		c.MustExec(t, "/bin/true")
	}
	tr.drain(t, benchLoad{container: true, build: true}, "", -1)
}

// runBenchLoad runs one load with tag in its argv (storm) or as its build directory's name (make), and measures
// the tracer around it.
func runBenchLoad(t *testing.T, tr benchTracer, tl benchTools, env *benchCluster, l benchLoad, tag string, streams, seconds int) benchSample {
	t.Helper()
	pid := tr.pid()
	var cpu0 time.Duration
	var bpf0 benchBPF
	if pid > 0 {
		cpu0, bpf0 = benchProcCPU(t, pid), benchBPFStats(t, pid)
	}
	secs := strconv.Itoa(seconds)
	var out string
	switch {
	case l.build && l.container:
		benchCopyProject(t, tl, filepath.Join(env.buildDir, tag))
		out = benchContainerRun(t, env.ci, benchToolsMount+"/execload", "-d", secs, "-x",
			"/usr/bin/make", "-s", "-j2", "-B", "-C", benchBuildMount+"/"+tag)
	case l.build:
		dir := filepath.Join(tl.dir, tag)
		benchCopyProject(t, tl, dir)
		makePath, err := exec.LookPath("make")
		require.NoError(t, err)
		out = benchHostRun(t, tl.execload, "-d", secs, "-x", makePath, "-s", "-j2", "-B", "-C", dir)
	case l.container:
		out = benchContainerRun(t, env.storm, benchToolsMount+"/execload", "-s", strconv.Itoa(streams), "-d", secs,
			benchToolsMount+"/noop", tag)
	default:
		out = benchHostRun(t, tl.execload, "-s", strconv.Itoa(streams), "-d", secs, tl.noop, tag)
	}
	var n, failed int
	var elapsed float64
	_, err := fmt.Sscanf(out, "execs=%d failed=%d seconds=%f", &n, &failed, &elapsed)
	require.NoError(t, err, "execload output %q", out)
	s := benchSample{rate: float64(n) / elapsed, execs: n, records: -1}
	if l.build {
		s.execs = -1
	}
	tr.drain(t, l, tag, s.execs)
	s.seen, s.bpfNS, s.cpuUS = math.NaN(), math.NaN(), math.NaN()
	if pid > 0 {
		cpu, bpf := benchProcCPU(t, pid)-cpu0, benchBPFStats(t, pid).sub(bpf0)
		if bpf.runs > 0 {
			s.seen = float64(bpf.runs)
			s.bpfNS = float64(bpf.runtimeNS) / float64(bpf.runs)
			s.cpuUS = float64(cpu.Nanoseconds()) / 1e3 / float64(bpf.runs)
		}
	}
	s.records, s.lat = tr.received(tag)
	// After the CPU reading: a scrape costs the collector CPU of its own.
	s.kernelLost, s.userLost, s.filtered = tr.counters(t)
	return s
}

func benchCopyProject(t *testing.T, tl benchTools, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	entries, err := os.ReadDir(tl.project)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, testenv.CopyFile(filepath.Join(tl.project, e.Name()), filepath.Join(dir, e.Name()), 0o644))
	}
}

func benchHostRun(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	require.NoError(t, err, "%v: %s", argv, out)
	return string(out)
}

func benchContainerRun(t *testing.T, c *testenv.Container, argv ...string) string {
	t.Helper()
	r, err := c.ExecWith(t, testenv.ExecOptions{Timeout: 5 * time.Minute}, argv...)
	require.NoError(t, err)
	require.Zero(t, r.ExitCode, "%v in the container: %s%.2000s", argv, r.Stdout, r.Stderr)
	return r.Stdout
}

// benchTracer is one configuration while it runs.
type benchTracer interface {
	pid() int // 0 when nothing is attached
	// drain waits until the tracer has dealt with the load's execs: their records at the sink where it knows how
	// many to expect, then until the tracer's CPU time stops moving.
	drain(t *testing.T, l benchLoad, tag string, execs int)
	// received returns the records carrying tag seen so far with their exec → sink latencies, or -1 when the
	// tracer tells only at stop.
	received(tag string) (int, []time.Duration)
	// counters returns the records lost in the kernel and in user space, and the execs the kernel prefilter
	// filtered, since the previous call; NaN where the tracer has no such counter.
	counters(t *testing.T) (kernelLost, userLost, filtered float64)
	// stop ends the tracer; it returns per-tag record counts when they are only known at the end (nil otherwise),
	// and every drop counter.
	stop(t *testing.T, tags []string) (map[string]int, map[string]float64)
}

type benchNoTracer struct{}

func (benchNoTracer) pid() int                                 { return 0 }
func (benchNoTracer) drain(*testing.T, benchLoad, string, int) {}
func (benchNoTracer) received(string) (int, []time.Duration)   { return -1, nil }
func (benchNoTracer) counters(*testing.T) (float64, float64, float64) {
	return math.NaN(), math.NaN(), math.NaN()
}
func (benchNoTracer) stop(*testing.T, []string) (map[string]int, map[string]float64) { return nil, nil }

// benchQuiesce waits until pid's CPU time has not moved for 300 ms, at most 3 s: the tracer has finished with
// what the load gave it. CPU time moves in clock ticks (10 ms), so a busy tracer is never taken for a quiet one.
func benchQuiesce(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	last, since := benchProcCPU(t, pid), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if c := benchProcCPU(t, pid); c != last {
			last, since = c, time.Now()
		} else if time.Since(since) >= 300*time.Millisecond {
			return
		}
	}
}

// benchCollector is the distribution exporting to the bench's sink, with its internal metrics on a Prometheus
// pull endpoint.
type benchCollector struct {
	c       *distro.Collector
	sink    *benchSink
	metrics string
	// exports tells whether a load's records reach the sink (the full export: all; only_flagged: the CI
	// runner's compiles).
	exports func(benchLoad) bool
	// flush is the longest a record can wait in the pipeline: the receiver's flush interval plus the batch
	// processor's timeout.
	flush     time.Duration
	prefilter bool
	last      map[string]float64 // counters at the previous scrape
}

// benchReceiverFlush is the receiver's default batch flush interval (neither configuration sets one).
func benchReceiverFlush() time.Duration {
	return ebpfexecreceiver.NewFactory().CreateDefaultConfig().(*ebpfexecreceiver.Config).Batch.FlushInterval
}

// launchBenchCollector starts argv and waits until the collector is ready. A collector that exits first (a
// configuration the distribution refuses) is an error naming its last error line.
func launchBenchCollector(t *testing.T, argv []string) (*distro.Collector, error) {
	t.Helper()
	c := distro.Launch(t, argv...)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.Out.String(), "Everything is ready") {
			return c, nil
		}
		select {
		case err := <-c.Done:
			c.Done <- err
			return nil, fmt.Errorf("the collector exited (%v): %s", err, benchLastError(c.Out.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the collector was not ready within 90s:\n%s", c.Out.String())
	return nil, nil
}

// benchLastError is the collector's output from the last line that mentions an error, on one line, shortened.
func benchLastError(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	from := len(lines) - 1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(strings.ToLower(lines[i]), "error") {
			from = i
			break
		}
	}
	msg := strings.Join(strings.Fields(strings.Join(lines[from:], " ")), " ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	return msg
}

// benchCatalogExtension is the extension through which "prefilter: compilers" reads the compiler_detector's
// catalog.
const benchCatalogExtension = "compiler_catalog"

// startBenchChartCollector runs the chart's rendered config as the DaemonSet would, on the host: its config.yaml
// unchanged, the DaemonSet's environment (K8S_NODE_NAME as the bench's node), and KUBECONFIG for the agent user
// in place of the pod's service account. A second config file, merged over the first by the collector, changes
// only what a process on the host needs: the health_check endpoint moves from 0.0.0.0:13133 to a free loopback
// port, and a Prometheus pull reader joins the chart's metric readers so the bench reads drop counters. With
// ch.prefilter, the overlay also sets the receiver's prefilter (and adds the compiler_catalog extension).
func startBenchChartCollector(t *testing.T, bin string, cfg benchConfig, ch *benchChart, env *benchCluster, sink *benchSink) (*benchCollector, error) {
	t.Helper()
	var rendered map[string]any
	require.NoError(t, sigsyaml.Unmarshal([]byte(ch.config), &rendered))
	metrics := distro.FreePort(t)
	host, port, err := net.SplitHostPort(metrics)
	require.NoError(t, err)
	readers, _ := benchDig(rendered, "service", "telemetry", "metrics", "readers").([]any)
	portNum, err := strconv.Atoi(port)
	require.NoError(t, err)
	readers = append(slices.Clone(readers), map[string]any{
		"pull": map[string]any{"exporter": map[string]any{"prometheus": map[string]any{"host": host, "port": portNum}}},
	})
	extensions := map[string]any{"health_check": map[string]any{"endpoint": distro.FreePort(t)}}
	service := map[string]any{"telemetry": map[string]any{"metrics": map[string]any{"readers": readers}}}
	overlay := map[string]any{"extensions": extensions, "service": service}
	if ch.prefilter != "" {
		overlay["receivers"] = map[string]any{"ebpf_exec": map[string]any{"prefilter": ch.prefilter}}
		if strings.Contains(ch.prefilter, "compilers") {
			extensions[benchCatalogExtension] = map[string]any{}
			list, _ := benchDig(rendered, "service", "extensions").([]any)
			service["extensions"] = append(slices.Clone(list), benchCatalogExtension)
		}
	}
	overrides, err := sigsyaml.Marshal(overlay)
	require.NoError(t, err)
	dir := t.TempDir()
	configPath, overridesPath := filepath.Join(dir, benchConfigKey), filepath.Join(dir, "bench-overrides.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte(ch.config), 0o600))
	require.NoError(t, os.WriteFile(overridesPath, overrides, 0o600))

	batchTimeout := 200 * time.Millisecond // the batch processor's default
	if s, ok := benchDig(rendered, "processors", "batch", "timeout").(string); ok {
		batchTimeout, err = time.ParseDuration(s)
		require.NoError(t, err)
	}
	argv := append([]string{"/usr/bin/env", "-i"}, ch.processEnv(t)...)
	argv = append(argv, "KUBECONFIG="+env.kubeconfig, bin, "--config=file:"+configPath, "--config=file:"+overridesPath)
	c, err := launchBenchCollector(t, argv)
	if err != nil {
		return nil, err
	}
	return &benchCollector{
		c: c, sink: sink, metrics: metrics, flush: benchReceiverFlush() + batchTimeout,
		exports:   func(l benchLoad) bool { return l.container && l.build },
		prefilter: cfg == cfgCompilers || cfg == cfgContainers,
		last:      map[string]float64{},
	}, nil
}

// benchDig walks nested maps.
func benchDig(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

// startBenchFullExport is the configuration that exports every exec: the receiver, compiler_detector and batch
// with their defaults, to the sink over OTLP gRPC.
func startBenchFullExport(t *testing.T, bin string, sink *benchSink) (*benchCollector, error) {
	t.Helper()
	compression := os.Getenv("COMPILERWATCH_BENCH_COMPRESSION")
	if compression == "" {
		compression = "gzip" // the otlp_grpc exporter's default
	}
	metrics := distro.FreePort(t)
	host, port, err := net.SplitHostPort(metrics)
	require.NoError(t, err)
	c, err := launchBenchCollector(t, []string{bin, "--config", distro.WriteConfig(t, fmt.Sprintf(`
receivers:
  ebpf_exec:
processors:
  compiler_detector:
  batch:
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
    compression: %s
service:
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [compiler_detector, batch], exporters: [otlp_grpc]}
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus: {host: %s, port: %s}
`, sink.addr, compression, host, port))})
	if err != nil {
		return nil, err
	}
	return &benchCollector{
		c: c, sink: sink, metrics: metrics, flush: benchReceiverFlush() + 200*time.Millisecond, // batch's default timeout
		exports: func(benchLoad) bool { return true },
		last:    map[string]float64{},
	}, nil
}

func (b *benchCollector) pid() int { return b.c.Cmd.Process.Pid }

func (b *benchCollector) drain(t *testing.T, l benchLoad, tag string, execs int) {
	t.Helper()
	start := time.Now()
	if b.exports(l) && execs >= 0 {
		// Every record of the storm: wait for all of them, or until they stop coming (lost).
		deadline := time.Now().Add(10 * time.Second)
		last, lastChange := -1, time.Now()
		for time.Now().Before(deadline) {
			n, _ := b.sink.count(tag)
			if n >= execs {
				break
			}
			if n != last {
				last, lastChange = n, time.Now()
			} else if time.Since(lastChange) > 2*time.Second {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if b.exports(l) {
		// Records of unknown number: the pipeline's longest wait is over once flush has passed.
		time.Sleep(time.Until(start.Add(b.flush + 100*time.Millisecond)))
	}
	benchQuiesce(t, b.pid())
}

func (b *benchCollector) received(tag string) (int, []time.Duration) { return b.sink.count(tag) }

// Counter names in the collector's internal metrics.
const (
	benchFilteredMetric     = "otelcol_receiver_ebpf_exec_filtered_execs"
	benchKernelDroppedMetic = "otelcol_receiver_ebpf_exec_kernel_dropped_records"
)

func (b *benchCollector) counters(t *testing.T) (kernelLost, userLost, filtered float64) {
	t.Helper()
	now := benchScrape(t, b.metrics)
	delta := func(name string) float64 { return now[name] - b.last[name] }
	filtered = math.NaN()
	if b.prefilter {
		filtered = delta(benchFilteredMetric)
	}
	for name := range now {
		if !benchLost(name) {
			continue
		}
		if name == benchKernelDroppedMetic {
			kernelLost += delta(name)
		} else {
			userLost += delta(name)
		}
	}
	b.last = now
	return kernelLost, userLost, filtered
}

func (b *benchCollector) stop(t *testing.T, _ []string) (map[string]int, map[string]float64) {
	t.Helper()
	drops := map[string]float64{}
	for name, v := range benchScrape(t, b.metrics) {
		if benchLost(name) {
			drops[name] = v
		}
	}
	// A counter appears only once incremented: absent means zero.
	for _, name := range benchExpectedDrops {
		if _, ok := drops[name]; !ok {
			drops[name] = 0
		}
	}
	b.c.Stop(t)
	return nil, drops
}

// benchDropMetric matches every internal metric that counts lost or refused data: the receiver's kernel and
// user-space drops, refused batches, and the exporter's and processors' failures.
var benchDropMetric = regexp.MustCompile(`^otelcol_[a-z0-9_]*(dropped|refused|failed|lost)[a-z0-9_]*`)

// benchNotLost are counters that benchDropMetric matches but that count records dropped by design: only_flagged
// drops every record that is not a finding.
var benchNotLost = map[string]bool{"otelcol_processor_compiler_detector_dropped_records": true}

// benchLost tells whether a counter of the collector's internal metrics counts lost records.
func benchLost(name string) bool {
	return benchDropMetric.MatchString(name) && !benchNotLost[strings.SplitN(name, "{", 2)[0]]
}

// benchExpectedDrops are the counters of every stage that can lose a record.
var benchExpectedDrops = []string{
	benchKernelDroppedMetic,                      // ring buffer full, no scratch buffer
	"otelcol_receiver_ebpf_exec_dropped_records", // decode errors, batches refused downstream
	"otelcol_receiver_refused_log_records",
	"otelcol_exporter_enqueue_failed_log_records",
	"otelcol_exporter_send_failed_log_records",
}

// benchScrape reads the collector's internal metrics: each otelcol_ series' value by name, summed over labels
// except reason, which is kept because it says which stage dropped.
func benchScrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err, "scraping the collector's internal metrics")
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "otelcol_") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		if i := strings.Index(line, `reason="`); i >= 0 {
			name += "{" + line[i:i+strings.IndexByte(line[i+8:], '"')+9] + "}"
		}
		out[name] += v
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out, "no collector internal metrics at %s", addr)
	return out
}

// benchExecsnoop is libbpf-tools' execsnoop writing to a file.
type benchExecsnoop struct {
	cmd    *exec.Cmd
	out    string
	stderr *distro.SyncBuffer
	done   chan error
	lost   float64 // "Lost N events" at the previous counters call
}

func startBenchExecsnoop(t *testing.T, dir string) (*benchExecsnoop, error) {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("execsnoop-%d.txt", time.Now().UnixNano()))
	f, err := os.Create(out)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	e := &benchExecsnoop{out: out, stderr: &distro.SyncBuffer{}, done: make(chan error, 1)}
	e.cmd = exec.Command("execsnoop")
	e.cmd.Stdout, e.cmd.Stderr = f, e.stderr
	require.NoError(t, e.cmd.Start())
	go func() { e.done <- e.cmd.Wait() }()
	t.Cleanup(func() {
		if e.cmd.ProcessState == nil {
			_ = e.cmd.Process.Kill()
			if err := <-e.done; err != nil {
				t.Logf("execsnoop killed at cleanup: %v", err)
			}
		}
	})
	// Attached once its programs run: exec until they have.
	deadline := time.Now().Add(30 * time.Second)
	for benchBPFStats(t, e.pid()).runs == 0 {
		select {
		case err := <-e.done:
			return nil, fmt.Errorf("execsnoop exited (%v): %s", err, e.stderr.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "execsnoop did not attach within 30s: %s", e.stderr.String())
		_ = exec.Command("/bin/true").Run()
		time.Sleep(50 * time.Millisecond)
	}
	return e, nil
}

func (e *benchExecsnoop) pid() int { return e.cmd.Process.Pid }

// drain: execsnoop polls its perf buffer every 100ms; its file is read at stop.
func (e *benchExecsnoop) drain(t *testing.T, _ benchLoad, _ string, _ int) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	benchQuiesce(t, e.pid())
}

func (e *benchExecsnoop) received(string) (int, []time.Duration) { return -1, nil }

var benchLostEvents = regexp.MustCompile(`Lost (\d+) events`)

func (e *benchExecsnoop) lostSoFar() float64 {
	var lost float64
	for _, m := range benchLostEvents.FindAllStringSubmatch(e.stderr.String(), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		lost += v
	}
	return lost
}

func (e *benchExecsnoop) counters(*testing.T) (kernelLost, userLost, filtered float64) {
	now := e.lostSoFar()
	kernelLost, e.lost = now-e.lost, now
	return kernelLost, math.NaN(), math.NaN()
}

func (e *benchExecsnoop) stop(t *testing.T, tags []string) (map[string]int, map[string]float64) {
	t.Helper()
	require.NoError(t, e.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-e.done:
		if err != nil {
			t.Logf("execsnoop exited: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("execsnoop did not exit within 10s of SIGINT")
	}
	f, err := os.Open(e.out)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	counts := map[string]int{}
	for _, tag := range tags {
		counts[tag] = 0
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		// Only the no-op's own line (PCOMM noop): execload's argv ends with the same words.
		if !strings.HasPrefix(line, "noop ") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i >= 0 {
			if _, ok := counts[line[i+1:]]; ok {
				counts[line[i+1:]]++
			}
		}
	}
	require.NoError(t, sc.Err())
	require.NoError(t, os.Remove(e.out))
	return counts, map[string]float64{"execsnoop lost events (perf buffer)": e.lostSoFar()}
}

// benchSink is the OTLP backend: the collector's own OTLP gRPC receiver on loopback, with a consumer that counts
// tagged records and their latency and keeps nothing else. It takes metrics too, since the chart pushes the
// collector's own metrics to the same endpoint, and drops them.
type benchSink struct {
	addr   string
	mu     sync.Mutex
	counts map[string]int
	pods   map[string]int // records whose resource has k8s.pod.name, by tag
	lat    map[string][]time.Duration
}

func startBenchSink(t *testing.T) *benchSink {
	t.Helper()
	s := &benchSink{addr: distro.FreePort(t), counts: map[string]int{}, pods: map[string]int{}, lat: map[string][]time.Duration{}}
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	cm := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": s.addr}}})
	require.NoError(t, cm.Unmarshal(cfg))
	logs, err := consumer.NewLogs(s.consume)
	require.NoError(t, err)
	metrics, err := consumer.NewMetrics(func(context.Context, pmetric.Metrics) error { return nil })
	require.NoError(t, err)
	set := receivertest.NewNopSettings(f.Type())
	// The OTLP receiver shares one server between signals created with the same config.
	rl, err := f.CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	rm, err := f.CreateMetrics(context.Background(), set, cfg, metrics)
	require.NoError(t, err)
	require.NoError(t, rl.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, rm.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, rm.Shutdown(context.Background()))
		require.NoError(t, rl.Shutdown(context.Background()))
	})
	return s
}

func (s *benchSink) consume(_ context.Context, ld plog.Logs) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rl := range ld.ResourceLogs().All() {
		_, pod := rl.Resource().Attributes().Get("k8s.pod.name")
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				if tag := benchRecordTag(lr.Attributes()); tag != "" {
					s.counts[tag]++
					if pod {
						s.pods[tag]++
					}
					s.lat[tag] = append(s.lat[tag], now.Sub(lr.Timestamp().AsTime()))
				}
			}
		}
	}
	return nil
}

// withPod is how many records carrying tag had Kubernetes attributes.
func (s *benchSink) withPod(tag string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[tag]
}

func (s *benchSink) count(tag string) (int, []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[tag], slices.Clone(s.lat[tag])
}

// benchRecordTag finds a harness run tag: argv[1] of the storm's no-op, or the directory of a build.
func benchRecordTag(attrs pcommon.Map) string {
	if v, ok := attrs.Get("process.command_args"); ok && v.Type() == pcommon.ValueTypeSlice && v.Slice().Len() == 2 {
		if a := v.Slice().At(1).Str(); strings.HasPrefix(a, "cwb") {
			return a
		}
	}
	if v, ok := attrs.Get("process.working_directory"); ok {
		if b := filepath.Base(v.Str()); strings.HasPrefix(b, "cwb") {
			return b
		}
	}
	return ""
}

// benchBPF sums run time over the BPF programs a process holds; runs is the
// most runs of any of them (execsnoop runs two programs per exec).
type benchBPF struct{ runtimeNS, runs uint64 }

func (a benchBPF) sub(b benchBPF) benchBPF {
	return benchBPF{runtimeNS: a.runtimeNS - b.runtimeNS, runs: a.runs - b.runs}
}

// benchBPFStats reads the fdinfo of every BPF program fd of pid: robust
// against other BPF users on the machine, unlike matching program names.
func benchBPFStats(t *testing.T, pid int) benchBPF {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	seen := map[string]bool{}
	var st benchBPF
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil || link != "anon_inode:bpf-prog" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		f := benchFdinfo(string(info))
		if seen[f["prog_id"]] {
			continue
		}
		seen[f["prog_id"]] = true
		rt, _ := strconv.ParseUint(f["run_time_ns"], 10, 64)
		rc, _ := strconv.ParseUint(f["run_cnt"], 10, 64)
		st.runtimeNS += rt
		st.runs = max(st.runs, rc)
	}
	return st
}

func benchFdinfo(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// benchProcCPU is user+sys CPU of every thread of pid, live or exited, in clock ticks of 10 ms.
func benchProcCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	c, err := distro.CPUTime(pid)
	require.NoError(t, err)
	return c
}

func benchProcStatusKiB(t *testing.T, pid int, key string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// benchEnsureTracefs mounts tracefs for execsnoop's syscall tracepoints when it
// is not mounted, and unmounts it afterwards.
func benchEnsureTracefs(t *testing.T) {
	t.Helper()
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(dir + "/events"); err == nil {
		return
	}
	require.NoError(t, unix.Mount("nodev", dir, "tracefs", 0, ""), "mounting tracefs for execsnoop")
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
}

func benchEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s", name)
	require.Positive(t, n, "%s", name)
	return n
}

func benchSlug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

func benchMachine(r *benchResults) string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%s, %d CPUs (%s), kernel %s; %d rounds × %ds per load, storm in %d streams; load average at the end %s",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpu, unix.ByteSliceToString(u.Release[:]),
		r.rounds, r.seconds, r.streams, load)
}

// writeBenchReport keeps every run in bench-results/ (gitignored), and the
// latest table in docs/benchmarks.md between its markers.
func writeBenchReport(t *testing.T, runID, report string) {
	t.Helper()
	root := distro.RepoRoot(t)
	resultsDir, docPath := filepath.Join(root, benchResultsDir), filepath.Join(root, benchDoc)
	require.NoError(t, os.MkdirAll(resultsDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(resultsDir, runID+".md"), []byte(report), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(resultsDir, "latest.md"), []byte(report), 0o644))
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Logf("%s not updated: %v", benchDoc, err)
		return
	}
	s := string(doc)
	i, j := strings.Index(s, benchDocBegin), strings.Index(s, benchDocEnd)
	if i < 0 || j < i {
		t.Logf("%s not updated: no %s … %s markers", benchDoc, benchDocBegin, benchDocEnd)
		return
	}
	s = s[:i+len(benchDocBegin)] + "\n" + report + s[j:]
	require.NoError(t, os.WriteFile(docPath, []byte(s), 0o644))
	t.Logf("results in %s/%s.md and %s", benchResultsDir, runID, benchDoc)
}
