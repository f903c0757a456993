package metadata

import (
	"path/filepath"
	"testing"

	"github.com/compilerwatch/compilerwatch/internal/metadatacheck"
)

func TestStatusMatchesMetadataYAML(t *testing.T) {
	md := metadatacheck.Load(t, filepath.Join("..", "..", "metadata.yaml"))
	metadatacheck.Status(t, md, "extension", Type, ScopeName, ExtensionStability)
}
