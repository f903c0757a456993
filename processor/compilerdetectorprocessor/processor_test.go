package compilerdetectorprocessor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/hold"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	assert.Equal(t, metadata.LogsStability, f.LogsStability())
	require.NoError(t, componenttest.CheckConfigStruct(f.CreateDefaultConfig()))

	p, err := f.CreateLogs(context.Background(), processortest.NewNopSettings(metadata.Type), f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	assert.True(t, p.Capabilities().MutatesData)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, p.ConsumeLogs(context.Background(), goldenInput()))
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, p.Shutdown(context.Background()), "Shutdown twice")

	_, err = f.CreateTraces(context.Background(), processortest.NewNopSettings(metadata.Type), f.CreateDefaultConfig(), consumertest.NewNop())
	assert.Error(t, err, "logs only")
}

func TestShutdownWithoutStart(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	require.NoError(t, h.p.Shutdown(context.Background()))
}

// A make -j style burst: 100 compilations in one container, each a driver with its cc1 and as stages, give one
// finding per compiler; the repeats are counted and carried on the next finding after the window.
func TestDedupBurst(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	ctx := context.Background()
	gxx := execRec{exe: "/usr/bin/x86_64-linux-gnu-g++-12", file: "/usr/bin/g++", argv: []string{"-c", "a.cc"}, anc: []string{"50:make", "1:bash"}, parent: "/usr/bin/make"}
	gcc := recGCC
	gcc.anc, gcc.parent = gxx.anc, gxx.parent
	cc1plus := execRec{exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus", anc: []string{"60:g++", "50:make"}, parent: gxx.exe}
	for batch := 0; batch < 10; batch++ {
		ld := plog.NewLogs()
		sl := appendResource(ld, testContainer, nil)
		for i := 0; i < 5; i++ {
			pid := int64(1000 + batch*100 + i*10)
			appendExec(sl, pid, gcc)
			appendExec(sl, pid+1, under(recCC1, pid, gcc))
			appendExec(sl, pid+2, under(recAs, pid, gcc))
			appendExec(sl, pid+3, gxx)
			appendExec(sl, pid+4, under(cc1plus, pid+3, gxx))
			appendExec(sl, pid+5, under(recAs, pid+3, gxx))
		}
		require.NoError(t, h.p.ConsumeLogs(ctx, ld))
		h.clk.advance(time.Second)
	}
	got := flagged(h.sink.AllLogs())
	require.Len(t, got, 2)
	assert.Equal(t, "gcc", strAttr(got[0].Attributes(), attr.CompilerName))
	assert.Equal(t, "g++", strAttr(got[1].Attributes(), attr.CompilerName))
	assert.Equal(t, int64(2), h.counter(t, metricFlagged))
	assert.Equal(t, int64(98), h.counter(t, metricDeduplicated))
	assert.Equal(t, 300, logCount(h.sink.AllLogs()), "suppressed records flow on unflagged")

	// After the window, the next gcc carries the 49 suppressed repeats.
	h.clk.advance(time.Hour)
	h.sink.Reset()
	ld := plog.NewLogs()
	appendExec(appendResource(ld, testContainer, nil), 5000, gcc)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	got = flagged(h.sink.AllLogs())
	require.Len(t, got, 1)
	v, ok := got[0].Attributes().Get(attr.SuppressedCount)
	require.True(t, ok)
	assert.Equal(t, int64(49), v.Int())

	// g++ saw no record after its window: the sweep emits its count in a summary.
	h.sink.Reset()
	h.p.emitSummaries(ctx, false)
	require.Len(t, h.sink.AllLogs(), 1)
	sum := h.sink.AllLogs()[0].ResourceLogs().At(0)
	assert.Equal(t, testContainer, strAttr(sum.Resource().Attributes(), attr.ContainerID))
	assert.Equal(t, metadata.ScopeName, sum.ScopeLogs().At(0).Scope().Name())
	lr := sum.ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, attr.EventDedupSummary, lr.EventName())
	assert.Equal(t, plog.SeverityNumberWarn, lr.SeverityNumber())
	assert.Equal(t, "WARN", lr.SeverityText())
	assert.Equal(t, "g++", strAttr(lr.Attributes(), attr.CompilerName))
	assert.Equal(t, "/usr/bin/make", strAttr(lr.Attributes(), attr.ParentExecutable))
	assert.Equal(t, attr.RuleUUIDValue, strAttr(lr.Attributes(), attr.RuleUUID))
	v, _ = lr.Attributes().Get(attr.SuppressedCount)
	assert.Equal(t, int64(49), v.Int())
	assert.Equal(t, int64(1), h.counter(t, metricSummaries))

	// Nothing is left to report for g++; gcc's new window has no repeats yet.
	h.sink.Reset()
	require.NoError(t, h.p.Shutdown(ctx))
	assert.Empty(t, h.sink.AllLogs())
}

