//go:build linux

package testenv

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	testID  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testPod = "123e4567-e89b-42d3-a456-426614174000"
)

func TestCgroupPath(t *testing.T) {
	tests := []struct {
		layout  CgroupLayout
		qos     QoSClass
		want    string
		wantErr bool
	}{
		{layout: "", qos: "", want: "/kubepods/besteffort/pod" + testPod + "/" + testID},
		{layout: CgroupfsLayout, qos: QoSBurstable, want: "/kubepods/burstable/pod" + testPod + "/" + testID},
		{layout: CgroupfsLayout, qos: QoSGuaranteed, want: "/kubepods/pod" + testPod + "/" + testID},
		{layout: SystemdLayout, qos: QoSBestEffort,
			want: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123e4567_e89b_42d3_a456_426614174000.slice/cri-containerd-" + testID + ".scope"},
		{layout: SystemdLayout, qos: QoSGuaranteed,
			want: "/kubepods.slice/kubepods-pod123e4567_e89b_42d3_a456_426614174000.slice/cri-containerd-" + testID + ".scope"},
		{layout: "crio", wantErr: true},
		{layout: CgroupfsLayout, qos: "gold", wantErr: true},
	}
	for _, tt := range tests {
		got, err := CgroupPath(tt.layout, tt.qos, testPod, testID)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("CgroupPath(%q, %q) = %q, %v; want %q, err %v", tt.layout, tt.qos, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCgroupAncestors(t *testing.T) {
	got := cgroupAncestors("/kubepods/besteffort/podX/id")
	want := []string{"/kubepods", "/kubepods/besteffort", "/kubepods/besteffort/podX"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := cgroupAncestors("/top"); len(got) != 0 {
		t.Errorf("cgroupAncestors(/top) = %q, want none", got)
	}
}

// A hybrid host's mountinfo, trimmed: tmpfs, two v1 controllers (one
// mounted twice), named systemd, cgroup2 and an escaped path.
const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 23 0:29 / /mnt/cpu\040again rw,relatime - cgroup cgroup rw,cpu
50 23 0:50 / /tmp/a\040b\134c shared:1 - overlay overlay rw,lowerdir=/l
`

func TestParseMountInfo(t *testing.T) {
	m, err := parseMountInfo(hybridMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 7 {
		t.Fatalf("parsed %d mounts, want 7", len(m))
	}
	if got := m[6]; got.MountPoint != `/tmp/a b\c` || got.FSType != "overlay" || got.ID != "0:50" {
		t.Errorf("escaped mount = %+v", got)
	}
	got := cgroupHierarchies(m)
	want := []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"}
	if !slices.Equal(got, want) {
		t.Errorf("hierarchies = %q, want %q", got, want)
	}
	if _, err := parseMountInfo("1 2 3\n"); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestParseIncludeDirs(t *testing.T) {
	out := `ignoring nonexistent directory "/usr/local/include/x86_64-linux-gnu"
#include "..." search starts here:
#include <...> search starts here:
 /usr/lib/gcc/x86_64-linux-gnu/12/include
 /usr/local/include
 /usr/include/x86_64-linux-gnu
 /usr/include
End of search list.
 /not/a/dir
`
	want := []string{"/usr/lib/gcc/x86_64-linux-gnu/12/include", "/usr/local/include", "/usr/include/x86_64-linux-gnu", "/usr/include"}
	if got := parseIncludeDirs(out); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibisl.so.23 => /lib/x86_64-linux-gnu/libisl.so.23 (0x00007f99)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f96)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f99)\n" +
		"\tlibgone.so => not found\n"
	want := []string{"/lib/x86_64-linux-gnu/libisl.so.23", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if got := parseLdd(out); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseLinkerScript(t *testing.T) {
	script := "/* GNU ld script */\nOUTPUT_FORMAT(elf64-x86-64)\n" +
		"GROUP ( /lib/x86_64-linux-gnu/libc.so.6 /usr/lib/x86_64-linux-gnu/libc_nonshared.a  AS_NEEDED ( /lib64/ld-linux-x86-64.so.2 ) )\n"
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc_nonshared.a", "/lib64/ld-linux-x86-64.so.2"}
	if got := parseLinkerScript(script); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestResolverMounts runs the resolver on a fake merged-/usr tree shaped
// like Debian's: link chains in /usr/bin, /lib -> usr/lib, and a library
// reached through /lib.
func TestResolverMounts(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+p, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(p, target string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, root+p); err != nil {
			t.Fatal(err)
		}
	}
	mk("/usr/bin/x86_64-linux-gnu-gcc-12")
	ln("/usr/bin/gcc-12", "x86_64-linux-gnu-gcc-12")
	ln("/usr/bin/gcc", "gcc-12")
	ln("/etc/alternatives/cc", "/usr/bin/gcc")
	ln("/usr/bin/cc", "/etc/alternatives/cc")
	mk("/usr/lib/x86_64-linux-gnu/libc.so.6")
	ln("/usr/lib/x86_64-linux-gnu/libc.so", "libc.so.6")
	ln("/lib", "usr/lib")
	mk("/usr/lib/gcc/x86_64-linux-gnu/12/cc1")
	mk("/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h")
	mk("/usr/include/stdio.h")

	r := newResolver(root)
	for _, p := range []string{
		"/usr/bin/cc", "/usr/bin/gcc", "/lib/x86_64-linux-gnu/libc.so",
		"/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "/usr/lib/gcc/x86_64-linux-gnu/12/include", "/usr/include",
	} {
		if err := r.add(p); err != nil {
			t.Fatal(err)
		}
	}
	want := []Mount{
		{Destination: "/etc/alternatives/cc", Symlink: "/usr/bin/gcc"},
		{Destination: "/lib", Symlink: "usr/lib"},
		{Destination: "/usr/bin/cc", Symlink: "/etc/alternatives/cc"},
		{Destination: "/usr/bin/gcc", Symlink: "gcc-12"},
		{Destination: "/usr/bin/gcc-12", Symlink: "x86_64-linux-gnu-gcc-12"},
		// libc.so -> libc.so.6 is inside a bound directory: not listed.
		{Destination: "/usr/bin/x86_64-linux-gnu-gcc-12", Source: "/usr/bin/x86_64-linux-gnu-gcc-12"},
		{Destination: "/usr/include", Source: "/usr/include"},
		// .../12/include is nested in .../12: not listed.
		{Destination: "/usr/lib/gcc/x86_64-linux-gnu/12", Source: "/usr/lib/gcc/x86_64-linux-gnu/12"},
		{Destination: "/usr/lib/x86_64-linux-gnu", Source: "/usr/lib/x86_64-linux-gnu"},
	}
	if got := r.mounts(); !reflect.DeepEqual(got, want) {
		t.Errorf("mounts:\n got  %+v\n want %+v", got, want)
	}

	loop := newResolver(root)
	ln("/loop", "loop")
	if err := loop.add("/loop/x"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("symlink loop: err = %v", err)
	}
}

func TestBuildSpecMounts(t *testing.T) {
	s := buildSpec([]string{"/bin/sleep", "1"}, []string{"A=1"}, "/kubepods/x", []Mount{
		{Destination: "/usr/bin/gcc", Symlink: "gcc-12"},
		{Destination: "/usr/include", Source: "/usr/include"},
		{Destination: "/cache", Source: "/var/cache", Writable: true},
	}, true)
	var binds, tmp []ociMount
	for _, m := range s.Mounts {
		switch {
		case m.Type == "bind":
			binds = append(binds, m)
		case m.Destination == "/tmp":
			tmp = append(tmp, m)
		}
	}
	want := []ociMount{
		{Destination: "/usr/include", Type: "bind", Source: "/usr/include", Options: []string{"rbind", "ro"}},
		{Destination: "/cache", Type: "bind", Source: "/var/cache", Options: []string{"rbind", "rw"}},
	}
	if !reflect.DeepEqual(binds, want) {
		t.Errorf("binds = %+v, want %+v", binds, want)
	}
	if len(tmp) != 1 || tmp[0].Type != "tmpfs" {
		t.Errorf("/tmp mounts = %+v, want one tmpfs", tmp)
	}
	if s.Linux.CgroupsPath != "/kubepods/x" || !slices.Contains(s.Process.Env, "A=1") || s.Process.Terminal {
		t.Errorf("spec = %+v", s)
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "short id", opts: Options{ID: "abc"}, want: `Options.ID "abc"`},
		{name: "upper id", opts: Options{ID: strings.ToUpper(testID)}, want: "Options.ID"},
		{name: "underscored pod", opts: Options{PodUID: strings.ReplaceAll(testPod, "-", "_")}, want: "Options.PodUID"},
		{name: "relative dest", opts: Options{Mounts: []Mount{{Destination: "usr", Source: "/usr"}}}, want: "clean absolute path"},
		{name: "relative source", opts: Options{Mounts: []Mount{{Destination: "/usr", Source: "usr"}}}, want: "must be absolute"},
		{name: "bad layout", opts: Options{CgroupLayout: "x"}, want: "cgroup layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newContainer(t, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRandomIDs(t *testing.T) {
	if id := randomHex(32); !idRE.MatchString(id) {
		t.Errorf("randomHex(32) = %q", id)
	}
	u := randomUUID()
	if !podUIDRE.MatchString(u) || u[14] != '4' {
		t.Errorf("randomUUID() = %q, want a v4 UUID", u)
	}
	if a, b := randomHex(32), randomHex(32); a == b {
		t.Error("two random ids are equal")
	}
}
