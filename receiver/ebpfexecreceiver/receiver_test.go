package ebpfexecreceiver

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadatatest"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}

// fakeRing is an in-memory ring buffer: records are pushed by the test and
// read by the receiver's loop with the real deadline and flush semantics.
type fakeRing struct {
	mu       sync.Mutex
	cond     *sync.Cond
	queue    [][]byte
	deadline time.Time
	flushed  bool
	// polls records each SetDeadline: when it was called, and the deadline.
	polls [][2]time.Time
	// checks records when AvailableBytes was called.
	checks []time.Time
}

func newFakeRing() *fakeRing {
	f := &fakeRing{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeRing) push(recs ...[]byte) {
	f.mu.Lock()
	f.queue = append(f.queue, recs...)
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fakeRing) ReadInto(rec *ringbuf.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if len(f.queue) > 0 {
			rec.RawSample = append(rec.RawSample[:0], f.queue[0]...)
			f.queue = f.queue[1:]
			return nil
		}
		if f.flushed {
			return ringbuf.ErrFlushed
		}
		wait := time.Until(f.deadline)
		if !f.deadline.IsZero() && wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		timer := time.AfterFunc(wait, f.cond.Broadcast)
		f.cond.Wait()
		timer.Stop()
	}
}

func (f *fakeRing) SetDeadline(t time.Time) {
	f.mu.Lock()
	f.deadline = t
	f.polls = append(f.polls, [2]time.Time{time.Now(), t})
	f.mu.Unlock()
}

func (f *fakeRing) AvailableBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, time.Now())
	n := 0
	for _, r := range f.queue {
		n += len(r)
	}
	return n
}

// Wait sleeps until deadline or Flush: like the probe's ring, whose records
// arrive without waking the reader.
func (f *fakeRing) Wait(deadline time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.flushed {
		wait := time.Until(deadline)
		if wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		timer := time.AfterFunc(wait, f.cond.Broadcast)
		f.cond.Wait()
		timer.Stop()
	}
	return nil
}

// counts returns how many epoll polls (SetDeadline) and memory checks
// (AvailableBytes) the reader made so far, and the checks' times.
func (f *fakeRing) counts() (polls int, checks []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.polls), append([]time.Time(nil), f.checks...)
}

// pollIntervals returns how far ahead each deadline was set.
func (f *fakeRing) pollIntervals() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]time.Duration, len(f.polls))
	for i, p := range f.polls {
		out[i] = p[1].Sub(p[0])
	}
	return out
}
func (f *fakeRing) Flush() error {
	f.mu.Lock()
	f.flushed = true
	f.mu.Unlock()
	f.cond.Broadcast()
	return nil
}

type fakeSource struct {
	ring            *fakeRing
	stats           probe.Stats
	variant         probe.Variant
	refused         error
	detached, close bool
}

func (s *fakeSource) Reader() probe.RecordReader  { return s.ring }
func (s *fakeSource) Stats() (probe.Stats, error) { return s.stats, nil }
func (s *fakeSource) Detach() error               { s.detached = true; return nil }
func (s *fakeSource) Close() error                { s.close = true; return nil }
func (s *fakeSource) Variant() probe.Variant      { return s.variant }
func (s *fakeSource) DirectRefused() error        { return s.refused }

func rawExec(args ...string) []byte {
	return event.Encode(&event.Event{
		PID: 100, ParentPID: 1, Argc: uint32(len(args)), Args: args, Comm: "true",
		ExePath: "/usr/bin/true", Cwd: "/", Filename: "/usr/bin/true", CgroupPath: "/",
	})
}

func newFakeReceiver(t *testing.T, cfg *Config, next consumer.Logs) (*execReceiver, *fakeSource, *componenttest.Telemetry) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	src := &fakeSource{ring: newFakeRing()}
	r, err := newExecReceiver(set, cfg, next, func(probe.Config) (source, error) { return src, nil })
	require.NoError(t, err)
	// The fake's records carry boot time 0: with the boot clock's offset at
	// now, they were exec'd as the receiver starts, not when the machine
	// booted (a batch's age counts from its first record's exec time).
	r.bootOff = func() int64 { return time.Now().UnixNano() }
	return r, src, tel
}

