package bench_test

// The pure half of the benchmark harness: what a run measured, the two tables made from it, and the issue's
// targets evaluated on the same figures. No root, no kernel: report_table_test.go tests it with made-up runs.

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// benchConfig is what is attached to the exec path while the loads run.
type benchConfig string

const (
	cfgNone benchConfig = "nothing attached"
	// cfgShipped is the DaemonSet's configuration as the chart renders it with its defaults.
	cfgShipped benchConfig = "shipped (chart defaults)"
	// cfgCompilers and cfgContainers are the shipped configuration with the receiver's in-kernel prefilter, set
	// through the chart's receiver.prefilter value.
	cfgCompilers  benchConfig = "shipped, prefilter: compilers"
	cfgContainers benchConfig = "shipped, prefilter: containers"
	// cfgFull exports every exec: the receiver, compiler_detector and batch with their defaults.
	cfgFull      benchConfig = "full export"
	cfgExecsnoop benchConfig = "execsnoop"
)

// benchConfigs is every configuration, in the order each round runs them and the tables list them.
var benchConfigs = []benchConfig{cfgNone, cfgShipped, cfgCompilers, cfgContainers, cfgFull, cfgExecsnoop}

// benchLoad is one exec load.
type benchLoad struct {
	name      string
	container bool // runs in a runc container whose pod is in the test kube-apiserver
	build     bool // `make -j2 -B` of testdata/project, repeated; otherwise the exec storm
}

var (
	loadHostStorm      = benchLoad{name: "host storm"}
	loadHostMake       = benchLoad{name: "host make -j2", build: true}
	loadContainerStorm = benchLoad{name: "container storm", container: true}
	loadCIRunner       = benchLoad{name: "CI-runner pod make -j2", container: true, build: true}
)

var benchLoads = []benchLoad{loadHostStorm, loadHostMake, loadContainerStorm, loadCIRunner}

// benchSample is one load run under one configuration.
type benchSample struct {
	rate  float64 // execs/s of the storm, or builds/s
	execs int     // successful execs the storm performed; -1 for builds
	// seen is how many execs the tracer's BPF program ran for: every exec on the machine during the run and its
	// drain, not only the load's. NaN without a tracer.
	seen  float64
	bpfNS float64 // BPF program run time per seen exec; NaN without a tracer
	cpuUS float64 // tracer user+sys CPU per seen exec, µs; NaN without a tracer
	// records carry the run's tag and reached the sink (execsnoop: its output lines); -1 when the tracer cannot tell.
	records int
	// filtered is what the kernel prefilter counted and did not send; NaN without a prefilter.
	filtered float64
	// kernelLost are records the kernel could not reserve (execsnoop: perf buffer "Lost N events"); userLost are
	// records dropped or refused in user space. NaN when the tracer has no such counter.
	kernelLost, userLost float64
	lat                  []time.Duration // exec → sink, per record
}

// benchTotals are per-configuration figures over the whole run.
type benchTotals struct {
	unavailable    string  // why the configuration could not run; "" when it ran
	idleCPUMsPerS  float64 // CPU per second of wall time while idle; NaN when not measured
	idleSeconds    int
	idleRssAnonKiB int
	peakHWMKiB     int
	drops          map[string]float64 // every drop counter, summed over rounds
}

// benchResults is one whole run.
type benchResults struct {
	machine         string
	rounds, seconds int
	streams         int // parallel streams of the storm
	configs         []benchConfig
	loads           []benchLoad
	samples         map[benchConfig]map[string][]benchSample
	totals          map[benchConfig]*benchTotals
}

func newBenchResults(configs []benchConfig, loads []benchLoad) *benchResults {
	r := &benchResults{configs: configs, loads: loads, samples: map[benchConfig]map[string][]benchSample{}, totals: map[benchConfig]*benchTotals{}}
	for _, c := range configs {
		r.samples[c] = map[string][]benchSample{}
		r.totals[c] = &benchTotals{idleCPUMsPerS: math.NaN(), drops: map[string]float64{}}
	}
	return r
}

func (r *benchResults) add(cfg benchConfig, l benchLoad, s benchSample) {
	r.samples[cfg][l.name] = append(r.samples[cfg][l.name], s)
}

