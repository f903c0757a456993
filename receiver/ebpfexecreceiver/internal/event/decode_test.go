package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// rawRecord builds a record the way bpf/exec.c lays it out. Paths are given
// root first and written leaf first, as the kernel walk does.
type rawRecord struct {
	hdr       probe.RawEvent
	args      []byte
	exe, cwd  []string
	pexe      []string
	filename  string
	cgroup    []string
	ancestors []Ancestor
}

func compsLeafFirst(comps []string) []byte {
	var b []byte
	for i := len(comps) - 1; i >= 0; i-- {
		b = append(b, comps[i]...)
		b = append(b, 0)
	}
	return b
}

func (r rawRecord) bytes() []byte {
	exe, cwd, pexe, cg := compsLeafFirst(r.exe), compsLeafFirst(r.cwd), compsLeafFirst(r.pexe), compsLeafFirst(r.cgroup)
	fn := []byte(r.filename)
	if r.filename != "" {
		fn = append(fn, 0)
	}
	h := r.hdr
	h.ArgsLen, h.ExeLen, h.CwdLen, h.PexeLen = uint16(len(r.args)), uint16(len(exe)), uint16(len(cwd)), uint16(len(pexe))
	h.FilenameLen, h.CgroupLen, h.AncestorCount = uint16(len(fn)), uint16(len(cg)), uint8(len(r.ancestors))
	out := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&h)), HeaderSize)...)
	for _, f := range [][]byte{r.args, exe, cwd, pexe, fn, cg} {
		out = append(out, f...)
	}
	for _, a := range r.ancestors {
		var e [24]byte // pid, comm[16], exe_len, pad
		binary.LittleEndian.PutUint32(e[:4], a.PID)
		copy(e[4:20], a.Comm)
		var name []byte
		if a.ExeName != "" {
			name = append([]byte(a.ExeName), 0)
		}
		binary.LittleEndian.PutUint16(e[20:], uint16(len(name)))
		out = append(append(out, e[:]...), name...)
	}
	return out
}

func comm(s string) (c [16]int8) {
	for i := 0; i < len(s) && i < 15; i++ {
		c[i] = int8(s[i])
	}
	return c
}

