package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// source is the kernel side as the receiver sees it: a loaded, attached
// program. probe.Probe implements it; tests use a fake.
type source interface {
	Reader() probe.RecordReader
	Stats() (probe.Stats, error)
	// Variant is the BPF program that was loaded; DirectRefused is why the
	// direct one was not, when the portable one replaced it.
	Variant() probe.Variant
	DirectRefused() error
	Detach() error
	Close() error
}

// loader loads and attaches a source. It is a field so tests can replace it.
type loader func(probe.Config) (source, error)

// Values of the reason attribute of the dropped_records metric.
var (
	reasonDecode  = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "decode")))
	reasonRefused = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "refused")))
)

// Values of the prefilter attribute of the filtered_execs metric.
var (
	prefilterContainers = metric.WithAttributeSet(attribute.NewSet(attribute.String("prefilter", PrefilterContainers)))
	prefilterCompilers  = metric.WithAttributeSet(attribute.NewSet(attribute.String("prefilter", PrefilterCompilers)))
)

// How often kernel-side counters are read and reported: every second while
// records flow, less often while the reader is idle. Reading them is a
// system call, and a system call wakes the Go runtime's sysmon thread, which
// then polls for a millisecond or more: on a quiet node, most of the
// collector's CPU. While idle, only the prefilter's counts of filtered execs
// can grow, and they are reported within idleStatsInterval.
const (
	statsInterval     = time.Second
	idleStatsInterval = 10 * time.Second
)

type execReceiver struct {
	cfg      *Config
	settings receiver.Settings
	next     consumer.Logs
	obs      *receiverhelper.ObsReport
	tb       *metadata.TelemetryBuilder
	load     loader
	clock    func() time.Time
	bootOff  func() int64

	src    source
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Guarded by the read loop: only it touches these.
	conv    *logsConverter
	decoder *event.Decoder
	ev      event.Event
	// offset is the boot clock's wall-clock offset, read at offsetAt.
	offset     int64
	offsetAt   time.Time
	batchStart time.Time // when the batch being built began

	// Records lost in user space, counted by the read loop and logged by
	// reportLoss once per interval: a log line per refused batch would
	// flood, and the collector's log sampler would then drop lines and with
	// them the counts.
	refused, decodeErrs atomic.Uint64
	lastRefusal         atomic.Pointer[string]

	// Loss already reported; only reportLoss touches these (the read loop,
	// then Shutdown after it has exited).
	lastStats     probe.Stats
	loggedRefused uint64
	loggedDecoded uint64
}

func newExecReceiver(set receiver.Settings, cfg *Config, next consumer.Logs, load loader) (*execReceiver, error) {
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              "ebpf",
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &execReceiver{
		cfg:      cfg,
		settings: set,
		next:     next,
		obs:      obs,
		tb:       tb,
		load:     load,
		clock:    time.Now,
		bootOff:  bootOffset,
	}, nil
}

