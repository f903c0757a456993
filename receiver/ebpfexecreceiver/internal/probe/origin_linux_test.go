//go:build linux

package probe_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// TestKernelMountStackTruncates runs a program from the top of a stack of
// tmpfs mounts on one directory, with as many mounts as the walk crosses
// and with one more. Both programs must give the whole path for the first,
// and for the second a truncated path, never a shorter one that looks
// complete.
func TestKernelMountStackTruncates(t *testing.T) {
	testenv.RequireRoot(t)
	portable, direct := load(t, probe.VariantPortable), load(t, probe.VariantDirect)
	prefix := fmt.Sprintf("cw-stack-%d-", time.Now().UnixNano())
	cp, cd := collect(t, portable, prefix), collect(t, direct, prefix)
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	tags := map[int]string{}
	for _, n := range []int{probe.MountStack, probe.MountStack + 1} {
		top := filepath.Join(dir, fmt.Sprintf("stack%d", n))
		if err := os.Mkdir(top, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := unix.Mount("tmpfs", top, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := unix.Unmount(top, 0); err != nil {
					t.Errorf("unmount %s: %v", top, err)
					_ = unix.Unmount(top, unix.MNT_DETACH)
				}
			})
		}
		exe := filepath.Join(top, "true")
		if err := testenv.CopyFile(trueBin, exe, 0o755); err != nil {
			t.Fatal(err)
		}
		tags[n] = fmt.Sprintf("%s%d", prefix, n)
		cmd := exec.Command(exe, tags[n])
		cmd.Dir = top
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", exe, err, out)
		}
	}

	all := []string{tags[probe.MountStack], tags[probe.MountStack+1]}
	dec := event.NewDecoder()
	for name, recs := range map[string]map[string][]byte{"portable": cp.wait(t, all), "direct": cd.wait(t, all)} {
		var ev event.Event
		if err := dec.Decode(recs[tags[probe.MountStack]], 0, &ev); err != nil {
			t.Fatal(err)
		}
		top := filepath.Join(dir, fmt.Sprintf("stack%d", probe.MountStack))
		if ev.ExePath != filepath.Join(top, "true") || ev.Cwd != top || ev.Truncated&^event.TruncAncestors != 0 {
			t.Errorf("%s, %d stacked mounts: exe %q cwd %q truncated %v; want %s/true, %s, none",
				name, probe.MountStack, ev.ExePath, ev.Cwd, ev.Truncated.Names(), top, top)
		}
		if err := dec.Decode(recs[tags[probe.MountStack+1]], 0, &ev); err != nil {
			t.Fatal(err)
		}
		want := event.TruncPath | event.TruncCwd
		if ev.Truncated&want != want || ev.ExePath != "true" || ev.Cwd != "" {
			t.Errorf("%s, %d stacked mounts: exe %q cwd %q truncated %v; want the path and cwd truncated to \"true\" and \"\"",
				name, probe.MountStack+1, ev.ExePath, ev.Cwd, ev.Truncated.Names())
		}
	}
}

