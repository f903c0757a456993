package catalog

import (
	"strings"
	"sync"
)

// maxKnownCompilers bounds the processes remembered as reported compilers (about 220 bytes each). A container can
// exec compilers as fast as it likes; past the bound the oldest are forgotten, which only makes a later stage of
// theirs reported instead of suppressed. An entry matters only while its compiler runs its stages.
const maxKnownCompilers = 4096

// Known remembers, per container and pid, the processes whose exec was a compiler execution that the
// processor reported (flagged, deduplicated or excluded), with the executable name the kernel gave for it. A stage
// is suppressed only under such a process: that ancestor verifiably is the compiler already reported for the same
// compilation. Safe for concurrent use.
type Known struct {
	mu      sync.Mutex
	entries map[knownKey]knownEntry
	order   []knownKey // insertion order, a ring of maxKnownCompilers
	next    int
}

type knownKey struct {
	container string
	pid       uint32
}

type knownEntry struct {
	exe   string // realName of the executable
	trust uint8
}

var _ KnownCompilers = (*Known)(nil)

func NewKnown() *Known {
	return &Known{entries: make(map[knownKey]knownEntry)}
}

// add records pid in container as a compiler of the trust classes, executing exe.
func (k *Known) Add(container string, pid uint32, exe string, trust uint8) {
	exe = realName(exe)
	if exe == "" || trust == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	key := knownKey{container, pid}
	if e, ok := k.entries[key]; ok {
		if e.exe == exe {
			e.trust |= trust
		} else {
			e = knownEntry{exe: strings.Clone(exe), trust: trust} // the pid exec'd another compiler
		}
		k.entries[key] = e
		return
	}
	key.container = strings.Clone(container)
	if len(k.order) < maxKnownCompilers {
		k.order = append(k.order, key)
	} else {
		delete(k.entries, k.order[k.next])
		k.order[k.next] = key
		k.next = (k.next + 1) % maxKnownCompilers
	}
	k.entries[key] = knownEntry{exe: strings.Clone(exe), trust: trust}
}

func (k *Known) Trust(container string, pid uint32, exe string) uint8 {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[knownKey{container, pid}]
	if !ok || e.exe != exe {
		return 0
	}
	return e.trust
}

func (k *Known) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.entries)
}

// Remember records the processes a finding of v vouches for as compilers: its own (pid, when the record has one)
// and, for a stage with no known compiler above it, its parent.
func (k *Known) Remember(v *ExecView, pid int64, hasPID bool, t Trust) {
	if t.Self != 0 && hasPID {
		exe := v.ExeName
		if exe == "" {
			exe = Basename(v.ExePath)
		}
		k.Add(v.Container, uint32(pid), exe, t.Self)
	}
	if t.Parent != 0 && v.Ancestors.Len() > 0 && v.AncestorExes.Len() > 0 {
		if ppid, ok := ancestorPID(v.Ancestors.At(0)); ok {
			k.Add(v.Container, ppid, v.AncestorExes.At(0), t.Parent)
		}
	}
}
