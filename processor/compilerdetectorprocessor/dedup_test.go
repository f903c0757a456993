package compilerdetectorprocessor

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
)

const metricLimited = "otelcol_processor_compiler_detector_dedup_limited_keys"

// limited returns the dedup_limited_keys count for one limit.
func (h *harness) limited(t *testing.T, limit string) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(metricLimited)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok)
	var v int64
	for _, dp := range sum.DataPoints {
		if l, _ := dp.Attributes.Value(attribute.Key("limit")); l.AsString() == limit {
			v += dp.Value
		}
	}
	return v
}

func dedupCfg(maxKeys, perContainer int) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Dedup.MaxKeys, cfg.Dedup.MaxKeysPerContainer = maxKeys, perContainer
	return cfg
}

// gccUnder is gcc run by a parent at path parent: a distinct dedup key per parent.
func gccUnder(parent string) execRec {
	r := recGCC
	r.parent = parent
	return r
}

// send passes one batch of gcc execs of container id, one per parent, through the processor.
func (h *harness) send(t *testing.T, id string, extra map[string]string, parents ...string) {
	t.Helper()
	ld := plog.NewLogs()
	sl := appendResource(ld, id, extra)
	for i, p := range parents {
		appendExec(sl, int64(i+1), gccUnder(p))
	}
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
}

func parents(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("/tmp/%s%d", prefix, i)
	}
	return out
}

// A container past its share of keys has its new keys collapsed to container and compiler: it stops growing the
// state, and another container's findings are unaffected.
func TestDedupPerContainerLimitCollapses(t *testing.T) {
	h := newHarness(t, dedupCfg(100, 4), nil)
	h.send(t, testContainer, nil, parents("p", 20)...)
	// 4 full keys, then one collapsed window for gcc: its first finding is flagged, the other 15 suppressed.
	assert.Len(t, flagged(h.sink.AllLogs()), 5)
	assert.Equal(t, dedup.Size{Keys: 5, Collapsed: 1, Containers: 1, Bytes: h.p.dedup.Size().Bytes}, h.p.dedup.Size())
	assert.Equal(t, int64(16), h.limited(t, dedup.LimitPerContainer), "each new key past the share is counted")
	assert.Equal(t, int64(15), h.counter(t, metricDeduplicated))

	h.send(t, testContainer, nil, parents("q", 1000)...)
	assert.Len(t, flagged(h.sink.AllLogs()), 5, "nothing more from the flooding container")
	assert.Equal(t, 5, h.p.dedup.Size().Keys, "and no more state")

	h.sink.Reset()
	h.send(t, testContainer2, nil, parents("p", 3)...)
	assert.Len(t, flagged(h.sink.AllLogs()), 3, "another container's findings go out in full")
	assert.Zero(t, h.limited(t, dedup.LimitNode))
}

// Past max_keys the oldest window of the node is evicted, and its suppressed count goes out in a summary with the
// batch that evicted it.
func TestDedupNodeLimitEvictsOldestWithSummary(t *testing.T) {
	h := newHarness(t, dedupCfg(3, 3), nil)
	ids := []string{testContainer, testContainer2, strings.Repeat("c", 64), strings.Repeat("d", 64)}
	for i, id := range ids[:3] {
		h.send(t, id, nil, "/usr/bin/make", "/usr/bin/make") // one window, one repeat
		h.clk.advance(time.Duration(i+1) * time.Second)
	}
	h.sink.Reset()
	h.send(t, ids[3], nil, "/usr/bin/make")
	require.Len(t, h.sink.AllLogs(), 1)
	var summaries []plog.LogRecord
	var summaryRes pcommon.Map
	eachRecord(h.sink.AllLogs(), func(res pcommon.Map, lr plog.LogRecord) {
		if lr.EventName() == attr.EventDedupSummary {
			summaries, summaryRes = append(summaries, lr), res
		}
	})
	require.Len(t, summaries, 1)
	assert.Equal(t, ids[0], strAttr(summaryRes, attr.ContainerID), "the oldest window is evicted")
	v, _ := summaries[0].Attributes().Get(attr.SuppressedCount)
	assert.Equal(t, int64(1), v.Int())
	assert.Equal(t, int64(1), h.limited(t, dedup.LimitNode))
	assert.Equal(t, int64(1), h.counter(t, metricSummaries))
	assert.Equal(t, dedup.Size{Keys: 3, Containers: 3, Bytes: h.p.dedup.Size().Bytes}, h.p.dedup.Size())

	// The evicted count is not reported twice.
	h.sink.Reset()
	require.NoError(t, h.p.Shutdown(context.Background()))
	eachRecord(h.sink.AllLogs(), func(res pcommon.Map, _ plog.LogRecord) {
		assert.NotEqual(t, ids[0], strAttr(res, attr.ContainerID))
	})
}

