package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

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
	logger    *zap.Logger
	next      consumer.Logs
	telemetry *metadata.TelemetryBuilder
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
		logger:    set.Logger,
		next:      next,
		telemetry: tb,
		buildInfo: set.BuildInfo,
		matcher:   catalog.NewMatcher(cfg.catalogEntries()),
		known:     catalog.NewKnown(),
		exclude:   exclude.New(cfg.Exclude),
		dedup:     dedup.New(cfg.Dedup, set.Logger, set.BuildInfo.Version),
		meta:      meta,
		now:       time.Now,
		stop:      make(chan struct{}),
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

// run is the async goroutine: it releases held records and emits dedup summaries.
func (p *compilerDetector) run(holdEvery, sweepEvery time.Duration) {
	defer p.wg.Done()
	var holdC, sweepC <-chan time.Time
	if holdEvery > 0 {
		t := time.NewTicker(holdEvery)
		defer t.Stop()
		holdC = t.C
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
		case <-holdC:
			p.releaseHeld(p.runCtx, false)
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
	p.cancelRun()
	p.releaseHeld(ctx, true)
	p.emitSummaries(ctx, true)
	p.telemetry.Shutdown()
	if p.kube != nil {
		return p.kube.Shutdown(ctx)
	}
	return nil
}

// startKube creates and starts the pod cache. kube.New returns nil when the cache is off (enabled: false, or
// auto outside a cluster); records then flow without Kubernetes attributes and nothing is held. kube.New fails on
// configuration errors only; Start does not fail because of the API server.
func (p *compilerDetector) startKube(ctx context.Context) error {
	cache, err := kube.New(p.cfg.Kubernetes, p.kubeSettings())
	if err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	if cache == nil {
		// Validate refuses these with enabled: false; with auto it is only known now.
		if keys := p.cfg.Exclude.KubernetesKeys(); len(keys) > 0 {
			p.logger.Warn(`Kubernetes metadata is off ("kubernetes.enabled" is auto and this is not a pod in a cluster): `+
				`exclusions on Kubernetes attributes will never match`, zap.Strings("keys", keys))
		}
		return nil
	}
	if err := cache.Start(ctx); err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	cache.CheckNode(ctx)
	p.kube = cache
	p.meta = kubeSource{cache}
	p.hold = p.newHold()
	return p.registerKubeMetrics()
}

// newHold returns the hold for records whose Kubernetes metadata is not known yet; it owns wait_for_metadata.
func (p *compilerDetector) newHold() *hold.Holder[podMetadata] {
	return hold.New[podMetadata](p.cfg.Kubernetes.WaitForMetadata, hold.MaxRecords)
}

// lookup resolves res's Kubernetes metadata without changing res: nothing, and ready, when Kubernetes is off.
// It is the hold's check.
func (p *compilerDetector) lookup(res pcommon.Resource) (podMetadata, bool) {
	if p.meta == nil {
		return nil, true
	}
	return p.meta.Lookup(res)
}

// enrich adds what a lookup found to res. It is the one place Kubernetes attributes are written, once per
// record: as a batch goes on to processing (at once, or out of the hold), or as a presence record is emitted.
func enrich(res pcommon.Resource, found podMetadata) {
	if found != nil {
		found.Apply(res)
	}
}

// enrichNow adds the Kubernetes attributes known by now to res: for a presence record, whose exclusions are
// decided when it is emitted.
func (p *compilerDetector) enrichNow(res pcommon.Resource) {
	found, _ := p.lookup(res)
	enrich(res, found)
}

// presenceSettings wires the presence scan to the processor's catalog, exclusions, enrichment and output.
func (p *compilerDetector) presenceSettings() presence.Settings {
	return presence.Settings{
		Matcher: p.matcher, Excluded: p.exclude.ResourceExcluded, Enrich: p.enrichNow,
		Logger: p.logger, Telemetry: p.telemetry, Version: p.buildInfo.Version, Emit: p.deliver,
	}
}

// reportKubeStatus turns the pod cache's state into component status: OK while the cache follows the API server,
// RecoverableError while it cannot (unreachable, refused, not synced). Neither makes the health_check extension's
// liveness answer fail: it only reports 503 for Starting, Stopping, Stopped and FatalError, and a RecoverableError
// only with component_health.include_recoverable_errors, which a liveness probe must not set (the kubelet would
// restart the collector into the same outage). The cache calls this in order, never concurrently.
func (p *compilerDetector) reportKubeStatus(s kube.Status) {
	if p.host == nil || p.stopping.Load() {
		return
	}
	if s.OK() {
		componentstatus.ReportStatus(p.host, componentstatus.NewEvent(componentstatus.StatusOK))
		return
	}
	componentstatus.ReportStatus(p.host, componentstatus.NewRecoverableErrorEvent(s.Problem()))
}

// kubeSettings are the pod cache's settings: the labels that exclude.pod_labels names are kept and copied even
// when kubernetes.pod_labels does not select them, or the exclusion could never match.
func (p *compilerDetector) kubeSettings() kube.Settings {
	set := kube.Settings{Logger: p.logger, OnStatusChange: p.reportKubeStatus}
	for k := range p.cfg.Exclude.PodLabels {
		set.KeepLabels = append(set.KeepLabels, k)
	}
	slices.Sort(set.KeepLabels)
	return set
}

// metadataSource resolves a resource's Kubernetes metadata: the pod cache, or a fake in tests.
type metadataSource interface {
	// Lookup resolves res without changing it. ready is false when the pod is known but its container is not yet
	// in the pod's status, which makes the records worth holding until wait_for_metadata. found is nil when
	// nothing is known.
	Lookup(res pcommon.Resource) (found podMetadata, ready bool)
}

// podMetadata is what a lookup found.
type podMetadata interface {
	// Apply adds the attributes to res where absent.
	Apply(res pcommon.Resource)
}

// kubeSource adapts the pod cache: a record is ready unless its pod is known and its container is not yet in
// the pod's status. While the cache does not follow the API server (unreachable, refused), the status update a
// held record waits for cannot come, so nothing waits for it: records flow on with what the cache has. Before
// the first sync no pod is known, so nothing is pending anyway.
type kubeSource struct{ c *kube.Cache }

func (k kubeSource) Lookup(res pcommon.Resource) (podMetadata, bool) {
	r, state := k.c.Lookup(res)
	ready := state != kube.StateContainerPending || !k.c.Following()
	if state == kube.StateUnknown {
		return nil, ready
	}
	return kubeFound{k.c, r}, ready
}

// kubeFound is a pod cache lookup's result.
type kubeFound struct {
	c *kube.Cache
	r kube.Result
}

func (f kubeFound) Apply(res pcommon.Resource) { f.c.Apply(res, f.r) }

var (
	lookupHit     = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "hit")))
	lookupPending = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "pending")))
	lookupMiss    = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "miss")))
)

