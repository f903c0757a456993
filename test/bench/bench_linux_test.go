//go:build linux

package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
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
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// The benchmark harness of `make bench`. It is a test so that it
// shares the distribution tests' helpers, and it is opt-in: it runs for
// minutes, needs root, and measures the whole machine.
//
// Environment:
//
//	COMPILERWATCH_BENCH=1            run it (make bench sets it)
//	COMPILERWATCH_BENCH_ROUNDS=5     rounds; each runs every configuration once, A/B/C in turn
//	COMPILERWATCH_BENCH_SECONDS=3    length of each load run
//	COMPILERWATCH_BENCH_STREAMS=N    parallel exec streams of the storm (default: CPUs)
//	COMPILERWATCH_BENCH_COMPRESSION  the otlp_grpc exporter's compression (default gzip, its default)
const (
	benchEnv = "COMPILERWATCH_BENCH"
	// benchResultsDir and benchDoc are relative to the repository root.
	benchResultsDir = "bench-results"
	benchDoc        = "docs/benchmarks.md"
	benchDocBegin   = "<!-- bench-table:begin -->"
	benchDocEnd     = "<!-- bench-table:end -->"
	// defaultRingSize is the receiver's default ring_buffer_size, which the
	// benchmark runs with.
	defaultRingSize = "8 MiB"
)

// benchMode is one load.
type benchMode struct {
	name    string
	streams int
	rate    int  // execs per second over all streams; 0 = as fast as possible
	build   bool // `make -j2` of testdata/project instead of exec loops
}

// benchConfig is what is attached to the exec path while a load runs.
type benchConfig string

const (
	cfgNone      benchConfig = "nothing attached"
	cfgCollector benchConfig = "compilerwatch"
	cfgExecsnoop benchConfig = "execsnoop"
	// cfgPrefilter is the same distribution with the receiver's in-kernel
	// prefilter on: the loads run on the host, so every exec is counted and
	// none is sent.
	cfgPrefilter benchConfig = "compilerwatch, prefilter: containers"
)

var benchConfigs = []benchConfig{cfgNone, cfgCollector, cfgPrefilter, cfgExecsnoop}

// benchSample is one load run under one configuration.
type benchSample struct {
	rate      float64 // execs/s, or builds/s
	execs     int     // successful execs performed; -1 when unknown (builds)
	events    int     // records carrying the run's tag that reached the sink (or execsnoop's file)
	bpfNS     float64 // BPF program time per exec; NaN without a tracer
	cpuPerEvt float64 // tracer user+sys CPU per traced exec, µs; NaN without a tracer
	lat       []time.Duration
}

// benchTotals are per-configuration figures gathered over a whole run.
type benchTotals struct {
	idleRssAnonKiB []int
	peakHWMKiB     int
	drops          map[string]float64
}

