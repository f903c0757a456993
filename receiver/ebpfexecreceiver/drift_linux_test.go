//go:build linux

package ebpfexecreceiver

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

const (
	attrOrigin       = "compilerwatch.executable.origin"
	attrParentOrigin = "compilerwatch.parent.executable.origin"
)

// TestKernelExecOriginHost covers the origins of files executed from the host's own mount namespace: a regular
// filesystem, a tmpfs, a memfd and unlinked files. Each program is a copy of /bin/sleep kept running until its
// record arrives, so the path the receiver reports can be compared with /proc/<pid>/exe.
func TestKernelExecOriginHost(t *testing.T) {
	testenv.RequireRoot(t) // mounting a tmpfs
	_, sink := startReceiver(t, nil)
	sleepBin, err := filepath.EvalSymlinks("/bin/sleep")
	require.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	// The parent of every exec below is this test binary; its origin depends on where go test built it.
	selfOrigin := fsOrigin(t, self)

	tmpfs := mountTmpfs(t)

	cases := []struct {
		name string
		// prepare returns the path to exec and the files the child inherits from fd 3 on.
		prepare func(t *testing.T) (string, []*os.File)
		want    string
	}{
		{
			name: "host filesystem",
			prepare: func(t *testing.T) (string, []*os.File) {
				requireHostOrigin(t, sleepBin)
				return sleepBin, nil
			},
			want: "host",
		},
		{
			name: "tmpfs",
			prepare: func(t *testing.T) (string, []*os.File) {
				p := filepath.Join(tmpfs, "sleep-tmpfs")
				require.NoError(t, testenv.CopyFile(sleepBin, p, 0o755))
				return p, nil
			},
			want: "tmpfs",
		},
		{
			name: "memfd",
			prepare: func(t *testing.T) (string, []*os.File) {
				return "/proc/self/fd/3", []*os.File{memfdWith(t, "cw-drift", sleepBin)}
			},
			// /proc shows a memfd as "/memfd:<name> (deleted)" (d_dname), and so must we.
			want: "memfd",
		},
		{
			name: "unlinked file on the host filesystem",
			prepare: func(t *testing.T) (string, []*os.File) {
				dir := t.TempDir()
				requireHostOrigin(t, dir)
				return "/proc/self/fd/3", []*os.File{openUnlinked(t, sleepBin, filepath.Join(dir, "sleep-deleted"))}
			},
			want: "deleted",
		},
		{
			// Unlinked wins over the filesystem type: the kernel checks it first.
			name: "unlinked file on a tmpfs",
			prepare: func(t *testing.T) (string, []*os.File) {
				return "/proc/self/fd/3", []*os.File{openUnlinked(t, sleepBin, filepath.Join(tmpfs, "sleep-deleted"))}
			},
			want: "deleted",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, files := tc.prepare(t)
			r, procExe := runUntilRecorded(t, sink, path, files)
			assert.Equal(t, tc.want, r.str(attrOrigin), "origin of %s (exe %s)", path, procExe)
			assert.Equal(t, procExe, r.str("process.executable.path"), "the path /proc/<pid>/exe shows")
			assert.Equal(t, path, r.str("compilerwatch.exec.filename"))
			if selfOrigin != "" {
				assert.Equal(t, selfOrigin, r.str(attrParentOrigin), "the parent is this test binary, %s", self)
			}
		})
	}
}

