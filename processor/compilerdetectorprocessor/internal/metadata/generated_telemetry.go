// Hand-written in the shape mdatagen generates (mdatagen is not available to this project), so linters check it;
// keep in sync with ../../metadata.yaml.

package metadata

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/trace"

	"go.opentelemetry.io/collector/component"
)

func Meter(settings component.TelemetrySettings) metric.Meter {
	return settings.MeterProvider.Meter("github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor")
}

func Tracer(settings component.TelemetrySettings) trace.Tracer {
	return settings.TracerProvider.Tracer("github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor")
}

// TelemetryBuilder provides an interface for components to report telemetry
// as defined in metadata and user config.
type TelemetryBuilder struct {
	meter                                           metric.Meter
	mu                                              sync.Mutex
	registrations                                   []metric.Registration
	ProcessorCompilerDetectorAsyncEmitFailedRecords metric.Int64Counter
	ProcessorCompilerDetectorContainerScans         metric.Int64Counter
	ProcessorCompilerDetectorDedupLimitedKeys       metric.Int64Counter
	ProcessorCompilerDetectorDedupSummaryRecords    metric.Int64Counter
	ProcessorCompilerDetectorDeduplicatedRecords    metric.Int64Counter
	ProcessorCompilerDetectorDroppedRecords         metric.Int64Counter
	ProcessorCompilerDetectorExcludedRecords        metric.Int64Counter
	ProcessorCompilerDetectorFindings               metric.Int64Counter
	ProcessorCompilerDetectorFlaggedRecords         metric.Int64Counter
	ProcessorCompilerDetectorHeldRecords            metric.Int64Counter
	ProcessorCompilerDetectorHoldExpiredRecords     metric.Int64Counter
	ProcessorCompilerDetectorK8sAPIErrors           metric.Int64ObservableCounter
	ProcessorCompilerDetectorK8sLookups             metric.Int64ObservableCounter
	ProcessorCompilerDetectorK8sPods                metric.Int64ObservableGauge
	ProcessorCompilerDetectorK8sSynced              metric.Int64ObservableGauge
	ProcessorCompilerDetectorPresenceFindings       metric.Int64Counter
}

// observerInt64 binds an Int64Observer to one instrument for a callback.
type observerInt64 struct {
	embedded.Int64Observer
	inst metric.Int64Observable
	obs  metric.Observer
}

func (oi *observerInt64) Observe(value int64, opts ...metric.ObserveOption) {
	oi.obs.ObserveInt64(oi.inst, value, opts...)
}

func (builder *TelemetryBuilder) register(inst metric.Int64Observable, cb metric.Int64Callback) error {
	builder.mu.Lock()
	defer builder.mu.Unlock()
	reg, err := builder.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return cb(ctx, &observerInt64{inst: inst, obs: o})
	}, inst)
	if err != nil {
		return err
	}
	builder.registrations = append(builder.registrations, reg)
	return nil
}

// RegisterProcessorCompilerDetectorK8sAPIErrorsCallback sets callback for observable ProcessorCompilerDetectorK8sAPIErrors metric.
func (builder *TelemetryBuilder) RegisterProcessorCompilerDetectorK8sAPIErrorsCallback(cb metric.Int64Callback) error {
	return builder.register(builder.ProcessorCompilerDetectorK8sAPIErrors, cb)
}

// RegisterProcessorCompilerDetectorK8sLookupsCallback sets callback for observable ProcessorCompilerDetectorK8sLookups metric.
func (builder *TelemetryBuilder) RegisterProcessorCompilerDetectorK8sLookupsCallback(cb metric.Int64Callback) error {
	return builder.register(builder.ProcessorCompilerDetectorK8sLookups, cb)
}

// RegisterProcessorCompilerDetectorK8sPodsCallback sets callback for observable ProcessorCompilerDetectorK8sPods metric.
func (builder *TelemetryBuilder) RegisterProcessorCompilerDetectorK8sPodsCallback(cb metric.Int64Callback) error {
	return builder.register(builder.ProcessorCompilerDetectorK8sPods, cb)
}

// RegisterProcessorCompilerDetectorK8sSyncedCallback sets callback for observable ProcessorCompilerDetectorK8sSynced metric.
func (builder *TelemetryBuilder) RegisterProcessorCompilerDetectorK8sSyncedCallback(cb metric.Int64Callback) error {
	return builder.register(builder.ProcessorCompilerDetectorK8sSynced, cb)
}

