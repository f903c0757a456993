package bench_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBenchMedianAndSpread(t *testing.T) {
	nan := math.NaN()
	for _, tt := range []struct {
		name           string
		in             []float64
		median, lo, hi float64
	}{
		{"empty", nil, nan, nan, nan},
		{"only NaN", []float64{nan, nan}, nan, nan, nan},
		{"one", []float64{3}, 3, 3, 3},
		{"odd, unsorted", []float64{5, 1, 3}, 3, 1, 5},
		{"even: mean of the middle two", []float64{4, 1, 3, 2}, 2.5, 1, 4},
		{"NaN left out", []float64{nan, 0.9, nan, 1.1, 1.0}, 1.0, 0.9, 1.1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			assertFloat(t, tt.median, benchMedian(tt.in), "median")
			lo, hi := benchSpread(tt.in)
			assertFloat(t, tt.lo, lo, "min")
			assertFloat(t, tt.hi, hi, "max")
			for i := range in {
				assertFloat(t, in[i], tt.in[i], "input left in place")
			}
		})
	}
}

func assertFloat(t *testing.T, want, got float64, msg string) {
	t.Helper()
	if math.IsNaN(want) {
		assert.True(t, math.IsNaN(got), "%s: want NaN, got %v", msg, got)
		return
	}
	assert.InDelta(t, want, got, 1e-9, msg)
}

func TestBenchPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	var hundred []int
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, i)
	}
	for _, tt := range []struct {
		name     string
		in       []time.Duration
		p50, p99 time.Duration
	}{
		{"empty", nil, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond},
		{"1..100 (nearest rank)", ms(hundred...), 50 * time.Millisecond, 99 * time.Millisecond},
		{"two: p99 is the larger", ms(300, 100), 100 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p50, p99 := benchPercentiles(tt.in)
			assert.Equal(t, tt.p50, p50)
			assert.Equal(t, tt.p99, p99)
		})
	}
}

// fakeRun is a run in which every configuration ran every load for rounds rounds, with figures chosen per test.
type fakeRun struct {
	rounds int
	// rate of nothing attached per load; ratio of each configuration to it (the same every round unless spread).
	base   map[string]float64
	ratio  map[benchConfig]float64
	spread float64 // per-round ratio moves by ±spread around ratio
	cpu    map[benchConfig]map[string]float64
	bpf    map[benchConfig]float64
}

func (f fakeRun) results() *benchResults {
	r := newBenchResults(benchConfigs, benchLoads)
	r.machine, r.rounds, r.seconds, r.streams = "test machine", f.rounds, 3, 2
	for round := range f.rounds {
		for _, cfg := range benchConfigs {
			for _, l := range benchLoads {
				s := benchSample{rate: f.base[l.name], execs: 9000, records: -1, seen: math.NaN(), bpfNS: math.NaN(), cpuUS: math.NaN(),
					filtered: math.NaN(), kernelLost: math.NaN(), userLost: math.NaN()}
				if l.build {
					s.execs = -1
				}
				if cfg != cfgNone {
					ratio := f.ratio[cfg]
					if f.rounds > 1 {
						ratio += f.spread * (2*float64(round)/float64(f.rounds-1) - 1)
					}
					s.rate *= ratio
					s.seen, s.bpfNS, s.cpuUS = 9100, f.bpf[cfg], f.cpu[cfg][l.name]
					s.kernelLost, s.userLost = 0, 0
				}
				switch cfg {
				case cfgFull:
					s.records = max(s.execs, 40)
					s.lat = []time.Duration{250 * time.Millisecond, 440 * time.Millisecond}
				case cfgShipped, cfgCompilers, cfgContainers:
					s.records = 0
				case cfgExecsnoop:
					s.records, s.userLost = s.execs, math.NaN()
				}
				if cfg == cfgCompilers {
					s.filtered = 9100
				}
				r.add(cfg, l, s)
			}
		}
	}
	for _, cfg := range benchConfigs[1:] {
		r.totals[cfg].idleCPUMsPerS, r.totals[cfg].idleSeconds, r.totals[cfg].idleRssAnonKiB = 0.8, 60, 12*1024
	}
	return r
}