// registerKubeMetrics exports the cache's counters, read when the metrics are collected.
func (p *compilerDetector) registerKubeMetrics() error {
	tb, c := p.telemetry, p.kube
	return errors.Join(
		tb.RegisterProcessorCompilerDetectorK8sPodsCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(c.Stats().Pods))
			return nil
		}),
		tb.RegisterProcessorCompilerDetectorK8sLookupsCallback(func(_ context.Context, o metric.Int64Observer) error {
			st := c.Stats()
			o.Observe(int64(st.Hits), lookupHit)
			o.Observe(int64(st.ContainerPending), lookupPending)
			o.Observe(int64(st.Misses), lookupMiss)
			return nil
		}),
		tb.RegisterProcessorCompilerDetectorK8sAPIErrorsCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(c.Stats().APIErrors))
			return nil
		}),
		tb.RegisterProcessorCompilerDetectorK8sSyncedCallback(func(_ context.Context, o metric.Int64Observer) error {
			var v int64
			if c.Following() {
				v = 1
			}
			o.Observe(v)
			return nil
		}),
	)
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
		p.processResource(rl, now, &st)
		return p.cfg.OnlyFlagged && rl.ScopeLogs().Len() == 0
	})
	p.appendEvicted(ld, &st, now)
	st.record(ctx, p.telemetry)
	if rls.Len() == 0 {
		return nil
	}
	return p.next.ConsumeLogs(ctx, ld)
}

