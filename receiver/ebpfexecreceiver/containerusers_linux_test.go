//go:build linux

package ebpfexecreceiver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
)

// fakeProc is a /proc with one directory per pid: ns/mnt (a file whose inode
// number stands for the mount namespace) and root (a directory tree).
type fakeProc struct {
	t   *testing.T
	dir string
}

// addProcess makes /proc/<pid> with its own mount namespace file, and root
// as its root directory (created when missing). It returns the event.Root
// the kernel would report for it.
func (f fakeProc) addProcess(pid int, root string, mntNS string) event.Root {
	t := f.t
	d := filepath.Join(f.dir, strconv.Itoa(pid))
	require.NoError(t, os.MkdirAll(filepath.Join(d, "ns"), 0o755))
	require.NoError(t, os.MkdirAll(root, 0o755))
	require.NoError(t, os.Symlink(root, filepath.Join(d, "root")))
	require.NoError(t, os.Symlink(mntNS, filepath.Join(d, "ns", "mnt")))
	var ns, r unix.Stat_t
	require.NoError(t, unix.Stat(mntNS, &ns))
	require.NoError(t, unix.Stat(root, &r))
	return event.Root{MountNS: uint32(ns.Ino), Dev: unix.Major(r.Dev)<<20 | unix.Minor(r.Dev), Ino: r.Ino}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// TestContainerUsers resolves names through a fake /proc: the record's root
// is found through its process, its pid namespace's init or an ancestor
// that sees the same mount namespace and root, and names are absent where
// none does or the file cannot be read.
func TestContainerUsers(t *testing.T) {
	base := t.TempDir()
	proc := fakeProc{t: t, dir: filepath.Join(base, "proc")}
	nsA, nsB := filepath.Join(base, "mntA"), filepath.Join(base, "mntB")
	writeFile(t, nsA, "")
	writeFile(t, nsB, "")
	rootA := filepath.Join(base, "ctrA")
	writeFile(t, filepath.Join(rootA, "etc/passwd"), containerPasswd)
	writeFile(t, filepath.Join(base, "etc/passwd"), "outside:x:1000:1000::/:\n")

	// pid 10: the container's init, root A. pid 11: in the container's mount
	// namespace but chrooted elsewhere. pid 12: the host's mount namespace.
	want := proc.addProcess(10, rootA, nsA)
	chroot := filepath.Join(base, "ctrA-chroot")
	writeFile(t, filepath.Join(chroot, "etc/passwd"), "evil:x:1000:1000::/:\n")
	proc.addProcess(11, chroot, nsA)
	proc.addProcess(12, rootA, nsB)

	const id = "3f9a8f2c1d6e4b7a9c0d1e2f3a4b5c6d7e8f90123456789abcdef0123456789a"
	ev := func(mut func(*event.Event)) *event.Event {
		e := &event.Event{PID: 99, InitPID: 10, ParentPID: 98, UID: 1000, NSUID: 1000, NSUIDKnown: true, Root: want}
		if mut != nil {
			mut(e)
		}
		return e
	}
	tests := []struct {
		name string
		ev   *event.Event
		want string // "" = absent
	}{
		{"through the init", ev(nil), "ctruser"},
		{"through the exec'ing process", ev(func(e *event.Event) { e.PID, e.InitPID = 10, 0 }), "ctruser"},
		{"through an ancestor", ev(func(e *event.Event) { e.InitPID, e.Ancestors = 0, []event.Ancestor{{PID: 97}, {PID: 10}} }), "ctruser"},
		{"the uid in the user namespace names it", ev(func(e *event.Event) { e.UID, e.NSUID = 101000, 0 }), "root"},
		{"a uid the container lacks", ev(func(e *event.Event) { e.NSUID = 33 }), ""},
		{"namespace uid unknown", ev(func(e *event.Event) { e.NSUIDKnown = false }), ""},
		{"no mount namespace", ev(func(e *event.Event) { e.Root.MountNS = 0 }), ""},
		{"no live process", ev(func(e *event.Event) { e.InitPID = 0 }), ""},
		{"another root in the same mount namespace", ev(func(e *event.Event) { e.InitPID = 11 }), ""},
		{"the same root in another mount namespace", ev(func(e *event.Event) { e.InitPID = 12 }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainerUsers(proc.dir)
			name, ok := c.userName(tt.ev, id)
			assert.Equal(t, tt.want, name)
			assert.Equal(t, tt.want != "", ok)
		})
	}

	t.Run("a chrooted process's root gets its own entry", func(t *testing.T) {
		c := newContainerUsers(proc.dir)
		name, _ := c.userName(ev(nil), id)
		assert.Equal(t, "ctruser", name)
		chrooted := proc.addProcess(13, chroot, nsA)
		name, _ = c.userName(ev(func(e *event.Event) { e.PID, e.InitPID, e.Root = 13, 10, chrooted }), id)
		assert.Equal(t, "evil", name, "its own root's name, found through itself")
		name, _ = c.userName(ev(nil), id)
		assert.Equal(t, "ctruser", name, "the container's entry is untouched")
	})

	t.Run("cached per root, reloaded after the interval", func(t *testing.T) {
		now := time.Unix(1000, 0)
		c := newContainerUsers(proc.dir)
		c.now = func() time.Time { return now }
		name, _ := c.userName(ev(nil), id)
		assert.Equal(t, "ctruser", name)
		// Every process is gone: the cached names still serve.
		gone := ev(func(e *event.Event) { e.InitPID = 0 })
		name, _ = c.userName(gone, id)
		assert.Equal(t, "ctruser", name, "from the cache")
		now = now.Add(passwdReloadInterval)
		_, ok := c.userName(gone, id)
		assert.False(t, ok, "stale, and nothing to reload through: absent")
		// A live process again: tried once the retry interval has passed.
		_, ok = c.userName(ev(nil), id)
		assert.False(t, ok, "no /proc lookup per record: nameless until the retry")
		now = now.Add(noProcessRetry)
		name, _ = c.userName(ev(nil), id)
		assert.Equal(t, "ctruser", name, "retried")
	})

	t.Run("unreadable passwd: no names, cached", func(t *testing.T) {
		for _, tc := range []struct{ name, content string }{
			{"missing", ""},
			{"too large", strings.Repeat("u:x:5:5::/:\n", containerPasswdMaxBytes/11+1)},
		} {
			root := filepath.Join(base, "ctr-"+tc.name)
			require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
			if tc.content != "" {
				writeFile(t, filepath.Join(root, "etc/passwd"), tc.content)
			}
			pid := 20 + len(tc.name)
			r := proc.addProcess(pid, root, nsA)
			c := newContainerUsers(proc.dir)
			_, ok := c.userName(ev(func(e *event.Event) { e.NSUID, e.InitPID, e.Root = 5, uint32(pid), r }), id)
			assert.False(t, ok, tc.name)
			require.Len(t, c.roots, 1, tc.name)
			for _, e := range c.roots {
				assert.Nil(t, e.names, tc.name)
			}
		}
	})

	t.Run("links in the container stay inside its root", func(t *testing.T) {
		root := filepath.Join(base, "ctr-link")
		require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
		writeFile(t, filepath.Join(root, "real/passwd"), containerPasswd)
		// Absolute and ".." links: inside the root they reach /real/passwd,
		// outside it they would reach the base's etc/passwd ("outside").
		require.NoError(t, os.Symlink("../../../../../../../etc/passwd-real", filepath.Join(root, "etc/passwd")))
		require.NoError(t, os.Symlink("/real/passwd", filepath.Join(root, "etc/passwd-real")))
		r := proc.addProcess(30, root, nsA)
		c := newContainerUsers(proc.dir)
		name, _ := c.userName(ev(func(e *event.Event) { e.InitPID, e.Root = 30, r }), id)
		assert.Equal(t, "ctruser", name)
	})

	t.Run("the cache is bounded", func(t *testing.T) {
		c := newContainerUsers(proc.dir)
		for i := range containerUsersMaxRoots + 10 {
			k := rootKey{containerID: id, root: event.Root{MountNS: uint32(i)}}
			c.put(k, map[uint32]string{0: "root"}, time.Now(), time.Minute)
			assert.LessOrEqual(t, len(c.roots), containerUsersMaxRoots)
			assert.LessOrEqual(t, c.bytes, containerUsersMaxBytes)
		}
		big := map[uint32]string{}
		for i := range containerUsersMaxBytes / userNameOverhead {
			big[uint32(i)] = "u"
		}
		e := c.put(rootKey{containerID: "big"}, big, time.Now(), time.Minute)
		assert.Nil(t, e.names, "names past the whole budget are not kept")
		assert.LessOrEqual(t, c.bytes, containerUsersMaxBytes)
	})
}