func TestBench(t *testing.T) {
	if os.Getenv(benchEnv) != "1" {
		t.Skipf("the benchmark harness runs only with %s=1 (make bench)", benchEnv)
	}
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "gcc", "make", "execsnoop")
	distro.Binary(t)

	rounds := benchEnvInt(t, "COMPILERWATCH_BENCH_ROUNDS", 5)
	seconds := benchEnvInt(t, "COMPILERWATCH_BENCH_SECONDS", 3)
	streams := benchEnvInt(t, "COMPILERWATCH_BENCH_STREAMS", runtime.NumCPU())
	modes := []benchMode{
		{name: "storm", streams: streams},
		{name: "paced 500/s", streams: 1, rate: 500},
		{name: "paced 2000/s", streams: streams, rate: 2000},
		{name: "make -j2", build: true},
	}

	tools := buildBenchTools(t)
	// kernel.bpf_stats_enabled through the BPF_ENABLE_STATS fd: the kernel
	// turns it off again when the fd closes, even if this process dies.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	require.NoError(t, err, "enabling BPF run-time statistics")
	t.Cleanup(func() { _ = stats.Close() })
	benchEnsureTracefs(t)
	sink := startBenchSink(t)

	runID := fmt.Sprintf("cwb%d", time.Now().Unix())
	samples := map[benchConfig]map[string][]benchSample{}
	totals := map[benchConfig]*benchTotals{}
	for _, c := range benchConfigs {
		samples[c] = map[string][]benchSample{}
		totals[c] = &benchTotals{drops: map[string]float64{}}
	}
	start := time.Now()
	for round := range rounds {
		for _, cfg := range benchConfigs {
			tr := startBenchTracer(t, cfg, sink, tools)
			if pid := tr.pid(); pid > 0 {
				// Idle memory: after start-up has settled, before any load.
				time.Sleep(2 * time.Second)
				totals[cfg].idleRssAnonKiB = append(totals[cfg].idleRssAnonKiB, benchProcStatusKiB(t, pid, "RssAnon"))
			}
			var tags []string
			for _, m := range modes {
				tag := fmt.Sprintf("%s-%d-%s-%s", runID, round, strings.ReplaceAll(string(cfg), " ", ""), benchSlug(m.name))
				tags = append(tags, tag)
				samples[cfg][m.name] = append(samples[cfg][m.name], runBenchMode(t, tr, tools, m, tag, seconds))
			}
			if pid := tr.pid(); pid > 0 {
				totals[cfg].peakHWMKiB = max(totals[cfg].peakHWMKiB, benchProcStatusKiB(t, pid, "VmHWM"))
			}
			counts, drops := tr.stop(t, tags)
			for name, v := range drops {
				totals[cfg].drops[name] += v
			}
			// execsnoop's file is only complete once it has exited.
			if counts != nil {
				for i, m := range modes {
					s := samples[cfg][m.name]
					s[len(s)-1].events = counts[tags[i]]
				}
			}
		}
		t.Logf("round %d/%d done after %s", round+1, rounds, time.Since(start).Round(time.Second))
	}

	report := formatBenchReport(modes, samples, totals, benchMachine(rounds, seconds, streams))
	fmt.Println(report)
	writeBenchReport(t, runID, report)
}

// benchTools are the load generators, built with the machine's gcc.
type benchTools struct {
	dir, execload, noop, project string
}

func buildBenchTools(t *testing.T) benchTools {
	t.Helper()
	dir := t.TempDir()
	src, err := filepath.Abs("testdata")
	require.NoError(t, err)
	tl := benchTools{
		dir:      dir,
		execload: filepath.Join(dir, "execload"),
		noop:     filepath.Join(dir, "noop"),
		project:  filepath.Join(src, "project"),
	}
	for _, args := range [][]string{
		{"-O2", "-Wall", "-o", tl.execload, filepath.Join(src, "execload.c")},
		{"-O2", "-static", "-o", tl.noop, filepath.Join(src, "noop.c")},
	} {
		out, err := exec.Command("gcc", args...).CombinedOutput()
		require.NoError(t, err, "gcc %v:\n%s", args, out)
	}
	return tl
}

// runBenchMode runs one load with tag in its argv (or its directory) and
// measures the tracer around it.
func runBenchMode(t *testing.T, tr benchTracer, tl benchTools, m benchMode, tag string, seconds int) benchSample {
	t.Helper()
	pid := tr.pid()
	var cpu0 time.Duration
	var bpf0 benchBPF
	if pid > 0 {
		cpu0, bpf0 = benchProcCPU(t, pid), benchBPFStats(t, pid)
	}
	s := benchSample{execs: -1}
	if m.build {
		s.rate = runBenchBuilds(t, tl, tag, seconds)
	} else {
		args := []string{"-s", strconv.Itoa(m.streams), "-d", strconv.Itoa(seconds)}
		if m.rate > 0 {
			args = append(args, "-r", strconv.Itoa(m.rate))
		}
		out, err := exec.Command(tl.execload, append(args, tl.noop, tag)...).Output()
		require.NoError(t, err, "execload %v: %s", args, out)
		var failed int
		var secs float64
		_, err = fmt.Sscanf(string(out), "execs=%d failed=%d seconds=%f", &s.execs, &failed, &secs)
		require.NoError(t, err, "execload output %q", out)
		s.rate = float64(s.execs) / secs
	}
	tr.drain(t, tag, s.execs)
	s.bpfNS, s.cpuPerEvt = math.NaN(), math.NaN()
	if pid > 0 {
		cpu, bpf := benchProcCPU(t, pid)-cpu0, benchBPFStats(t, pid).sub(bpf0)
		if bpf.runs > 0 {
			s.bpfNS = float64(bpf.runtimeNS) / float64(bpf.runs)
			s.cpuPerEvt = float64(cpu.Microseconds()) / float64(bpf.runs)
		}
	}
	s.events, s.lat = tr.received(tag)
	return s
}