func TestDedupCountsSurviveShutdown(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	ctx := context.Background()
	require.NoError(t, h.p.Start(ctx, componenttest.NewNopHost()))
	ld := plog.NewLogs()
	sl := appendResource(ld, testContainer, map[string]string{attr.K8sNamespace: "prod"})
	for i := int64(0); i < 3; i++ {
		appendExec(sl, 10+i, execRec{exe: "/usr/bin/rustc", anc: bashAnc, parent: "/usr/bin/bash", origin: "tmpfs"})
	}
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	require.NoError(t, h.p.Shutdown(ctx))

	require.Len(t, h.sink.AllLogs(), 2)
	sum := h.sink.AllLogs()[1].ResourceLogs().At(0)
	assert.Equal(t, "prod", strAttr(sum.Resource().Attributes(), attr.K8sNamespace))
	lr := sum.ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, plog.SeverityNumberError, lr.SeverityNumber(), "keeps the finding's severity")
	v, _ := lr.Attributes().Get(attr.SuppressedCount)
	assert.Equal(t, int64(2), v.Int())
	rt, _ := lr.Attributes().Get(attr.InstalledAtRuntime)
	assert.True(t, rt.Bool())
}

func TestDedupKey(t *testing.T) {
	run := func(key []string) int {
		cfg := createDefaultConfig().(*Config)
		cfg.Dedup.Key = key
		h := newHarness(t, cfg, nil)
		ld := plog.NewLogs()
		sl := appendResource(ld, testContainer, nil)
		appendExec(sl, 1, recGCC)
		other := recGCC
		other.anc, other.parent = []string{"9:make"}, "/usr/bin/make"
		appendExec(sl, 2, other)
		appendExec(appendResource(ld, testContainer2, nil), 3, recGCC)
		require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
		return len(flagged(h.sink.AllLogs()))
	}
	assert.Equal(t, 3, run([]string{dedup.KeyContainerID, dedup.KeyCompiler, dedup.KeyParentExecutable}))
	assert.Equal(t, 2, run([]string{dedup.KeyContainerID, dedup.KeyCompiler}))
	assert.Equal(t, 1, run([]string{dedup.KeyCompiler}))
	assert.Equal(t, 1, run([]string{dedup.KeyHostName, dedup.KeyExecutable}))
}

