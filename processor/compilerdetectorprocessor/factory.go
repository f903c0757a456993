package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"

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
			Key:    []string{keyContainerID, keyCompiler, keyParentExecutable},
		},
		Kubernetes: KubernetesConfig{
			Enabled:         k8sAuto,
			WaitForMetadata: 5 * time.Second,
		},
	}
}

func createLogsProcessor(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	// The Kubernetes enricher (issue 4) is not wired yet: records pass without k8s attributes whatever
	// kubernetes.enabled says, and nothing is held.
	return newCompilerDetector(set, cfg.(*Config), next, nil)
}
