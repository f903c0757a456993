//go:build linux

package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Mount is a host path made visible in the container, or a symbolic link
// created in its rootfs.
type Mount struct {
	// Destination is the absolute path inside the container.
	Destination string
	// Source is the host file or directory bind-mounted at Destination
	// (read-only unless Writable). Ignored when Symlink is set.
	Source string
	// Writable makes the bind mount read-write.
	Writable bool
	// Symlink, when set, makes Destination a symbolic link with this target
	// instead of a mount. Host tool chains are reached through link chains
	// (/usr/bin/cc -> /etc/alternatives/cc -> /usr/bin/gcc -> gcc-12), and
	// the name a compiler is invoked by is what the detector sees.
	Symlink string
}

// Options configures NewContainer. The zero value is a busybox container of
// a besteffort pod with containerd's cgroupfs layout.
type Options struct {
	// ID is the container id: 64 lowercase hex. Random when empty.
	ID string
	// PodUID is the pod uid, a lowercase dashed UUID. Random when empty.
	PodUID string
	// QoS picks the kubepods sub-tree. Default QoSBestEffort.
	QoS QoSClass
	// CgroupLayout is CgroupfsLayout (default) or SystemdLayout.
	CgroupLayout CgroupLayout
	// Mounts are bind mounts and symlinks added to the rootfs, for example
	// HostGCCMounts or HostGoMounts.
	Mounts []Mount
	// Overlay makes the rootfs an overlayfs mount: busybox, the mount points
	// and whatever Populate writes are in the lower layer, the upper layer is
	// empty at start and receives every write made while it runs.
	Overlay bool
	// Populate, when set, is called with the host path of the rootfs (the
	// lower layer with Overlay) after busybox is installed and before the
	// container starts.
	Populate func(root string) error
	// Env is added to the environment of init and of every Exec.
	Env []string
	// Args is init's argv. Default: sleep 3600.
	Args []string
	// TmpfsTmp mounts a tmpfs at /tmp. By default /tmp is a rootfs
	// directory, so runtime writes there land in the upper layer.
	TmpfsTmp bool
	// ExecTimeout bounds each Exec. Default 60s.
	ExecTimeout time.Duration
}

// Container is a running runc container. Its resources are released by a
// t.Cleanup registered in NewContainer.
type Container struct {
	id, podUID  string
	dir         string // t.TempDir() holding everything below
	bundle      string
	rootfs      string
	lower       string // == rootfs without Overlay
	upper       string
	runcRoot    string
	cgroupPath  string
	hierarchies []string
	initPID     int
	execTimeout time.Duration
	hostMounts  []string // host mount points made by the harness, in order
}

// ID returns the 64-hex container id.
func (c *Container) ID() string { return c.id }

// PodUID returns the pod uid, dashed.
func (c *Container) PodUID() string { return c.podUID }

// InitPID returns the host pid of the container's init process.
func (c *Container) InitPID() int { return c.initPID }

// Bundle returns the host path of the OCI bundle.
func (c *Container) Bundle() string { return c.bundle }

// Rootfs returns the host path of the container's root as it runs (the
// overlay mount with Overlay). Files written here from the host appear in
// the container; with Overlay they land in the upper layer.
func (c *Container) Rootfs() string { return c.rootfs }

// LowerDir returns the host path of the overlay lower layer, or the rootfs
// without Overlay.
func (c *Container) LowerDir() string { return c.lower }

// UpperDir returns the host path of the overlay upper layer, "" without
// Overlay.
func (c *Container) UpperDir() string { return c.upper }

// CgroupPath returns the container's cgroup path, the same in every
// hierarchy (v1 controllers and the unified one; see the package doc).
func (c *Container) CgroupPath() string { return c.cgroupPath }

// RuncRoot returns the runc --root of this container.
func (c *Container) RuncRoot() string { return c.runcRoot }