// TestKernelExecOriginOverlay runs a container whose rootfs is a real overlayfs: a file of the lower layer is
// "image"; a file created, copied in, or copied up (modified) while the container runs is "upper_layer".
func TestKernelExecOriginOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	_, sink := startReceiver(t, nil)
	bb, err := exec.LookPath("busybox")
	require.NoError(t, err)
	c := testenv.NewContainer(t, testenv.Options{
		Overlay: true,
		// busybox-static runs from the bare rootfs. Each copy is named busybox, in its own directory, because
		// busybox reads the applet from argv[1] only when argv[0]'s basename is "busybox".
		Populate: func(root string) error {
			for _, p := range []string{"opt/image/busybox", "opt/modified/busybox"} {
				if err := testenv.CopyFile(bb, filepath.Join(root, p), 0o755); err != nil {
					return err
				}
			}
			return nil
		},
	})
	upperFile := func(p string) bool {
		_, err := os.Lstat(filepath.Join(c.UpperDir(), p))
		return err == nil
	}
	require.False(t, upperFile("opt"), "the upper layer starts empty")

	// runContainer execs argv in the container and returns the record of the exec whose argv[0] is argv0 and
	// that carries tg: runc's own host-side exec carries the same arguments.
	runContainer := func(t *testing.T, argv0, tg string, argv ...string) execRecord {
		t.Helper()
		c.MustExec(t, argv...)
		return waitFor(t, sink, argv0, func(r execRecord) bool {
			return hasArg(tg)(r) && r.str("process.command") == argv0 && r.res["container.id"] == c.ID()
		})
	}

	t.Run("lower layer is image", func(t *testing.T) {
		tg := tag(t)
		r := runContainer(t, "/opt/image/busybox", tg, "/opt/image/busybox", "echo", tg)
		assert.Equal(t, "image", r.str(attrOrigin))
		assert.Equal(t, "/opt/image/busybox", r.str("process.executable.path"))
	})

	t.Run("copied in at runtime is upper_layer", func(t *testing.T) {
		c.MustExec(t, "mkdir", "-p", "/opt/copy")
		c.MustExec(t, "cp", "/opt/image/busybox", "/opt/copy/busybox")
		require.True(t, upperFile("opt/copy/busybox"), "cp wrote to the upper layer")
		tg := tag(t)
		r := runContainer(t, "/opt/copy/busybox", tg, "/opt/copy/busybox", "echo", tg)
		assert.Equal(t, "upper_layer", r.str(attrOrigin))
	})

	t.Run("written from the host into the running rootfs is upper_layer", func(t *testing.T) {
		b, err := os.ReadFile(bb)
		require.NoError(t, err)
		c.WriteFile(t, "/opt/dropped/busybox", b, 0o755)
		require.True(t, upperFile("opt/dropped/busybox"))
		tg := tag(t)
		r := runContainer(t, "/opt/dropped/busybox", tg, "/opt/dropped/busybox", "echo", tg)
		assert.Equal(t, "upper_layer", r.str(attrOrigin))
	})

	t.Run("lower file copied up by a modification is upper_layer", func(t *testing.T) {
		require.False(t, upperFile("opt/modified/busybox"))
		c.MustExec(t, "chmod", "0700", "/opt/modified/busybox")
		require.True(t, upperFile("opt/modified/busybox"), "chmod copied the file up")
		tg := tag(t)
		r := runContainer(t, "/opt/modified/busybox", tg, "/opt/modified/busybox", "echo", tg)
		assert.Equal(t, "upper_layer", r.str(attrOrigin))
	})

	t.Run("unlinked while open is deleted, not upper_layer", func(t *testing.T) {
		tg := tag(t)
		// The shell holds fd 3 on a runtime copy, unlinks it and runs it through /proc/self/fd/3 (fexecve).
		// busybox then sees argv[0] "3", no applet, and exits 127: the exec itself succeeded, and that is what
		// is recorded.
		script := "mkdir -p /tmp/gone && cp /bin/busybox /tmp/gone/busybox && exec 3</tmp/gone/busybox && " +
			"rm /tmp/gone/busybox && /proc/self/fd/3 " + tg + "; true"
		c.MustExec(t, "sh", "-c", script)
		require.False(t, upperFile("tmp/gone/busybox"), "the copy is unlinked")
		r := waitFor(t, sink, "fexecve of an unlinked upper-layer file", func(r execRecord) bool {
			return hasArg(tg)(r) && r.str("process.command") == "/proc/self/fd/3" && r.res["container.id"] == c.ID()
		})
		assert.Equal(t, "deleted", r.str(attrOrigin))
		assert.Equal(t, "/tmp/gone/busybox (deleted)", r.str("process.executable.path"))
		assert.Equal(t, "image", r.str(attrParentOrigin), "the shell is the image's /bin/busybox")
	})

	t.Run("parent origin", func(t *testing.T) {
		// The image's busybox started by a shell that is itself a runtime copy: the two origins differ.
		c.MustExec(t, "mkdir", "-p", "/tmp/shell")
		c.MustExec(t, "cp", "/bin/busybox", "/tmp/shell/busybox")
		tg := tag(t)
		// "; true" keeps the shell from exec'ing its last command in place, so the image's busybox is its child.
		c.MustExec(t, "/tmp/shell/busybox", "sh", "-c", "/opt/image/busybox echo "+tg+"; true")
		r := waitFor(t, sink, "image busybox under /tmp/shell/busybox", func(r execRecord) bool {
			return hasArg(tg)(r) && r.str("process.command") == "/opt/image/busybox" && r.res["container.id"] == c.ID()
		})
		assert.Equal(t, "image", r.str(attrOrigin))
		assert.Equal(t, "/tmp/shell/busybox", r.str("compilerwatch.parent.executable.path"))
		assert.Equal(t, "upper_layer", r.str(attrParentOrigin))
	})
}