func TestExclusions(t *testing.T) {
	res := map[string]string{
		attr.K8sNamespace: "build", attr.ContainerImage: "registry.example/team/builder",
		attr.K8sPodLabel + "app": "ci", attr.K8sPodLabel + "tier": "build",
	}
	tests := []struct {
		name     string
		exclude  ExcludeConfig
		rec      execRec
		excluded bool
	}{
		{name: "namespace", exclude: ExcludeConfig{Namespaces: []string{"build"}}, rec: recGCC, excluded: true},
		{name: "other namespace", exclude: ExcludeConfig{Namespaces: []string{"ci"}}, rec: recGCC},
		{name: "image glob", exclude: ExcludeConfig{Images: []string{"registry.example/team/*"}}, rec: recGCC, excluded: true},
		{name: "image glob does not cross /", exclude: ExcludeConfig{Images: []string{"registry.example/*"}}, rec: recGCC},
		{name: "pod label selector", exclude: ExcludeConfig{PodLabels: map[string]string{"app": "ci", "tier": "build"}}, rec: recGCC, excluded: true},
		{name: "pod label selector needs every pair", exclude: ExcludeConfig{PodLabels: map[string]string{"app": "ci", "tier": "web"}}, rec: recGCC},
		{name: "container id", exclude: ExcludeConfig{ContainerIDs: []string{testContainer}}, rec: recGCC, excluded: true},
		{name: "parent path glob", exclude: ExcludeConfig{ParentExecutables: []string{"/usr/bin/ba*"}}, rec: recGCC, excluded: true},
		{name: "parent basename", exclude: ExcludeConfig{ParentExecutables: []string{"bash"}}, rec: recGCC, excluded: true},
		{name: "ancestor executable", exclude: ExcludeConfig{ParentExecutables: []string{"s?"}}, rec: recGCC, excluded: true},
		{name: "ancestor comm is not trusted", exclude: ExcludeConfig{ParentExecutables: []string{"make"}},
			rec: execRec{exe: recGCC.exe, anc: []string{"100:make", "1:sh"}, ancExe: []string{"x", "sh"}, parent: "/tmp/x"}},
		{name: "parent comm is not trusted", exclude: ExcludeConfig{ParentExecutables: []string{"make"}},
			rec: execRec{exe: recGCC.exe, anc: []string{"100:make"}, ancExe: []string{"x"}, parent: "/tmp/x"}},
		{name: "memfd ancestor keeps its prefix", exclude: ExcludeConfig{ParentExecutables: []string{"make"}},
			rec: execRec{exe: recGCC.exe, anc: []string{"100:3"}, ancExe: []string{"memfd:make"}, parent: "/memfd:make (deleted)"}},
		{name: "unrelated parent", exclude: ExcludeConfig{ParentExecutables: []string{"/usr/bin/make", "dpkg"}}, rec: recGCC},
		{name: "non-compiler is not counted", exclude: ExcludeConfig{Namespaces: []string{"build"}}, rec: recSh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Exclude = tt.exclude
			h := newHarness(t, cfg, nil)
			ld := plog.NewLogs()
			appendExec(appendResource(ld, testContainer, res), 1, tt.rec)
			require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
			require.Equal(t, 1, logCount(h.sink.AllLogs()), "excluded records still flow")
			isCompiler := tt.rec.exe != recSh.exe
			if tt.excluded {
				assert.Empty(t, flagged(h.sink.AllLogs()))
				assert.Equal(t, int64(1), h.counter(t, metricExcluded))
				return
			}
			assert.Equal(t, int64(0), h.counter(t, metricExcluded))
			if isCompiler {
				assert.Len(t, flagged(h.sink.AllLogs()), 1)
			} else {
				assert.Empty(t, flagged(h.sink.AllLogs()))
			}
		})
	}
}

func TestOnlyFlaggedCountsDrops(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.OnlyFlagged = true
	h := newHarness(t, cfg, nil)
	ld := plog.NewLogs()
	appendExec(appendResource(ld, "", nil), 1, recGCC) // host: out of scope
	sl := appendResource(ld, testContainer, nil)
	appendExec(sl, 2, recSh)
	appendExec(sl, 3, recGCC)
	appendExec(sl, 4, recGCC) // duplicate
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	require.Equal(t, 1, logCount(h.sink.AllLogs()))
	assert.Equal(t, 1, h.sink.AllLogs()[0].ResourceLogs().Len(), "empty resources are removed")
	assert.Equal(t, int64(3), h.counter(t, metricDropped))

	// A batch with nothing flagged is not passed on at all.
	h.sink.Reset()
	ld = plog.NewLogs()
	appendExec(appendResource(ld, testContainer, nil), 5, recSh)
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	assert.Empty(t, h.sink.AllLogs())
}

func TestFlagAddsOnlyWhereAbsent(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	ld := plog.NewLogs()
	lr := appendExec(appendResource(ld, testContainer, nil), 1, recGCC)
	lr.Attributes().PutStr(attr.RuleName, "site rule")
	lr.SetSeverityNumber(plog.SeverityNumberFatal)
	lr.SetSeverityText("FATAL")
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	out := flagged(h.sink.AllLogs())
	require.Len(t, out, 1)
	assert.Equal(t, "site rule", strAttr(out[0].Attributes(), attr.RuleName))
	assert.Equal(t, attr.RuleUUIDValue, strAttr(out[0].Attributes(), attr.RuleUUID))
	assert.Equal(t, plog.SeverityNumberFatal, out[0].SeverityNumber(), "severity is never lowered")
	assert.Equal(t, "FATAL", out[0].SeverityText())
}