// A container past its share makes room among its own windows when the node is full: it never evicts another
// container's.
func TestDedupCollapsingContainerEvictsOnlyItsOwn(t *testing.T) {
	h := newHarness(t, dedupCfg(4, 2), nil)
	h.send(t, testContainer2, nil, "/usr/bin/make")
	h.send(t, testContainer, nil, parents("p", 3)...) // 2 full keys and a collapsed gcc window: the node is full
	require.Equal(t, 4, h.p.dedup.Size().Keys)

	// A new compiler of the collapsing container needs a window: it evicts its own oldest.
	ld := plog.NewLogs()
	rust := execRec{exe: "/usr/bin/rustc", anc: bashAnc, parent: "/tmp/p99"}
	appendExec(appendResource(ld, testContainer, nil), 9, rust)
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	assert.Equal(t, 4, h.p.dedup.Size().Keys)
	assert.Equal(t, int64(1), h.limited(t, dedup.LimitNode))

	h.sink.Reset()
	h.send(t, testContainer2, nil, "/usr/bin/make")
	assert.Empty(t, flagged(h.sink.AllLogs()), "the other container's window survived: its repeat is suppressed")
}

// A finding that goes out without Kubernetes metadata (the API server down, or the hold expired) does not hide the
// first later finding that has it.
func TestDedupLateMetadataIsFlagged(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	h.send(t, testContainer, nil, "/usr/bin/make", "/usr/bin/make")
	require.Len(t, flagged(h.sink.AllLogs()), 1)

	pod := map[string]string{attr.K8sNamespace: "prod", "k8s.pod.name": "web-0"}
	h.sink.Reset()
	h.clk.advance(time.Minute)
	h.send(t, testContainer, pod, "/usr/bin/make", "/usr/bin/make")
	got := flagged(h.sink.AllLogs())
	require.Len(t, got, 1, "the first finding with pod metadata is flagged")
	v, _ := got[0].Attributes().Get(attr.SuppressedCount)
	assert.Equal(t, int64(1), v.Int(), "with the repeat suppressed before it")

	container := map[string]string{attr.K8sNamespace: "prod", "k8s.pod.name": "web-0", "k8s.container.name": "app"}
	h.sink.Reset()
	h.send(t, testContainer, container, "/usr/bin/make", "/usr/bin/make")
	assert.Len(t, flagged(h.sink.AllLogs()), 1, "and the first with the container's too")

	h.sink.Reset()
	h.send(t, testContainer, container, "/usr/bin/make")
	h.send(t, testContainer, nil, "/usr/bin/make")
	assert.Empty(t, flagged(h.sink.AllLogs()), "no more metadata: suppressed")

	// The summary carries the richest resource seen.
	h.sink.Reset()
	require.NoError(t, h.p.Shutdown(context.Background()))
	require.Len(t, h.sink.AllLogs(), 1)
	res := h.sink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	assert.Equal(t, "app", strAttr(res, "k8s.container.name"))
}

