// Hand-written in the shape mdatagen generates (mdatagen is not available to
// this project); keep in sync with ../../metadata.yaml, which
// metadata_test.go checks.

// Package metadata contains the telemetry and build information for the
// receiver/ebpf_exec component.
package metadata // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"

import (
	"go.opentelemetry.io/collector/component"
)

var (
	Type      = component.MustNewType("ebpf_exec")
	ScopeName = "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"
)

const (
	LogsStability = component.StabilityLevelAlpha
)
