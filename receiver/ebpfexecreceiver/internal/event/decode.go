package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// HeaderSize is the size of the fixed record header written by the BPF
// program; variable data follows it.
const HeaderSize = int(unsafe.Sizeof(probe.RawEvent{}))

const (
	ancestorSize      = int(unsafe.Sizeof(probe.RawAncestor{}))
	ancestorCommOff   = int(unsafe.Offsetof(probe.RawAncestor{}.Comm))
	ancestorExeLenOff = int(unsafe.Offsetof(probe.RawAncestor{}.ExeLen))
)

// ErrMalformed is returned for records whose lengths do not add up.
var ErrMalformed = errors.New("malformed exec record")

// Bounds of each of the decoder's two string caches. A cache is reset when
// an entry would take it past either. The byte bound is what holds against a
// process that makes every path unique and long (a 4 KiB working directory
// per exec): by entries alone, such paths would fill the caches to tens of MB.
const (
	maxCacheEntries = 8192
	maxCacheBytes   = 1 << 20
	// cacheEntryOverhead is what an entry costs beyond its strings: the map
	// slot (two string headers and control byte, with load-factor slack).
	cacheEntryOverhead = 48
)

// stringCache is a map of strings bounded by entries and bytes.
type stringCache struct {
	m     map[string]string
	bytes int
	// Published copies of len(m) and bytes, for CacheSize.
	nEntries, nBytes atomic.Int64
}

func newStringCache() stringCache { return stringCache{m: make(map[string]string, 256)} }

// put adds k -> v; shared says v is k's memory (an interned string), counted
// once. A cache that would go past a bound is reset first; an entry bigger
// than the whole budget is not cached.
func (c *stringCache) put(k, v string, shared bool) {
	cost := cacheEntryOverhead + len(k)
	if !shared {
		cost += len(v)
	}
	if cost > maxCacheBytes {
		return
	}
	if len(c.m) >= maxCacheEntries || c.bytes+cost > maxCacheBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.m[k] = v
	c.bytes += cost
	c.nEntries.Store(int64(len(c.m)))
	c.nBytes.Store(int64(c.bytes))
}

// Decoder turns raw ring-buffer records into Events. It is pure apart from
// bounded string caches: paths, comms and cgroups repeat from exec to exec,
// so interning them saves an allocation per field. Not safe for concurrent
// use; each reader goroutine owns one.
type Decoder struct {
	interned stringCache
	buf      []byte

	// paths maps a path field as the kernel wrote it (components leaf
	// first), followed by one byte of flags, to the path path() builds from
	// it: a repeated path is found without being rebuilt. Bounded like
	// interned.
	paths stringCache
	key   []byte
}

// NewDecoder returns a Decoder with empty caches.
func NewDecoder() *Decoder {
	return &Decoder{interned: newStringCache(), paths: newStringCache()}
}

// CacheSize reports the entries and bytes (strings plus a per-entry
// overhead) the decoder's caches hold. Unlike Decode, it is safe to call
// from any goroutine.
func (d *Decoder) CacheSize() (entries, bytes int) {
	return int(d.interned.nEntries.Load() + d.paths.nEntries.Load()),
		int(d.interned.nBytes.Load() + d.paths.nBytes.Load())
}

