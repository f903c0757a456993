package metadata

import (
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/compilerwatch/compilerwatch/internal/metadatacheck"
)

func TestStatusMatchesMetadataYAML(t *testing.T) {
	md := metadatacheck.Load(t, filepath.Join("..", "..", "metadata.yaml"))
	metadatacheck.Status(t, md, "processor", Type, ScopeName, LogsStability)
}

// TestTelemetryMatchesMetadataYAML checks every instrument of the
// TelemetryBuilder against metadata.yaml, in both directions.
func TestTelemetryMatchesMetadataYAML(t *testing.T) {
	md := metadatacheck.Load(t, filepath.Join("..", "..", "metadata.yaml"))
	metadatacheck.Telemetry(t, md, func(set component.TelemetrySettings) (any, error) {
		return NewTelemetryBuilder(set)
	})
}