// TestKernelExecOriginContainerMounts covers the other mounts of a container: a file bind-mounted from the node is
// "host", whatever the container's root is; a file on a tmpfs is "tmpfs". The container's own files are "image"
// or "upper_layer" on an overlay root, and have no origin on any other root (here a plain directory on the node's
// filesystem, as with the vfs driver), where an image file cannot be told from one written at runtime.
func TestKernelExecOriginContainerMounts(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	_, sink := startReceiver(t, nil)
	bb, err := exec.LookPath("busybox")
	require.NoError(t, err)
	bb, err = filepath.EvalSymlinks(bb)
	require.NoError(t, err)
	// This test binary, run in the container as the helper that executes a memfd.
	self, err := os.Executable()
	require.NoError(t, err)
	requireStatic(t, self)

	for _, root := range []struct {
		name    string
		overlay bool
		own     string // the origin of the image's /bin/busybox
		runtime string // of a copy made at runtime in /opt
	}{
		{"overlay root", true, "image", "upper_layer"},
		{"plain directory root", false, "", ""},
	} {
		t.Run(root.name, func(t *testing.T) {
			c := testenv.NewContainer(t, testenv.Options{
				Overlay:  root.overlay,
				TmpfsTmp: true,
				Mounts: []testenv.Mount{
					{Destination: "/opt/node/busybox", Source: bb},
					{Destination: "/opt/node/helper", Source: self},
				},
			})
			if !root.overlay {
				// The case needs the root to be on a filesystem that is not overlayfs (nor a tmpfs).
				requireHostOrigin(t, c.Rootfs())
			}
			c.MustExec(t, "mkdir", "-p", "/opt/copy", "/tmp/mem")
			c.MustExec(t, "cp", "/bin/busybox", "/opt/copy/busybox")
			c.MustExec(t, "cp", "/bin/busybox", "/tmp/mem/busybox")

			for _, tc := range []struct {
				name, shell, argv0, want, wantParent string
			}{
				{"image file", "/bin/busybox", "/bin/busybox", root.own, root.own},
				{"runtime copy", "/bin/busybox", "/opt/copy/busybox", root.runtime, root.own},
				{"bind mount from the node", "/bin/busybox", "/opt/node/busybox", "host", root.own},
				{"tmpfs", "/bin/busybox", "/tmp/mem/busybox", "tmpfs", root.own},
				{"image file under a shell from the node", "/opt/node/busybox", "/bin/busybox", root.own, "host"},
				{"node file under a runtime shell", "/opt/copy/busybox", "/opt/node/busybox", "host", root.runtime},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tg := tag(t)
					// "; true" keeps the shell from exec'ing its last command in place: the shell is the parent.
					c.MustExec(t, tc.shell, "sh", "-c", tc.argv0+" echo "+tg+"; true")
					r := waitFor(t, sink, tc.argv0+" under "+tc.shell, func(r execRecord) bool {
						return hasArg(tg)(r) && r.str("process.command") == tc.argv0 && r.res["container.id"] == c.ID()
					})
					assert.Equal(t, tc.shell, r.str("compilerwatch.parent.executable.path"))
					assertOrigin(t, r, attrOrigin, tc.want)
					assertOrigin(t, r, attrParentOrigin, tc.wantParent)
				})
			}

			t.Run("memfd", func(t *testing.T) {
				tg := tag(t)
				res, err := c.ExecWith(t, testenv.ExecOptions{Env: []string{memfdExecEnv + "=/bin/busybox"}},
					"/opt/node/helper", "busybox", "echo", tg)
				require.NoError(t, err)
				require.Zero(t, res.ExitCode, "%+v", res)
				r := waitFor(t, sink, "a memfd run by the helper", func(r execRecord) bool {
					return hasArg(tg)(r) && r.str("process.command") == "busybox" && r.res["container.id"] == c.ID()
				})
				assert.Equal(t, "/memfd:cw-drift (deleted)", r.str("process.executable.path"))
				assertOrigin(t, r, attrOrigin, "memfd")
				assertOrigin(t, r, attrParentOrigin, "host")
			})
		})
	}
}

