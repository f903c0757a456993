//go:build linux

package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// QoSClass is the Kubernetes QoS class, which picks the kubepods sub-tree.
type QoSClass string

// The QoS classes. Guaranteed pods sit directly under kubepods.
const (
	QoSBestEffort QoSClass = "besteffort"
	QoSBurstable  QoSClass = "burstable"
	QoSGuaranteed QoSClass = "guaranteed"
)

// CgroupLayout is the shape of the container's cgroup path.
type CgroupLayout string

const (
	// CgroupfsLayout is containerd with the cgroupfs driver:
	// /kubepods/besteffort/pod<uid>/<id>.
	CgroupfsLayout CgroupLayout = "cgroupfs"
	// SystemdLayout is containerd with the systemd driver:
	// /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope.
	// runc still uses its cgroupfs manager to create it, because the
	// systemd manager needs a running systemd (absent on test hosts such as
	// this one); the kernel-visible path, which is what the receiver reads,
	// is the same.
	SystemdLayout CgroupLayout = "systemd"
)

// CgroupPath returns the container's cgroup path for layout and qos, the
// same in every hierarchy.
func CgroupPath(layout CgroupLayout, qos QoSClass, podUID, id string) (string, error) {
	if qos == "" {
		qos = QoSBestEffort
	}
	switch qos {
	case QoSBestEffort, QoSBurstable, QoSGuaranteed:
	default:
		return "", fmt.Errorf("unknown QoS class %q", qos)
	}
	switch layout {
	case CgroupfsLayout, "":
		if qos == QoSGuaranteed {
			return path.Join("/kubepods", "pod"+podUID, id), nil
		}
		return path.Join("/kubepods", string(qos), "pod"+podUID, id), nil
	case SystemdLayout:
		uid := strings.ReplaceAll(podUID, "-", "_")
		scope := "cri-containerd-" + id + ".scope"
		if qos == QoSGuaranteed {
			return path.Join("/kubepods.slice", "kubepods-pod"+uid+".slice", scope), nil
		}
		q := string(qos)
		return path.Join("/kubepods.slice", "kubepods-"+q+".slice", "kubepods-"+q+"-pod"+uid+".slice", scope), nil
	default:
		return "", fmt.Errorf("unknown cgroup layout %q", layout)
	}
}

// mountInfo is one line of /proc/<pid>/mountinfo.
type mountInfo struct {
	ID         string // major:minor of the mounted filesystem
	Root       string // root of the mount within its filesystem
	MountPoint string
	FSType     string
}

// parseMountInfo parses /proc/<pid>/mountinfo text. Paths are unescaped
// (the kernel writes space, tab, newline and backslash as octal).
func parseMountInfo(text string) ([]mountInfo, error) {
	var out []mountInfo
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			return nil, fmt.Errorf("malformed mountinfo line %q", line)
		}
		out = append(out, mountInfo{
			ID:         f[2],
			Root:       unescapeMountPath(f[3]),
			MountPoint: unescapeMountPath(f[4]),
			FSType:     g[0],
		})
	}
	return out, sc.Err()
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			n := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(n)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// cgroupHierarchies returns the mount point of every cgroup v1 hierarchy
// and of the cgroup2 hierarchy, once each (a hierarchy mounted twice is
// listed at its first mount point).
func cgroupHierarchies(mounts []mountInfo) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range mounts {
		if m.FSType != "cgroup" && m.FSType != "cgroup2" {
			continue
		}
		if seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		out = append(out, m.MountPoint)
	}
	return out
}

func readMountInfo() ([]mountInfo, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountInfo(string(b))
}

// cgroupAncestors returns the proper ancestors of p, nearest the root first:
// "/a/b/c" gives "/a", "/a/b".
func cgroupAncestors(p string) []string {
	var out []string
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// stateDir holds the lock that serialises cgroup creation and removal
// between test binaries, and markers for the shared ancestors
// (/kubepods, /kubepods/besteffort…) that a test, not the kubelet, created.
// /run is preferred because, like the cgroup hierarchy, it does not survive
// a reboot, so a stale marker can never name a directory the kubelet made
// later. The name keeps the package's former name (testenv) so that
// test binaries built from older trees on the same host share the lock.
func stateDir() string {
	if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
		return "/run/compilerwatch-ebpfexectest"
	}
	return filepath.Join(os.TempDir(), "compilerwatch-ebpfexectest")
}

// cgroupLock is an exclusive flock on the state directory's lock file.
type cgroupLock struct{ f *os.File }

func lockCgroups() (*cgroupLock, error) {
	dir := stateDir()
	if err := os.MkdirAll(filepath.Join(dir, "created"), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock(f, true); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return &cgroupLock{f: f}, nil
}

func (l *cgroupLock) unlock() {
	_ = flock(l.f, false)
	_ = l.f.Close()
}

func markerPath(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(stateDir(), "created", hex.EncodeToString(sum[:12]))
}

// missingAncestors returns, for every hierarchy, the shared ancestors of cg
// (above the pod directory) that do not exist yet. Call with the lock held,
// before runc creates them.
func missingAncestors(hierarchies []string, cg string) []string {
	var out []string
	for _, h := range hierarchies {
		for _, a := range cgroupAncestors(path.Dir(cg)) {
			d := filepath.Join(h, a)
			if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
				out = append(out, d)
			}
		}
	}
	return out
}

// markCreated records dirs as created by a test. Call with the lock held.
func markCreated(dirs []string) error {
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			continue // runc did not create it after all
		}
		if err := os.WriteFile(markerPath(d), []byte(d+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// removeCgroup kills whatever is left in the container's own cgroup, then
// removes it, its pod directory, and the shared ancestors that a test
// created and that are now empty. Directories another test still uses are
// left to the last one out. It returns every directory it could not remove.
func removeCgroup(hierarchies []string, cg string) error {
	l, err := lockCgroups()
	if err != nil {
		return err
	}
	defer l.unlock()

	var errs []error
	for _, h := range hierarchies {
		leaf := filepath.Join(h, cg)
		if err := killAndRemove(leaf); err != nil {
			errs = append(errs, err)
		}
		// The pod directory carries a random uid, so it is ours alone.
		if err := rmdirIfExists(filepath.Dir(leaf)); err != nil {
			errs = append(errs, err)
		}
	}
	// Shared ancestors, deepest first, only when marked as ours and empty.
	anc := cgroupAncestors(path.Dir(cg))
	for i := len(anc) - 1; i >= 0; i-- {
		for _, h := range hierarchies {
			d := filepath.Join(h, anc[i])
			m := markerPath(d)
			if _, err := os.Stat(m); err != nil {
				continue
			}
			err := syscall.Rmdir(d)
			switch {
			case err == nil, errors.Is(err, syscall.ENOENT):
				_ = os.Remove(m)
			case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
				// Another container still lives below; it removes this later.
			default:
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// killAndRemove SIGKILLs every process in the cgroup dir and removes it,
// retrying while the dying processes still pin it.
func killAndRemove(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(procs)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rmdirIfExists(dir string) error {
	if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}

// flock takes (exclusive) or releases the advisory lock on f, waiting for it.
func flock(f *os.File, lock bool) error {
	how := syscall.LOCK_UN
	if lock {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