func TestDecode(t *testing.T) {
	base := rawRecord{
		hdr: probe.RawEvent{
			BootNs: 5_000_000_000, Pid: 4242, Ppid: 4200, Vpid: 7, Uid: 1000, Ruid: 1001, Gid: 100,
			Argc: 3, Comm: comm("cc1"), ExeFacts: uint8(FileOverlayKnown | FileRootMount), PexeFacts: uint8(FileUnlinked),
			ExeMagic: MagicOverlay, PexeMagic: 0xef53,
		},
		args:      []byte("gcc\x00-c\x00x.c\x00"),
		exe:       []string{"usr", "bin", "gcc-12"},
		cwd:       []string{"src"},
		pexe:      []string{"bin", "busybox"},
		filename:  "/usr/bin/gcc",
		cgroup:    []string{"kubepods", "besteffort", "pod1", "abc"},
		ancestors: []Ancestor{{PID: 4200, Comm: "sh", ExeName: "busybox"}, {PID: 1, Comm: "init"}},
	}
	tests := []struct {
		name  string
		mod   func(r *rawRecord)
		check func(t *testing.T, ev *Event)
	}{
		{"complete", nil, func(t *testing.T, ev *Event) {
			assert.Equal(t, time.Unix(0, 5_000_000_000+1_700_000_000_000_000_000), ev.Time)
			assert.Equal(t, uint32(4242), ev.PID)
			assert.Equal(t, uint32(4200), ev.ParentPID)
			assert.Equal(t, uint32(7), ev.VPID)
			assert.Equal(t, [3]uint32{1000, 1001, 100}, [3]uint32{ev.UID, ev.RUID, ev.GID})
			assert.Equal(t, "cc1", ev.Comm)
			assert.Equal(t, []string{"gcc", "-c", "x.c"}, ev.Args)
			assert.Equal(t, uint32(3), ev.Argc)
			assert.Equal(t, "/usr/bin/gcc-12", ev.ExePath)
			assert.Equal(t, "/src", ev.Cwd)
			assert.Equal(t, "/bin/busybox", ev.ParentExePath)
			assert.Equal(t, "/usr/bin/gcc", ev.Filename)
			assert.Equal(t, "/kubepods/besteffort/pod1/abc", ev.CgroupPath)
			assert.Equal(t, []Ancestor{{PID: 4200, Comm: "sh", ExeName: "busybox"}, {PID: 1, Comm: "init"}}, ev.Ancestors)
			assert.Equal(t, "sh", ev.ParentComm())
			assert.Equal(t, File{Magic: MagicOverlay, Flags: FileOverlayKnown | FileRootMount}, ev.ExeFile)
			assert.Equal(t, File{Magic: 0xef53, Flags: FileUnlinked}, ev.ParentFile)
			assert.Nil(t, ev.Truncated.Names())
			assert.False(t, ev.CgroupV1)
		}},
		{"root cwd and empty cgroup", func(r *rawRecord) { r.cwd = nil; r.cgroup = nil }, func(t *testing.T, ev *Event) {
			assert.Equal(t, "/", ev.Cwd)
			assert.Equal(t, "/", ev.CgroupPath)
		}},
		{"truncated args keep the partial last argument", func(r *rawRecord) {
			r.args = []byte("gcc\x00-DVERY_LONG_MAC")
			r.hdr.Argc = 40
			r.hdr.Flags = uint32(TruncArgs)
		}, func(t *testing.T, ev *Event) {
			assert.Equal(t, []string{"gcc", "-DVERY_LONG_MAC"}, ev.Args)
			assert.Equal(t, uint32(40), ev.Argc)
			assert.Equal(t, []string{"args"}, ev.Truncated.Names())
		}},
		{"truncated paths are relative", func(r *rawRecord) {
			r.hdr.Flags = uint32(TruncPath | TruncCwd | TruncAncestors)
		}, func(t *testing.T, ev *Event) {
			assert.Equal(t, "usr/bin/gcc-12", ev.ExePath)
			assert.Equal(t, "src", ev.Cwd)
			assert.Equal(t, []string{"args", "path", "cwd", "ancestors"}[1:], ev.Truncated.Names())
		}},
		{"a truncated cgroup keeps its top: absolute", func(r *rawRecord) {
			r.hdr.Flags = uint32(TruncCgroup)
		}, func(t *testing.T, ev *Event) {
			assert.Equal(t, "/kubepods/besteffort/pod1/abc", ev.CgroupPath)
			assert.Equal(t, []string{"cgroup"}, ev.Truncated.Names())
		}},
		{"a cgroup the kernel could not place: empty", func(r *rawRecord) {
			r.hdr.Flags = uint32(TruncCgroup)
			r.cgroup = nil
		}, func(t *testing.T, ev *Event) {
			assert.Equal(t, "", ev.CgroupPath)
		}},
		{"deleted executable", func(r *rawRecord) {
			r.hdr.Flags = probe.FlagExeDeleted
			r.exe = []string{"tmp", "x"}
		}, func(t *testing.T, ev *Event) {
			assert.Equal(t, "/tmp/x (deleted)", ev.ExePath)
		}},
		{"v1 cgroup", func(r *rawRecord) { r.hdr.Flags = probe.FlagCgroupV1 }, func(t *testing.T, ev *Event) {
			assert.True(t, ev.CgroupV1)
			assert.False(t, ev.CgroupSeen)
		}},
		{"a cgroup's first filtered exec", func(r *rawRecord) { r.hdr.Flags = probe.FlagCgroupSeen }, func(t *testing.T, ev *Event) {
			assert.True(t, ev.CgroupSeen)
			assert.False(t, ev.CgroupV1)
		}},
		{"invalid UTF-8 everywhere", func(r *rawRecord) {
			r.args = []byte("gcc\x00\xff\xfe\x00")
			r.exe = []string{"usr", "bin\xc3", "gcc"}
			r.cwd = []string{"\x80"}
			r.filename = "/tmp/\xff"
			r.hdr.Comm = comm("a\xffb")
			r.ancestors = []Ancestor{{PID: 9, Comm: "\xfe", ExeName: "g\xffcc"}}
		}, func(t *testing.T, ev *Event) {
			for _, s := range append([]string{ev.ExePath, ev.Cwd, ev.Filename, ev.Comm, ev.Ancestors[0].Comm, ev.Ancestors[0].ExeName}, ev.Args...) {
				assert.True(t, utf8.ValidString(s), "%q", s)
			}
			assert.Equal(t, "/usr/bin\uFFFD/gcc", ev.ExePath)
			assert.Equal(t, "a\uFFFDb", ev.Comm)
		}},
		{"no parent executable (kernel thread parent)", func(r *rawRecord) { r.pexe = nil }, func(t *testing.T, ev *Event) {
			assert.Equal(t, "", ev.ParentExePath)
		}},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			if tt.mod != nil {
				tt.mod(&r)
			}
			var ev Event
			require.NoError(t, d.Decode(r.bytes(), 1_700_000_000_000_000_000, &ev))
			tt.check(t, &ev)
		})
	}
}