// stats are counted per call and recorded once.
type stats struct {
	flagged, excluded, deduplicated, dropped, held, holdExpired, summaries int64
	// Dedup limit hits: findings whose key was collapsed, and windows evicted.
	collapsed, evicted int64
	// evictedWindows are windows evicted with suppressed repeats, whose summaries go with the batch.
	evictedWindows []*dedup.Window
}

var (
	limitContainerAttr = metric.WithAttributeSet(attribute.NewSet(attribute.String("limit", dedup.LimitPerContainer)))
	limitNodeAttr      = metric.WithAttributeSet(attribute.NewSet(attribute.String("limit", dedup.LimitNode)))
)

func (st *stats) record(ctx context.Context, tb *metadata.TelemetryBuilder) {
	if st.flagged > 0 {
		tb.ProcessorCompilerDetectorFlaggedRecords.Add(ctx, st.flagged)
	}
	if st.excluded > 0 {
		tb.ProcessorCompilerDetectorExcludedRecords.Add(ctx, st.excluded)
	}
	if st.deduplicated > 0 {
		tb.ProcessorCompilerDetectorDeduplicatedRecords.Add(ctx, st.deduplicated)
	}
	if st.dropped > 0 {
		tb.ProcessorCompilerDetectorDroppedRecords.Add(ctx, st.dropped)
	}
	if st.held > 0 {
		tb.ProcessorCompilerDetectorHeldRecords.Add(ctx, st.held)
	}
	if st.holdExpired > 0 {
		tb.ProcessorCompilerDetectorHoldExpiredRecords.Add(ctx, st.holdExpired)
	}
	if st.summaries > 0 {
		tb.ProcessorCompilerDetectorDedupSummaryRecords.Add(ctx, st.summaries)
	}
	if st.collapsed > 0 {
		tb.ProcessorCompilerDetectorDedupLimitedKeys.Add(ctx, st.collapsed, limitContainerAttr)
	}
	if st.evicted > 0 {
		tb.ProcessorCompilerDetectorDedupLimitedKeys.Add(ctx, st.evicted, limitNodeAttr)
	}
}

// processResource is the one funnel every record goes through, synchronous or released from hold: match,
// exclude, dedup, flag, and drop what only_flagged does not keep.
func (p *compilerDetector) processResource(rl plog.ResourceLogs, now time.Time, st *stats) {
	res := rl.Resource().Attributes()
	if p.presence != nil {
		p.presence.Observe(rl.Resource(), rl)
	}
	inScope := !p.cfg.ContainersOnly || attr.Str(res, attr.ContainerID) != ""
	resExcluded := -1 // computed on the first match only
	rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
		sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
			flagged := inScope && p.processRecord(res, &resExcluded, lr, now, st)
			if !flagged && p.cfg.OnlyFlagged {
				st.dropped++
				return true
			}
			return false
		})
		return p.cfg.OnlyFlagged && sl.LogRecords().Len() == 0
	})
}

