//go:build linux

// Package inroot reads files inside a container's root without ever leaving it: every path is resolved by the
// kernel with openat2 RESOLVE_IN_ROOT, whatever links the container wrote. The presence scan reads container roots
// with it, and the receiver reads a container's /etc/passwd.
package inroot // import "github.com/compilerwatch/compilerwatch/internal/inroot"

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Root reads a directory tree as if its top were "/": the kernel resolves every path under it with openat2
// RESOLVE_IN_ROOT, so ".." and absolute symlinks stop at the top, and RESOLVE_NO_MAGICLINKS refuses
// /proc/<pid>/root, /proc/self/fd/<n> and the like. Nothing written into the tree can make a read land outside
// it. It holds one O_PATH descriptor of the top, which keeps the tree readable after the processes that used
// it are gone. Safe for concurrent use; Close must be called once.
type Root struct {
	fd int
}

const (
	inRootResolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
	// openat2 returns EAGAIN for RESOLVE_IN_ROOT when a rename or mount raced with a ".." step.
	inRootRetries = 3
	// readDirBatch is how many directory entries are read and held at a time.
	readDirBatch = 256
	// procCgroupMax bounds the read of /proc/<pid>/cgroup (a hybrid host lists about a dozen hierarchies).
	procCgroupMax = 64 << 10
	// capSysPtrace is CAP_SYS_PTRACE in linux/capability.h.
	capSysPtrace = 19
)

// ErrNoProcess: none of the given pids is a live process of the container.
var ErrNoProcess = errors.New("no live process of the container")

// Open opens dir as the top of a Root. dir is the caller's own path and is resolved normally.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Root{fd: fd}, nil
}

// Close releases the descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Identity is the top directory's device, in the kernel's encoding (MAJOR << 20 | MINOR, as a struct
// super_block's s_dev holds it), and inode number.
func (r *Root) Identity() (dev uint32, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return 0, 0, &fs.PathError{Op: "fstat", Path: "/", Err: err}
	}
	return unix.Major(st.Dev)<<20 | unix.Minor(st.Dev), st.Ino, nil
}

// open opens p (a path inside the root; relative paths start at the top too) with flags.
func (r *Root) open(p string, flags uint64) (int, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: inRootResolve}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(r.fd, p, &how)
		if (err == unix.EAGAIN && i < inRootRetries) || err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "openat2", Path: p, Err: err}
		}
		return fd, nil
	}
}

// ReadDir calls fn with the entries of directory p (following symlinks inside the root), in directory order,
// readDirBatch at a time, until fn returns false.
func (r *Root) ReadDir(p string, fn func(fs.DirEntry) bool) error {
	fd, err := r.open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	for {
		entries, err := f.ReadDir(readDirBatch)
		for _, de := range entries {
			if !fn(de) {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Stat returns the file p resolves to, following symlinks inside the root. The file is opened with O_PATH
// only: its contents are not read, a FIFO does not block and a device is not touched.
func (r *Root) Stat(p string) (fs.FileMode, error) {
	fd, err := r.open(p, unix.O_PATH)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, &fs.PathError{Op: "fstat", Path: p, Err: err}
	}
	return unixMode(st.Mode), nil
}

// ReadFile reads the regular file p, which must be at most max bytes. Anything else (a FIFO, a device, a
// directory) is refused before it is opened for reading.
func (r *Root) ReadFile(p string, max int64) ([]byte, error) {
	fd, err := r.open(p, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: p, Err: errors.New("not a regular file")}
	}
	// Reopen the very file the O_PATH descriptor holds, through the collector's own /proc/self/fd.
	rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(rfd), p)
	defer f.Close()
	return readAtMost(f, p, max)
}

// readAtMost reads all of rd, failing when it holds more than max bytes.
func readAtMost(rd io.Reader, name string, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rd, max+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if int64(len(b)) > max {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("larger than %d bytes", max)}
	}
	return b, nil
}

// unixMode converts st_mode to the fs.FileMode bits the scan looks at.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	default:
		mode |= fs.ModeIrregular
	}
	return mode
}