func TestDecodeMaximal(t *testing.T) {
	// Every field at its hard maximum, as the kernel can emit it.
	args := bytes.Repeat([]byte("a"), probe.ArgsBytesHardMax)
	var deep []string
	for range probe.PathDepthHardMax {
		deep = append(deep, "abcdefghijklmnopqrstuvwxyz0")
	}
	r := rawRecord{args: args, exe: deep[:140], cwd: deep[:140], pexe: deep[:140], cgroup: deep[:140], filename: string(bytes.Repeat([]byte("f"), 4095))}
	r.hdr.Flags = uint32(TruncArgs | TruncPath)
	for range probe.AncestorsHardMax {
		r.ancestors = append(r.ancestors, Ancestor{PID: 1, Comm: "123456789012345", ExeName: string(bytes.Repeat([]byte("n"), 255))})
	}
	var ev Event
	require.NoError(t, NewDecoder().Decode(r.bytes(), 0, &ev))
	assert.Len(t, ev.Args, 1)
	assert.Len(t, ev.Args[0], probe.ArgsBytesHardMax)
	assert.Len(t, ev.Ancestors, probe.AncestorsHardMax)
	assert.Equal(t, "123456789012345", ev.Ancestors[15].Comm)
	assert.Len(t, ev.Ancestors[15].ExeName, 255)
	assert.Len(t, ev.Filename, 4095)
}

func TestDecodeMalformed(t *testing.T) {
	good := rawRecord{args: []byte("x\x00"), exe: []string{"x"}}.bytes()
	withAnc := rawRecord{args: []byte("x\x00"), ancestors: []Ancestor{{PID: 1, Comm: "sh", ExeName: "busybox"}}}.bytes()
	for name, raw := range map[string][]byte{
		"empty":                nil,
		"short header":         good[:HeaderSize-1],
		"lengths exceed":       good[:len(good)-1],
		"ancestor cut short":   withAnc[:len(withAnc)-len("busybox")-1-1],
		"ancestor name exceed": withAnc[:len(withAnc)-1],
	} {
		t.Run(name, func(t *testing.T) {
			var ev Event
			err := NewDecoder().Decode(raw, 0, &ev)
			assert.True(t, errors.Is(err, ErrMalformed), "%v", err)
		})
	}
}

func TestDecoderInternCacheIsBounded(t *testing.T) {
	d := NewDecoder()
	for i := range maxCacheEntries + 10 {
		d.str([]byte{byte(i), byte(i >> 8), 'x'})
	}
	assert.LessOrEqual(t, len(d.interned.m), maxCacheEntries)
	for i := range maxCacheEntries + 10 {
		d.cachedPath([]byte{byte(i), byte(i >> 8), 'x', 0}, false, false)
	}
	assert.LessOrEqual(t, len(d.paths.m), maxCacheEntries)
}