// fakeEnricher is ready for the containers in ready, and adds a namespace when it is.
type fakeEnricher struct {
	mu    sync.Mutex
	ready map[string]bool
	calls int
}

func (f *fakeEnricher) Lookup(res pcommon.Resource) (podMetadata, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	id := attr.Str(res.Attributes(), attr.ContainerID)
	if !f.ready[id] {
		return nil, false
	}
	return fakeFound{attr.K8sNamespace: "ns-" + id[:4]}, true
}

func (f *fakeEnricher) set(id string, ready bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready[id] = ready
}

func TestHoldForMetadata(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	cfg.Exclude.Namespaces = []string{"ns-aaaa"} // only known once enriched
	enr := &fakeEnricher{ready: map[string]bool{testContainer2: false}}
	h := newHarness(t, cfg, enr)

	// testContainer is ready immediately; testContainer2 is not and is held.
	ld := plog.NewLogs()
	appendExec(appendResource(ld, testContainer, nil), 1, recGCC)
	appendExec(appendResource(ld, testContainer2, nil), 2, recGCC)
	appendExec(appendResource(ld, "", nil), 3, recSh)
	enr.set(testContainer, true)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	require.Len(t, h.sink.AllLogs(), 1)
	out := h.sink.AllLogs()[0]
	assert.Equal(t, 2, out.ResourceLogs().Len(), "ready container and host pass synchronously")
	assert.Equal(t, "ns-0f1e", strAttr(out.ResourceLogs().At(0).Resource().Attributes(), attr.K8sNamespace))
	assert.Equal(t, int64(1), h.counter(t, metricHeld))

	// Metadata arrives, but a new batch for the same container still queues behind the held one.
	enr.set(testContainer2, true)
	ld = plog.NewLogs()
	appendExec(appendResource(ld, testContainer2, nil), 4, recSh)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	require.Len(t, h.sink.AllLogs(), 1, "queued behind the held batch")

	h.p.releaseHeld(ctx, false)
	all := h.sink.AllLogs()
	require.Len(t, all, 3)
	first := all[1].ResourceLogs().At(0)
	assert.Equal(t, "ns-aaaa", strAttr(first.Resource().Attributes(), attr.K8sNamespace))
	assert.Equal(t, int64(2), first.ScopeLogs().At(0).LogRecords().At(0).Attributes().AsRaw()["process.pid"])
	assert.Empty(t, flagged(all[1:]), "excluded by the namespace the enricher added")
	assert.Equal(t, int64(1), h.counter(t, metricExcluded))
	assert.Equal(t, int64(4), all[2].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().AsRaw()["process.pid"])

	// Once delivered, the container is no longer held: the next batch goes through synchronously.
	ld = plog.NewLogs()
	appendExec(appendResource(ld, testContainer2, nil), 5, recSh)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	assert.Len(t, h.sink.AllLogs(), 4)

	// A container whose metadata never comes is released after wait_for_metadata, with what is known.
	const never = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	ld = plog.NewLogs()
	appendExec(appendResource(ld, never, nil), 6, recGCC)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	h.p.releaseHeld(ctx, false)
	assert.Len(t, h.sink.AllLogs(), 4, "still waiting")
	h.clk.advance(cfg.Kubernetes.WaitForMetadata.Hold)
	h.p.releaseHeld(ctx, false)
	require.Len(t, h.sink.AllLogs(), 5)
	assert.Len(t, flagged(h.sink.AllLogs()[4:]), 1)
	assert.Equal(t, int64(1), h.counter(t, metricHoldExpired))

	// Shutdown flushes whatever is still held.
	ld = plog.NewLogs()
	appendExec(appendResource(ld, never, nil), 7, recSh)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	require.NoError(t, h.p.Shutdown(ctx))
	assert.Equal(t, 7, logCount(h.sink.AllLogs()), "every input record delivered exactly once")
}