// Key fields are bounded in size: a 4 KiB parent path costs no more than a short one beyond its digest, and the
// summary carries its deepest part.
func TestDedupLongKeyFields(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	long := "/" + strings.Repeat("d/", 2000) + "sh"
	h.send(t, testContainer, nil, long, long, long+"x")
	assert.Len(t, flagged(h.sink.AllLogs()), 2, "distinct long paths are distinct keys")
	sz := h.p.dedup.Size()
	assert.Equal(t, 2, sz.Keys)

	h.sink.Reset()
	require.NoError(t, h.p.Shutdown(context.Background()))
	var sum plog.LogRecord
	eachRecord(h.sink.AllLogs(), func(_ pcommon.Map, lr plog.LogRecord) { sum = lr })
	p := strAttr(sum.Attributes(), attr.ParentExecutable)
	assert.LessOrEqual(t, len(p), dedup.MaxKeyFieldBytes)
	assert.True(t, strings.HasSuffix(long, "/"+p), "the deepest part of the path: %q", p)
}

// Each limit hit is counted, and logged at most once a minute per limit, with running totals.
func TestDedupLimitHitsAreLoggedRateLimited(t *testing.T) {
	h := newHarness(t, dedupCfg(70, 2), nil)
	core, logs := observer.New(zap.WarnLevel)
	h.p.dedup = dedup.New(h.p.cfg.Dedup, zap.New(core), "")

	h.send(t, testContainer, nil, parents("p", 50)...) // 48 collapsed
	require.Equal(t, 1, logs.Len(), "one line for the burst")
	first := logs.All()[0].ContextMap()
	assert.Equal(t, dedup.LimitPerContainer, first["limit"])
	assert.Equal(t, int64(1), first["hits_total"], "logged at the first hit")

	h.clk.advance(30 * time.Second)
	h.send(t, testContainer, nil, parents("q", 10)...)
	assert.Equal(t, 1, logs.Len(), "not again within the minute")

	h.clk.advance(31 * time.Second)
	h.send(t, testContainer, nil, "/tmp/r")
	require.Equal(t, 2, logs.Len())
	second := logs.All()[1].ContextMap()
	assert.Equal(t, int64(59), second["hits_total"])
	assert.Equal(t, int64(58), second["hits_since_last_log"])
	assert.Equal(t, int64(59), h.limited(t, dedup.LimitPerContainer))

	// The other limit has its own line. 3 keys per container, 2 of them full: 23 containers fill the node.
	for i := range 23 {
		h.send(t, fmt.Sprintf("%064x", i+1), nil, "/a", "/b", "/c")
	}
	require.Equal(t, 3, logs.Len())
	assert.Equal(t, dedup.LimitNode, logs.All()[2].ContextMap()["limit"])
}

// The worst case at the default limits, every field at its longest: the accounted bytes stay within what the
// README states.
func TestDedupWorstCaseBytes(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Dedup.Key = []string{dedup.KeyContainerID, dedup.KeyPodUID, dedup.KeyHostName, dedup.KeyCompiler, dedup.KeyParentExecutable, dedup.KeyExecutable}
	h := newHarness(t, cfg, nil)
	long := "/" + strings.Repeat("d/", 2040)
	before := heapNow()
	for c := range cfg.Dedup.MaxKeys / cfg.Dedup.MaxKeysPerContainer {
		ld := plog.NewLogs()
		sl := appendResource(ld, fmt.Sprintf("%064x", c+1), map[string]string{attr.K8sPodUID: testPodUID})
		for i := range cfg.Dedup.MaxKeysPerContainer {
			r := gccUnder(fmt.Sprintf("%s%05d", long, i))
			r.exe = long + "gcc"
			appendExec(sl, int64(i+1), r)
		}
		require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	}
	h.sink.Reset()
	grown := int64(heapNow()) - int64(before)
	sz := h.p.dedup.Size()
	assert.Equal(t, cfg.Dedup.MaxKeys, sz.Keys)
	t.Logf("%d keys of %d containers: %d bytes accounted; the heap grew by %d bytes", sz.Keys, sz.Containers, sz.Bytes, grown)
	assert.Less(t, sz.Bytes, 6<<20)
}

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