var (
	idRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	podUIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// busyboxApplets are the names linked to /bin/busybox in the rootfs.
var busyboxApplets = []string{
	"sh", "true", "false", "cat", "ls", "cp", "mv", "rm", "ln", "mkdir", "chmod",
	"sleep", "echo", "env", "id", "ps", "readlink", "test", "stat", "wc", "head",
	"touch", "uname", "grep", "sed", "tr", "kill", "pwd", "dd", "sync",
}

// NewContainer builds a runc bundle under t.TempDir and starts it detached.
// It skips t (fails it in CI) without root, runc or busybox-static, and
// fails t when the container cannot be built or started.
func NewContainer(t testing.TB, opts Options) *Container {
	t.Helper()
	RequireRoot(t)
	RequireBinary(t, "runc", "busybox")
	busybox, err := staticBusybox()
	if err != nil {
		skipOrFatal(t, err.Error())
		return nil
	}
	c, err := newContainer(t, opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := c.build(busybox, opts); err != nil {
		t.Fatalf("testenv: build bundle: %v", err)
	}
	if err := c.start(opts); err != nil {
		t.Fatalf("testenv: start container: %v", err)
	}
	return c
}

func newContainer(t testing.TB, opts Options) (*Container, error) {
	c := &Container{id: opts.ID, podUID: opts.PodUID, execTimeout: opts.ExecTimeout}
	if c.id == "" {
		c.id = randomHex(32)
	}
	if c.podUID == "" {
		c.podUID = randomUUID()
	}
	if c.execTimeout <= 0 {
		c.execTimeout = 60 * time.Second
	}
	if !idRE.MatchString(c.id) {
		return nil, fmt.Errorf("Options.ID %q is not 64 lowercase hex", c.id)
	}
	if !podUIDRE.MatchString(c.podUID) {
		return nil, fmt.Errorf("Options.PodUID %q is not a lowercase dashed UUID", c.podUID)
	}
	for _, m := range opts.Mounts {
		if !filepath.IsAbs(m.Destination) || filepath.Clean(m.Destination) != m.Destination || m.Destination == "/" {
			return nil, fmt.Errorf("mount destination %q must be a clean absolute path below /", m.Destination)
		}
		if m.Symlink == "" && !filepath.IsAbs(m.Source) {
			return nil, fmt.Errorf("mount source %q for %q must be absolute", m.Source, m.Destination)
		}
	}
	cg, err := CgroupPath(opts.CgroupLayout, opts.QoS, c.podUID, c.id)
	if err != nil {
		return nil, err
	}
	c.cgroupPath = cg

	// TempDir first, then our Cleanup: cleanups run last-in first-out, so the
	// container is gone and everything unmounted before the directory is
	// removed.
	c.dir = t.TempDir()
	if strings.ContainsAny(c.dir, ",:") {
		return nil, fmt.Errorf("temp dir %q contains ',' or ':', which overlayfs options cannot carry", c.dir)
	}
	c.bundle = filepath.Join(c.dir, "bundle")
	c.rootfs = filepath.Join(c.bundle, "rootfs")
	c.lower = c.rootfs
	c.runcRoot = filepath.Join(c.dir, "runc")
	if opts.Overlay {
		c.lower = filepath.Join(c.dir, "lower")
		c.upper = filepath.Join(c.dir, "upper")
	}
	t.Cleanup(func() { c.cleanup(t) })
	return c, nil
}

// build lays out the bundle: busybox, mount points and symlinks in the
// lower layer (so the upper one starts empty), then the overlay mount.
func (c *Container) build(busybox string, opts Options) error {
	root := c.lower
	for _, d := range []string{"bin", "proc", "dev", "sys", "etc", "root", "usr/bin", "usr/local/bin", "usr/lib", "var"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|fs.ModeSticky); err != nil {
		return err
	}
	if err := CopyFile(busybox, filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\n"), 0o644); err != nil {
		return err
	}
	// Mount points first, then links: a link's parent may be a mount point's
	// ancestor, never the reverse, since toolchain mounts name real paths.
	for _, m := range opts.Mounts {
		if m.Symlink == "" {
			if err := makeMountPoint(root, m); err != nil {
				return err
			}
		}
	}
	for _, m := range opts.Mounts {
		if m.Symlink != "" {
			if err := makeSymlink(root, m); err != nil {
				return err
			}
		}
	}
	if opts.Populate != nil {
		if err := opts.Populate(root); err != nil {
			return fmt.Errorf("Options.Populate: %w", err)
		}
	}
	if opts.Overlay {
		work := filepath.Join(c.dir, "work")
		for _, d := range []string{c.upper, work, c.rootfs} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		data := "lowerdir=" + c.lower + ",upperdir=" + c.upper + ",workdir=" + work
		if err := syscall.Mount("overlay", c.rootfs, "overlay", 0, data); err != nil {
			return fmt.Errorf("mount overlay on %s (%s): %w", c.rootfs, data, err)
		}
		c.hostMounts = append(c.hostMounts, c.rootfs)
	}
	spec := buildSpec(c.initArgs(opts), opts.Env, c.cgroupPath, opts.Mounts, opts.TmpfsTmp)
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.bundle, "config.json"), b, 0o644)
}