func (r *benchResults) available(cfg benchConfig) bool {
	t, ok := r.totals[cfg]
	return ok && t.unavailable == ""
}

// benchRow is one configuration under one load, summarized over rounds.
type benchRow struct {
	rounds                      int
	rate                        float64 // median
	ratio, ratioMin, ratioMax   float64 // each round's rate over nothing attached's in the same round
	bpfNS, cpuUS                float64 // medians over rounds
	records, execs              int     // sums; records -1 when unknown, execs -1 for builds
	seen, filtered              float64 // sums; NaN when unknown
	kernelLost, userLost        float64 // sums; NaN when unknown
	p50, p99                    time.Duration
	latencies                   int
	hasRecordCount, hasExecsRun bool
}

func (r *benchResults) row(cfg benchConfig, l benchLoad) (benchRow, bool) {
	ss := r.samples[cfg][l.name]
	if len(ss) == 0 {
		return benchRow{}, false
	}
	base := r.samples[cfgNone][l.name]
	row := benchRow{rounds: len(ss), hasRecordCount: true, hasExecsRun: !l.build}
	var rates, ratios, bpf, cpu []float64
	var lat []time.Duration
	row.seen, row.filtered, row.kernelLost, row.userLost = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	for i, s := range ss {
		rates = append(rates, s.rate)
		if i < len(base) && base[i].rate > 0 {
			ratios = append(ratios, s.rate/base[i].rate)
		}
		bpf, cpu = append(bpf, s.bpfNS), append(cpu, s.cpuUS)
		lat = append(lat, s.lat...)
		if s.records < 0 {
			row.hasRecordCount = false
		}
		row.records += s.records
		row.execs += s.execs
		row.seen = nanSum(row.seen, s.seen)
		row.filtered = nanSum(row.filtered, s.filtered)
		row.kernelLost = nanSum(row.kernelLost, s.kernelLost)
		row.userLost = nanSum(row.userLost, s.userLost)
	}
	row.rate = benchMedian(rates)
	row.ratio = benchMedian(ratios)
	row.ratioMin, row.ratioMax = benchSpread(ratios)
	row.bpfNS, row.cpuUS = benchMedian(bpf), benchMedian(cpu)
	if l.build {
		// A build window costs a light tracer a clock tick or two of CPU: over all rounds together the ticks add
		// up to a figure, where a median of single rounds would round to 0 or one tick.
		row.cpuUS = benchPooledCPU(ss)
	}
	row.p50, row.p99 = benchPercentiles(lat)
	row.latencies = len(lat)
	return row, true
}

// benchPooledCPU is the tracer CPU of all rounds over the execs of all rounds, µs per exec; NaN without figures.
func benchPooledCPU(ss []benchSample) float64 {
	var cpu, seen float64
	for _, s := range ss {
		if math.IsNaN(s.cpuUS) || math.IsNaN(s.seen) {
			continue
		}
		cpu += s.cpuUS * s.seen
		seen += s.seen
	}
	if seen == 0 {
		return math.NaN()
	}
	return cpu / seen
}

// nanSum adds b to a, where NaN means "no figure": NaN + x = x.
func nanSum(a, b float64) float64 {
	switch {
	case math.IsNaN(b):
		return a
	case math.IsNaN(a):
		return b
	}
	return a + b
}

// benchMedian is the median of v, NaNs left out; NaN when nothing is left.
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