// memfdExecEnv makes this test binary a helper: it copies the file the variable names into a memfd and executes
// the memfd with its own arguments as argv, as fileless malware does. Tests run it inside containers.
const memfdExecEnv = "COMPILERWATCH_DRIFT_MEMFD_EXEC"

func init() {
	if src := os.Getenv(memfdExecEnv); src != "" {
		err := memfdExec(src, os.Args[1:])
		fmt.Fprintln(os.Stderr, "memfd exec:", err)
		os.Exit(1)
	}
}

// memfdExec returns only on failure.
func memfdExec(src string, argv []string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fd, err := unix.MemfdCreate("cw-drift", unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // before 6.3
		fd, err = unix.MemfdCreate("cw-drift", 0)
	}
	if err != nil {
		return err
	}
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), argv, os.Environ())
}

// requireStatic stops t unless the executable at path is statically linked, so that it runs in a busybox rootfs.
// Tests are built with CGO_ENABLED=0, like the distribution; a cgo build is not.
func requireStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			msg := path + " is dynamically linked: build the tests with CGO_ENABLED=0"
			if testenv.InCI() {
				t.Fatal(msg + " (CI=true: gated tests must run, not skip)")
			}
			t.Skip(msg)
		}
	}
}

// TestKernelExecOriginUserNamespaceMounts runs, inside a container, a process that makes its own mounts in a new
// user and mount namespace (unshare -Urm), as an attacker who wants a file it wrote at runtime to pass as "host" or
// "image" would. A bind mount of the container's own overlay keeps the file's layer; a bind mount of a plain
// directory root, or a file on an overlayfs mounted inside the user namespace (even once chroot made it the
// process's root), has no origin: the container could have made either, so neither is "host" nor "image". A tmpfs
// or ramfs mounted there is "tmpfs".
func TestKernelExecOriginUserNamespaceMounts(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	_, sink := startReceiver(t, nil)

	for _, root := range []struct {
		name    string
		overlay bool
		bound   string // the origin of a runtime copy reached through a bind mount made in the user namespace
	}{
		{"overlay root", true, "upper_layer"},
		{"plain directory root", false, ""},
	} {
		t.Run(root.name, func(t *testing.T) {
			c := testenv.NewContainer(t, testenv.Options{Overlay: root.overlay})
			if !root.overlay {
				requireHostOrigin(t, c.Rootfs())
			}
			c.MustExec(t, "sh", "-c", "mkdir -p /opt/copy /mnt/bind /mnt/mem /mnt/ram /mnt/ovl /tmp/work /tmp/up && "+
				"cp /bin/busybox /opt/copy/busybox")
			// Each case runs its commands as root of a new user namespace with its own mount namespace; the
			// last command runs busybox echo with the tag from the path given.
			if res, err := c.Exec(t, "busybox", "unshare", "-Urm", "true"); err != nil || res.ExitCode != 0 {
				msg := fmt.Sprintf("the container cannot create a user namespace: %v %+v", err, res)
				if testenv.InCI() {
					t.Fatal(msg + " (CI=true: gated tests must run, not skip)")
				}
				t.Skip(msg)
			}
			const ovl = "mount -t tmpfs none /tmp/work && mkdir /tmp/work/u /tmp/work/w && " +
				"mount -t overlay none -o lowerdir=/opt/copy,upperdir=/tmp/work/u,workdir=/tmp/work/w /mnt/ovl"
			for _, tc := range []struct {
				name, setup, exe, want string
			}{
				{"bind mount of files of the container root", "mount --bind /opt/copy /mnt/bind &&", "/mnt/bind/busybox", root.bound},
				{"tmpfs", "mount -t tmpfs none /mnt/mem && cp /bin/busybox /mnt/mem/ &&", "/mnt/mem/busybox", "tmpfs"},
				{"ramfs", "mount -t ramfs none /mnt/ram && cp /bin/busybox /mnt/ram/ &&", "/mnt/ram/busybox", "tmpfs"},
				{"overlayfs mounted in the user namespace, lower layer", ovl + " &&", "/mnt/ovl/busybox", ""},
				{"overlayfs mounted in the user namespace, upper layer", ovl + " && mkdir /mnt/ovl/up && cp /bin/busybox /mnt/ovl/up/ &&", "/mnt/ovl/up/busybox", ""},
				// The overlay made the process's root: its lower layer still says nothing of the image.
				{"chroot into an overlayfs mounted in the user namespace", ovl + " && busybox chroot /mnt/ovl", "/busybox", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tg := tag(t)
					res, err := c.Exec(t, "busybox", "unshare", "-Urm", "sh", "-c", tc.setup+" "+tc.exe+" echo "+tg)
					require.NoError(t, err)
					require.Zero(t, res.ExitCode, "%+v", res)
					r := waitFor(t, sink, tc.exe, func(r execRecord) bool {
						return hasArg(tg)(r) && r.str("process.command") == tc.exe && r.res["container.id"] == c.ID()
					})
					assert.Equal(t, tc.exe, r.str("process.executable.path"))
					assertOrigin(t, r, attrOrigin, tc.want)
				})
			}
		})
	}
}

