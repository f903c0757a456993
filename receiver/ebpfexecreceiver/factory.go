package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
)

// NewFactory returns the factory of the ebpf_exec receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithLogs(createLogsReceiver, metadata.LogsStability),
	)
}

func createLogsReceiver(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return newExecReceiver(set, cfg.(*Config), next, loadProbe)
}
