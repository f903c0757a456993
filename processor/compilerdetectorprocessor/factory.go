package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/hold"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

// NewFactory returns the factory of the compiler_detector processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithLogs(createLogsProcessor, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		ContainersOnly:   true,
		OnlyFlagged:      false,
		ScanForCompilers: true,
		Compilers:        CompilersConfig{Mode: modeExtend},
		Dedup: DedupConfig{
			Window: time.Hour,
			Key:    []string{dedup.KeyContainerID, dedup.KeyCompiler, dedup.KeyParentExecutable},
			// Defaults and their worst-case memory: internal/dedup.
			MaxKeys:             dedup.DefaultMaxKeys,
			MaxKeysPerContainer: dedup.DefaultMaxKeysPerContainer,
		},
		Kubernetes: kubernetesDefaults(),
	}
}

// kubernetesDefaults are the kubernetes section's defaults: the pod cache's, and the hold's wait_for_metadata.
func kubernetesDefaults() kube.Config {
	c := kube.DefaultConfig()
	c.WaitForMetadata.Hold = hold.DefaultWait
	return c
}

func createLogsProcessor(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	// The Kubernetes cache is created in Start: it needs the API server, and Start is where a component may fail.
	return newCompilerDetector(set, cfg.(*Config), next, nil)
}