// TestKernelOverlayTypesInModule loads the direct program as on a kernel
// whose overlayfs is a module (Debian, Ubuntu, RHEL): struct ovl_inode is
// then not in vmlinux's BTF but in the module's. The kernel types handed to
// CO-RE are this kernel's vmlinux with ovl_inode renamed away (type ids
// unchanged, so the other relocations still match the running kernel) and,
// as the module, a BTF holding only ovl_inode's two fields the program
// reads, at this kernel's offsets. The direct program must load and read
// the layer through the module's type; without the module's type it must
// still load, with the layer unknown.
func TestKernelOverlayTypesInModule(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	vmlinux, module := overlayInModule(t)

	c := testenv.NewContainer(t, testenv.Options{Overlay: true})
	c.MustExec(t, "sh", "-c", "mkdir -p /tmp/up && cp /bin/busybox /tmp/up/busybox")

	for _, tc := range []struct {
		name           string
		modules        []*btf.Spec
		image, upper   event.Origin
		wantKnownLayer bool
	}{
		{"overlay module BTF", []*btf.Spec{module}, event.OriginImage, event.OriginUpperLayer, true},
		{"overlay types missing", nil, event.OriginUnknown, event.OriginUnknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(probe.VariantDirect)
			p, err := probe.LoadWithKernelTypes(cfg, vmlinux, tc.modules)
			if err != nil {
				t.Fatalf("the direct program was refused: %v", err)
			}
			t.Cleanup(func() { _ = p.Close() })
			if p.Variant() != probe.VariantDirect {
				t.Fatalf("loaded %s", p.Variant())
			}
			prefix := fmt.Sprintf("cw-ovlmod-%d-", time.Now().UnixNano())
			col := collect(t, p, prefix)
			imageTag, upperTag := prefix+"image", prefix+"upper"
			c.MustExec(t, "/bin/busybox", "echo", imageTag)
			c.MustExec(t, "/tmp/up/busybox", "echo", upperTag)
			recs := col.wait(t, []string{imageTag, upperTag})

			dec := event.NewDecoder()
			for _, x := range []struct {
				tag, path string
				want      event.Origin
			}{{imageTag, "/bin/busybox", tc.image}, {upperTag, "/tmp/up/busybox", tc.upper}} {
				var ev event.Event
				if err := dec.Decode(recs[x.tag], 0, &ev); err != nil {
					t.Fatal(err)
				}
				known := ev.ExeFile.Flags&event.FileOverlayKnown != 0
				if ev.ExePath != x.path || ev.ExeFile.Magic != event.MagicOverlay || known != tc.wantKnownLayer {
					t.Errorf("%s: exe %q file %+v; want %s on overlayfs, layer known %v", x.tag, ev.ExePath, ev.ExeFile, x.path, tc.wantKnownLayer)
				}
				if got := ev.ExeFile.Origin(true); got != x.want {
					t.Errorf("%s: origin %q, want %q", x.path, got, x.want)
				}
			}
		})
	}
}

// overlayInModule returns this kernel's vmlinux BTF without struct
// ovl_inode, and a module BTF with it.
func overlayInModule(t *testing.T) (vmlinux, module *btf.Spec) {
	t.Helper()
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var real *btf.Struct
	if err := kernel.TypeByName("ovl_inode", &real); err != nil {
		// overlayfs is a module here already: take the type from it.
		mod, merr := btf.LoadKernelModuleSpec("overlay")
		if merr != nil {
			t.Fatalf("struct ovl_inode is neither in vmlinux (%v) nor in the overlay module (%v)", err, merr)
		}
		if err := mod.TypeByName("ovl_inode", &real); err != nil {
			t.Fatal(err)
		}
	}

	vmlinux = kernel.Copy()
	var moved *btf.Struct
	if err := vmlinux.TypeByName("ovl_inode", &moved); err == nil {
		// Lookups check the name of the type they find: renamed, it is gone.
		moved.Name = "ovl_inode_in_vmlinux"
	}
	if _, err := vmlinux.AnyTypeByName("ovl_inode"); err == nil {
		t.Fatal("ovl_inode is still in the vmlinux types")
	}

	// The module's ovl_inode: only the fields the program reads, at this
	// kernel's offsets, of types that match no vmlinux type by name.
	st := &btf.Struct{Name: "ovl_inode", Size: real.Size}
	for _, m := range real.Members {
		switch m.Name {
		case "vfs_inode":
			size, err := btf.Sizeof(m.Type)
			if err != nil {
				t.Fatal(err)
			}
			st.Members = append(st.Members, btf.Member{Name: m.Name, Type: &btf.Struct{Size: uint32(size)}, Offset: m.Offset})
		case "__upperdentry":
			st.Members = append(st.Members, btf.Member{Name: m.Name, Type: &btf.Pointer{Target: &btf.Void{}}, Offset: m.Offset})
		}
	}
	if len(st.Members) != 2 {
		t.Fatalf("ovl_inode of this kernel lacks vfs_inode or __upperdentry: %v", real.Members)
	}
	b, err := btf.NewBuilder([]btf.Type{st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	module, err = b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return vmlinux, module
}