// The async goroutine releases held records on its own and Shutdown joins it (goleak checks).
func TestHoldReleasedByGoroutine(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	cfg.Kubernetes.WaitForMetadata.Hold = 20 * time.Millisecond
	enr := &fakeEnricher{ready: map[string]bool{}}
	h := newHarness(t, cfg, enr)
	h.p.now = time.Now // real time: the goroutine drives release
	require.NoError(t, h.p.Start(ctx, componenttest.NewNopHost()))
	ld := plog.NewLogs()
	appendExec(appendResource(ld, testContainer, nil), 1, recGCC)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	require.Eventually(t, func() bool { return logCount(h.sink.AllLogs()) == 1 }, 10*time.Second, 5*time.Millisecond)
	// With nothing held the goroutine stops checking; a record held later wakes it again.
	require.Eventually(t, func() bool { return h.p.hold.Held() == 0 }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(3 * cfg.Kubernetes.WaitForMetadata.Hold)
	ld = plog.NewLogs()
	appendExec(appendResource(ld, testContainer, nil), 2, recGCC)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	require.Eventually(t, func() bool { return logCount(h.sink.AllLogs()) == 2 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, h.p.Shutdown(ctx))
	assert.NotEmpty(t, flagged(h.sink.AllLogs()))
}

func TestAsyncDeliveryFailureIsCounted(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	h := newHarness(t, cfg, nil)
	failing := &failAfter{n: 1, next: h.sink}
	h.p.next = failing
	ld := plog.NewLogs()
	sl := appendResource(ld, testContainer, nil)
	appendExec(sl, 1, recGCC)
	appendExec(sl, 2, recGCC)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	require.NoError(t, h.p.Shutdown(ctx), "the summary is rejected, Shutdown still succeeds")
	assert.Equal(t, int64(1), h.counter(t, metricAsyncFailed))
}

// failAfter passes n batches on, then fails.
type failAfter struct {
	n    int
	next consumer.Logs
}

func (f *failAfter) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (f *failAfter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if f.n == 0 {
		return errors.New("downstream unavailable")
	}
	f.n--
	return f.next.ConsumeLogs(ctx, ld)
}

func logCount(lds []plog.Logs) int {
	n := 0
	for _, ld := range lds {
		n += ld.LogRecordCount()
	}
	return n
}

func BenchmarkProcessor(b *testing.B) {
	mixed := func(sl plog.ScopeLogs) {
		for i := int64(0); i < 20; i++ {
			appendExec(sl, i*5, recSh)
			appendExec(sl, i*5+1, execRec{exe: "/usr/bin/python3.11", file: "/usr/bin/python3", argv: []string{"app.py"}, anc: bashAnc})
			appendExec(sl, i*5+2, recGCC)
			appendExec(sl, i*5+3, under(recCC1, i*5+2, recGCC))
			appendExec(sl, i*5+4, under(recAs, i*5+2, recGCC))
		}
	}
	shells := func(sl plog.ScopeLogs) {
		for i := int64(0); i < 100; i++ {
			appendExec(sl, i, recSh)
		}
	}
	for _, bc := range []struct {
		name string
		fill func(plog.ScopeLogs)
	}{{"non_compilers", shells}, {"mixed", mixed}} {
		b.Run(bc.name, func(b *testing.B) {
			set := processortest.NewNopSettings(metadata.Type)
			p, err := newCompilerDetector(set, createDefaultConfig().(*Config), consumertest.NewNop(), nil)
			require.NoError(b, err)
			ld := plog.NewLogs()
			bc.fill(appendResource(ld, testContainer, nil))
			n := ld.LogRecordCount()
			ctx := context.Background()
			// Steady state: after the first pass findings are deduplicated and nothing is added, so the same
			// batch is reused without copying.
			require.NoError(b, p.ConsumeLogs(ctx, ld))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_ = p.ConsumeLogs(ctx, ld)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
			require.NoError(b, p.Shutdown(ctx))
		})
	}
}

// Past maxHeldRecords, ConsumeLogs releases the oldest held batches of the node at once, without waiting for a
// release tick: memory stays bounded when metadata lags behind a burst, and nothing is dropped or reordered.
func TestHoldIsBounded(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	enr := &fakeEnricher{ready: map[string]bool{}}
	h := newHarness(t, cfg, enr)
	h.p.hold = hold.New[podMetadata](cfg.Kubernetes.WaitForMetadata.Hold, 3)
	const c3 = "cccc000011112222333344445555666677778888999900001111222233334444"
	send := func(id string, pids ...int64) {
		t.Helper()
		ld := plog.NewLogs()
		sl := appendResource(ld, id, nil)
		for _, pid := range pids {
			appendExec(sl, pid, recSh)
		}
		require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	}
	pids := func() []int64 {
		var out []int64
		eachRecord(h.sink.AllLogs(), func(_ pcommon.Map, lr plog.LogRecord) {
			out = append(out, lr.Attributes().AsRaw()["process.pid"].(int64))
		})
		return out
	}

	send(testContainer, 1, 2)
	send(testContainer2, 3)
	assert.Empty(t, h.sink.AllLogs(), "under the bound, records wait for metadata")

	// The clock does not move and no release tick runs: only the bound releases records.
	send(testContainer, 4)
	send(c3, 5) // 5 held: the oldest batch (1, 2) goes on at once
	assert.Equal(t, []int64{1, 2}, pids())
	send(c3, 6) // 4 held: the next oldest (3) goes; 4, 5 and 6 stay
	assert.Equal(t, []int64{1, 2, 3}, pids())
	assert.Equal(t, 3, h.p.hold.Held())
	assert.Equal(t, int64(3), h.counter(t, metricHoldExpired), "released without metadata, and counted")

	// A record of a container with an earlier one still held queues behind it, even when its metadata is known.
	enr.set(testContainer, true)
	send(testContainer, 7) // 4 held: 4 goes, then 7 is ready but after it
	h.p.releaseHeld(ctx, false)
	assert.Equal(t, []int64{1, 2, 3, 4, 7}, pids())

	h.p.releaseHeld(ctx, true)
	assert.Equal(t, []int64{1, 2, 3, 4, 7, 5, 6}, pids())
	assert.Zero(t, h.p.hold.Held())
}

// countingSource is ready for the containers in ready; it counts lookups, and the writes of what they found per
// container.
type countingSource struct {
	mu      sync.Mutex
	ready   map[string]bool
	lookups int
	applied map[string]int
}

type countingFound struct {
	s  *countingSource
	id string
}

func (f countingFound) Apply(res pcommon.Resource) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.applied[f.id]++
	attr.PutStrIfAbsent(res.Attributes(), attr.K8sNamespace, "ns")
}

func (s *countingSource) Lookup(res pcommon.Resource) (podMetadata, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	id := attr.Str(res.Attributes(), attr.ContainerID)
	return countingFound{s, id}, s.ready[id]
}

// Kubernetes attributes are written once per record: a record that passes at once, and one held for its
// metadata and checked several times before it is released, are each enriched exactly once, and the hold's
// checks leave the held record unchanged.
func TestEnrichedOncePerRecord(t *testing.T) {
	ctx := context.Background()
	src := &countingSource{ready: map[string]bool{testContainer: true}, applied: map[string]int{}}
	h := newHarness(t, createDefaultConfig().(*Config), src)

	ld := plog.NewLogs()
	appendExec(appendResource(ld, testContainer, nil), 1, recGCC)
	appendExec(appendResource(ld, testContainer2, nil), 2, recGCC)
	require.NoError(t, h.p.ConsumeLogs(ctx, ld))
	assert.Equal(t, map[string]int{testContainer: 1}, src.applied, "the ready record is enriched as it passes")

	for range 3 {
		h.p.releaseHeld(ctx, false) // checked, still pending
	}
	assert.Equal(t, 5, src.lookups, "one lookup per record, one per check")
	assert.Equal(t, map[string]int{testContainer: 1}, src.applied, "checking a held record does not change it")

	src.mu.Lock()
	src.ready[testContainer2] = true
	src.mu.Unlock()
	h.p.releaseHeld(ctx, false)
	assert.Equal(t, map[string]int{testContainer: 1, testContainer2: 1}, src.applied, "released and enriched once")
	require.Len(t, h.sink.AllLogs(), 2)
	assert.Equal(t, "ns", strAttr(h.sink.AllLogs()[1].ResourceLogs().At(0).Resource().Attributes(), attr.K8sNamespace))
	require.NoError(t, h.p.Shutdown(ctx))
}