func (c *Container) initArgs(opts Options) []string {
	if len(opts.Args) > 0 {
		return opts.Args
	}
	return []string{"/bin/sleep", "3600"}
}

// start runs the container detached. Creating the cgroup happens under the
// cross-process lock so that the shared kubepods ancestors it creates are
// recorded as a test's, for removal by the last container out.
func (c *Container) start(opts Options) error {
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	c.hierarchies = cgroupHierarchies(mounts)
	if len(c.hierarchies) == 0 {
		return errors.New("no cgroup hierarchy mounted")
	}
	l, err := lockCgroups()
	if err != nil {
		return err
	}
	defer l.unlock()
	created := missingAncestors(c.hierarchies, c.cgroupPath)

	// init's stdio: /dev/null in, a file out. Pipes would be held open by
	// the detached init and block any reader until the container dies.
	logPath := filepath.Join(c.dir, "init.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	pidFile := filepath.Join(c.dir, "init.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runc", "--root", c.runcRoot, "run", "--detach", "--bundle", c.bundle, "--pid-file", pidFile, c.id)
	cmd.Stdout, cmd.Stderr = logf, logf
	runErr := cmd.Run()
	// Mark even on failure: runc may have created the directories anyway.
	if err := markCreated(created); err != nil {
		return err
	}
	if runErr != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("runc run: %w: %s", runErr, strings.TrimSpace(string(out)))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	c.initPID, err = strconv.Atoi(strings.TrimSpace(string(b)))
	return err
}

// ExecOptions configures one ExecWith.
type ExecOptions struct {
	Env     []string      // added to the container's environment
	Cwd     string        // working directory; default "/"
	Stdin   []byte        // fed to the process
	Timeout time.Duration // default Options.ExecTimeout
	// User is runc exec's --user, uid[:gid]; default the container's user.
	User string
}

// ExecResult is what a command run in the container produced.
type ExecResult struct {
	Stdout, Stderr string
	// ExitCode is the process's exit status. runc itself exits 255 when it
	// cannot start the process (for example, no such file); Stderr then
	// holds its message.
	ExitCode int
}

// Exec runs argv in the container with `runc exec` and waits for it. The
// error is non-nil only when the command could not be run or timed out; a
// non-zero exit is reported in ExitCode.
//
// runc exec returns only when the output pipes close, so a command that
// leaves background processes must redirect their stdio
// (`sleep 60 >/dev/null 2>&1 &`), or Exec waits for them until it times out.
func (c *Container) Exec(t testing.TB, argv ...string) (ExecResult, error) {
	t.Helper()
	return c.ExecWith(t, ExecOptions{}, argv...)
}

// MustExec runs argv like Exec and fails t unless it exits 0. It returns
// stdout.
func (c *Container) MustExec(t testing.TB, argv ...string) string {
	t.Helper()
	r, err := c.Exec(t, argv...)
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	if r.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d\nstdout: %s\nstderr: %s", argv, r.ExitCode, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// ExecWith runs argv in the container with o.
func (c *Container) ExecWith(t testing.TB, o ExecOptions, argv ...string) (ExecResult, error) {
	t.Helper()
	if len(argv) == 0 {
		return ExecResult{}, errors.New("exec: empty argv")
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = c.execTimeout
	}
	args := []string{"--root", c.runcRoot, "exec"}
	for _, e := range o.Env {
		args = append(args, "--env", e)
	}
	if o.Cwd != "" {
		args = append(args, "--cwd", o.Cwd)
	}
	if o.User != "" {
		args = append(args, "--user", o.User)
	}
	args = append(args, c.id)
	args = append(args, argv...)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runc", args...)
	// runc exec forwards SIGTERM to the process; SIGKILL would orphan it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if o.Stdin != nil {
		cmd.Stdin = bytes.NewReader(o.Stdin)
	}
	err := cmd.Run()
	r := ExecResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if ctx.Err() != nil {
		return r, fmt.Errorf("exec %q: timed out after %v", argv, timeout)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.ExitCode = ee.ExitCode()
	default:
		return r, fmt.Errorf("exec %q: %w", argv, err)
	}
	return r, nil
}

// WriteFile writes data to path inside the running container, from the
// host, creating missing parent directories. With Overlay the file lands in the upper layer, exactly like a file
// the container wrote itself, without an exec of its own.
func (c *Container) WriteFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	p, err := c.hostPath(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // umask-independent
		t.Fatal(err)
	}
}

