package event

import (
	"encoding/binary"
	"strings"
	"unsafe"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// Encode lays ev out as the BPF program would write it: the inverse of
// Decode for complete (untruncated, absolute) paths. Tests and fuzz seeds
// use it to build records without a kernel.
func Encode(ev *Event) []byte {
	var args []byte
	for _, a := range ev.Args {
		args = append(append(args, a...), 0)
	}
	fn := []byte(ev.Filename)
	if ev.Filename != "" {
		fn = append(fn, 0)
	}
	exe, cwd, pexe, cg := leafFirst(ev.ExePath), leafFirst(ev.Cwd), leafFirst(ev.ParentExePath), leafFirst(ev.CgroupPath)

	h := probe.RawEvent{
		Pid: ev.PID, Ppid: ev.ParentPID, Vpid: ev.VPID, Uid: ev.UID, Ruid: ev.RUID, Gid: ev.GID, Argc: ev.Argc,
		Flags:   uint32(ev.Truncated),
		ArgsLen: uint16(len(args)), ExeLen: uint16(len(exe)), CwdLen: uint16(len(cwd)), PexeLen: uint16(len(pexe)),
		FilenameLen: uint16(len(fn)), CgroupLen: uint16(len(cg)), AncestorCount: uint8(len(ev.Ancestors)),
		ExeFacts: uint8(ev.ExeFile.Flags), PexeFacts: uint8(ev.ParentFile.Flags),
		ExeMagic: ev.ExeFile.Magic, PexeMagic: ev.ParentFile.Magic,
		InitPid: ev.InitPID, NsUid: probe.NSUIDUnknown, MntNs: ev.Root.MountNS, RootDev: ev.Root.Dev, RootIno: ev.Root.Ino,
	}
	if ev.NSUIDKnown {
		h.NsUid = ev.NSUID
	}
	if ev.Interactive {
		h.Flags |= probe.FlagInteractive
	}
	switch ev.InInitTree {
	case Yes:
		h.Flags |= probe.FlagInitTreeKnown | probe.FlagInInitTree
	case No:
		h.Flags |= probe.FlagInitTreeKnown
	}
	if !ev.Time.IsZero() {
		h.BootNs = uint64(ev.Time.UnixNano())
	}
	if ev.CgroupV1 {
		h.Flags |= probe.FlagCgroupV1
	}
	if ev.CgroupSeen {
		h.Flags |= probe.FlagCgroupSeen
	}
	for i := 0; i < len(ev.Comm) && i < len(h.Comm)-1; i++ {
		h.Comm[i] = int8(ev.Comm[i])
	}
	out := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&h)), HeaderSize)...)
	for _, f := range [][]byte{args, exe, cwd, pexe, fn, cg} {
		out = append(out, f...)
	}
	for _, a := range ev.Ancestors {
		var e [ancestorSize]byte
		binary.LittleEndian.PutUint32(e[:4], a.PID)
		copy(e[ancestorCommOff:ancestorCommOff+len(probe.RawAncestor{}.Comm)-1], a.Comm)
		var name []byte
		if a.ExeName != "" {
			name = append([]byte(a.ExeName), 0)
		}
		binary.LittleEndian.PutUint16(e[ancestorExeLenOff:], uint16(len(name)))
		out = append(append(out, e[:]...), name...)
	}
	return out
}

// leafFirst writes an absolute path's components leaf first, NUL-terminated.
func leafFirst(p string) []byte {
	comps := strings.Split(strings.Trim(p, "/"), "/")
	var b []byte
	for i := len(comps) - 1; i >= 0; i-- {
		if comps[i] == "" {
			continue
		}
		b = append(append(b, comps[i]...), 0)
	}
	return b
}
