// Package event holds the decoded form of one exec record read from the
// kernel, and the pure decode step from raw ring-buffer bytes to it.
package event // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"

import (
	"time"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// Origin says where an executed file lives. OriginUnknown means it cannot
// be told, and the attribute is left out rather than guessed.
type Origin uint8

const (
	OriginUnknown    Origin = iota
	OriginImage             // overlayfs lower layer
	OriginUpperLayer        // overlayfs upper layer: created or copied up after start
	OriginMemfd
	OriginTmpfs // a memory filesystem: tmpfs or ramfs
	OriginDeleted
	OriginHost // a mount from the node: not the container's own root filesystem
)

// String returns the value of the compilerwatch.executable.origin
// attribute, or "" for OriginUnknown.
func (o Origin) String() string {
	switch o {
	case OriginImage:
		return "image"
	case OriginUpperLayer:
		return "upper_layer"
	case OriginMemfd:
		return "memfd"
	case OriginTmpfs:
		return "tmpfs"
	case OriginDeleted:
		return "deleted"
	case OriginHost:
		return "host"
	}
	return ""
}

// FileFlags are the facts the kernel reports about an executed file, the
// file_fact enum of bpf/exec.h.
type FileFlags uint8

const (
	FileMemfd        = FileFlags(probe.FileMemfd)    // made by memfd_create
	FileUnlinked     = FileFlags(probe.FileUnlinked) // unlinked from its directory
	FileOverlayKnown = FileFlags(probe.FileOvlKnown) // on overlayfs, and the layer was read
	FileOverlayUpper = FileFlags(probe.FileOvlUpper) // on overlayfs' upper layer
	// FileRootMount: on the mount of the exec'ing process's root.
	FileRootMount = FileFlags(probe.FileRootMount)
	// FileRootFS: on the filesystem (superblock) of that root, through any
	// mount of it, such as a bind mount of one of its directories.
	FileRootFS = FileFlags(probe.FileRootFS)
	// FileUserNSFS: the filesystem was mounted from inside a user namespace.
	FileUserNSFS = FileFlags(probe.FileUserNSFS)
	// FileUserNSMount: the mount is detached, internal, or in a mount
	// namespace a user namespace owns, where a process inside a container may
	// have made it.
	FileUserNSMount = FileFlags(probe.FileUserNSMount)
)

// Filesystem magics (statfs f_type) the origin depends on.
const (
	MagicOverlay = 0x794c7630
	MagicTmpfs   = 0x01021994
	MagicRamfs   = 0x858458f6
)

// File is what the kernel reports about an executed file: its filesystem's
// magic, 0 when there is no file, and the facts about it.
type File struct {
	Magic uint32
	Flags FileFlags
}

// Origin decides where the file lives. inContainer says whether the
// process runs in a container (its cgroup names one); the root then is the
// container's root filesystem.
//
// The layer of an overlay root tells an image file from one written at
// runtime; on any other root filesystem (btrfs, zfs, devmapper, vfs,
// fuse-overlayfs, a plain directory) it cannot be told, and the origin is
// unknown. "host" is only for a file on another mount that the container's
// runtime made from the node: never for a mount a process in the container
// could have made itself (a filesystem mounted, or a mount made, inside a
// user namespace), whose contents may have been written at runtime. A
// process outside any container sees the node's own files: "host" unless
// overlay or memory. A lower-layer file of an overlay mounted from inside a
// user namespace (rootless runtimes, or a process in the container that
// then chroots into it) has no origin either.
func (f File) Origin(inContainer bool) Origin {
	switch {
	case f.Magic == 0:
		return OriginUnknown
	case f.Flags&FileMemfd != 0:
		return OriginMemfd
	case f.Flags&FileUnlinked != 0:
		return OriginDeleted
	case f.Magic == MagicTmpfs || f.Magic == MagicRamfs:
		return OriginTmpfs
	}
	overlay := f.Magic == MagicOverlay
	layer := OriginUnknown
	switch {
	case !overlay || f.Flags&FileOverlayKnown == 0:
	case f.Flags&FileOverlayUpper != 0:
		layer = OriginUpperLayer
	case f.Flags&FileUserNSFS == 0:
		// The lower layers of an overlay mounted from a user namespace are
		// whatever directories its mounter chose, possibly written at
		// runtime: "image" only for one the node mounted.
		layer = OriginImage
	}
	switch {
	case !inContainer:
		if overlay {
			return layer
		}
		return OriginHost
	case f.Flags&FileRootMount != 0:
		return layer
	case overlay && f.Flags&FileRootFS != 0:
		// The container's own overlay, mounted once more inside it.
		return layer
	case f.Flags&(FileUserNSFS|FileUserNSMount) != 0:
		return OriginUnknown
	}
	return OriginHost
}

// Truncation bits, one per captured field that can be cut short: the
// truncation bits of the record_flag enum of bpf/exec.h.
type Truncation uint32

const (
	TruncArgs       = Truncation(probe.TruncArgs)       // argv longer than max_args_bytes
	TruncPath       = Truncation(probe.TruncPath)       // executable path: depth or bytes
	TruncCwd        = Truncation(probe.TruncCwd)        // working directory
	TruncParentPath = Truncation(probe.TruncParentPath) // parent's executable path
	TruncFilename   = Truncation(probe.TruncFilename)   // bprm->filename
	TruncCgroup     = Truncation(probe.TruncCgroup)     // cgroup path
	TruncAncestors  = Truncation(probe.TruncAncestors)  // more ancestors than configured
)

var truncNames = []struct {
	bit  Truncation
	name string
}{
	{TruncArgs, "args"},
	{TruncPath, "path"},
	{TruncCwd, "cwd"},
	{TruncParentPath, "parent_path"},
	{TruncFilename, "filename"},
	{TruncCgroup, "cgroup"},
	{TruncAncestors, "ancestors"},
}

// Names lists the truncated fields by their compilerwatch.truncated names,
// in a fixed order. It returns nil when nothing was truncated.
func (t Truncation) Names() []string {
	if t == 0 {
		return nil
	}
	return t.AppendNames(nil)
}

// AppendNames appends the names Names returns to dst, so a caller can reuse
// one slice from event to event.
func (t Truncation) AppendNames(dst []string) []string {
	for _, n := range truncNames {
		if t&n.bit != 0 {
			dst = append(dst, n.name)
		}
	}
	return dst
}

// Ancestor is one process above the exec'ing one, nearest first. The comm
// is the kernel's, at most 15 bytes, and the process may have set it to
// anything. ExeName is the base name of the file the kernel executes for it
// (mm->exe_file), "" when unknown: the name to trust.
type Ancestor struct {
	PID     uint32
	Comm    string
	ExeName string
}

// Tristate is a fact the kernel may not have been able to tell.
type Tristate uint8

const (
	Unknown Tristate = iota
	No
	Yes
)

// Root identifies the root directory of the exec'ing process and its mount
// namespace: where the names of its uids come from.
type Root struct {
	MountNS uint32 // the mount namespace's inode number (stat of /proc/<pid>/ns/mnt)
	Dev     uint32 // the root directory's device, kernel encoding (MAJOR << 20 | MINOR)
	Ino     uint64 // and inode number
}

// Event is one successful exec. All strings are valid UTF-8 (decode
// replaces invalid bytes); paths are as the process's own root sees them.
type Event struct {
	Time time.Time // exec time, kernel boot clock converted to wall clock

	PID       uint32 // host pid namespace (tgid)
	ParentPID uint32 // host pid namespace
	VPID      uint32 // pid inside the process's own pid namespace
	// InitPID is the host pid of the init of the process's pid namespace
	// (the container's first process), 0 when unknown.
	InitPID uint32

	UID  uint32 // effective uid
	RUID uint32 // real uid
	GID  uint32 // effective gid

	// NSUID is the effective uid as the process's user namespace numbers it,
	// valid when NSUIDKnown; it equals UID outside user namespaces.
	NSUID      uint32
	NSUIDKnown bool
	Root       Root

	Interactive bool     // the process has a controlling terminal
	InInitTree  Tristate // descends from its pid namespace's init; Unknown in the initial pid namespace

	Comm          string   // task comm after exec
	Filename      string   // bprm->filename, as invoked
	ExePath       string   // as /proc/<pid>/exe shows
	Cwd           string   // as /proc/<pid>/cwd shows
	ParentExePath string   // the parent's executable path
	Args          []string // argv as captured (possibly truncated)
	Argc          uint32   // the real argc, even when Args is truncated
	CgroupPath    string   // v2 path, or a v1 path when no v2 cgroup is in use; truncated, its top levels
	CgroupV1      bool     // CgroupPath came from a v1 hierarchy

	Ancestors []Ancestor // Ancestors[0] is the parent

	// What the kernel reports about the executable and the parent's, to
	// decide their origins from.
	ExeFile    File
	ParentFile File

	Truncated Truncation

	// CgroupSeen: the candidate filter sent this exec, which is no
	// candidate, only as the first it saw in its cgroup. It says "this
	// container was seen", not "export this exec".
	CgroupSeen bool
}

// ParentComm is the parent's comm, or "" when no ancestor was captured.
func (e *Event) ParentComm() string {
	if len(e.Ancestors) == 0 {
		return ""
	}
	return e.Ancestors[0].Comm
}
