// Hand-written in the shape mdatagen generates (mdatagen is not available to
// this project); keep in sync with ../../metadata.yaml, which
// metadata_test.go checks.

package metadata

import (
	"errors"
	"sync"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"go.opentelemetry.io/collector/component"
)

func Meter(settings component.TelemetrySettings) metric.Meter {
	return settings.MeterProvider.Meter("github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver")
}

func Tracer(settings component.TelemetrySettings) trace.Tracer {
	return settings.TracerProvider.Tracer("github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver")
}

// TelemetryBuilder provides an interface for components to report telemetry
// as defined in metadata and user config.
type TelemetryBuilder struct {
	meter                                metric.Meter
	mu                                   sync.Mutex
	registrations                        []metric.Registration
	ReceiverEbpfExecDroppedRecords       metric.Int64Counter
	ReceiverEbpfExecExecsSeen            metric.Int64Counter
	ReceiverEbpfExecFilteredExecs        metric.Int64Counter
	ReceiverEbpfExecKernelDroppedRecords metric.Int64Counter
	ReceiverEbpfExecRedactedArgs         metric.Int64Counter
	ReceiverEbpfExecTruncatedRecords     metric.Int64Counter
}

// TelemetryBuilderOption applies changes to default builder.
type TelemetryBuilderOption interface {
	apply(*TelemetryBuilder)
}

type telemetryBuilderOptionFunc func(mb *TelemetryBuilder)

func (tbof telemetryBuilderOptionFunc) apply(mb *TelemetryBuilder) {
	tbof(mb)
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
	builder.ReceiverEbpfExecDroppedRecords, err = builder.meter.Int64Counter(
		"otelcol_receiver_ebpf_exec_dropped_records",
		metric.WithDescription("Exec records lost in user space, because they could not be decoded or the next consumer refused them. [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ReceiverEbpfExecExecsSeen, err = builder.meter.Int64Counter(
		"otelcol_receiver_ebpf_exec_execs_seen",
		metric.WithDescription("Successful execs the kernel program saw, whether or not their record reached user space. [Alpha]"),
		metric.WithUnit("{exec}"),
	)
	errs = errors.Join(errs, err)
	builder.ReceiverEbpfExecFilteredExecs, err = builder.meter.Int64Counter(
		"otelcol_receiver_ebpf_exec_filtered_execs",
		metric.WithDescription("Execs the in-kernel prefilter counted but did not send, by the filter that dropped them (prefilter: containers, execs in the host's mount namespace; prefilter: compilers, execs not named like a compiler). [Alpha]"),
		metric.WithUnit("{exec}"),
	)
	errs = errors.Join(errs, err)
	builder.ReceiverEbpfExecKernelDroppedRecords, err = builder.meter.Int64Counter(
		"otelcol_receiver_ebpf_exec_kernel_dropped_records",
		metric.WithDescription("Exec records lost in the kernel because the ring buffer had no room (reservation failures). [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	builder.ReceiverEbpfExecRedactedArgs, err = builder.meter.Int64Counter(
		"otelcol_receiver_ebpf_exec_redacted_args",
		metric.WithDescription("Arguments in which a secret was masked before export. [Alpha]"),
		metric.WithUnit("{argument}"),
	)
	errs = errors.Join(errs, err)
	builder.ReceiverEbpfExecTruncatedRecords, err = builder.meter.Int64Counter(
		"otelcol_receiver_ebpf_exec_truncated_records",
		metric.WithDescription("Exec records with at least one field cut short by a configured limit (see compilerwatch.truncated). [Alpha]"),
		metric.WithUnit("{record}"),
	)
	errs = errors.Join(errs, err)
	return &builder, errs
}