// runBuilds rebuilds the project (make -j2 -B) in a directory named after
// tag, so its records carry the tag in process.working_directory, until
// seconds have passed. It returns builds per second.
func runBenchBuilds(t *testing.T, tl benchTools, tag string, seconds int) float64 {
	t.Helper()
	dir := filepath.Join(tl.dir, tag)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	entries, err := os.ReadDir(tl.project)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(tl.project, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	start := time.Now()
	builds := 0
	for time.Since(start) < time.Duration(seconds)*time.Second {
		out, err := exec.Command("make", "-s", "-j2", "-B", "-C", dir).CombinedOutput()
		require.NoError(t, err, "make:\n%s", out)
		builds++
	}
	return float64(builds) / time.Since(start).Seconds()
}

// tracer is one configuration while it runs.
type benchTracer interface {
	pid() int // 0 when nothing is attached
	// drain waits until the records of tag's run have arrived, as far as
	// the tracer lets the harness see them.
	drain(t *testing.T, tag string, execs int)
	// received returns the records carrying tag seen so far, with their exec → sink latencies.
	received(tag string) (int, []time.Duration)
	// stop ends the tracer; it returns per-tag record counts when they are
	// only known at the end (nil otherwise), and every drop counter.
	stop(t *testing.T, tags []string) (map[string]int, map[string]float64)
}

func startBenchTracer(t *testing.T, cfg benchConfig, sink *benchSink, tl benchTools) benchTracer {
	t.Helper()
	switch cfg {
	case cfgCollector:
		return startBenchCollector(t, sink, os.Getenv("COMPILERWATCH_BENCH_COMPRESSION"), "")
	case cfgPrefilter:
		c := startBenchCollector(t, sink, os.Getenv("COMPILERWATCH_BENCH_COMPRESSION"), "prefilter: containers")
		return &benchPrefilter{benchCollector: c, last: benchScrapeCounter(t, c.metrics, benchFilteredMetric)}
	case cfgExecsnoop:
		return startBenchExecsnoop(t, tl.dir, tl.noop)
	}
	return benchNoTracer{}
}

type benchNoTracer struct{}

func (benchNoTracer) pid() int                                                       { return 0 }
func (benchNoTracer) drain(*testing.T, string, int)                                  {}
func (benchNoTracer) received(string) (int, []time.Duration)                         { return 0, nil }
func (benchNoTracer) stop(*testing.T, []string) (map[string]int, map[string]float64) { return nil, nil }

// benchCollector is the distribution with the full pipeline, exporting to
// the harness's OTLP sink, with its internal metrics on a pull endpoint.
type benchCollector struct {
	c       *distro.Collector
	sink    *benchSink
	metrics string
}

func startBenchCollector(t *testing.T, sink *benchSink, compression, receiverCfg string) *benchCollector {
	t.Helper()
	if compression == "" {
		compression = "gzip" // the otlp_grpc exporter's default
	}
	metrics := distro.FreePort(t)
	host, port, err := net.SplitHostPort(metrics)
	require.NoError(t, err)
	c := distro.Start(t, fmt.Sprintf(`
receivers:
  ebpf_exec: {%s}
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
`, receiverCfg, sink.addr, compression, host, port))
	return &benchCollector{c: c, sink: sink, metrics: metrics}
}

const benchFilteredMetric = "otelcol_receiver_ebpf_exec_filtered_execs"

// benchPrefilter is the collector with prefilter: containers. Its loads run
// on the host, so no record reaches the sink; what it reports per load is
// how many execs the kernel counted as filtered (every exec on the machine
// in that time, so at least the load's).
type benchPrefilter struct {
	*benchCollector
	last     float64
	filtered int
}

func (b *benchPrefilter) drain(t *testing.T, tag string, execs int) {
	t.Helper()
	// The receiver reads the kernel counters every second: poll the metric
	// until it covers the run's execs (builds: one stats interval), bounded.
	deadline := time.Now().Add(1500 * time.Millisecond)
	if execs < 0 {
		time.Sleep(1100 * time.Millisecond)
	}
	now := benchScrapeCounter(t, b.metrics, benchFilteredMetric)
	for execs >= 0 && int(now-b.last) < execs && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		now = benchScrapeCounter(t, b.metrics, benchFilteredMetric)
	}
	sent, _ := b.sink.count(tag)
	require.Zero(t, sent, "the prefilter sent records of host execs")
	b.filtered, b.last = int(now-b.last), now
}

