package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"bytes"
	"errors"
	"io/fs"
	"sync"
	"time"

	"github.com/compilerwatch/compilerwatch/internal/inroot"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
)

// Bounds of the container user names. A container's passwd larger than
// containerPasswdMaxBytes gives no names. The cache holds the names of at
// most containerUsersMaxRoots roots and containerUsersMaxBytes (names plus a
// per-entry overhead); when an entry would take it past either, it is
// emptied, like the decoder's caches.
const (
	containerPasswdPath     = "/etc/passwd"
	containerPasswdMaxBytes = 256 << 10
	containerUsersMaxRoots  = 1024
	containerUsersMaxBytes  = 8 << 20
	// userNameOverhead is what one cached name costs beyond its bytes: its
	// map slot (key, string header, control byte, load-factor slack).
	userNameOverhead  = 48
	rootEntryOverhead = 256
	// noProcessRetry is how long a root with no live process to read it
	// through stays nameless before the next record tries again: at most
	// one round of /proc lookups per root and interval, not one per record.
	noProcessRetry = time.Second
)

// rootUsers names the effective uid of a process in its own root: the host's
// passwd for host processes, the container's /etc/passwd for a container's.
type rootUsers struct {
	host       *passwdResolver
	containers *containerUsers
}

func newRootUsers() *rootUsers {
	return &rootUsers{host: newPasswdResolver(), containers: newContainerUsers("/proc")}
}

func (u *rootUsers) userName(ev *event.Event, containerID string) (string, bool) {
	if containerID == "" {
		return u.host.userName(ev.UID)
	}
	return u.containers.userName(ev, containerID)
}

// containerUsers reads names from the /etc/passwd of the root the exec'ing
// process saw, through /proc/<pid>/root of a process that still sees exactly
// that root (the same mount namespace and root directory as the record's),
// with the in-root reader: no link in the container leads the read out of
// its root. The names are those of the uid as the process's user namespace
// numbers it. Names are cached per container and root, so a process that
// makes its own root (chroot, a mount namespace) can change only the names
// of its own records. Where no such process is left, or its root cannot be
// opened (CAP_SYS_PTRACE is missing), or its passwd cannot be read, names
// are absent. Safe for concurrent use.
type containerUsers struct {
	procRoot string
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	roots map[rootKey]*rootNames
	bytes int
}

// rootKey identifies the root a record's names come from.
type rootKey struct {
	containerID string
	root        event.Root
}

type rootNames struct {
	names    map[uint32]string // nil when the passwd could not be read
	loadedAt time.Time
	ttl      time.Duration
}

func newContainerUsers(procRoot string) *containerUsers {
	return &containerUsers{procRoot: procRoot, interval: passwdReloadInterval, now: time.Now, roots: map[rootKey]*rootNames{}}
}

func (c *containerUsers) userName(ev *event.Event, containerID string) (string, bool) {
	if !ev.NSUIDKnown || ev.Root.MountNS == 0 {
		return "", false
	}
	key := rootKey{containerID: containerID, root: ev.Root}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	e, ok := c.roots[key]
	if !ok || now.Sub(e.loadedAt) >= e.ttl {
		names, err := c.load(ev)
		ttl := c.interval
		if errors.Is(err, inroot.ErrNoProcess) {
			// Nothing left to read this root through; a later record may
			// have a live process. Stale names are not kept.
			ttl = noProcessRetry
		}
		e = c.put(key, names, now, ttl)
	}
	name, ok := e.names[ev.NSUID]
	return name, ok
}

// put caches names for key, emptying the cache first when it would go past
// a bound. Names too large for the whole budget are cached as none.
func (c *containerUsers) put(key rootKey, names map[uint32]string, now time.Time, ttl time.Duration) *rootNames {
	if old, ok := c.roots[key]; ok {
		c.bytes -= rootNamesCost(key, old.names)
		delete(c.roots, key)
	}
	cost := rootNamesCost(key, names)
	if cost > containerUsersMaxBytes {
		names = nil
		cost = rootNamesCost(key, nil)
	}
	if len(c.roots) >= containerUsersMaxRoots || c.bytes+cost > containerUsersMaxBytes {
		clear(c.roots)
		c.bytes = 0
	}
	e := &rootNames{names: names, loadedAt: now, ttl: ttl}
	c.roots[key] = e
	c.bytes += cost
	return e
}

func rootNamesCost(key rootKey, names map[uint32]string) int {
	n := rootEntryOverhead + len(key.containerID)
	for _, name := range names {
		n += userNameOverhead + len(name)
	}
	return n
}

// load reads the passwd of the record's root through the first of its
// process, its pid namespace's init (which lives as long as the container),
// its parent and its ancestors that still sees that root.
// inroot.ErrNoProcess when none does; another error when the root or the
// file cannot be read, which is cached as no names.
func (c *containerUsers) load(ev *event.Event) (map[uint32]string, error) {
	pids := make([]int, 0, 3+len(ev.Ancestors))
	pids = append(pids, int(ev.PID), int(ev.InitPID), int(ev.ParentPID))
	for _, a := range ev.Ancestors {
		pids = append(pids, int(a.PID))
	}
	var firstErr error
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		r, err := openSameRoot(c.procRoot, pid, ev.Root)
		if err != nil {
			if firstErr == nil && !errors.Is(err, inroot.ErrNoProcess) {
				firstErr = err
			}
			continue
		}
		b, err := r.ReadFile(containerPasswdPath, containerPasswdMaxBytes)
		_ = r.Close()
		if err != nil {
			return nil, err
		}
		return parsePasswd(bytes.NewReader(b))
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, inroot.ErrNoProcess
}

// openSameRoot opens the root of process pid when it is the root want
// describes: the same mount namespace, and the same directory as root. Else
// inroot.ErrNoProcess: that process does not see the record's files.
func openSameRoot(procRoot string, pid int, want event.Root) (*inroot.Root, error) {
	p, err := inroot.OpenProcess(procRoot, pid)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	ns, err := p.MountNS()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, inroot.ErrNoProcess // exited
		}
		return nil, err
	}
	if ns != uint64(want.MountNS) {
		return nil, inroot.ErrNoProcess
	}
	r, err := p.Root()
	if err != nil {
		return nil, err
	}
	dev, ino, err := r.Identity()
	if err != nil || dev != want.Dev || ino != want.Ino {
		_ = r.Close()
		return nil, inroot.ErrNoProcess
	}
	return r, nil
}
