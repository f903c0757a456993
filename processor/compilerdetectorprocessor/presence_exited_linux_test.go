//go:build linux

package compilerdetectorprocessor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/compilerwatch/compilerwatch/internal/inroot"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/presence"
)

// TestPresenceScanOfExitedContainers runs the scanner on real containers whose processes exit: one after it was
// first seen and before its scan ran (scanned through the root held since first sight), one before its first
// record reached the processor (counted as unscannable).
func TestPresenceScanOfExitedContainers(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	withGCC := func(root string) error {
		if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, "usr/local/bin/gcc"), []byte("#!/bin/sh\n"), 0o755)
	}
	exitsLate := testenv.NewContainer(t, testenv.Options{Overlay: true, Populate: withGCC})
	exitsEarly := testenv.NewContainer(t, testenv.Options{Populate: withGCC})

	h := newHarness(t, createDefaultConfig().(*Config), nil)
	release := make(chan struct{})
	h.setPresence(func(s *presence.Settings) {
		s.ScanTree = func(ctx context.Context, root *inroot.Root, m *catalog.Matcher) presence.Result {
			<-release // the scan waits until the container is gone
			return presence.ScanTree(ctx, root, m)
		}
	})
	require.NoError(t, h.p.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, h.p.Shutdown(context.Background())) }()

	gone := func(c *testenv.Container) {
		require.NoError(t, syscall.Kill(c.InitPID(), syscall.SIGKILL))
		require.Eventually(t, func() bool {
			r, err := inroot.OpenProcRoot("/proc", []int{c.InitPID()}, c.ID())
			if err == nil {
				r.Close()
			}
			return errors.Is(err, inroot.ErrNoProcess)
		}, 10*time.Second, 20*time.Millisecond, "the container's init exits")
	}
	execIn(t, h, exitsLate.ID(), int64(exitsLate.InitPID()), nil)
	gone(exitsLate)
	close(release)
	require.Eventually(t, func() bool { return h.scans(t, "found") == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, presentIn(h), 1)
	assert.Equal(t, exitsLate.ID(), strAttr(presentIn(h)[0], attr.ContainerID))

	gone(exitsEarly)
	execIn(t, h, exitsEarly.ID(), int64(exitsEarly.InitPID()), nil)
	assert.Equal(t, int64(1), h.scans(t, "unscannable"))
	assert.Len(t, presentIn(h), 1)
}