// Unique deep working directories, as a process that chdirs into a fresh
// 4 KiB path before each exec makes them: the caches stay within their byte
// bound, far below what their entry bound would let them hold.
func TestDecoderCachesAreBoundedInBytes(t *testing.T) {
	d := NewDecoder()
	var ev Event
	deep := make([]string, 0, 128)
	for i := range 2000 {
		deep = deep[:0]
		for j := range 127 {
			deep = append(deep, fmt.Sprintf("%030d", i*1000+j)) // 31 bytes a component: 3.9 KiB a path
		}
		raw := rawRecord{args: []byte("gcc\x00"), exe: []string{"usr", "bin", "gcc"}, cwd: deep}.bytes()
		require.NoError(t, d.Decode(raw, 0, &ev))
		require.Len(t, ev.Cwd, 127*31)
		entries, bytes := d.CacheSize()
		require.LessOrEqual(t, bytes, 2*maxCacheBytes)
		require.LessOrEqual(t, entries, 2*maxCacheEntries)
	}
	accounted := func(c *stringCache, shared bool) int {
		n := 0
		for k, v := range c.m {
			n += cacheEntryOverhead + len(k)
			if !shared {
				n += len(v)
			}
		}
		return n
	}
	_, bytes := d.CacheSize()
	assert.Equal(t, accounted(&d.interned, true)+accounted(&d.paths, false), bytes, "the published size is the caches' own")
	assert.LessOrEqual(t, d.interned.bytes, maxCacheBytes)
	assert.LessOrEqual(t, d.paths.bytes, maxCacheBytes)

	// A repeated path is still served from the cache.
	raw := rawRecord{args: []byte("gcc\x00"), exe: []string{"usr", "bin", "gcc"}, cwd: deep}.bytes()
	require.NoError(t, d.Decode(raw, 0, &ev))
	first := ev.Cwd
	require.NoError(t, d.Decode(raw, 0, &ev))
	assert.Same(t, unsafe.StringData(first), unsafe.StringData(ev.Cwd))
}

