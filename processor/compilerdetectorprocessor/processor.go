package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.uber.org/zap"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/exclude"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/hold"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/presence"
)

// compilerDetector implements processor.Logs directly rather than through processorhelper.NewLogs, because it
// also emits records asynchronously: held records released when their Kubernetes metadata arrives, and dedup
// summaries. One goroutine does that work; Shutdown flushes what is left and joins it.
type compilerDetector struct {
	cfg       *Config
	id        component.ID
	logger    *zap.Logger
	next      consumer.Logs
	telemetry *metadata.TelemetryBuilder
	report    *reporter // findings metrics and, with log_findings, the stdout line
	buildInfo component.BuildInfo

	matcher  *catalog.Matcher
	known    *catalog.Known // processes reported as compilers, which vouch for their stages
	exclude  *exclude.Exclusions
	dedup    *dedup.Deduper            // nil when dedup.window is 0
	meta     metadataSource            // nil when kubernetes is off
	hold     *hold.Holder[podMetadata] // nil when meta is nil
	kube     *kube.Cache               // the node's pod cache; nil when kubernetes is off or a source was injected
	presence *presence.Scanner         // nil when scan_for_compilers is off
	now      func() time.Time

	// releaseMu makes taking batches out of hold and delivering them one step (for the async release and for a
	// ConsumeLogs past the hold bound), so that no record overtakes an earlier one of its container.
	releaseMu sync.Mutex
	// host receives component status reports of the pod cache's state; stopping ends them at Shutdown, when the
	// host no longer accepts them.
	host     component.Host
	stopping atomic.Bool
	// catalogs are the compiler_catalog extensions this processor published its catalog's names to.
	catalogs []catalogextension.Publisher

	// holdWake tells the async goroutine that records were held: it checks the hold only while something is held,
	// so that an idle collector does not wake up for it.
	holdWake chan struct{}

	// Lifecycle of the async goroutine.
	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	runCtx    context.Context
	cancelRun context.CancelFunc
	wg        sync.WaitGroup
}

var _ processor.Logs = (*compilerDetector)(nil)

func newCompilerDetector(set processor.Settings, cfg *Config, next consumer.Logs, meta metadataSource) (*compilerDetector, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("creating telemetry: %w", err)
	}
	p := &compilerDetector{
		cfg:       cfg,
		id:        set.ID,
		logger:    set.Logger,
		next:      next,
		telemetry: tb,
		report:    newReporter(tb, nil),
		buildInfo: set.BuildInfo,
		matcher:   catalog.NewMatcher(cfg.catalogEntries()),
		known:     catalog.NewKnown(),
		exclude:   exclude.New(cfg.Exclude),
		dedup:     dedup.New(cfg.Dedup, set.Logger, set.BuildInfo.Version),
		meta:      meta,
		now:       time.Now,
		stop:      make(chan struct{}),
		holdWake:  make(chan struct{}, 1),
	}
	if cfg.LogFindings {
		p.report.out = os.Stdout
	}
	if meta != nil {
		p.hold = p.newHold()
	}
	if cfg.ScanForCompilers {
		p.presence = presence.New(p.presenceSettings())
	}
	p.runCtx, p.cancelRun = context.WithCancel(context.Background())
	return p, nil
}

func (p *compilerDetector) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

// Start builds the Kubernetes pod cache when kubernetes.enabled asks for it, then starts the async goroutine. Only
// configuration errors fail it (no credentials, a kubeconfig that does not load): an API server that is down or
// refuses the requests must not keep a node agent from capturing, so records then flow without Kubernetes
// attributes while the cache retries, and the state is reported as component status and the k8s_synced gauge.
func (p *compilerDetector) Start(ctx context.Context, host component.Host) error {
	p.host = host
	p.publishCatalog(host)
	if p.meta == nil {
		if err := p.startKube(ctx); err != nil {
			return err
		}
	}
	p.startOnce.Do(func() {
		if p.presence != nil {
			p.presence.Start()
		}
		holdEvery, sweepEvery := p.intervals()
		if holdEvery == 0 && sweepEvery == 0 {
			return
		}
		p.wg.Add(1)
		go p.run(holdEvery, sweepEvery)
	})
	return nil
}