// processRecord flags lr if it is a compiler execution that is neither excluded nor a duplicate.
func (p *compilerDetector) processRecord(res pcommon.Map, resExcluded *int, lr plog.LogRecord, now time.Time, st *stats) bool {
	attrs := lr.Attributes()
	v := catalog.ExecView{
		ExePath:      attr.Str(attrs, attr.ExecutablePath),
		ExeName:      attr.Str(attrs, attr.ExecutableName),
		Filename:     attr.Str(attrs, attr.ExecFilename),
		Argv0:        attr.Str(attrs, attr.Command),
		Comm:         attr.Str(attrs, attr.ExecComm),
		Args:         catalog.ListAttr(attrs, attr.CommandArgs),
		Ancestors:    catalog.ListAttr(attrs, attr.Ancestors),
		AncestorExes: catalog.ListAttr(attrs, attr.AncestorExeNames),
		Known:        p.known,
		Container:    attr.Str(res, attr.ContainerID),
	}
	v.ArgsTruncated = argsTruncated(attrs, v.Args)
	m, trust, ok := p.matcher.Classify(&v)
	if !ok {
		return false
	}
	// Remembered before exclusion and dedup: an excluded or repeated compiler still vouches for its stages.
	var pid int64
	pv, hasPID := attrs.Get(attr.ProcessPID)
	if hasPID = hasPID && pv.Type() == pcommon.ValueTypeInt; hasPID {
		pid = pv.Int()
	}
	p.known.Remember(&v, pid, hasPID, trust)
	if *resExcluded < 0 {
		*resExcluded = 0
		if p.exclude.ResourceExcluded(res) {
			*resExcluded = 1
		}
	}
	parentExe := attr.Str(attrs, attr.ParentExecutable)
	parentComm := attr.Str(attrs, attr.ParentCommand)
	if *resExcluded == 1 || p.exclude.ParentExcluded(parentExe, v.AncestorExes) {
		st.excluded++
		return false
	}

	// A stage caught without a driver ancestor stands for an unrecognised (renamed) driver, its parent: if that
	// was written at runtime, so was the compiler.
	runtime := attr.IsRuntimeOrigin(attr.Str(attrs, attr.ExecutableOrigin)) ||
		(m.Signal == catalog.MatchCompilerStage && attr.IsRuntimeOrigin(attr.Str(attrs, attr.ParentExecutableOrigin)))
	sev := plog.SeverityNumberWarn
	if runtime {
		sev = plog.SeverityNumberError
	}
	var carried int64
	if p.dedup != nil {
		keyParent := parentExe
		if keyParent == "" {
			keyParent = parentComm // the receiver could not read the parent's exe
		}
		obs := p.dedup.Observe(res, now, dedup.Finding{
			Compiler: m.Name, Language: m.Language, ParentExe: parentExe, KeyParent: keyParent, Executable: v.ExePath,
			Severity: sev, Runtime: runtime,
		})
		carried = obs.Carried
		if obs.Collapsed {
			st.collapsed++
		}
		st.evicted += int64(obs.Evicted)
		if obs.Summary != nil {
			st.evictedWindows = append(st.evictedWindows, obs.Summary)
		}
		if !obs.Flag {
			st.deduplicated++
			return false
		}
	}
	flagRecord(lr, m, sev, runtime, carried)
	st.flagged++
	return true
}

// argsTruncated reports whether the receiver captured less than the whole argv.
func argsTruncated(attrs pcommon.Map, args catalog.List) bool {
	if v, ok := attrs.Get(attr.ArgsCount); ok && v.Type() == pcommon.ValueTypeInt && v.Int() > int64(args.Len()) {
		return true
	}
	tr := catalog.ListAttr(attrs, attr.Truncated)
	for i, n := 0, tr.Len(); i < n; i++ {
		if tr.At(i) == "args" {
			return true
		}
	}
	return false
}

// flagRecord adds the finding to lr. Attributes are added only where absent; severity is only ever raised.
func flagRecord(lr plog.LogRecord, m catalog.Match, sev plog.SeverityNumber, runtime bool, carried int64) {
	if lr.SeverityNumber() < sev {
		lr.SetSeverityNumber(sev)
		lr.SetSeverityText(attr.SeverityText(sev))
	}
	attrs := lr.Attributes()
	attr.PutRule(attrs)
	attr.PutStrIfAbsent(attrs, attr.CompilerName, m.Name)
	attr.PutStrIfAbsent(attrs, attr.CompilerLanguage, m.Language)
	attr.PutStrIfAbsent(attrs, attr.CompilerMatch, m.Signal)
	if runtime {
		if _, ok := attrs.Get(attr.InstalledAtRuntime); !ok {
			attrs.PutBool(attr.InstalledAtRuntime, true)
		}
	}
	if carried > 0 {
		if _, ok := attrs.Get(attr.SuppressedCount); !ok {
			attrs.PutInt(attr.SuppressedCount, carried)
		}
	}
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
			p.processResource(rl, now, &st)
			return p.cfg.OnlyFlagged && rl.ScopeLogs().Len() == 0
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