// Start loads and attaches the BPF program, then starts the read loop. A
// load or attach failure is returned with its cause named.
func (r *execReceiver) Start(_ context.Context, host component.Host) error {
	conv, err := newReceiverConverter(r.cfg, r.settings)
	if err != nil {
		return err
	}
	pcfg := probe.Config{
		RingBufferSize: uint32(r.cfg.RingBufferSize),
		MaxArgsBytes:   uint32(r.cfg.MaxArgsBytes),
		MaxPathDepth:   uint32(r.cfg.MaxPathDepth),
		MaxAncestors:   uint32(r.cfg.Ancestors),
	}
	containers, compilers := r.cfg.prefilters()
	if containers {
		if pcfg.HostMountNS, err = hostMountNS(); err != nil {
			return err
		}
	}
	if compilers {
		names, err := candidateNames(host, r.cfg.CompilerCatalog)
		if err != nil {
			return err
		}
		pcfg.Candidates = probe.NewCandidateBloom(names)
	}
	src, err := r.load(pcfg)
	if err != nil {
		return err
	}
	r.src, r.conv, r.decoder = src, conv, event.NewDecoder()
	r.lastStats, r.loggedRefused, r.loggedDecoded = probe.Stats{}, 0, 0
	r.refused.Store(0)
	r.decodeErrs.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go r.readLoop(ctx)
	fields := []zap.Field{
		zap.String("bpf_program", string(src.Variant())),
		zap.String("ring_buffer_size", r.cfg.RingBufferSize.String()),
		zap.Int("max_args_bytes", r.cfg.MaxArgsBytes),
		zap.Int("max_path_depth", r.cfg.MaxPathDepth),
		zap.Int("ancestors", r.cfg.Ancestors),
		zap.Strings("prefilter", r.cfg.Prefilter),
	}
	if pcfg.HostMountNS != 0 {
		fields = append(fields, zap.Uint32("host_mount_ns", pcfg.HostMountNS))
	}
	if pcfg.Candidates != nil {
		fields = append(fields, zap.Int("candidate_names", pcfg.Candidates.Names()))
	}
	if err := src.DirectRefused(); err != nil {
		// Not an error: the portable program records the same, at about
		// twice the kernel time per exec.
		fields = append(fields, zap.NamedError("direct_program_refused", err))
	}
	r.settings.Logger.Info("ebpf_exec: attached to tp_btf/sched_process_exec", fields...)
	return nil
}

// DecoderCacheSize reports the entries and bytes of the decoder's string
// caches, zero before Start. It may be called while the read loop runs; it
// is how tests outside this package check that those caches stay bounded.
func (r *execReceiver) DecoderCacheSize() (entries, bytes int) {
	if r.decoder == nil {
		return 0, 0
	}
	return r.decoder.CacheSize()
}

// Shutdown detaches the program, drains what the ring buffer already holds
// into a final batch, then joins the goroutines and frees the kernel objects.
func (r *execReceiver) Shutdown(context.Context) error {
	if r.src == nil {
		return nil
	}
	var errs []error
	errs = append(errs, r.src.Detach())
	errs = append(errs, r.src.Reader().Flush())
	r.cancel()
	r.wg.Wait()
	// The final flush may have lost records after the read loop's last
	// report: report them, then say what this run lost in all.
	r.reportLoss(context.Background())
	r.settings.Logger.Info("ebpf_exec: detached",
		zap.Uint64("execs_seen_total", r.lastStats.Execs),
		zap.Uint64("kernel_dropped_total", r.lastStats.Dropped()),
		zap.Uint64("refused_total", r.refused.Load()),
		zap.Uint64("decode_dropped_total", r.decodeErrs.Load()))
	errs = append(errs, r.src.Close())
	r.src = nil
	r.tb.Shutdown()
	return errors.Join(errs...)
}

