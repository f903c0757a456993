// Hand-written in the shape mdatagen generates (mdatagen is not available to
// this project); keep in sync with ../../metadata.yaml, which
// metadata_test.go checks.

package metadatatest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
)

func TestSetupTelemetry(t *testing.T) {
	testTel := componenttest.NewTelemetry()
	tb, err := metadata.NewTelemetryBuilder(testTel.NewTelemetrySettings())
	require.NoError(t, err)
	defer tb.Shutdown()
	tb.ReceiverEbpfExecDroppedRecords.Add(context.Background(), 1)
	tb.ReceiverEbpfExecExecsSeen.Add(context.Background(), 1)
	tb.ReceiverEbpfExecFilteredExecs.Add(context.Background(), 1)
	tb.ReceiverEbpfExecKernelDroppedRecords.Add(context.Background(), 1)
	tb.ReceiverEbpfExecRedactedArgs.Add(context.Background(), 1)
	tb.ReceiverEbpfExecTruncatedRecords.Add(context.Background(), 1)
	AssertEqualReceiverEbpfExecDroppedRecords(t, testTel,
		[]metricdata.DataPoint[int64]{{Value: 1}},
		metricdatatest.IgnoreTimestamp())
	AssertEqualReceiverEbpfExecExecsSeen(t, testTel,
		[]metricdata.DataPoint[int64]{{Value: 1}},
		metricdatatest.IgnoreTimestamp())
	AssertEqualReceiverEbpfExecFilteredExecs(t, testTel,
		[]metricdata.DataPoint[int64]{{Value: 1}},
		metricdatatest.IgnoreTimestamp())
	AssertEqualReceiverEbpfExecKernelDroppedRecords(t, testTel,
		[]metricdata.DataPoint[int64]{{Value: 1}},
		metricdatatest.IgnoreTimestamp())
	AssertEqualReceiverEbpfExecRedactedArgs(t, testTel,
		[]metricdata.DataPoint[int64]{{Value: 1}},
		metricdatatest.IgnoreTimestamp())
	AssertEqualReceiverEbpfExecTruncatedRecords(t, testTel,
		[]metricdata.DataPoint[int64]{{Value: 1}},
		metricdatatest.IgnoreTimestamp())

	require.NoError(t, testTel.Shutdown(context.Background()))
}