// benchSpread is the smallest and largest of v, NaNs left out.
func benchSpread(v []float64) (lo, hi float64) {
	lo, hi = math.NaN(), math.NaN()
	for _, x := range v {
		if math.IsNaN(x) {
			continue
		}
		if math.IsNaN(lo) || x < lo {
			lo = x
		}
		if math.IsNaN(hi) || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// benchPercentiles are the nearest-rank p50 and p99 of lat (zero when empty).
func benchPercentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	lat = slices.Clone(lat)
	slices.Sort(lat)
	rank := func(p int) time.Duration { return lat[max(0, (len(lat)*p+99)/100-1)] }
	return rank(50), rank(99)
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

// formatBenchReport renders the run: the machine line, the load table, the per-configuration table and the
// targets.
func formatBenchReport(r *benchResults) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", r.machine)
	b.WriteString("| load | configuration | throughput | vs nothing: median (min–max) | BPF ns/exec | CPU µs/exec | records / execs | lost: kernel / user space | exec→sink p50 / p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range r.loads {
		for _, cfg := range r.configs {
			b.WriteString("| " + strings.Join(r.rowCells(cfg, l), " | ") + " |\n")
		}
	}
	var notes []string
	for _, cfg := range r.configs {
		if t := r.totals[cfg]; t.unavailable != "" {
			notes = append(notes, fmt.Sprintf("*%s* not available: %s.", cfg, t.unavailable))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}

	b.WriteString("\n| configuration | idle CPU | idle RssAnon | peak RSS (VmHWM, max) | drop counters (sum over rounds) |\n|---|---:|---:|---:|---|\n")
	for _, cfg := range r.configs {
		if cfg == cfgNone {
			continue
		}
		t := r.totals[cfg]
		if t.unavailable != "" {
			fmt.Fprintf(&b, "| %s | not available | — | — | — |\n", cfg)
			continue
		}
		idle := "—"
		if !math.IsNaN(t.idleCPUMsPerS) {
			idle = fmt.Sprintf("%.2f ms/s over %d s", t.idleCPUMsPerS, t.idleSeconds)
		}
		var drops []string
		for _, name := range slices.Sorted(maps.Keys(t.drops)) {
			drops = append(drops, fmt.Sprintf("%s = %g", name, t.drops[name]))
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f MiB | %.1f MiB | %s |\n", cfg, idle,
			float64(t.idleRssAnonKiB)/1024, float64(t.peakHWMKiB)/1024, strings.Join(drops, ", "))
	}

	b.WriteString("\n| target | figure | status |\n|---|---|---|\n")
	for _, tg := range evaluateBenchTargets(r) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", tg.name, tg.figure, tg.status)
	}
	return b.String()
}

// rowCells are the cells of one load × configuration row.
func (r *benchResults) rowCells(cfg benchConfig, l benchLoad) []string {
	cells := []string{l.name, string(cfg)}
	if !r.available(cfg) {
		return append(cells, "not available", "—", "—", "—", "—", "—", "—")
	}
	row, ok := r.row(cfg, l)
	if !ok {
		return append(cells, "—", "—", "—", "—", "—", "—", "—")
	}
	rate := fmt.Sprintf("%.0f execs/s", row.rate)
	if l.build {
		rate = fmt.Sprintf("%.2f builds/s", row.rate)
	}
	vs := benchPct(row.ratio)
	if row.rounds > 1 && !math.IsNaN(row.ratioMin) {
		vs += fmt.Sprintf(" (%s–%s)", benchPct(row.ratioMin), benchPct(row.ratioMax))
	}
	cells = append(cells, rate, vs, benchNum(row.bpfNS, "%.0f"), benchNum(row.cpuUS, "%.1f"))

	// records / execs: what the sink got against what the load did (storm) or the tracer saw (builds).
	records := "—"
	switch {
	case cfg == cfgNone:
	case l.build && row.hasRecordCount:
		records = fmt.Sprintf("%d / %s seen", row.records, benchNum(row.seen, "%.0f"))
	case l.build:
		records = fmt.Sprintf("— / %s seen", benchNum(row.seen, "%.0f"))
	case row.hasRecordCount:
		records = fmt.Sprintf("%d / %d", row.records, row.execs)
	}
	if !math.IsNaN(row.filtered) {
		records += fmt.Sprintf(", %.0f filtered in kernel", row.filtered)
	}
	lost := "—"
	if !math.IsNaN(row.kernelLost) || !math.IsNaN(row.userLost) {
		lost = benchNum(row.kernelLost, "%.0f") + " / " + benchNum(row.userLost, "%.0f")
	}
	lat := "—"
	if row.latencies > 0 {
		lat = row.p50.Round(time.Millisecond).String() + " / " + row.p99.Round(time.Millisecond).String()
	}
	return append(cells, records, lost, lat)
}

// Target statuses.
const (
	statusMet          = "met"
	statusNotMet       = "**not met**"
	statusNotAvailable = "not available"
)

// benchMinRounds is how many rounds a throughput target needs to count.
const benchMinRounds = 5

// benchTarget is one of the targets, evaluated on the run.
type benchTarget struct{ name, figure, status string }

// evaluateBenchTargets checks every target against the run's own figures. A throughput target counts only with
// the median of benchMinRounds rounds or more, and only together with its CPU target.
func evaluateBenchTargets(r *benchResults) []benchTarget {
	var out []benchTarget
	unavailable := func(name string, cfgs ...benchConfig) bool {
		for _, c := range cfgs {
			if !r.available(c) {
				out = append(out, benchTarget{name, "—", statusNotAvailable + ": " + string(c) + " did not run"})
				return true
			}
		}
		return false
	}
	rowOf := func(c benchConfig, l benchLoad) (benchRow, bool) {
		row, ok := r.row(c, l)
		return row, ok && !math.IsNaN(row.cpuUS)
	}
	status := func(met bool) string {
		if met {
			return statusMet
		}
		return statusNotMet
	}

	// Throughput with its CPU target: the shipped configuration against nothing attached and execsnoop.
	for _, tg := range []struct {
		load  benchLoad
		ratio float64
	}{{loadHostStorm, 0.98}, {loadHostMake, 0.98}, {loadContainerStorm, 0.97}} {
		name := fmt.Sprintf("shipped, %s: ≥ %.0f%% of nothing attached, CPU/exec ≤ execsnoop's", tg.load.name, tg.ratio*100)
		if unavailable(name, cfgShipped, cfgExecsnoop) {
			continue
		}
		sh, ok1 := rowOf(cfgShipped, tg.load)
		es, ok2 := rowOf(cfgExecsnoop, tg.load)
		if !ok1 || !ok2 || math.IsNaN(sh.ratio) {
			out = append(out, benchTarget{name, "—", statusNotAvailable + ": no figures"})
			continue
		}
		fig := fmt.Sprintf("%s (%s–%s); %.1f vs %.1f µs", benchPct(sh.ratio), benchPct(sh.ratioMin), benchPct(sh.ratioMax), sh.cpuUS, es.cpuUS)
		throughput, cpu := sh.ratio >= tg.ratio, sh.cpuUS <= es.cpuUS
		st := status(throughput && cpu)
		switch {
		case !throughput && !cpu:
			st += " (throughput, CPU)"
		case !throughput:
			st += " (throughput)"
		case !cpu:
			st += " (CPU)"
		}
		if sh.rounds < benchMinRounds {
			st += fmt.Sprintf("; indicative: %d round(s), a throughput target needs %d", sh.rounds, benchMinRounds)
		}
		out = append(out, benchTarget{name, fig, st})
	}

	// CPU per exec against execsnoop's.
	for _, tg := range []struct {
		cfg    benchConfig
		load   benchLoad
		factor float64
		label  string
	}{
		{cfgShipped, loadCIRunner, 2, "CI-runner pod (shipped)"},
		{cfgFull, loadHostStorm, 1, "full export, host storm"},
		{cfgFull, loadHostMake, 4, "full export, host make -j2"},
	} {
		name := fmt.Sprintf("%s: CPU/exec ≤ %.1f× execsnoop's", tg.label, tg.factor)
		if unavailable(name, tg.cfg, cfgExecsnoop) {
			continue
		}
		a, ok1 := rowOf(tg.cfg, tg.load)
		es, ok2 := rowOf(cfgExecsnoop, tg.load)
		if !ok1 || !ok2 || es.cpuUS <= 0 {
			out = append(out, benchTarget{name, "—", statusNotAvailable + ": no figures"})
			continue
		}
		out = append(out, benchTarget{name,
			fmt.Sprintf("%.1f vs %.1f µs: %.2f×", a.cpuUS, es.cpuUS, a.cpuUS/es.cpuUS),
			status(a.cpuUS <= tg.factor*es.cpuUS)})
	}

	// BPF time against an exec's own wall time: a storm stream runs one exec at a time, so an exec takes
	// streams / rate of the storm with nothing attached.
	for _, tg := range []struct {
		cfg   benchConfig
		limit float64
		label string
	}{
		{cfgShipped, 0.004, "BPF, storm exec (shipped, host storm)"},
		{cfgCompilers, 0.001, "BPF, exec the filter drops (prefilter: compilers, host storm)"},
	} {
		name := fmt.Sprintf("%s: ≤ %.1f%% of the exec's wall time", tg.label, tg.limit*100)
		if unavailable(name, tg.cfg) {
			continue
		}
		row, ok := r.row(tg.cfg, loadHostStorm)
		none, ok2 := r.row(cfgNone, loadHostStorm)
		if !ok || !ok2 || math.IsNaN(row.bpfNS) || none.rate <= 0 || r.streams <= 0 {
			out = append(out, benchTarget{name, "—", statusNotAvailable + ": no figures"})
			continue
		}
		wallNS := float64(r.streams) / none.rate * 1e9
		share := row.bpfNS / wallNS
		out = append(out, benchTarget{name,
			fmt.Sprintf("%.0f ns of a %.0f µs exec: %.3f%%", row.bpfNS, wallNS/1e3, share*100), status(share <= tg.limit)})
	}

	// Idle.
	const idleName = "idle (shipped): ≤ 1 ms of CPU per second"
	if !unavailable(idleName, cfgShipped) {
		t := r.totals[cfgShipped]
		if math.IsNaN(t.idleCPUMsPerS) {
			out = append(out, benchTarget{idleName, "—", statusNotAvailable + ": not measured"})
		} else {
			out = append(out, benchTarget{idleName, fmt.Sprintf("%.2f ms/s over %d s", t.idleCPUMsPerS, t.idleSeconds), status(t.idleCPUMsPerS <= 1)})
		}
	}

	// Held from before: no loss at the storm's rate, latency, idle memory.
	const lostName = "held: 0 lost at the maximum exec rate (full export, host storm)"
	if !unavailable(lostName, cfgFull) {
		if row, ok := r.row(cfgFull, loadHostStorm); ok {
			lost := nanSum(0, row.kernelLost) + nanSum(0, row.userLost)
			out = append(out, benchTarget{lostName,
				fmt.Sprintf("%d records / %d execs; lost %s in the kernel, %s in user space", row.records, row.execs,
					benchNum(row.kernelLost, "%.0f"), benchNum(row.userLost, "%.0f")),
				status(row.records >= row.execs && lost == 0)})
		}
	}
	const latName = "held: exec → sink p99 ≤ 500 ms (full export, host storm)"
	if !unavailable(latName, cfgFull) {
		if row, ok := r.row(cfgFull, loadHostStorm); ok && row.latencies > 0 {
			out = append(out, benchTarget{latName, row.p99.Round(time.Millisecond).String(), status(row.p99 <= 500*time.Millisecond)})
		} else {
			out = append(out, benchTarget{latName, "—", statusNotAvailable + ": no records"})
		}
	}
	const rssName = "held: idle RssAnon ≤ 60 MiB (shipped)"
	if !unavailable(rssName, cfgShipped) {
		if kib := r.totals[cfgShipped].idleRssAnonKiB; kib > 0 {
			out = append(out, benchTarget{rssName, fmt.Sprintf("%.1f MiB", float64(kib)/1024), status(kib <= 60*1024)})
		} else {
			out = append(out, benchTarget{rssName, "—", statusNotAvailable + ": not measured"})
		}
	}
	return out
}

// benchEstimate is how long the harness runs on a quiet machine, from the costs measured there: a collector
// configuration's start, warm-up and stop take about 5 s per round and each of its loads about 1.5 s of drain
// (more where records are exported: a pipeline flush), execsnoop's 2 s and 0.8 s; setup (chart renders,
// kube-apiserver, containers) about 40 s and the idle window's settling 5 s.
func benchEstimate(configs []benchConfig, loads, rounds, seconds, idleSeconds int) time.Duration {
	perRound := 0.0
	for _, c := range configs {
		switch c {
		case cfgNone:
			perRound += float64(loads) * (float64(seconds) + 0.1)
		case cfgExecsnoop:
			perRound += 2 + float64(loads)*(float64(seconds)+0.8)
		default:
			perRound += 5 + float64(loads)*(float64(seconds)+1.5)
		}
	}
	return time.Duration((40 + 5 + float64(idleSeconds) + float64(rounds)*perRound) * float64(time.Second))
}
