//go:build linux

package compilerdetectorprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
)

// TestPresenceScanOnContainerSeen: the receiver's record of a container's first filtered exec starts the
// container's presence scan, with its pid, like an exec record would.
func TestPresenceScanOnContainerSeen(t *testing.T) {
	proc := t.TempDir()
	fakeProc(t, proc, 31, testContainer, rootWithGCC(t))
	h := startScanHarness(t, createDefaultConfig().(*Config), nil, proc)
	ld := plog.NewLogs()
	appendSeen(appendResource(ld, testContainer, nil), 31, "1:containerd-shim")
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	require.Eventually(t, func() bool { return len(presentIn(h)) == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(1), h.scans(t, "found"))
}
