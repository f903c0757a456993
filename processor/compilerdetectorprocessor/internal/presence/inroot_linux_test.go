//go:build linux

package presence

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/inroot"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
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
			_, err := inroot.OpenProcRoot("/proc", []int{os.Getpid(), os.Getppid()}, c.ID())
			require.ErrorIs(t, err, inroot.ErrNoProcess, "processes outside the container's cgroup")

			root, err := inroot.OpenProcRoot("/proc", []int{os.Getpid(), c.InitPID()}, c.ID())
			require.NoError(t, err)
			defer root.Close()

			require.NoError(t, syscall.Kill(c.InitPID(), syscall.SIGKILL))
			require.Eventually(t, func() bool {
				r, err := inroot.OpenProcRoot("/proc", []int{c.InitPID()}, c.ID())
				if err == nil {
					r.Close()
				}
				return err != nil
			}, 10*time.Second, 20*time.Millisecond, "the container's init exits")
			_, err = inroot.OpenProcRoot("/proc", []int{c.InitPID()}, c.ID())
			assert.ErrorIs(t, err, inroot.ErrNoProcess, "nothing left to open: unscannable")

			r := ScanTree(context.Background(), root, catalog.NewMatcher(catalog.Builtin()))
			assert.Equal(t, []string{"gcc:/usr/local/bin/gcc"}, r.found, "the held root is still readable")
			assert.Zero(t, r.errors)
		})
	}
}