// TestDecodePathCache checks that the raw-field cache gives what path gives,
// for each combination of flags, whichever comes first.
func TestDecodePathCache(t *testing.T) {
	fields := [][]byte{nil, {0}, []byte("gcc\x00bin\x00usr\x00"), []byte("gcc\x00bin\x00usr"), []byte("a\xff\x00b\x00"), []byte("x\x00")}
	d := NewDecoder()
	for round := range 2 {
		for _, f := range fields {
			for _, truncated := range []bool{false, true} {
				for _, deleted := range []bool{false, true} {
					want := NewDecoder().path(f, truncated, deleted)
					assert.Equal(t, want, d.cachedPath(f, truncated, deleted), "round %d %q truncated=%v deleted=%v", round, f, truncated, deleted)
				}
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rawRecord{args: []byte("gcc\x00-c\x00"), exe: []string{"usr", "bin", "gcc"}, ancestors: []Ancestor{{PID: 1, Comm: "init", ExeName: "memfd:x"}}}.bytes())
	f.Add(rawRecord{hdr: probe.RawEvent{Flags: 0xffffffff}, args: []byte("\xff\xfe")}.bytes())
	f.Add([]byte{})
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev Event
		if err := d.Decode(raw, 0, &ev); err != nil {
			return
		}
		for _, s := range append([]string{ev.ExePath, ev.Cwd, ev.ParentExePath, ev.Filename, ev.CgroupPath, ev.Comm}, ev.Args...) {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 %q", s)
			}
		}
		for _, a := range ev.Ancestors {
			if !utf8.ValidString(a.Comm) || !utf8.ValidString(a.ExeName) {
				t.Fatalf("invalid UTF-8 ancestor %q %q", a.Comm, a.ExeName)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	raw := rawRecord{
		hdr:       probe.RawEvent{Argc: 4, Comm: comm("gcc")},
		args:      []byte("gcc\x00-O2\x00-c\x00main.c\x00"),
		exe:       []string{"usr", "bin", "x86_64-linux-gnu-gcc-12"},
		cwd:       []string{"home", "user", "src", "project"},
		pexe:      []string{"usr", "bin", "make"},
		filename:  "/usr/bin/gcc",
		cgroup:    []string{"kubepods.slice", "kubepods-besteffort.slice", "kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice", "cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope"},
		ancestors: []Ancestor{{PID: 100, Comm: "make", ExeName: "make"}, {PID: 90, Comm: "sh", ExeName: "dash"}, {PID: 1, Comm: "containerd-shim", ExeName: "containerd-shim-runc-v2"}, {PID: 0}},
	}.bytes()
	d := NewDecoder()
	var ev Event
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(raw, 0, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := Event{
		Time: time.Unix(0, 123456789), PID: 10, ParentPID: 9, VPID: 1, UID: 1, RUID: 2, GID: 3, Argc: 2,
		Comm: "gcc", Filename: "/usr/bin/cc", ExePath: "/usr/bin/gcc-12", Cwd: "/src", ParentExePath: "/bin/sh",
		Args: []string{"cc", "-c"}, CgroupPath: "/kubepods/pod1/abc", Ancestors: []Ancestor{{PID: 9, Comm: "sh", ExeName: "busybox"}},
		ExeFile:    File{Magic: MagicOverlay, Flags: FileOverlayKnown | FileOverlayUpper | FileRootMount | FileRootFS},
		ParentFile: File{Magic: MagicTmpfs, Flags: FileMemfd | FileUserNSMount},
		NSUID:      1000, NSUIDKnown: true, InitPID: 8, Root: Root{MountNS: 4026531841, Dev: 0x00800011, Ino: 256},
		Interactive: true, InInitTree: No,
	}
	var out Event
	require.NoError(t, NewDecoder().Decode(Encode(&in), 0, &out))
	assert.Equal(t, in, out)
}

// TestDecodeProcessContext decodes the process-context flags and the uid in
// the user namespace from raw headers.
func TestDecodeProcessContext(t *testing.T) {
	tests := []struct {
		name        string
		flags       uint32
		nsUID       uint32
		interactive bool
		initTree    Tristate
		wantUID     uint32
		uidKnown    bool
	}{
		{"nothing known", 0, probe.NSUIDUnknown, false, Unknown, 0, false},
		{"terminal, entered from outside", probe.FlagInteractive | probe.FlagInitTreeKnown, 0, true, No, 0, true},
		{"init tree", probe.FlagInitTreeKnown | probe.FlagInInitTree, 1000, false, Yes, 1000, true},
		{"in-tree bit without known is unknown", probe.FlagInInitTree, 5, false, Unknown, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := probe.RawEvent{Flags: tt.flags, NsUid: tt.nsUID}
			raw := unsafe.Slice((*byte)(unsafe.Pointer(&h)), HeaderSize)
			var ev Event
			require.NoError(t, NewDecoder().Decode(raw, 0, &ev))
			assert.Equal(t, tt.interactive, ev.Interactive)
			assert.Equal(t, tt.initTree, ev.InInitTree)
			assert.Equal(t, tt.uidKnown, ev.NSUIDKnown)
			assert.Equal(t, tt.wantUID, ev.NSUID)
		})
	}
}

// TestDecodeArgsSplitAfterValidation checks that validating argv as a whole
// and then splitting it gives what validating each argument gives.
func TestDecodeArgsSplitAfterValidation(t *testing.T) {
	perArg := func(b []byte) []string {
		var out []string
		for len(b) > 0 {
			i := bytes.IndexByte(b, 0)
			if i < 0 {
				out = append(out, validString(b))
				break
			}
			out = append(out, validString(b[:i]))
			b = b[i+1:]
		}
		return out
	}
	d := NewDecoder()
	for _, in := range []string{
		"", "\x00", "\x00\x00", "a", "a\x00", "a\x00\x00", "a\x00b", "a\x00b\x00",
		"\xff", "\xff\x00\xff", "\xe2\x82\x00\xac", "a\xe2\x82\x00\x82\xacb\x00", "\xc3\x00(\x00",
		"\xf0\x9f\x98\x00\x80\x00", "h\xc3\xa9\x00\xe2\x82\xac\x00", "\xff\xfe\xfd\x00\xfc",
	} {
		got := d.args([]byte(in), nil)
		assert.Equal(t, perArg([]byte(in)), got, "%q", in)
		for _, a := range got {
			assert.True(t, utf8.ValidString(a), "%q", a)
		}
	}
}
