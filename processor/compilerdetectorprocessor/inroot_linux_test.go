//go:build linux

package compilerdetectorprocessor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

// TestHeldRootOutlivesTheContainer: the root opened at first sight is still scanned after every process of
// the container has exited, and a container with no process left cannot be opened any more (it is counted as
// unscannable). A process outside the container's cgroup is never taken for it.
func TestHeldRootOutlivesTheContainer(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	for _, overlay := range []bool{false, true} {
		t.Run(map[bool]string{false: "bind rootfs", true: "overlay rootfs"}[overlay], func(t *testing.T) {
			c := testenv.NewContainer(t, testenv.Options{
				Overlay: overlay,
				Populate: func(root string) error {
					if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
						return err
					}
					return os.WriteFile(filepath.Join(root, "usr/local/bin/gcc"), []byte("#!/bin/sh\n"), 0o755)
				},
			})
			_, err := openProcRoot("/proc", []int{os.Getpid(), os.Getppid()}, c.ID())
			require.ErrorIs(t, err, errNoProcess, "processes outside the container's cgroup")

			root, err := openProcRoot("/proc", []int{os.Getpid(), c.InitPID()}, c.ID())
			require.NoError(t, err)
			defer root.Close()

			require.NoError(t, syscall.Kill(c.InitPID(), syscall.SIGKILL))
			require.Eventually(t, func() bool {
				r, err := openProcRoot("/proc", []int{c.InitPID()}, c.ID())
				if err == nil {
					r.Close()
				}
				return err != nil
			}, 10*time.Second, 20*time.Millisecond, "the container's init exits")
			_, err = openProcRoot("/proc", []int{c.InitPID()}, c.ID())
			assert.ErrorIs(t, err, errNoProcess, "nothing left to open: unscannable")

			r := scanTree(context.Background(), root, newMatcher(builtinCatalog()))
			assert.Equal(t, []string{"gcc:/usr/local/bin/gcc"}, r.found, "the held root is still readable")
			assert.Zero(t, r.errors)
		})
	}
}

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
	s := h.p.presence
	release := make(chan struct{})
	s.scanTree = func(ctx context.Context, root *inRoot, m *matcher) scanResult {
		<-release // the scan waits until the container is gone
		return scanTree(ctx, root, m)
	}
	require.NoError(t, h.p.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, h.p.Shutdown(context.Background())) }()

	gone := func(c *testenv.Container) {
		require.NoError(t, syscall.Kill(c.InitPID(), syscall.SIGKILL))
		require.Eventually(t, func() bool {
			r, err := openProcRoot("/proc", []int{c.InitPID()}, c.ID())
			if err == nil {
				r.Close()
			}
			return errors.Is(err, errNoProcess)
		}, 10*time.Second, 20*time.Millisecond, "the container's init exits")
	}
	execIn(t, h, exitsLate.ID(), int64(exitsLate.InitPID()), nil)
	gone(exitsLate)
	close(release)
	require.Eventually(t, func() bool { return h.scans(t, "found") == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, presentIn(h), 1)
	assert.Equal(t, exitsLate.ID(), strAttr(presentIn(h)[0], attrContainerID))

	gone(exitsEarly)
	execIn(t, h, exitsEarly.ID(), int64(exitsEarly.InitPID()), nil)
	assert.Equal(t, int64(1), h.scans(t, "unscannable"))
	assert.Len(t, presentIn(h), 1)
}

// TestScanSupport: as root the scan can run; without CAP_SYS_PTRACE (dropped by setpriv in a child process)
// scanSupport says so.
func TestScanSupport(t *testing.T) {
	if os.Getenv("COMPILERWATCH_SCAN_SUPPORT_CHILD") == "1" {
		err := scanSupport()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "CAP_SYS_PTRACE")
		return
	}
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "setpriv")
	require.NoError(t, scanSupport())

	cmd := exec.Command("setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", "--",
		os.Args[0], "-test.run=^TestScanSupport$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "COMPILERWATCH_SCAN_SUPPORT_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "--- PASS: TestScanSupport")
}