// TelemetryBuilderOption applies changes to default builder.
type TelemetryBuilderOption interface {
	apply(*TelemetryBuilder)
}

// Shutdown unregister all registered callbacks for async instruments.
func (builder *TelemetryBuilder) Shutdown() {
	builder.mu.Lock()
	defer builder.mu.Unlock()
	for _, reg := range builder.registrations {
		_ = reg.Unregister()
	}
}

// NewTelemetryBuilder provides a struct with methods to update all internal telemetry
// for a component
func NewTelemetryBuilder(settings component.TelemetrySettings, options ...TelemetryBuilderOption) (*TelemetryBuilder, error) {
	builder := TelemetryBuilder{}
	for _, op := range options {
		op.apply(&builder)
	}
	builder.meter = Meter(settings)
	var err, errs error
	builder.ProcessorCompilerDetectorContainerScans, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_container_scans",
		metric.WithDescription("Compiler presence scans of container roots, by result: found, clean, excluded, unscannable or failed. [Alpha]"),
		metric.WithUnit("{scan}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorAsyncEmitFailedRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_async_emit_failed_records",
		metric.WithDescription("Records emitted asynchronously (held records, dedup summaries) that the next consumer rejected. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorDedupLimitedKeys, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_dedup_limited_keys",
		metric.WithDescription("Dedup keys limited, by limit: max_keys_per_container (a finding's new key collapsed to container and compiler) or max_keys (a window evicted, its repeats summarised). [Alpha]"),
		metric.WithUnit("{key}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorDedupSummaryRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_dedup_summary_records",
		metric.WithDescription("Dedup summary records emitted for keys whose window expired with suppressed repeats. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorDeduplicatedRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_deduplicated_records",
		metric.WithDescription("Compiler executions suppressed by dedup (counted, passed on unflagged unless only_flagged). [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorDroppedRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_dropped_records",
		metric.WithDescription("Records dropped because only_flagged is set and they were not flagged. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorExcludedRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_excluded_records",
		metric.WithDescription("Compiler executions not flagged because an exclude rule matched. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorFlaggedRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_flagged_records",
		metric.WithDescription("Records flagged as compiler executions. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorFindings, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_findings",
		metric.WithDescription("Compiler executions flagged (findings), by namespace, compiler, severity and whether the compiler was installed at runtime; namespaces past the cap are counted as _other. [Alpha]"),
		metric.WithUnit("{finding}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorPresenceFindings, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_presence_findings",
		metric.WithDescription("Presence findings (compilers present in a container's root), by namespace and compiler: a finding naming several compilers counts once for each; namespaces past the cap are counted as _other. [Alpha]"),
		metric.WithUnit("{finding}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorHeldRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_held_records",
		metric.WithDescription("Records held while waiting for Kubernetes metadata. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorHoldExpiredRecords, err = builder.meter.Int64Counter(
		"otelcol_processor_compiler_detector_hold_expired_records",
		metric.WithDescription("Held records released after wait_for_metadata (or at shutdown) without complete Kubernetes metadata. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorK8sAPIErrors, err = builder.meter.Int64ObservableCounter(
		"otelcol_processor_compiler_detector_k8s_api_errors",
		metric.WithDescription("Failed requests to the Kubernetes API server (list/watch of pods, owner GETs). [Alpha]"),
		metric.WithUnit("{request}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorK8sLookups, err = builder.meter.Int64ObservableCounter(
		"otelcol_processor_compiler_detector_k8s_lookups",
		metric.WithDescription("Kubernetes metadata lookups, by result: hit, pending (pod known, container not yet) or miss. [Alpha]"),
		metric.WithUnit("{lookup}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorK8sPods, err = builder.meter.Int64ObservableGauge(
		"otelcol_processor_compiler_detector_k8s_pods",
		metric.WithDescription("Pods of this node in the Kubernetes metadata cache. [Alpha]"),
		metric.WithUnit("{pod}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorCompilerDetectorK8sSynced, err = builder.meter.Int64ObservableGauge(
		"otelcol_processor_compiler_detector_k8s_synced",
		metric.WithDescription("1 while the Kubernetes pod cache is synced and follows the API server; 0 while the API server is unreachable, refuses the pod list or watch (RBAC), or the cache has not synced yet. [Alpha]"),
		metric.WithUnit("1"),
	)
	errs = errors.Join(errs, err)
	return &builder, errs
}
