//go:build linux

package ebpfexecreceiver

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

// containerPasswd names uid 1000 differently from this host (if the host has
// one), and lacks uids the host has, such as 33 (www-data on Debian).
const containerPasswd = "root:x:0:0:root:/root:/bin/sh\nctruser:x:1000:1000::/home/ctruser:/bin/sh\n"

// TestKernelContainerProcessContext runs real runc containers, on a plain
// and on an overlay root, with the real receiver: user names come from the
// container's own /etc/passwd, an exec from a terminal is interactive, and
// only the entrypoint's children are in the init tree.
func TestKernelContainerProcessContext(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	_, sink := startReceiver(t, nil)
	hostNames := hostPasswd(t)

	for _, overlay := range []bool{false, true} {
		t.Run(map[bool]string{false: "bind rootfs", true: "overlay rootfs"}[overlay], func(t *testing.T) {
			tg := tag(t)
			c := testenv.NewContainer(t, testenv.Options{
				Overlay: overlay,
				Populate: func(root string) error {
					return os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(containerPasswd), 0o644)
				},
				// The entrypoint's child, then the entrypoint itself.
				Args: []string{"/bin/sh", "-c", "/bin/true " + tg + "-init; exec /bin/sleep 3600"},
			})
			inContainer := func(arg string) func(execRecord) bool {
				return func(r execRecord) bool { return hasArg(arg)(r) && r.res["container.id"] == c.ID() }
			}

			r := waitFor(t, sink, "the entrypoint's child", inContainer(tg+"-init"))
			assert.Equal(t, true, r.attrs["compilerwatch.process.in_init_tree"], "a child of the container's first process")
			assert.Equal(t, false, r.attrs["process.interactive"])
			assert.Equal(t, int64(0), r.num("process.user.id"))
			assert.Equal(t, "root", r.str("process.user.name"))

			for _, u := range []string{"1000:1000", "33:33"} {
				res, err := c.ExecWith(t, testenv.ExecOptions{User: u}, "/bin/true", tg+"-"+u)
				require.NoError(t, err)
				require.Zero(t, res.ExitCode, "%s", res.Stderr)
			}
			r = waitFor(t, sink, "runc exec as 1000", inContainer(tg+"-1000:1000"))
			assert.Equal(t, int64(1000), r.num("process.user.id"))
			assert.Equal(t, "ctruser", r.str("process.user.name"), "the container's name for 1000, not the host's %q", hostNames[1000])
			assert.Equal(t, false, r.attrs["compilerwatch.process.in_init_tree"], "runc exec enters from outside the container")
			assert.Equal(t, false, r.attrs["process.interactive"], "no terminal")

			r = waitFor(t, sink, "runc exec as 33", inContainer(tg+"-33:33"))
			assert.Equal(t, int64(33), r.num("process.user.id"))
			assert.NotContains(t, r.attrs, "process.user.name", "the container has no uid 33 (the host's is %q)", hostNames[33])

			require.NoError(t, c.ExecTTY(t, "/bin/true", tg+"-tty"))
			r = waitFor(t, sink, "runc exec -t", inContainer(tg+"-tty"))
			assert.Equal(t, true, r.attrs["process.interactive"], "a terminal")
			assert.Equal(t, false, r.attrs["compilerwatch.process.in_init_tree"])
			assert.Equal(t, "root", r.str("process.user.name"))
		})
	}

	// A host process keeps the host's names, and has no init tree.
	if name, ok := hostNames[1000]; ok {
		tg := tag(t)
		cmd := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}}
		pid, err := syscall.ForkExec("/bin/true", []string{"/bin/true", tg}, cmd)
		require.NoError(t, err)
		var ws syscall.WaitStatus
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		require.NoError(t, err)
		r := waitFor(t, sink, "host exec as 1000", hasArg(tg))
		assert.Equal(t, name, r.str("process.user.name"), "the host's name for 1000")
		assert.NotContains(t, r.attrs, "compilerwatch.process.in_init_tree")
	}
}

// hostPasswd is the host's uid → name, as the receiver reads it.
func hostPasswd(t *testing.T) map[uint32]string {
	t.Helper()
	f, err := os.Open("/etc/passwd")
	require.NoError(t, err)
	defer f.Close()
	names, err := parsePasswd(f)
	require.NoError(t, err)
	return names
}
