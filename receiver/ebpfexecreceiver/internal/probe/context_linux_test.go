//go:build linux

package probe_test

import (
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// kernelDev is st_dev in the kernel's dev_t encoding, as the record has it.
func kernelDev(dev uint64) uint32 { return unix.Major(dev)<<20 | unix.Minor(dev) }

// TestKernelProcessContext checks, for both programs, what the record says
// about the exec'ing process: its terminal, whether it descends from its
// pid namespace's init, its euid in its user namespace, and its mount
// namespace and root.
func TestKernelProcessContext(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "busybox", "nsenter")
	busybox, err := exec.LookPath("busybox")
	require.NoError(t, err)
	var mntNS, root unix.Stat_t
	require.NoError(t, unix.Stat("/proc/self/ns/mnt", &mntNS))
	require.NoError(t, unix.Stat("/", &root))

	for _, v := range []probe.Variant{probe.VariantPortable, probe.VariantDirect} {
		t.Run(string(v), func(t *testing.T) {
			p := load(t, v)
			prefix := fmt.Sprintf("cw-ctx-%s-%d-", v, time.Now().UnixNano())
			c := collect(t, p, prefix)
			tg := func(s string) string { return prefix + s }
			run := func(cmd *exec.Cmd) {
				t.Helper()
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%v: %s", cmd.Args, out)
			}

			// A new session without a terminal.
			run(&exec.Cmd{Path: busybox, Args: []string{"true", tg("plain")}, SysProcAttr: &syscall.SysProcAttr{Setsid: true}})

			// A new session whose controlling terminal is a pty.
			_, slave := testenv.OpenPTY(t)
			tty := &exec.Cmd{Path: busybox, Args: []string{"true", tg("tty")}, Stdin: slave, Stdout: slave, Stderr: slave,
				SysProcAttr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}}
			require.NoError(t, tty.Run())

			// New user and pid namespaces: uid 5 inside is 1000 outside, and
			// the shell is the namespace's init. Its child descends from it.
			nsAttr := func() *syscall.SysProcAttr {
				return &syscall.SysProcAttr{
					Setsid:      true,
					Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
					UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 5, HostID: 1000, Size: 1}},
					GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
					Credential:  &syscall.Credential{Uid: 5, Gid: 0},
				}
			}
			initChild := &exec.Cmd{Path: busybox, Args: []string{"sh", "-c", busybox + " true " + tg("init-child") + "; true"}, SysProcAttr: nsAttr()}
			run(initChild)

			// Entered from outside (nsenter forks into the namespace after
			// setns): the chain of the shell's child leaves the namespace
			// at the shell, which is not the namespace's init.
			init := &exec.Cmd{Path: busybox, Args: []string{"sh", "-c", "read x"}, SysProcAttr: nsAttr()}
			stdin, err := init.StdinPipe()
			require.NoError(t, err)
			require.NoError(t, init.Start())
			t.Cleanup(func() { _ = stdin.Close(); _ = init.Wait() })
			run(exec.Command("nsenter", "--target", strconv.Itoa(init.Process.Pid), "--pid", "--", busybox, "sh", "-c", busybox+" true "+tg("entered")+"; true"))

			recs := c.wait(t, []string{tg("plain"), tg("tty"), tg("init-child"), tg("entered")})
			dec := event.NewDecoder()
			get := func(name string) event.Event {
				var ev event.Event
				require.NoError(t, dec.Decode(recs[tg(name)], 0, &ev))
				return ev
			}

			ev := get("plain")
			assert.False(t, ev.Interactive, "no controlling terminal")
			assert.Equal(t, event.Unknown, ev.InInitTree, "the initial pid namespace: nothing to say")
			assert.True(t, ev.NSUIDKnown)
			assert.Equal(t, ev.UID, ev.NSUID, "no user namespace: the same uid")
			assert.Equal(t, uint32(1), ev.InitPID, "the host's init")
			assert.Equal(t, event.Root{MountNS: uint32(mntNS.Ino), Dev: kernelDev(root.Dev), Ino: root.Ino}, ev.Root,
				"as stat of /proc/<pid>/ns/mnt and of / show them")

			ev = get("tty")
			assert.True(t, ev.Interactive, "a pty as controlling terminal")

			ev = get("init-child")
			assert.False(t, ev.Interactive)
			assert.Equal(t, uint32(initChild.Process.Pid), ev.InitPID, "the namespace's init: the shell")
			assert.Equal(t, event.Yes, ev.InInitTree, "a child of the pid namespace's init")
			assert.Equal(t, uint32(1000), ev.UID, "the kernel's uid")
			assert.True(t, ev.NSUIDKnown)
			assert.Equal(t, uint32(5), ev.NSUID, "the uid as the user namespace numbers it")

			ev = get("entered")
			assert.Equal(t, event.No, ev.InInitTree, "entered with setns: its parent chain leaves the namespace without its init")
			assert.Equal(t, uint32(0), ev.UID, "nsenter did not enter the user namespace")
			assert.Equal(t, uint32(init.Process.Pid), ev.InitPID, "the init of the namespace it entered")
		})
	}
}
