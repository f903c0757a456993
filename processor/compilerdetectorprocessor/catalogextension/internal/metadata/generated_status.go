// Hand-written in the shape mdatagen generates (mdatagen is not available to this project), so linters check it;
// keep in sync with ../../metadata.yaml.

package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	Type      = component.MustNewType("compiler_catalog")
	ScopeName = "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension"
)

const (
	ExtensionStability = component.StabilityLevelAlpha
)