// Decode parses raw into ev, overwriting it. bootOffset is wall-clock time
// minus the kernel's boot clock, in nanoseconds. ev.Args and ev.Ancestors
// reuse their capacity, so callers must not keep them across calls.
func (d *Decoder) Decode(raw []byte, bootOffset int64, ev *Event) error {
	if len(raw) < HeaderSize {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformed, len(raw), HeaderSize)
	}
	var h probe.RawEvent
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), HeaderSize), raw)
	data := raw[HeaderSize:]

	lens := [...]int{int(h.ArgsLen), int(h.ExeLen), int(h.CwdLen), int(h.PexeLen), int(h.FilenameLen), int(h.CgroupLen)}
	// Each ancestor entry is followed by its name, checked as it is read.
	need := int(h.AncestorCount) * ancestorSize
	for _, l := range lens {
		need += l
	}
	if need > len(data) {
		return fmt.Errorf("%w: fields need %d bytes, record has %d", ErrMalformed, need, len(data))
	}
	field := func(n int) []byte {
		f := data[:n]
		data = data[n:]
		return f
	}

	*ev = Event{
		Time:       time.Unix(0, int64(h.BootNs)+bootOffset),
		PID:        h.Pid,
		ParentPID:  h.Ppid,
		VPID:       h.Vpid,
		InitPID:    h.InitPid,
		UID:        h.Uid,
		RUID:       h.Ruid,
		GID:        h.Gid,
		Argc:       h.Argc,
		Comm:       d.str(cstring(int8Bytes(h.Comm[:]))),
		Args:       ev.Args[:0],
		Ancestors:  ev.Ancestors[:0],
		ExeFile:    File{Magic: h.ExeMagic, Flags: FileFlags(h.ExeFacts)},
		ParentFile: File{Magic: h.PexeMagic, Flags: FileFlags(h.PexeFacts)},
		Truncated:  Truncation(h.Flags & probe.TruncationMask),
		CgroupV1:   h.Flags&probe.FlagCgroupV1 != 0,
		CgroupSeen: h.Flags&probe.FlagCgroupSeen != 0,

		Root:        Root{MountNS: h.MntNs, Dev: h.RootDev, Ino: h.RootIno},
		Interactive: h.Flags&probe.FlagInteractive != 0,
		InInitTree:  initTree(h.Flags),
	}
	if h.NsUid != probe.NSUIDUnknown {
		ev.NSUID, ev.NSUIDKnown = h.NsUid, true
	}

	ev.Args = d.args(field(lens[0]), ev.Args)
	ev.ExePath = d.cachedPath(field(lens[1]), ev.Truncated&TruncPath != 0, h.Flags&probe.FlagExeDeleted != 0)
	ev.Cwd = d.cachedPath(field(lens[2]), ev.Truncated&TruncCwd != 0, h.Flags&probe.FlagCwdDeleted != 0)
	if lens[3] > 0 || ev.Truncated&TruncParentPath != 0 {
		ev.ParentExePath = d.cachedPath(field(lens[3]), ev.Truncated&TruncParentPath != 0, h.Flags&probe.FlagParentDeleted != 0)
	}
	ev.Filename = d.str(cstring(field(lens[4])))
	// The kernel keeps the top of a cgroup path, cutting levels at the leaf:
	// even truncated, it starts at the root. Only a cgroup the kernel could
	// not place at all comes empty and truncated, and stays empty.
	cg := field(lens[5])
	ev.CgroupPath = d.cachedPath(cg, len(cg) == 0 && ev.Truncated&TruncCgroup != 0, false)
	for i := 0; i < int(h.AncestorCount); i++ {
		if len(data) < ancestorSize {
			return fmt.Errorf("%w: ancestor %d is cut short", ErrMalformed, i)
		}
		a := field(ancestorSize)
		nameLen := int(binary.LittleEndian.Uint16(a[ancestorExeLenOff:]))
		if nameLen > len(data) {
			return fmt.Errorf("%w: ancestor %d name needs %d bytes, record has %d", ErrMalformed, i, nameLen, len(data))
		}
		ev.Ancestors = append(ev.Ancestors, Ancestor{
			PID:     binary.LittleEndian.Uint32(a[:4]),
			Comm:    d.str(cstring(a[ancestorCommOff : ancestorCommOff+len(probe.RawAncestor{}.Comm)])),
			ExeName: d.str(cstring(field(nameLen))),
		})
	}
	return nil
}

// args splits NUL-separated argv bytes. A final argument cut short by the
// byte limit has no NUL and is kept as is. The arguments are substrings of
// one copy of b: one allocation per record rather than one per argument.
// Replacing invalid UTF-8 in the whole of b is the same as in each argument:
// a NUL is valid UTF-8, so no invalid run spans two arguments.
func (d *Decoder) args(b []byte, out []string) []string {
	if len(b) == 0 {
		return out
	}
	s := validString(b)
	for len(s) > 0 {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return out
}

// cachedPath is path, looked up by the raw field first.
func (d *Decoder) cachedPath(b []byte, truncated, deleted bool) string {
	var flags byte
	if truncated {
		flags |= 1
	}
	if deleted {
		flags |= 2
	}
	d.key = append(append(d.key[:0], b...), flags)
	if s, ok := d.paths.m[string(d.key)]; ok { // no allocation for the lookup
		return s
	}
	s := d.path(b, truncated, deleted)
	d.paths.put(string(d.key), s, false)
	return s
}

// path rebuilds a path from components written leaf first. A complete path
// is absolute, as /proc/<pid>/exe shows it, with " (deleted)" for unlinked
// files. A truncated one has no leading slash: it is the deepest part only.
func (d *Decoder) path(b []byte, truncated, deleted bool) string {
	d.buf = d.buf[:0]
	end := len(b)
	if end > 0 && b[end-1] == 0 {
		end--
	}
	comps := b[:end]
	// Walk the components from the last (nearest the root) to the first.
	for len(comps) > 0 {
		i := bytes.LastIndexByte(comps, 0)
		name := comps[i+1:]
		if len(d.buf) > 0 || !truncated {
			d.buf = append(d.buf, '/')
		}
		d.buf = append(d.buf, name...)
		if i < 0 {
			break
		}
		comps = comps[:i]
	}
	if len(d.buf) == 0 && !truncated {
		d.buf = append(d.buf, '/')
	}
	if deleted {
		d.buf = append(d.buf, " (deleted)"...)
	}
	return d.str(d.buf)
}

// str returns b as a valid UTF-8 string, interned.
func (d *Decoder) str(b []byte) string {
	if s, ok := d.interned.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := validString(b)
	d.interned.put(s, s, true)
	return s
}

// validString copies b into a string, replacing invalid UTF-8 with U+FFFD.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// cstring cuts b at its first NUL.
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func int8Bytes(b []int8) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}

// initTree decodes the init-tree flags.
func initTree(flags uint32) Tristate {
	switch {
	case flags&probe.FlagInitTreeKnown == 0:
		return Unknown
	case flags&probe.FlagInInitTree != 0:
		return Yes
	}
	return No
}