// passingRun meets every target: 5 rounds, ratios above the thresholds, CPU below execsnoop's.
func passingRun() fakeRun {
	every := func(v float64) map[string]float64 {
		m := map[string]float64{}
		for _, l := range benchLoads {
			m[l.name] = v
		}
		return m
	}
	return fakeRun{
		rounds: 5,
		base:   map[string]float64{loadHostStorm.name: 5000, loadHostMake.name: 8, loadContainerStorm.name: 4000, loadCIRunner.name: 7},
		ratio:  map[benchConfig]float64{cfgShipped: 0.99, cfgCompilers: 0.995, cfgContainers: 0.995, cfgFull: 0.95, cfgExecsnoop: 0.9},
		spread: 0.005,
		cpu: map[benchConfig]map[string]float64{
			cfgShipped: every(5), cfgCompilers: every(2), cfgContainers: every(3), cfgFull: every(10), cfgExecsnoop: every(12),
		},
		// A storm exec takes streams / rate = 2 / 5000 s = 400 µs: 0.4% is 1,600 ns, 0.1% is 400 ns.
		bpf: map[benchConfig]float64{cfgShipped: 1500, cfgCompilers: 300, cfgContainers: 300, cfgFull: 1500, cfgExecsnoop: 17000},
	}
}

func targetStatus(t *testing.T, r *benchResults, prefix string) benchTarget {
	t.Helper()
	var found []benchTarget
	for _, tg := range evaluateBenchTargets(r) {
		if strings.HasPrefix(tg.name, prefix) {
			found = append(found, tg)
		}
	}
	require.Len(t, found, 1, "one target named %q…", prefix)
	return found[0]
}

