package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/hold"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
)

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
	return hold.New[podMetadata](p.cfg.Kubernetes.WaitForMetadata.Hold, hold.MaxRecords)
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