// publishCatalog publishes the names of this processor's catalog to every compiler_catalog extension the host
// runs, for the receiver's "prefilter: compilers", which reads them at its Start, after this one.
func (p *compilerDetector) publishCatalog(host component.Host) {
	var names []string
	for _, ext := range host.GetExtensions() {
		pub, ok := ext.(catalogextension.Publisher)
		if !ok {
			continue
		}
		if names == nil {
			names = p.matcher.CandidateNames()
		}
		pub.Publish(p.id, names)
		p.catalogs = append(p.catalogs, pub)
	}
}

// intervals returns how often held records are re-checked and dedup windows swept (0 = never).
func (p *compilerDetector) intervals() (hold, sweep time.Duration) {
	if p.hold != nil {
		hold = p.hold.CheckEvery()
	}
	if p.dedup != nil {
		// A summary is at most a minute late; short windows are swept proportionally more often.
		sweep = min(max(p.cfg.Dedup.Window/10, time.Second), time.Minute)
	}
	return hold, sweep
}

// run is the async goroutine: it releases held records and emits dedup summaries. The hold is checked every
// holdEvery while records are held, and not at all while none are.
func (p *compilerDetector) run(holdEvery, sweepEvery time.Duration) {
	defer p.wg.Done()
	var holdC, sweepC <-chan time.Time
	var holdT *time.Ticker
	if holdEvery > 0 {
		holdT = time.NewTicker(holdEvery)
		holdT.Stop()
		defer holdT.Stop()
	}
	if sweepEvery > 0 {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		sweepC = t.C
	}
	for {
		select {
		case <-p.stop:
			return
		case <-p.holdWake:
			if holdT != nil && holdC == nil {
				holdT.Reset(holdEvery)
				holdC = holdT.C
			}
		case <-holdC:
			p.releaseHeld(p.runCtx, false)
			if p.hold.Held() == 0 {
				// A batch held from now on sends a new wake-up.
				holdT.Stop()
				holdC = nil
			}
		case <-sweepC:
			p.emitSummaries(p.runCtx, false)
		}
	}
}

// Shutdown stops the async goroutine, then flushes every held record and every pending dedup count to the next
// consumer, so nothing is lost on a clean stop.
func (p *compilerDetector) Shutdown(ctx context.Context) error {
	p.stopping.Store(true)
	p.stopOnce.Do(func() { close(p.stop) })
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.cancelRun() // unblock a delivery stuck in the next consumer
		<-done
	}
	if p.presence != nil {
		p.presence.Stop()
	}
	for _, c := range p.catalogs {
		c.Withdraw(p.id)
	}
	p.catalogs = nil
	p.cancelRun()
	p.releaseHeld(ctx, true)
	p.emitSummaries(ctx, true)
	p.telemetry.Shutdown()
	if p.kube != nil {
		return p.kube.Shutdown(ctx)
	}
	return nil
}

// presenceSettings wires the presence scan to the processor's catalog, exclusions, enrichment and output.
func (p *compilerDetector) presenceSettings() presence.Settings {
	return presence.Settings{
		Matcher: p.matcher, Excluded: p.exclude.ResourceExcluded, Enrich: p.enrichNow,
		Logger: p.logger, Telemetry: p.telemetry, Version: p.buildInfo.Version, Emit: p.emitPresence,
	}
}

// emitPresence reports a presence scan's findings and delivers them.
func (p *compilerDetector) emitPresence(ctx context.Context, ld plog.Logs) {
	p.report.presence(ld)
	p.deliver(ctx, ld)
}