func TestBenchTargets(t *testing.T) {
	for _, tt := range []struct {
		name   string
		run    func(*fakeRun)      // changes the figures before the run is made
		res    func(*benchResults) // changes the made run
		target string
		status string // prefix of the status
		figure string // substring of the figure
	}{
		{name: "all met: shipped host storm", target: "shipped, host storm", status: statusMet, figure: "99.0% (98.5%–99.5%); 5.0 vs 12.0 µs"},
		{name: "all met: container storm at 97%", target: "shipped, container storm: ≥ 97%", status: statusMet},
		{name: "all met: CI runner", target: "CI-runner pod", status: statusMet, figure: "5.0 vs 12.0 µs: 0.42×"},
		{name: "all met: BPF storm", target: "BPF, storm exec", status: statusMet, figure: "1500 ns of a 400 µs exec: 0.375%"},
		{name: "all met: BPF filtered", target: "BPF, exec the filter drops", status: statusMet, figure: "0.075%"},
		{name: "all met: idle", target: "idle (shipped)", status: statusMet, figure: "0.80 ms/s over 60 s"},
		{name: "all met: no loss", target: "held: 0 lost", status: statusMet, figure: "45000 records / 45000 execs"},
		{name: "all met: latency", target: "held: exec → sink p99", status: statusMet, figure: "440ms"},
		{name: "all met: RssAnon", target: "held: idle RssAnon", status: statusMet, figure: "12.0 MiB"},
		{
			name:   "throughput below the ratio",
			run:    func(f *fakeRun) { f.ratio[cfgShipped] = 0.975 },
			target: "shipped, host storm", status: statusNotMet + " (throughput)",
		},
		{
			name:   "97.5% meets the container storm's 97%",
			run:    func(f *fakeRun) { f.ratio[cfgShipped] = 0.975 },
			target: "shipped, container storm", status: statusMet,
		},
		{
			name:   "CPU above execsnoop's fails the throughput target too",
			run:    func(f *fakeRun) { f.cpu[cfgShipped][loadHostMake.name] = 12.5 },
			target: "shipped, host make -j2", status: statusNotMet + " (CPU)",
		},
		{
			name: "both",
			run: func(f *fakeRun) {
				f.ratio[cfgShipped] = 0.9
				f.cpu[cfgShipped][loadHostStorm.name] = 13
			},
			target: "shipped, host storm", status: statusNotMet + " (throughput, CPU)",
		},
		{
			name:   "fewer than 5 rounds: indicative",
			run:    func(f *fakeRun) { f.rounds = 1 },
			target: "shipped, host storm", status: statusMet + "; indicative: 1 round(s)",
		},
		{
			name:   "CI runner at 2× is met, above is not",
			run:    func(f *fakeRun) { f.cpu[cfgShipped][loadCIRunner.name] = 24.1 },
			target: "CI-runner pod", status: statusNotMet, figure: "2.01×",
		},
		{
			name:   "full export make within 4×",
			run:    func(f *fakeRun) { f.cpu[cfgFull][loadHostMake.name] = 48 },
			target: "full export, host make -j2", status: statusMet, figure: "4.00×",
		},
		{
			name:   "full export storm above 1.0×",
			run:    func(f *fakeRun) { f.cpu[cfgFull][loadHostStorm.name] = 12.1 },
			target: "full export, host storm", status: statusNotMet,
		},
		{
			name:   "BPF above 0.4%",
			run:    func(f *fakeRun) { f.bpf[cfgShipped] = 1700 },
			target: "BPF, storm exec", status: statusNotMet, figure: "0.425%",
		},
		{
			name:   "prefilter not available",
			res:    func(r *benchResults) { r.totals[cfgCompilers].unavailable = "helm template: receiver.prefilter" },
			target: "BPF, exec the filter drops", status: statusNotAvailable + ": " + string(cfgCompilers),
		},
		{
			name:   "execsnoop not available",
			res:    func(r *benchResults) { r.totals[cfgExecsnoop].unavailable = "no tracefs" },
			target: "CI-runner pod", status: statusNotAvailable + ": execsnoop",
		},
		{
			name: "a lost record",
			res: func(r *benchResults) {
				s := r.samples[cfgFull][loadHostStorm.name]
				s[2].records--
			},
			target: "held: 0 lost", status: statusNotMet, figure: "44999 records / 45000 execs",
		},
		{
			name: "a kernel drop",
			res: func(r *benchResults) {
				r.samples[cfgFull][loadHostStorm.name][0].kernelLost = 3
			},
			target: "held: 0 lost", status: statusNotMet, figure: "lost 3 in the kernel, 0 in user space",
		},
		{
			name:   "idle above 1 ms/s",
			res:    func(r *benchResults) { r.totals[cfgShipped].idleCPUMsPerS = 5.5 },
			target: "idle (shipped)", status: statusNotMet,
		},
		{
			name:   "idle not measured",
			res:    func(r *benchResults) { r.totals[cfgShipped].idleCPUMsPerS = math.NaN() },
			target: "idle (shipped)", status: statusNotAvailable,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := passingRun()
			if tt.run != nil {
				tt.run(&f)
			}
			r := f.results()
			if tt.res != nil {
				tt.res(r)
			}
			tg := targetStatus(t, r, tt.target)
			assert.True(t, strings.HasPrefix(tg.status, tt.status), "status %q, want prefix %q", tg.status, tt.status)
			assert.Contains(t, tg.figure, tt.figure)
		})
	}
}

func TestBenchTargetsAllMet(t *testing.T) {
	targets := evaluateBenchTargets(passingRun().results())
	assert.Len(t, targets, 12, "every target of the issue, each once")
	for _, tg := range targets {
		assert.Equal(t, statusMet, tg.status, tg.name)
	}
}

