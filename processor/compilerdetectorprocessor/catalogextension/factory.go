package catalogextension // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension/internal/metadata"
)

// Config is the compiler_catalog extension's configuration: it has none. The catalog is configured once, in the
// compiler_detector processor (compilers.mode and compilers.entries).
type Config struct {
	// prevent unkeyed literal initialization
	_ struct{}
}

// NewFactory returns the factory of the compiler_catalog extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, createExtension, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config { return &Config{} }

func createExtension(context.Context, extension.Settings, component.Config) (extension.Extension, error) {
	return New(), nil
}
