package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

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