func TestReadLoopBatchesBySize(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Batch.MaxSize = 3
	cfg.Batch.FlushInterval = time.Hour
	sink := new(consumertest.LogsSink)
	r, src, _ := newFakeReceiver(t, cfg, sink)
	// In the ring before the first poll: with an hour's flush interval, an
	// idle reader would look again only in an hour.
	src.ring.push(rawExec("a"), rawExec("b"), rawExec("c"), rawExec("d"))
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return sink.LogRecordCount() == 3 }, 5*time.Second, 5*time.Millisecond)
	assert.Len(t, sink.AllLogs(), 1, "one batch of max_size")
	require.NoError(t, r.Shutdown(context.Background()))
	assert.Equal(t, 4, sink.LogRecordCount(), "Shutdown flushes the partial batch")
	assert.True(t, src.detached)
	assert.True(t, src.close)
}

// startFakeReceiver starts a receiver with flush_interval flush on a fake
// ring, after prepare (if any) has adjusted it or filled the ring; cleanup
// shuts it down.
func startFakeReceiver(t *testing.T, flush time.Duration, prepare func(*execReceiver, *fakeRing)) (*fakeSource, *consumertest.LogsSink) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Batch.FlushInterval = flush
	sink := new(consumertest.LogsSink)
	r, src, _ := newFakeReceiver(t, cfg, sink)
	if prepare != nil {
		prepare(r, src.ring)
	}
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return src, sink
}

func TestReadLoopFlushesByTime(t *testing.T) {
	src, sink := startFakeReceiver(t, 20*time.Millisecond, nil)
	src.ring.push(rawExec("only"))
	require.Eventually(t, func() bool { return sink.LogRecordCount() == 1 }, 5*time.Second, 5*time.Millisecond)
}

// An idle reader polls once per flush interval, by reading the ring's
// positions from memory; once a record is found it drains the ring (a
// SetDeadline and ReadInto) every quarter of the interval: on a quiet node
// each poll is a wakeup, the collector's fixed cost.
func TestReadLoopIdlePollsOncePerFlushInterval(t *testing.T) {
	flush := 80 * time.Millisecond
	src, sink := startFakeReceiver(t, flush, nil)
	require.Eventually(t, func() bool { _, c := src.ring.counts(); return len(c) >= 4 }, 5*time.Second, time.Millisecond)
	polls, checks := src.ring.counts()
	assert.Equal(t, 1, polls, "one drain finds the ring empty, then the reader is idle")
	for i := 1; i < len(checks); i++ {
		assert.Greater(t, checks[i].Sub(checks[i-1]), flush/2, "idle poll %d", i)
	}

	src.ring.push(rawExec("a"))
	require.Eventually(t, func() bool { return sink.LogRecordCount() == 1 }, 5*time.Second, time.Millisecond)
	busy := src.ring.pollIntervals()[polls:]
	require.NotEmpty(t, busy, "a record found makes the reader drain the ring")
	assert.LessOrEqual(t, busy[0], flush/4, "the poll after a record")
}

// A batch's age counts from its first record's exec time: a record that
// waited in the ring leaves within one flush interval of its exec, however
// late it was read.
func TestReadLoopBatchAgeFromExecTime(t *testing.T) {
	flush := 20 * time.Second
	// In the ring before the first poll, which would otherwise find it
	// empty and leave the reader idle for a whole interval.
	_, sink := startFakeReceiver(t, flush, func(r *execReceiver, ring *fakeRing) {
		r.bootOff = func() int64 { return 0 } // record times are wall-clock times
		late := event.Event{PID: 100, ParentPID: 1, Argc: 1, Args: []string{"late"}, Comm: "true", CgroupPath: "/",
			Time: time.Now().Add(-flush + 100*time.Millisecond)}
		ring.push(event.Encode(&late))
	})
	require.Eventually(t, func() bool { return sink.LogRecordCount() == 1 }, flush/2, time.Millisecond,
		"flushed by the record's exec time, not a full flush interval after it was read")
}