// readLoop reads records, decodes them and hands batches to the next
// consumer by size (batch.max_size) or age (batch.flush_interval). Between
// polls it reports the kernel-side counters.
//
// The kernel wakes the reader only when a quarter of the ring is in use
// (wakeup_bytes in bpf/exec.c): the reader polls. Between polls it waits in
// the Go runtime's network poller (probe.RecordReader's Wait), then drains
// the ring without blocking. Blocking a thread in the ring's own epoll
// instead cost more than the reading: the runtime's sysmon thread takes the
// processor from a goroutine blocked in a system call for more than 10 ms,
// and then polls every 20 µs for a millisecond; that was a third of the
// collector's CPU under load, and most of it on a quiet node.
//
// While records flow it polls every quarter of the flush interval, sooner
// when the ring fills fast enough to reach a quarter of its size before the
// next poll. Once a poll finds nothing and no batch is open the reader is
// idle: it polls once per flush interval, by reading the ring's positions
// from memory, without a system call. A batch's age counts from the exec
// time of its first record, not from when it was read, so a record found by
// an idle poll still leaves within about one flush interval of its exec.
func (r *execReceiver) readLoop(ctx context.Context) {
	defer r.wg.Done()
	rd := r.src.Reader()
	r.offset, r.offsetAt, r.batchStart = r.bootOff(), r.clock(), time.Time{}
	var (
		rec      ringbuf.Record
		statsAt  = r.offsetAt
		lastPoll = r.offsetAt
		next     = r.offsetAt // the next poll
		idle     bool
	)
	flush := func() {
		if r.conv.Len() == 0 {
			return
		}
		ld := r.conv.Take()
		if st := r.conv.Stats(); st.TruncatedRecords > 0 || st.RedactedArgs > 0 {
			r.tb.ReceiverEbpfExecTruncatedRecords.Add(ctx, int64(st.TruncatedRecords))
			r.tb.ReceiverEbpfExecRedactedArgs.Add(ctx, int64(st.RedactedArgs))
		}
		r.consume(ld)
	}
	for {
		// woken: the kernel woke the reader (a quarter of the ring is in
		// use), or Shutdown's Flush did; the drain below then reads what the
		// ring holds, and ErrFlushed.
		woken := false
		if next.After(r.clock()) {
			switch err := rd.Wait(next); {
			case err == nil:
				woken = true
			case !errors.Is(err, os.ErrDeadlineExceeded):
				flush()
				return
			}
		}
		stopping := ctx.Err() != nil
		now := r.clock()
		every := statsInterval
		if idle {
			every = idleStatsInterval
		}
		if now.Sub(statsAt) >= every {
			r.reportLoss(ctx)
			statsAt = now
		}
		if idle && !stopping && !woken && rd.AvailableBytes() == 0 {
			next = now.Add(r.cfg.Batch.FlushInterval)
			continue
		}

		// Drain the ring: a deadline in the past makes the epoll wait return
		// at once.
		rd.SetDeadline(now)
		got, bytes := 0, 0
		for {
			err := rd.ReadInto(&rec)
			if err == nil {
				got++
				bytes += len(rec.RawSample)
				r.append(ctx, rec.RawSample, flush)
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, ringbuf.ErrClosed) || stopping || ctx.Err() != nil {
				flush()
				return
			}
			r.settings.Logger.Error("ebpf_exec: reading the ring buffer failed", zap.Error(err))
			break
		}
		if stopping {
			// Flush ran before the cancel, so this drain met ErrFlushed
			// unless the reader is not the probe's: stop all the same.
			flush()
			return
		}

		now = r.clock()
		if r.conv.Len() > 0 && !now.Before(r.batchStart.Add(r.cfg.Batch.FlushInterval)) {
			flush()
		}
		wasIdle := idle
		idle = got == 0 && r.conv.Len() == 0
		if idle && !wasIdle {
			// The counters as the records stopped: what the next report,
			// ten seconds away, would only confirm.
			r.reportLoss(ctx)
			statsAt = now
		}
		interval := r.cfg.Batch.FlushInterval / 4
		if idle {
			interval = r.cfg.Batch.FlushInterval
		}
		// At the rate just read, a quarter of the ring fills in fill; poll
		// at half that.
		if elapsed := now.Sub(lastPoll); bytes > 0 && elapsed > 0 {
			fill := time.Duration(float64(r.cfg.RingBufferSize/4) / float64(bytes) * float64(elapsed))
			interval = min(interval, fill/2)
		}
		lastPoll = now
		next = now.Add(interval)
		if flushAt := r.batchStart.Add(r.cfg.Batch.FlushInterval); r.conv.Len() > 0 && flushAt.Before(next) {
			next = flushAt
		}
	}
}