// OpenProcRoot opens the root of the first of pids that is a process of container id. For each pid, the
// directory /proc/<pid> is opened first and the cgroup and the root are read through it. That descriptor stands
// for the process, not for its number: when the process has exited, reads through it fail, even if the number
// now belongs to another process. The cgroup is checked again after the root is opened, so the root returned
// belongs to a process that was in the container's cgroup both before and after the root was opened.
func OpenProcRoot(procRoot string, pids []int, id string) (*Root, error) {
	var firstErr error
	for _, pid := range pids {
		r, err := openProcRootOf(procRoot, pid, id)
		if err == nil {
			return r, nil
		}
		if firstErr == nil && !errors.Is(err, ErrNoProcess) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, ErrNoProcess
}

func openProcRootOf(procRoot string, pid int, id string) (*Root, error) {
	p, err := OpenProcess(procRoot, pid)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if !p.InContainer(id) {
		return nil, ErrNoProcess
	}
	r, err := p.Root()
	if err != nil {
		if !errors.Is(err, ErrNoProcess) {
			err = &fs.PathError{Op: "open", Path: fmt.Sprintf("%s/%d/root", procRoot, pid), Err: errors.Unwrap(err)}
		}
		return nil, err
	}
	if !p.InContainer(id) || isNodeRoot(procRoot, r) {
		r.Close()
		return nil, ErrNoProcess
	}
	return r, nil
}

// isNodeRoot reports whether r is the root of procRoot's pid 1, the node's own root. A process can be in a
// container's cgroup before it has entered the container's mount namespace (a runtime's exec helper, for a moment):
// its root is then the node's, never the container's, and must not be read as the container's.
func isNodeRoot(procRoot string, r *Root) bool {
	pid1, err := OpenProcess(procRoot, 1)
	if err != nil {
		return false
	}
	defer pid1.Close()
	nr, err := pid1.Root()
	if err != nil {
		return false
	}
	defer nr.Close()
	dev, ino, err := r.Identity()
	ndev, nino, nerr := nr.Identity()
	return err == nil && nerr == nil && dev == ndev && ino == nino
}

// InContainer reports whether the process is in container id's cgroup.
func (p *Process) InContainer(id string) bool {
	fd, err := unix.Openat(p.dir, "cgroup", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "cgroup")
	defer f.Close()
	b, err := readAtMost(f, "cgroup", procCgroupMax)
	return err == nil && cgroupHasContainer(string(b), id)
}

// cgroupHasContainer reports whether a /proc/<pid>/cgroup text places the process in container id: a cgroup
// path component contains the id (".../<id>", ".../cri-containerd-<id>.scope", ".../docker-<id>.scope").
func cgroupHasContainer(cgroup, id string) bool {
	if id == "" {
		return false
	}
	for line := range strings.Lines(cgroup) {
		// hierarchy-id:controllers:path
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if _, p, ok := strings.Cut(rest, ":"); ok {
			for part := range strings.SplitSeq(strings.TrimSpace(p), "/") {
				if strings.Contains(part, id) {
					return true
				}
			}
		}
	}
	return false
}

// Support reports why containers' roots cannot be read here, or nil. Reading needs openat2 with RESOLVE_IN_ROOT
// (Linux 5.6) to stay inside a container's root, and CAP_SYS_PTRACE to open other processes' /proc/<pid>/root.
func Support() error {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: inRootResolve,
	})
	if err != nil {
		return fmt.Errorf("this kernel lacks openat2 RESOLVE_IN_ROOT (Linux 5.6+), without which a container's symlinks could lead the scan out of its root: %w", err)
	}
	unix.Close(fd)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	if data[0].Effective&(1<<capSysPtrace) == 0 {
		return errors.New("CAP_SYS_PTRACE is not in the effective set; it is needed to open other containers' roots (/proc/<pid>/root)")
	}
	return nil
}

// Process is an open /proc/<pid> directory. It stands for the process, not for its number: once the process has
// exited, reads through it fail, even if the number now belongs to another process.
type Process struct {
	dir int
}

// OpenProcess opens /proc/<pid> under procRoot. ErrNoProcess when there is no such process.
func OpenProcess(procRoot string, pid int) (*Process, error) {
	dir, err := unix.Open(procRoot+"/"+strconv.Itoa(pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, ErrNoProcess
	}
	return &Process{dir: dir}, nil
}

// Close releases the directory.
func (p *Process) Close() error { return unix.Close(p.dir) }

// MountNS is the inode number of the process's mount namespace (/proc/<pid>/ns/mnt).
func (p *Process) MountNS() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(p.dir, "ns/mnt", &st, 0); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: "ns/mnt", Err: err}
	}
	return st.Ino, nil
}

// Root opens the process's root directory (/proc/<pid>/root) as a Root.
func (p *Process) Root() (*Root, error) {
	fd, err := unix.Openat(p.dir, "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT || err == unix.ESRCH {
			return nil, ErrNoProcess // exited
		}
		return nil, &fs.PathError{Op: "open", Path: "root", Err: err}
	}
	return &Root{fd: fd}, nil
}