func (b *benchPrefilter) received(string) (int, []time.Duration) { return b.filtered, nil }

// benchScrapeCounter reads one unlabelled counter from the collector's internal metrics (0 while absent).
func benchScrapeCounter(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err, "scraping the collector's internal metrics")
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			require.NoError(t, err, "metric line %q", line)
			sum += v
		}
	}
	require.NoError(t, sc.Err())
	return sum
}

func (b *benchCollector) pid() int { return b.c.Cmd.Process.Pid }

func (b *benchCollector) drain(t *testing.T, tag string, execs int) {
	// Builds have no known exec count: wait out two default flush intervals
	// of the receiver and the batch processor.
	deadline := time.Now().Add(5 * time.Second)
	if execs < 0 {
		deadline = time.Now().Add(time.Second)
	}
	last, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		n, _ := b.sink.count(tag)
		if execs >= 0 && n >= execs {
			return
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if execs >= 0 && time.Since(lastChange) > 2*time.Second {
			return // lost records: stop waiting
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *benchCollector) received(tag string) (int, []time.Duration) { return b.sink.count(tag) }

func (b *benchCollector) stop(t *testing.T, _ []string) (map[string]int, map[string]float64) {
	t.Helper()
	drops := benchScrapeDrops(t, b.metrics)
	b.c.Stop(t)
	return nil, drops
}

// benchDropMetric matches every internal metric that counts lost or refused data:
// the receiver's kernel and user-space drops, refused batches, and the
// exporter's and processors' failures.
var benchDropMetric = regexp.MustCompile(`^otelcol_[a-z0-9_]*(dropped|refused|failed|lost)[a-z0-9_]*`)

// benchExpectedDrops are the counters of every stage that can lose a record.
var benchExpectedDrops = []string{
	"otelcol_receiver_ebpf_exec_kernel_dropped_records", // ring buffer full, no scratch buffer
	"otelcol_receiver_ebpf_exec_dropped_records",        // decode errors, batches refused downstream
	"otelcol_receiver_refused_log_records",
	"otelcol_exporter_enqueue_failed_log_records",
	"otelcol_exporter_send_failed_log_records",
}

func benchScrapeDrops(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err, "scraping the collector's internal metrics")
	defer func() { _ = resp.Body.Close() }()
	drops := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	otelcol := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "otelcol_") {
			otelcol++
		}
		name := benchDropMetric.FindString(line)
		if name == "" {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		// Keep the reason label apart: it says which stage dropped.
		if i := strings.Index(line, `reason="`); i >= 0 {
			name += "{" + line[i:i+strings.IndexByte(line[i+8:], '"')+9] + "}"
		}
		drops[name] += v
	}
	require.NoError(t, sc.Err())
	require.NotZero(t, otelcol, "no collector internal metrics at %s", addr)
	// A counter appears only once incremented: absent means zero (with the
	// prefilter on, no record flows and no drop counter is ever created).
	for _, name := range benchExpectedDrops {
		if _, ok := drops[name]; !ok {
			drops[name] = 0
		}
	}
	return drops
}