// ConsumeLogs flags compiler executions in ld and passes it on. Records held for Kubernetes metadata leave ld
// here and are emitted later by the async goroutine.
func (p *compilerDetector) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	now := p.now()
	var st stats
	rls := ld.ResourceLogs()
	if p.hold != nil {
		rls.RemoveIf(func(rl plog.ResourceLogs) bool {
			res := rl.Resource()
			found, ready := p.lookup(res)
			n := countRecords(rl) // before Route, which moves the records out
			if p.hold.Route(rl, attr.ContainerKey(res.Attributes()), ready, now) {
				st.held += int64(n)
				select {
				case p.holdWake <- struct{}{}:
				default: // a wake-up is pending already
				}
				return true
			}
			enrich(res, found)
			return false
		})
		if p.hold.OverBound() {
			// The oldest held batches go on now. No later record of their containers can pass them: Route
			// queues the records of a container with batches held or in flight.
			p.releaseMu.Lock()
			p.emitReleased(ctx, now, p.hold.TakeOldest(p.lookup))
			p.releaseMu.Unlock()
		}
	}
	rls.RemoveIf(func(rl plog.ResourceLogs) bool {
		return p.processResource(rl, now, &st)
	})
	p.appendEvicted(ld, &st, now)
	st.record(ctx, p.telemetry)
	if rls.Len() == 0 {
		return nil
	}
	return p.next.ConsumeLogs(ctx, ld)
}

// releaseHeld processes and emits held batches whose metadata arrived or whose wait expired (all when force).
func (p *compilerDetector) releaseHeld(ctx context.Context, force bool) {
	if p.hold == nil {
		return
	}
	p.releaseMu.Lock()
	defer p.releaseMu.Unlock()
	now := p.now()
	p.emitReleased(ctx, now, p.hold.Release(now, force, p.lookup))
}

// emitReleased processes and emits batches taken out of hold, in order. Called with releaseMu held.
func (p *compilerDetector) emitReleased(ctx context.Context, now time.Time, batches []hold.Batch[podMetadata]) {
	for _, b := range batches {
		var st stats
		if b.Expired {
			st.holdExpired += int64(b.Logs.LogRecordCount())
		}
		rls := b.Logs.ResourceLogs()
		rls.RemoveIf(func(rl plog.ResourceLogs) bool {
			enrich(rl.Resource(), b.Found)
			return p.processResource(rl, now, &st)
		})
		p.appendEvicted(b.Logs, &st, now)
		st.record(ctx, p.telemetry)
		if rls.Len() > 0 {
			p.deliver(ctx, b.Logs)
		}
		p.hold.Done(b.Key)
	}
}

// emitSummaries emits the summaries of the dedup windows that closed with suppressed repeats (every open
// window when all is set, at shutdown).
func (p *compilerDetector) emitSummaries(ctx context.Context, all bool) {
	if p.dedup == nil {
		return
	}
	ld, n := p.dedup.ExpireSummaries(p.now(), all)
	if n == 0 {
		return
	}
	st := stats{summaries: int64(n)}
	st.record(ctx, p.telemetry)
	p.deliver(ctx, ld)
}

// appendEvicted adds to ld the summaries of the windows evicted while it was processed.
func (p *compilerDetector) appendEvicted(ld plog.Logs, st *stats, now time.Time) {
	if len(st.evictedWindows) == 0 {
		return
	}
	p.dedup.AppendSummaries(ld, st.evictedWindows, now)
	st.summaries += int64(len(st.evictedWindows))
	st.evictedWindows = nil
}

// deliver hands an async batch to the next consumer. There is no caller to return an error to, so a failure is
// logged and counted.
func (p *compilerDetector) deliver(ctx context.Context, ld plog.Logs) {
	n := ld.LogRecordCount()
	if err := p.next.ConsumeLogs(ctx, ld); err != nil {
		p.telemetry.ProcessorCompilerDetectorAsyncEmitFailedRecords.Add(context.Background(), int64(n))
		p.logger.Warn("Next consumer rejected asynchronously emitted records", zap.Int("records", n), zap.Error(err))
	}
}

func countRecords(rl plog.ResourceLogs) int {
	n := 0
	for i := 0; i < rl.ScopeLogs().Len(); i++ {
		n += rl.ScopeLogs().At(i).LogRecords().Len()
	}
	return n
}