// hostPath maps an absolute container path to the host path under Rootfs,
// refusing paths that would pass through a symlink (and so possibly leave
// the rootfs).
func (c *Container) hostPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("container path %q is not absolute", p)
	}
	if err := checkNoSymlinks(c.rootfs, filepath.Dir(filepath.Clean(p))); err != nil {
		return "", err
	}
	return filepath.Join(c.rootfs, p), nil
}

// cleanup deletes the container, unmounts, removes its cgroups and then
// checks that nothing is left. Failures are test errors: a leak here breaks
// later tests in ways that are hard to trace back.
func (c *Container) cleanup(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(c.runcRoot); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "runc", "--root", c.runcRoot, "delete", "--force", c.id).CombinedOutput()
		cancel()
		if err != nil && !strings.Contains(string(out), "does not exist") {
			t.Errorf("testenv: runc delete %s: %v: %s", c.id, err, out)
		}
	}
	if c.hierarchies != nil {
		if err := removeCgroup(c.hierarchies, c.cgroupPath); err != nil {
			t.Errorf("testenv: remove cgroups: %v", err)
		}
	}
	for i := len(c.hostMounts) - 1; i >= 0; i-- {
		if err := unmount(c.hostMounts[i]); err != nil {
			t.Errorf("testenv: %v", err)
		}
	}
	if err := c.verifyClean(); err != nil {
		t.Errorf("testenv: cleanup incomplete: %v", err)
	}
}

// verifyClean checks that runc lists no container of ours, that no mount is
// left under the temp dir, and that the container and pod cgroup
// directories are gone from every hierarchy.
func (c *Container) verifyClean() error {
	var errs []error
	if _, err := os.Stat(c.runcRoot); err == nil {
		out, err := exec.Command("runc", "--root", c.runcRoot, "list", "-q").CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("runc list: %w: %s", err, out))
		} else if slices.Contains(strings.Fields(string(out)), c.id) {
			errs = append(errs, fmt.Errorf("runc still lists %s", c.id))
		}
	}
	mounts, err := readMountInfo()
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range mounts {
		if m.MountPoint == c.dir || strings.HasPrefix(m.MountPoint, c.dir+"/") {
			errs = append(errs, fmt.Errorf("still mounted: %s (%s)", m.MountPoint, m.FSType))
		}
	}
	for _, h := range c.hierarchies {
		for _, d := range []string{c.cgroupPath, filepath.Dir(c.cgroupPath)} {
			if _, err := os.Stat(filepath.Join(h, d)); err == nil {
				errs = append(errs, fmt.Errorf("cgroup %s still exists", filepath.Join(h, d)))
			}
		}
	}
	return errors.Join(errs...)
}