// benchExecsnoop is libbpf-tools' execsnoop writing to a file.
type benchExecsnoop struct {
	noop   string
	cmd    *exec.Cmd
	out    string
	stderr *distro.SyncBuffer
	done   chan error
}

func startBenchExecsnoop(t *testing.T, dir, noop string) *benchExecsnoop {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("execsnoop-%d.txt", time.Now().UnixNano()))
	f, err := os.Create(out)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	e := &benchExecsnoop{noop: noop, out: out, stderr: &distro.SyncBuffer{}, done: make(chan error, 1)}
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
			t.Fatalf("execsnoop exited (%v): %s", err, e.stderr.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "execsnoop did not attach within 30s: %s", e.stderr.String())
		_ = exec.Command("/bin/true").Run()
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

func (e *benchExecsnoop) pid() int { return e.cmd.Process.Pid }

// drain: execsnoop polls its perf buffer every 100ms; its file is read at stop.
func (e *benchExecsnoop) drain(*testing.T, string, int) { time.Sleep(300 * time.Millisecond) }

func (e *benchExecsnoop) received(string) (int, []time.Duration) { return 0, nil }

var benchLostEvents = regexp.MustCompile(`Lost (\d+) events`)

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
	var lost float64
	for _, m := range benchLostEvents.FindAllStringSubmatch(e.stderr.String(), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		lost += v
	}
	f, err := os.Open(e.out)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, tag := range tags {
			// Only the no-op's own line (PCOMM noop): execload's argv ends with the same words.
			if strings.HasPrefix(line, "noop ") && strings.HasSuffix(strings.TrimSpace(line), " "+e.noop+" "+tag) {
				counts[tag]++
			}
		}
	}
	require.NoError(t, sc.Err())
	require.NoError(t, os.Remove(e.out))
	return counts, map[string]float64{"execsnoop lost events (perf buffer)": lost}
}

// benchSink is the OTLP backend: the collector's own OTLP gRPC receiver on
// loopback, with a consumer that counts tagged records and their latency
// and keeps nothing else.
type benchSink struct {
	addr   string
	mu     sync.Mutex
	counts map[string]int
	lat    map[string][]time.Duration
}

func startBenchSink(t *testing.T) *benchSink {
	t.Helper()
	s := &benchSink{addr: distro.FreePort(t), counts: map[string]int{}, lat: map[string][]time.Duration{}}
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	cm := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": s.addr}}})
	require.NoError(t, cm.Unmarshal(cfg))
	next, err := consumer.NewLogs(s.consume)
	require.NoError(t, err)
	rcv, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return s
}

func (s *benchSink) consume(_ context.Context, ld plog.Logs) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				if tag := benchRecordTag(lr.Attributes()); tag != "" {
					s.counts[tag]++
					s.lat[tag] = append(s.lat[tag], now.Sub(lr.Timestamp().AsTime()))
				}
			}
		}
	}
	return nil
}

func (s *benchSink) count(tag string) (int, []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[tag], slices.Clone(s.lat[tag])
}

// recordTag finds a harness run tag: argv[1] of the exec loop's no-op, or
// the directory of a build.
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

// readBPFStats reads the fdinfo of every BPF program fd of pid: robust
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

// procCPU is user+sys CPU of every thread of pid (/proc/<pid>/stat).
func benchProcCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// Fields after the comm, which may contain spaces: state is field 3,
	// utime 14 and stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	require.NoError(t, err1)
	require.NoError(t, err2)
	// USER_HZ is 100 on every Linux ABI Go supports.
	return time.Duration(ut+st) * 10 * time.Millisecond
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

