//go:build linux

package inroot

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/inroot/inroottest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

// fakeRoot builds a container root: files are created with their mode, links with their target.
var fakeRoot = inroottest.FakeRoot

func TestCgroupHasContainer(t *testing.T) {
	const id = "463a28f1c0828e6b5cdd9e1d7f1d0e0f463a28f1c0828e6b5cdd9e1d7f1d0e0f"
	for _, tc := range []struct {
		name, cgroup string
		want         bool
	}{
		{"cgroupfs v2", "0::/kubepods/besteffort/pod88acc54f-b382-4a0b-ad16-a8c69bccec64/" + id + "\n", true},
		{"hybrid", "9:name=systemd:/kubepods/besteffort/podx/" + id + "\n0::/kubepods/besteffort/podx/" + id + "\n", true},
		{"systemd", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/cri-containerd-" + id + ".scope\n", true},
		{"no trailing newline", "0::/docker/" + id, true},
		{"other container", "0::/kubepods/besteffort/podx/" + strings.Repeat("a", 64) + "\n", false},
		{"host", "0::/system.slice/containerd.service\n", false},
		{"id in the controllers field only", "3:" + id + ":/\n", false},
		{"empty", "", false},
		{"garbage", "no colons here " + id + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, cgroupHasContainer(tc.cgroup, id))
		})
	}
	assert.False(t, cgroupHasContainer("0::/\n", ""), "an empty id matches nothing")
}

func TestInRootReadFile(t *testing.T) {
	root := fakeRoot(t, map[string]os.FileMode{"/etc/passwd": 0o644, "/etc/big": 0o644},
		map[string]string{
			"/etc/passwd-link": "/etc/passwd",
			"/etc/escape":      "../../../../../../../../etc/passwd", // the container's, not the host's
			"/etc/host":        "/etc/hostname",                      // the host has one, this root does not
		})
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/big"), make([]byte, 2048), 0o644))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "etc/fifo"), 0o644))
	r, err := Open(root)
	require.NoError(t, err)
	defer r.Close()

	for _, p := range []string{"/etc/passwd", "etc/passwd", "/etc/passwd-link", "/etc/escape", "/../../etc/passwd"} {
		b, err := r.ReadFile(p, 1024)
		require.NoError(t, err, p)
		assert.Equal(t, "root:x:0:0::/root:/bin/sh\n", string(b), p)
	}
	_, err = r.ReadFile("/etc/host", 1024)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = r.ReadFile("/etc/big", 1024)
	assert.ErrorContains(t, err, "larger than 1024 bytes")
	_, err = r.ReadFile("/etc/fifo", 1024) // must not block
	assert.ErrorContains(t, err, "not a regular file")
	_, err = r.ReadFile("/etc", 1024)
	assert.ErrorContains(t, err, "not a regular file")
}

// TestSupport: as root the scan can run; without CAP_SYS_PTRACE (dropped by setpriv in a child process)
// scanSupport says so.
func TestSupport(t *testing.T) {
	if os.Getenv("COMPILERWATCH_INROOT_SUPPORT_CHILD") == "1" {
		err := Support()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "CAP_SYS_PTRACE")
		return
	}
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "setpriv")
	require.NoError(t, Support())

	cmd := exec.Command("setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", "--",
		os.Args[0], "-test.run=^TestSupport$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "COMPILERWATCH_INROOT_SUPPORT_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "--- PASS: TestSupport")
}