func TestReadLoopCountsLoss(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Batch.MaxSize = 2
	var calls int
	refusing := consumer.ConsumeLogsFunc(func(context.Context, plog.Logs) error {
		calls++
		return errors.New("backend down")
	})
	next, err := consumer.NewLogs(refusing)
	require.NoError(t, err)
	r, src, tel := newFakeReceiver(t, cfg, next)
	core, logs := observer.New(zap.InfoLevel)
	r.settings.Logger = zap.New(core)
	src.stats = probe.Stats{Execs: 10, RingbufDrops: 3, ScratchMisses: 1}
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	src.ring.push([]byte{1, 2, 3}, rawExec("a"), rawExec("b"))
	require.NoError(t, r.Shutdown(context.Background()))

	// Each loss is logged with its running total, and Shutdown sums up.
	fields := func(msg string) map[string]any {
		entries := logs.FilterMessage(msg).All()
		require.Len(t, entries, 1, msg)
		return entries[0].ContextMap()
	}
	refusedLog := fields("ebpf_exec: the next consumer refused exec records; they are lost")
	assert.Equal(t, uint64(2), refusedLog["records_total"])
	assert.Equal(t, "backend down", refusedLog["last_error"])
	assert.Equal(t, uint64(1), fields("ebpf_exec: dropped malformed exec records")["records_total"])
	assert.Equal(t, uint64(4), fields("ebpf_exec: the kernel dropped exec records (ring buffer full); raise ring_buffer_size or lower the load")["dropped_total"])
	assert.Equal(t, map[string]any{
		"execs_seen_total": uint64(10), "kernel_dropped_total": uint64(4), "refused_total": uint64(2), "decode_dropped_total": uint64(1),
	}, fields("ebpf_exec: detached"))

	assert.Equal(t, 1, calls)
	// One malformed record plus a refused batch of two.
	metadatatest.AssertEqualReceiverEbpfExecDroppedRecords(t, tel, []metricdata.DataPoint[int64]{
		{Value: 1, Attributes: attribute.NewSet(attribute.String("reason", "decode"))},
		{Value: 2, Attributes: attribute.NewSet(attribute.String("reason", "refused"))},
	}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	metadatatest.AssertEqualReceiverEbpfExecKernelDroppedRecords(t, tel, []metricdata.DataPoint[int64]{{Value: 4}}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	metadatatest.AssertEqualReceiverEbpfExecExecsSeen(t, tel, []metricdata.DataPoint[int64]{{Value: 10}}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

func TestStartLogsTheBPFProgram(t *testing.T) {
	for _, tc := range []struct {
		variant probe.Variant
		refused error
		want    map[string]any
	}{
		{variant: probe.VariantDirect, want: map[string]any{"bpf_program": "direct"}},
		{
			variant: probe.VariantPortable, refused: errors.New("verifier: unknown func bpf_rdonly_cast"),
			want: map[string]any{"bpf_program": "portable", "direct_program_refused": "verifier: unknown func bpf_rdonly_cast"},
		},
	} {
		t.Run(string(tc.variant), func(t *testing.T) {
			r, src, _ := newFakeReceiver(t, createDefaultConfig().(*Config), consumertest.NewNop())
			src.variant, src.refused = tc.variant, tc.refused
			core, logs := observer.New(zap.InfoLevel)
			r.settings.Logger = zap.New(core)
			require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
			require.NoError(t, r.Shutdown(context.Background()))
			entries := logs.FilterMessage("ebpf_exec: attached to tp_btf/sched_process_exec").All()
			require.Len(t, entries, 1)
			got := entries[0].ContextMap()
			for k, v := range tc.want {
				assert.Equal(t, v, got[k], k)
			}
			if tc.refused == nil {
				assert.NotContains(t, got, "direct_program_refused")
			}
		})
	}
}

func TestStartErrorIsReturned(t *testing.T) {
	set := receivertest.NewNopSettings(metadata.Type)
	want := errors.New("missing capabilities CAP_BPF")
	r, err := newExecReceiver(set, createDefaultConfig().(*Config), consumertest.NewNop(), func(probe.Config) (source, error) { return nil, want })
	require.NoError(t, err)
	assert.ErrorIs(t, r.Start(context.Background(), componenttest.NewNopHost()), want)
	assert.NoError(t, r.Shutdown(context.Background()), "Shutdown after a failed Start is a no-op")
}