// append decodes one raw record and adds it to the batch, which it flushes
// at batch.max_size. Only the read loop calls it.
func (r *execReceiver) append(ctx context.Context, raw []byte, flush func()) {
	// The wall-clock offset of the boot clock drifts with NTP steps:
	// refresh it now and then, not per record.
	if now := r.clock(); now.Sub(r.offsetAt) > 10*time.Second {
		r.offset, r.offsetAt = r.bootOff(), now
	}
	if err := r.decoder.Decode(raw, r.offset, &r.ev); err != nil {
		r.tb.ReceiverEbpfExecDroppedRecords.Add(ctx, 1, reasonDecode)
		r.decodeErrs.Add(1)
		r.settings.Logger.Debug("ebpf_exec: dropping a malformed record", zap.Error(err), zap.Int("bytes", len(raw)))
		return
	}
	if r.conv.Len() == 0 {
		r.batchStart = r.clock()
		// The exec time, unless it is implausible (a clock step): a record
		// waits at most an idle poll in the ring.
		if age := r.batchStart.Sub(r.ev.Time); age > 0 && age < 2*r.cfg.Batch.FlushInterval {
			r.batchStart = r.ev.Time
		}
	}
	r.conv.Append(&r.ev)
	if r.conv.Len() >= r.cfg.Batch.MaxSize {
		flush()
	}
}

// consume hands one batch to the next consumer inside an obsreport
// operation. A refused batch is counted at once and logged by reportLoss:
// nothing is lost silently.
func (r *execReceiver) consume(ld plog.Logs) {
	ctx := r.obs.StartLogsOp(context.Background())
	n := ld.LogRecordCount()
	err := r.next.ConsumeLogs(ctx, ld)
	r.obs.EndLogsOp(ctx, "ebpf_exec", n, err)
	if err != nil {
		r.tb.ReceiverEbpfExecDroppedRecords.Add(ctx, int64(n), reasonRefused)
		msg := err.Error()
		r.lastRefusal.Store(&msg)
		r.refused.Add(uint64(n))
	}
}

// reportLoss reads the kernel counters into metrics and logs every loss
// since the last call, with running totals, so that any one line tells the
// whole count even when the log is sampled.
func (r *execReceiver) reportLoss(ctx context.Context) {
	if s, err := r.src.Stats(); err == nil {
		last := r.lastStats
		r.tb.ReceiverEbpfExecExecsSeen.Add(ctx, int64(s.Execs-last.Execs))
		if f := s.Filtered - last.Filtered; f > 0 {
			r.tb.ReceiverEbpfExecFilteredExecs.Add(ctx, int64(f), prefilterContainers)
		}
		// A cgroup's first non-candidate exec is sent only as "container seen", never as an exec: filtered too.
		if f := s.FilteredNonCandidate + s.CgroupSeen - last.FilteredNonCandidate - last.CgroupSeen; f > 0 {
			r.tb.ReceiverEbpfExecFilteredExecs.Add(ctx, int64(f), prefilterCompilers)
		}
		if d := s.Dropped() - last.Dropped(); d > 0 {
			r.tb.ReceiverEbpfExecKernelDroppedRecords.Add(ctx, int64(d))
			r.settings.Logger.Warn("ebpf_exec: the kernel dropped exec records (ring buffer full); raise ring_buffer_size or lower the load",
				zap.Uint64("dropped", d), zap.Uint64("dropped_total", s.Dropped()), zap.Uint64("execs_total", s.Execs))
		}
		r.lastStats = s
	}
	if total := r.refused.Load(); total > r.loggedRefused {
		var cause string
		if p := r.lastRefusal.Load(); p != nil {
			cause = *p
		}
		r.settings.Logger.Error("ebpf_exec: the next consumer refused exec records; they are lost",
			zap.Uint64("records", total-r.loggedRefused), zap.Uint64("records_total", total), zap.String("last_error", cause))
		r.loggedRefused = total
	}
	if total := r.decodeErrs.Load(); total > r.loggedDecoded {
		r.settings.Logger.Warn("ebpf_exec: dropped malformed exec records",
			zap.Uint64("records", total-r.loggedDecoded), zap.Uint64("records_total", total))
		r.loggedDecoded = total
	}
}