func unmount(p string) error {
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Unmount(p, 0); err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Still busy: detach, so the temp dir removal cannot walk into it.
	if derr := syscall.Unmount(p, syscall.MNT_DETACH); derr != nil {
		return fmt.Errorf("unmount %s: %v; lazy unmount: %w", p, err, derr)
	}
	return fmt.Errorf("unmount %s: %w (detached lazily)", p, err)
}

// makeMountPoint creates an empty file or directory at m.Destination in
// root, matching what m.Source is.
func makeMountPoint(root string, m Mount) error {
	fi, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("mount source: %w", err)
	}
	if err := checkNoSymlinks(root, filepath.Dir(m.Destination)); err != nil {
		return err
	}
	dst := filepath.Join(root, m.Destination)
	if fi.IsDir() {
		return os.MkdirAll(dst, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if cur, err := os.Lstat(dst); err == nil {
		if !cur.Mode().IsRegular() {
			return fmt.Errorf("mount point %s exists and is not a file", m.Destination)
		}
		return nil
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// makeSymlink creates m.Destination -> m.Symlink in root. An identical link
// is accepted, anything else at that path is an error.
func makeSymlink(root string, m Mount) error {
	if err := checkNoSymlinks(root, filepath.Dir(m.Destination)); err != nil {
		return err
	}
	dst := filepath.Join(root, m.Destination)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if cur, err := os.Readlink(dst); err == nil {
		if cur == m.Symlink {
			return nil
		}
		return fmt.Errorf("symlink %s: exists with target %q, want %q", m.Destination, cur, m.Symlink)
	}
	if err := os.Symlink(m.Symlink, dst); err != nil {
		return fmt.Errorf("symlink %s: %w", m.Destination, err)
	}
	return nil
}

// checkNoSymlinks fails when any existing component of dir (a container
// path) under root is a symlink. Following one from the host could leave
// the rootfs: /etc/alternatives/cc is absolute.
func checkNoSymlinks(root, dir string) error {
	cur := root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			rel, _ := filepath.Rel(root, cur)
			return fmt.Errorf("container path %s passes through symlink /%s; use the resolved path", dir, rel)
		}
	}
	return nil
}

// CopyFile copies the regular file src (following symlinks) to dst with
// mode perm, creating dst's parent directories.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm)
}

// staticBusybox returns the path of busybox and checks that it is linked
// statically: the rootfs has no libc for a dynamic one.
func staticBusybox() (string, error) {
	p, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("test requires busybox-static: %w", err)
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("busybox at %s: %w", p, err)
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("test requires busybox-static: %s is dynamically linked", p)
		}
	}
	return p, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux (crypto/rand panics rather)
	return hex.EncodeToString(b)
}

// randomUUID returns a random (version 4) UUID, lowercase and dashed.
func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// OpenPTY opens a pseudo-terminal pair through /dev/ptmx, closed when t ends.
func OpenPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	unlock := 0
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlocking the pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pty number: %v", e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return m, s
}

// ExecTTY runs argv in the container with `runc exec -t`, as from a
// terminal: runc's own stdio is a pty of which it is the session's
// controlling terminal, and runc gives the process a terminal of the
// container's. The terminal's output is read and discarded.
func (c *Container) ExecTTY(t testing.TB, argv ...string) error {
	t.Helper()
	master, slave := OpenPTY(t)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, master) // ends with EIO once every slave is closed
	}()
	ctx, cancel := context.WithTimeout(context.Background(), c.execTimeout)
	defer cancel()
	args := append([]string{"--root", c.runcRoot, "exec", "-t", c.id}, argv...)
	cmd := exec.CommandContext(ctx, "runc", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err := cmd.Run()
	_ = slave.Close()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		_ = master.Close()
		<-drained
	}
	if err != nil {
		return fmt.Errorf("runc exec -t %q: %w", argv, err)
	}
	return nil
}
