//go:build linux

package compilerdetectorprocessor

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
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
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"
)

// Flood sizes: distinct dedup keys, and unique deep working directories among their execs.
const (
	floodKeys = 100_000
	floodDirs = 10_000
)

// Heap margin: what the bounded state may add to the heap after the flood. Without the bounds, the dedup state
// alone held a resource copy per key (over 100 MB for this flood) and the decoder caches reached tens of MB.
const floodHeapMargin = 24 << 20

// TestFloodStaysBounded runs the real receiver into the real processor while a runc container creates 100,000
// distinct dedup keys (a new parent executable for each gcc it runs) and, in its last 10,000 execs, unique working
// directories of about 3.8 KiB. The dedup state and the decoder caches stay within their bounds, the heap after a GC
// grows by less than floodHeapMargin, another container's findings still arrive, and the limit counter says how many
// keys were collapsed.
func TestFloodStaysBounded(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	ctx := context.Background()

	if runtime.GOARCH != "amd64" {
		t.Skip("the flood's chain link (testdata/flood/link.c) is x86_64 assembly")
	}

	// The flood helpers, static so that they run on the busybox rootfs.
	dir := t.TempDir()
	flooder, link := filepath.Join(dir, "flood"), filepath.Join(dir, "link")
	for _, args := range [][]string{
		{"-static", "-O2", "-o", flooder, filepath.Join("testdata", "flood", "flood.c")},
		{"-static", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns", "-fno-stack-protector",
			"-O2", "-o", link, filepath.Join("testdata", "flood", "link.c")},
	} {
		out, err := exec.Command("gcc", args...).CombinedOutput()
		require.NoError(t, err, "gcc %q: %s", args, out)
	}

	// The processor, with the default dedup limits, reading only flagged records out.
	cfg := createDefaultConfig().(*Config)
	cfg.OnlyFlagged = true
	cfg.ScanForCompilers = false
	cfg.Kubernetes.Enabled = "false"
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(ctx)) })
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.LogsSink)
	p, err := newCompilerDetector(set, cfg, sink, nil)
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx, componenttest.NewNopHost()))
	h := &harness{p: p, sink: sink, tel: tel}

	attacker := testenv.NewContainer(t, testenv.Options{
		ExecTimeout: 5 * time.Minute,
		TmpfsTmp:    true, // the flood's hard links: more than ext4 allows on one file
		Populate: func(root string) error {
			return errors.Join(testenv.CopyFile(flooder, filepath.Join(root, "flood"), 0o755),
				testenv.CopyFile(link, filepath.Join(root, "link"), 0o755))
		},
	})
	other := testenv.NewContainer(t, testenv.Options{
		Populate: func(root string) error { return testenv.CopyFile(link, filepath.Join(root, "bin", "gcc"), 0o755) },
	})

	// The attacker's gcc records, counted on their way into the processor.
	var attackerGCC atomic.Int64
	count := consumer.ConsumeLogsFunc(func(ctx context.Context, ld plog.Logs) error {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			if attr.Str(rl.Resource().Attributes(), attr.ContainerID) != attacker.ID() {
				continue
			}
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					if attr.Str(lrs.At(k).Attributes(), attr.ExecutableName) == "gcc" {
						attackerGCC.Add(1)
					}
				}
			}
		}
		return p.ConsumeLogs(ctx, ld)
	})
	next, err := consumer.NewLogs(count, consumer.WithCapabilities(consumer.Capabilities{MutatesData: true}))
	require.NoError(t, err)

	rf := ebpfexecreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*ebpfexecreceiver.Config)
	rcfg.RingBufferSize = 64 << 20
	rcfg.Batch.FlushInterval = 50 * time.Millisecond
	require.NoError(t, rcfg.Validate())
	rcv, err := rf.CreateLogs(ctx, receivertest.NewNopSettings(rf.Type()), rcfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() {
		assert.NoError(t, rcv.Shutdown(ctx))
		assert.NoError(t, p.Shutdown(ctx))
	})
	caches, ok := rcv.(interface{ DecoderCacheSize() (entries, bytes int) })
	require.True(t, ok, "the receiver reports its decoder cache size")

	heapBefore := heapAfterGC()
	start := time.Now()
	flood := make(chan error, 1)
	go func() {
		r, err := attacker.Exec(t, "/flood", "/link", itoa(floodKeys), itoa(floodDirs))
		if err == nil && r.ExitCode != 0 {
			err = assert.AnError
			t.Logf("flood: exit %d\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		flood <- err
	}()

	// While the flood runs, past the attacker's share: the other container runs gcc under a shell.
	var floodErr error
	floodDone := false
	for !floodDone && h.limited(t, dedup.LimitPerContainer) < 1000 {
		select {
		case floodErr = <-flood:
			floodDone = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	require.NoError(t, floodErr)
	require.False(t, floodDone, "the flood ended before it passed the per-container limit")
	other.MustExec(t, "sh", "-c", "/bin/gcc -c x.c; true")
	duringAt := time.Now()
	require.NoError(t, <-flood)
	floodTime := time.Since(start)
	// After it: gcc run directly, a second key. Records leave the ring buffer in exec order and the pipeline is
	// synchronous, so once this finding is out, every attacker record is through the processor.
	other.MustExec(t, "/bin/gcc", "-c", "x.c")
	var otherFindings []plog.LogRecord
	require.Eventually(t, func() bool {
		otherFindings = findingsOf(sink, other.ID())
		return len(otherFindings) == 2
	}, 30*time.Second, 50*time.Millisecond, "both findings of the other container arrive")
	assert.NotEqual(t, strAttr(otherFindings[0].Attributes(), attr.ParentExecutable),
		strAttr(otherFindings[1].Attributes(), attr.ParentExecutable))

	heapAfter := heapAfterGC()
	seen := attackerGCC.Load()
	d := p.dedup
	attackerKeys, attackerFull := d.ContainerKeys(attacker.ID())
	require.NotZero(t, attackerKeys)
	sz := d.Size()
	entries, cacheBytes := caches.DecoderCacheSize()
	t.Logf("flood: %d attacker gcc records reached the processor in %v (other container's gcc ran %v in); "+
		"dedup: %d keys (%d collapsed), %d containers, %d bytes; attacker: %d keys, %d full; decoder caches: %d entries, %d bytes; "+
		"heap after GC: %.1f MiB before, %.1f MiB after (%+.1f MiB)",
		seen, floodTime.Round(time.Second), duringAt.Sub(start).Round(time.Second), sz.Keys, sz.Collapsed, sz.Containers, sz.Bytes,
		attackerKeys, attackerFull, entries, cacheBytes,
		float64(heapBefore)/(1<<20), float64(heapAfter)/(1<<20), (float64(heapAfter)-float64(heapBefore))/(1<<20))

	// The flood got through: the kernel may drop a few records when the ring buffer is full, not most.
	require.Greater(t, seen, int64(floodKeys*9/10))

	// Dedup: the attacker holds its share plus one collapsed window for gcc, however many keys it made; every key
	// past its share is counted as collapsed; one finding per key it was allowed, and one for the collapsed window.
	assert.Equal(t, cfg.Dedup.MaxKeysPerContainer, attackerFull)
	assert.Equal(t, cfg.Dedup.MaxKeysPerContainer+1, attackerKeys)
	assert.LessOrEqual(t, sz.Keys, cfg.Dedup.MaxKeys)
	assert.Less(t, sz.Bytes, sz.Keys*(dedup.EntryOverhead+3*dedup.MaxKeyFieldBytes)+sz.Containers*(dedup.OwnerOverhead+4096))
	assert.Equal(t, seen-int64(cfg.Dedup.MaxKeysPerContainer), h.limited(t, dedup.LimitPerContainer),
		"each attacker key past its share is counted as collapsed")
	assert.Zero(t, h.limited(t, dedup.LimitNode), "one container never fills the node")
	assert.Len(t, findingsOf(sink, attacker.ID()), cfg.Dedup.MaxKeysPerContainer+1)

	// The decoder caches: within their byte bound, although the flood made 10,000 unique 3.8 KiB paths.
	assert.LessOrEqual(t, cacheBytes, 2<<20)
	assert.LessOrEqual(t, entries, 2*8192)

	assert.Less(t, int64(heapAfter)-int64(heapBefore), int64(floodHeapMargin), "heap growth after GC")
}

// findingsOf returns the flagged process.exec records of one container.
func findingsOf(sink *consumertest.LogsSink, id string) []plog.LogRecord {
	var out []plog.LogRecord
	eachRecord(sink.AllLogs(), func(res pcommon.Map, lr plog.LogRecord) {
		if attr.Str(res, attr.ContainerID) == id && lr.EventName() == "process.exec" {
			if _, ok := lr.Attributes().Get(attr.CompilerName); ok {
				out = append(out, lr)
			}
		}
	})
	return out
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func itoa(n int) string { return strconv.Itoa(n) }