// assertOrigin checks an origin attribute: absent when want is "".
func assertOrigin(t *testing.T, r execRecord, key, want string) {
	t.Helper()
	got, ok := r.attrs[key]
	if want == "" {
		assert.False(t, ok, "%s = %v, want it absent", key, got)
		return
	}
	assert.Equal(t, want, got, key)
}

// runUntilRecorded starts the program at path with argv[0] set to a unique tag and the argument "30" (it is a
// copy of sleep), with files from fd 3 on, waits for its exec record, and returns it together with the
// /proc/<pid>/exe link read while the process still ran. The process is killed before returning.
func runUntilRecorded(t *testing.T, sink *consumertest.LogsSink, path string, files []*os.File) (execRecord, string) {
	t.Helper()
	tg := tag(t)
	cmd := &exec.Cmd{Path: path, Args: []string{tg, "30"}, ExtraFiles: files}
	require.NoError(t, cmd.Start(), "exec %s", path)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	r := waitFor(t, sink, path, func(r execRecord) bool {
		return r.num("process.pid") == int64(cmd.Process.Pid) && r.str("process.command") == tg
	})
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
	require.NoError(t, err)
	return r, exe
}

// fsOrigin returns the origin the receiver reports for a file on the filesystem holding path when the file is
// neither unlinked nor a memfd, or "" on overlayfs, where it depends on the layer.
func fsOrigin(t *testing.T, path string) string {
	t.Helper()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(path, &st))
	switch st.Type {
	case unix.OVERLAYFS_SUPER_MAGIC:
		return ""
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	}
	return "host"
}

// requireHostOrigin stops t unless path is on a filesystem the receiver reports as "host". On a host whose root
// is itself an overlay or a tmpfs (some CI containers) the case cannot be built.
func requireHostOrigin(t *testing.T, path string) {
	t.Helper()
	if o := fsOrigin(t, path); o != "host" {
		msg := fmt.Sprintf("%s is on a filesystem reported as %q, not a plain host filesystem", path, o)
		if testenv.InCI() {
			t.Fatal(msg + " (CI=true: gated tests must run, not skip)")
		}
		t.Skip(msg)
	}
}

// mountTmpfs mounts a fresh tmpfs in a temp dir and unmounts it when t ends.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=64m,mode=0755"))
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// memfdWith returns an executable memfd holding a copy of src, closed when t ends.
func memfdWith(t *testing.T, name, src string) *os.File {
	t.Helper()
	// MFD_EXEC (6.3+) states the intent and keeps vm.memfd_noexec=1 from refusing it; older kernels reject the
	// flag, and every memfd is executable there.
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	}
	require.NoError(t, err, "memfd_create")
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	t.Cleanup(func() { _ = f.Close() })
	in, err := os.Open(src)
	require.NoError(t, err)
	defer func() { _ = in.Close() }()
	_, err = io.Copy(f, in)
	require.NoError(t, err)
	return f
}

// openUnlinked copies src to path, opens the copy read-only and unlinks it: the open file is then the only way
// to execute it (fexecve), as malware that deletes its dropper does.
func openUnlinked(t *testing.T, src, path string) *os.File {
	t.Helper()
	require.NoError(t, testenv.CopyFile(src, path, 0o755))
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	require.NoError(t, os.Remove(path))
	return f
}
