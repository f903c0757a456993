// Package event holds the decoded form of one exec record read from the
// kernel, and the pure decode step from raw ring-buffer bytes to it.
package event // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"

import "time"

// Origin says where an executed file lives. OriginUnknown means the kernel
// could not tell, and the attribute is left out rather than guessed.
type Origin uint8

const (
	OriginUnknown    Origin = iota
	OriginImage             // overlayfs lower layer
	OriginUpperLayer        // overlayfs upper layer: created or copied up after start
	OriginMemfd
	OriginTmpfs
	OriginDeleted
	OriginHost // not on an overlay
)

// String returns the attribute value of design.md, or "" for OriginUnknown.
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

// Truncation bits, one per captured field that can be cut short.
type Truncation uint32

const (
	TruncArgs       Truncation = 1 << iota // argv longer than max_args_bytes
	TruncPath                              // executable path: depth or bytes
	TruncCwd                               // working directory
	TruncParentPath                        // parent's executable path
	TruncFilename                          // bprm->filename
	TruncCgroup                            // cgroup path
	TruncAncestors                         // more ancestors than configured
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

// Event is one successful exec. All strings are valid UTF-8 (decode
// replaces invalid bytes); paths are as the process's own root sees them.
type Event struct {
	Time time.Time // exec time, kernel boot clock converted to wall clock

	PID       uint32 // host pid namespace (tgid)
	ParentPID uint32 // host pid namespace
	VPID      uint32 // pid inside the process's own pid namespace

	UID  uint32 // effective uid
	RUID uint32 // real uid
	GID  uint32 // effective gid

	Comm          string   // task comm after exec
	Filename      string   // bprm->filename, as invoked
	ExePath       string   // as /proc/<pid>/exe shows
	Cwd           string   // as /proc/<pid>/cwd shows
	ParentExePath string   // the parent's executable path
	Args          []string // argv as captured (possibly truncated)
	Argc          uint32   // the real argc, even when Args is truncated
	CgroupPath    string   // v2 path, or a v1 path when no v2 cgroup is in use
	CgroupV1      bool     // CgroupPath came from a v1 hierarchy

	Ancestors []Ancestor // Ancestors[0] is the parent

	ExeOrigin    Origin
	ParentOrigin Origin

	Truncated Truncation
}

// ParentComm is the parent's comm, or "" when no ancestor was captured.
func (e *Event) ParentComm() string {
	if len(e.Ancestors) == 0 {
		return ""
	}
	return e.Ancestors[0].Comm
}