func TestFormatBenchReport(t *testing.T) {
	r := passingRun().results()
	r.totals[cfgContainers].unavailable = "the collector exited (exit status 1): invalid prefilter"
	r.totals[cfgShipped].drops["otelcol_receiver_ebpf_exec_kernel_dropped_records"] = 0
	out := formatBenchReport(r)
	lines := strings.Split(out, "\n")
	assert.Equal(t, "Machine: test machine.", lines[0])

	row := func(prefix string) string {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line %q… in\n%s", prefix, out)
		return ""
	}
	assert.Equal(t, "| host storm | nothing attached | 5000 execs/s | 100.0% (100.0%–100.0%) | — | — | — | — | — |",
		row("| host storm | nothing attached |"))
	assert.Equal(t, "| host storm | shipped (chart defaults) | 4950 execs/s | 99.0% (98.5%–99.5%) | 1500 | 5.0 | 0 / 45000 | 0 / 0 | — |",
		row("| host storm | shipped (chart defaults) |"))
	assert.Equal(t, "| host storm | shipped, prefilter: compilers | 4975 execs/s | 99.5% (99.0%–100.0%) | 300 | 2.0 | 0 / 45000, 45500 filtered in kernel | 0 / 0 | — |",
		row("| host storm | shipped, prefilter: compilers |"))
	assert.Equal(t, "| host storm | full export | 4750 execs/s | 95.0% (94.5%–95.5%) | 1500 | 10.0 | 45000 / 45000 | 0 / 0 | 250ms / 440ms |",
		row("| host storm | full export |"))
	assert.Equal(t, "| host storm | execsnoop | 4500 execs/s | 90.0% (89.5%–90.5%) | 17000 | 12.0 | 45000 / 45000 | 0 / — | — |",
		row("| host storm | execsnoop |"))
	assert.Equal(t, "| CI-runner pod make -j2 | shipped (chart defaults) | 6.93 builds/s | 99.0% (98.5%–99.5%) | 1500 | 5.0 | 0 / 45500 seen | 0 / 0 | — |",
		row("| CI-runner pod make -j2 | shipped (chart defaults) |"))
	assert.Equal(t, "| host make -j2 | execsnoop | 7.20 builds/s | 90.0% (89.5%–90.5%) | 17000 | 12.0 | — / 45500 seen | 0 / — | — |",
		row("| host make -j2 | execsnoop |"))
	assert.Equal(t, "| container storm | shipped, prefilter: containers | not available | — | — | — | — | — | — |",
		row("| container storm | shipped, prefilter: containers |"))
	assert.Contains(t, out, "*shipped, prefilter: containers* not available: the collector exited (exit status 1): invalid prefilter.")
	assert.Equal(t, "| shipped (chart defaults) | 0.80 ms/s over 60 s | 12.0 MiB | 0.0 MiB | otelcol_receiver_ebpf_exec_kernel_dropped_records = 0 |",
		row("| shipped (chart defaults) | 0.80"))
	assert.Equal(t, "| shipped, prefilter: containers | not available | — | — | — |", row("| shipped, prefilter: containers | not available | — | — | — |"))
	_, targets, ok := strings.Cut(out, "| target | figure | status |\n|---|---|---|\n")
	require.True(t, ok, "the targets table follows")
	assert.Len(t, strings.Split(strings.TrimSpace(targets), "\n"), 12, "one line per target")
	// Loads × configurations rows, in order.
	var first []string
	for _, l := range lines {
		if strings.HasPrefix(l, "| ") && strings.Count(l, " | ") == 8 && !strings.HasPrefix(l, "| load ") {
			first = append(first, strings.SplitN(l, " | ", 3)[0]+" | "+strings.SplitN(l, " | ", 3)[1])
		}
	}
	require.Len(t, first, len(benchLoads)*len(benchConfigs))
	assert.Equal(t, "| host storm | nothing attached", first[0])
	assert.Equal(t, "| CI-runner pod make -j2 | execsnoop", first[len(first)-1])
}

func TestBenchEstimate(t *testing.T) {
	// The default run: 6 configurations, 4 loads, 5 rounds of 3 s, 60 s idle.
	full := benchEstimate(benchConfigs, len(benchLoads), 5, 3, 60)
	assert.Equal(t, 105*time.Second+5*(4*3.1+2+4*3.8+4*(5+4*4.5))*time.Second, full)
	assert.Less(t, full, 12*time.Minute, "make bench stays under 15 minutes with the build and the compile")
	// The validation run: 1 round of 1 s, 5 s idle.
	assert.Less(t, benchEstimate(benchConfigs, len(benchLoads), 1, 1, 5), 3*time.Minute)
}

func TestBenchPooledCPU(t *testing.T) {
	nan := math.NaN()
	// Two rounds: 0 ticks over 500 execs, then one 10 ms tick over 500: 10 µs per exec over both.
	assertFloat(t, 10, benchPooledCPU([]benchSample{{cpuUS: 0, seen: 500}, {cpuUS: 20, seen: 500}}), "pooled")
	assertFloat(t, 20, benchPooledCPU([]benchSample{{cpuUS: nan, seen: nan}, {cpuUS: 20, seen: 500}}), "NaN left out")
	assertFloat(t, nan, benchPooledCPU([]benchSample{{cpuUS: nan, seen: nan}}), "no figures")
}