// ensureTracefs mounts tracefs for execsnoop's syscall tracepoints when it
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

func benchMachine(rounds, seconds, streams int) string {
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
		rounds, seconds, streams, load)
}

// formatBenchReport renders the table: medians over rounds, throughput as the
// median of each round's ratio to "nothing attached" in the same round, and
// latency percentiles over every record of every round.
func formatBenchReport(modes []benchMode, samples map[benchConfig]map[string][]benchSample, totals map[benchConfig]*benchTotals, machine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine)
	b.WriteString("| load | configuration | execs/s | vs nothing | BPF ns/exec | CPU µs/exec | records / execs | exec→sink p50 | p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range modes {
		base := samples[cfgNone][m.name]
		for _, cfg := range benchConfigs {
			ss := samples[cfg][m.name]
			var rates, ratios, bpf, cpu []float64
			var lat []time.Duration
			execs, events := 0, 0
			for i, s := range ss {
				rates = append(rates, s.rate)
				if i < len(base) && base[i].rate > 0 {
					ratios = append(ratios, s.rate/base[i].rate)
				}
				bpf, cpu = append(bpf, s.bpfNS), append(cpu, s.cpuPerEvt)
				lat = append(lat, s.lat...)
				execs += s.execs
				events += s.events
			}
			unit := ""
			if m.build {
				unit = " builds"
			}
			row := []string{m.name, string(cfg), fmt.Sprintf("%.0f%s", benchMedian(rates), unit)}
			if m.build {
				row[2] = fmt.Sprintf("%.2f builds", benchMedian(rates))
			}
			row = append(row, benchPct(benchMedian(ratios)), benchNum(benchMedian(bpf), "%.0f"), benchNum(benchMedian(cpu), "%.1f"))
			switch {
			case cfg == cfgNone:
				row = append(row, "—")
			case cfg == cfgPrefilter && m.build:
				row = append(row, fmt.Sprintf("0 sent, %d counted / —", events))
			case cfg == cfgPrefilter:
				row = append(row, fmt.Sprintf("0 sent, %d counted / %d", events, execs))
			case m.build && cfg == cfgExecsnoop:
				row = append(row, "—") // execsnoop does not print the working directory
			case m.build:
				row = append(row, fmt.Sprintf("%d / —", events))
			default:
				row = append(row, fmt.Sprintf("%d / %d", events, execs))
			}
			p50, p99 := "—", "—"
			if len(lat) > 0 {
				slices.Sort(lat)
				p50 = lat[len(lat)/2].Round(time.Millisecond).String()
				p99 = lat[min(len(lat)-1, len(lat)*99/100)].Round(time.Millisecond).String()
			}
			row = append(row, p50, p99)
			b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
	}
	b.WriteString("\n| configuration | idle RssAnon (median) | peak RSS (VmHWM, max) | drop counters (sum over rounds) |\n|---|---:|---:|---|\n")
	for _, cfg := range benchConfigs[1:] {
		tot := totals[cfg]
		var idle []float64
		for _, v := range tot.idleRssAnonKiB {
			idle = append(idle, float64(v))
		}
		var drops []string
		for _, name := range slices.Sorted(maps.Keys(tot.drops)) {
			drops = append(drops, fmt.Sprintf("%s = %g", name, tot.drops[name]))
		}
		fmt.Fprintf(&b, "| %s | %.1f MiB | %.1f MiB | %s |\n", cfg, benchMedian(idle)/1024, float64(tot.peakHWMKiB)/1024, strings.Join(drops, ", "))
	}
	fmt.Fprintf(&b, "\nRing buffer: the receiver's default ring_buffer_size, %s (kernel memory, mapped into the collector but not in its RssAnon).\n", defaultRingSize)
	return b.String()
}

func benchMedian(v []float64) float64 {
	v = slices.DeleteFunc(slices.Clone(v), func(x float64) bool { return math.IsNaN(x) })
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func benchPct(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", v*100)
}

func benchNum(v float64, format string) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf(format, v)
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
