package cgroup

import (
	"regexp"
	"strings"
	"testing"
)

const (
	id1 = "3f9a8f2c1d6e4b7a9c0d1e2f3a4b5c6d7e8f90123456789abcdef0123456789a"
	id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// Pod uid as the API shows it, and as systemd slices spell it.
	pod    = "9c6f4e2a-1b3d-4c5e-8f70-a1b2c3d4e5f6"
	podUnd = "9c6f4e2a_1b3d_4c5e_8f70_a1b2c3d4e5f6"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		path string
		want Info
	}{
		// docker
		{"docker cgroupfs v1/v2", "/docker/" + id1, Info{ContainerID: id1, Runtime: RuntimeDocker}},
		{"docker systemd", "/system.slice/docker-" + id1 + ".scope", Info{ContainerID: id1, Runtime: RuntimeDocker}},
		{"docker rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/docker-" + id1 + ".scope", Info{ContainerID: id1, Runtime: RuntimeDocker}},
		{"docker in docker: innermost wins", "/docker/" + id1 + "/docker/" + id2, Info{ContainerID: id2, Runtime: RuntimeDocker}},
		{"docker trailing slash", "/docker/" + id1 + "/", Info{ContainerID: id1, Runtime: RuntimeDocker}},
		{"docker sub-cgroup inside the container", "/system.slice/docker-" + id1 + ".scope/init", Info{ContainerID: id1, Runtime: RuntimeDocker}},

		// containerd / cri-containerd
		{"kubepods cgroupfs besteffort", "/kubepods/besteffort/pod" + pod + "/" + id1, Info{ContainerID: id1, PodUID: pod}},
		{"kubepods cgroupfs burstable", "/kubepods/burstable/pod" + pod + "/" + id1, Info{ContainerID: id1, PodUID: pod}},
		{"kubepods cgroupfs guaranteed", "/kubepods/pod" + pod + "/" + id1, Info{ContainerID: id1, PodUID: pod}},
		// kubelet's cgroupRoot set, cgroupfs driver: seen on a real kubelet + containerd node in the node tests
		// (cgroupRoot /compilerwatch-nodetest), and kind's cgroupfs nodes (cgroupRoot /kubelet).
		{"kubelet cgroupRoot cgroupfs", "/compilerwatch-nodetest/kubepods/besteffort/pod" + pod + "/" + id1, Info{ContainerID: id1, PodUID: pod}},
		{"kind cgroupfs", "/kubelet/kubepods/burstable/pod" + pod + "/" + id2, Info{ContainerID: id2, PodUID: pod}},
		{"kubepods systemd cri-containerd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/cri-containerd-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeContainerd, PodUID: pod}},
		{"kubepods systemd cri-containerd besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podUnd + ".slice/cri-containerd-" + id2 + ".scope",
			Info{ContainerID: id2, Runtime: RuntimeContainerd, PodUID: pod}},
		{"kubepods systemd guaranteed",
			"/kubepods.slice/kubepods-pod" + podUnd + ".slice/cri-containerd-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeContainerd, PodUID: pod}},
		// The systemd driver's layout for each QoS class and runtime, as kubelet, containerd, cri-o and
		// cri-dockerd create it on real nodes: kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice
		// (a slice's name repeats its parents', and systemd escapes the uid's '-' as '_'), then the runtime's
		// <prefix>-<id>.scope. Guaranteed pods sit directly under kubepods.slice.
		{"kubepods systemd guaranteed cri-o",
			"/kubepods.slice/kubepods-pod" + podUnd + ".slice/crio-" + id2 + ".scope",
			Info{ContainerID: id2, Runtime: RuntimeCRIO, PodUID: pod}},
		{"kubepods systemd besteffort cri-o",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podUnd + ".slice/crio-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeCRIO, PodUID: pod}},
		{"kubepods systemd besteffort cri-dockerd",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podUnd + ".slice/docker-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeDocker, PodUID: pod}},
		{"kubepods systemd burstable cri-dockerd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/docker-" + id2 + ".scope",
			Info{ContainerID: id2, Runtime: RuntimeDocker, PodUID: pod}},
		{"kubepods systemd guaranteed cri-dockerd",
			"/kubepods.slice/kubepods-pod" + podUnd + ".slice/docker-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeDocker, PodUID: pod}},
		{"kubepods systemd cri-o conmon of a guaranteed pod",
			"/kubepods.slice/kubepods-pod" + podUnd + ".slice/crio-conmon-" + id1 + ".scope",
			Info{PodUID: pod}},
		{"minikube v1: systemd pods inside an outer docker container",
			"/docker/" + id2 + "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podUnd + ".slice/crio-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeCRIO, PodUID: pod}},
		{"kind node: kubelet.slice inside a docker container",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + podUnd + ".slice/cri-containerd-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeContainerd, PodUID: pod}},
		{"kind node v1: pod inside an outer docker container",
			"/docker/" + id2 + "/kubepods/besteffort/pod" + pod + "/" + id1,
			Info{ContainerID: id1, PodUID: pod}},
		{"outer container with a pod below it but no inner container",
			"/docker/" + id2 + "/kubepods/besteffort/pod" + pod,
			Info{ContainerID: id2, Runtime: RuntimeDocker}},
		{"nerdctl", "/system.slice/nerdctl-" + id1 + ".scope", Info{ContainerID: id1, Runtime: RuntimeContainerd}},
		{"containerd namespace cgroupfs", "/default/" + id1, Info{ContainerID: id1}},
		{"uppercase pod uid normalised", "/kubepods/burstable/pod" + strings.ToUpper(pod) + "/" + id1, Info{ContainerID: id1, PodUID: pod}},

		// cri-o
		{"cri-o systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/crio-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimeCRIO, PodUID: pod}},
		{"cri-o systemd container sub-cgroup", "/kubepods.slice/kubepods-pod" + podUnd + ".slice/crio-" + id1 + ".scope/container",
			Info{ContainerID: id1, Runtime: RuntimeCRIO, PodUID: pod}},
		{"cri-o cgroupfs", "/kubepods/burstable/pod" + pod + "/crio-" + id1, Info{ContainerID: id1, Runtime: RuntimeCRIO, PodUID: pod}},
		{"cri-o conmon is the host-side monitor",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/crio-conmon-" + id1 + ".scope",
			Info{PodUID: pod}},

		// podman
		{"podman systemd", "/machine.slice/libpod-" + id1 + ".scope", Info{ContainerID: id1, Runtime: RuntimePodman}},
		{"podman systemd container sub-cgroup", "/machine.slice/libpod-" + id1 + ".scope/container", Info{ContainerID: id1, Runtime: RuntimePodman}},
		{"podman cgroupfs libpod_parent", "/libpod_parent/libpod-" + id1, Info{ContainerID: id1, Runtime: RuntimePodman}},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope", Info{ContainerID: id1, Runtime: RuntimePodman}},
		{"podman pod slice is not a kubepods pod", "/machine.slice/machine-libpod_pod_" + id2 + ".slice/libpod-" + id1 + ".scope",
			Info{ContainerID: id1, Runtime: RuntimePodman}},
		{"podman conmon", "/machine.slice/libpod-conmon-" + id1 + ".scope", Info{}},

		// Truncated by the kernel: the 16 levels nearest the root, the
		// sub-cgroups a container made below itself cut at the leaf.
		{"truncated cgroupfs: the top keeps the container",
			"/kubepods/besteffort/pod" + pod + "/" + id1 + strings.Repeat("/d", 12),
			Info{ContainerID: id1, PodUID: pod}},
		{"truncated systemd: the top keeps the container",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/cri-containerd-" + id1 + ".scope" + strings.Repeat("/sub", 12),
			Info{ContainerID: id1, Runtime: RuntimeContainerd, PodUID: pod}},
		{"truncated kind node: the inner container is still in the top",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + podUnd + ".slice/cri-containerd-" + id1 + ".scope" + strings.Repeat("/x", 11),
			Info{ContainerID: id1, Runtime: RuntimeContainerd, PodUID: pod}},
		{"truncated at the container's own level",
			"/kubepods/pod" + pod + "/" + id1,
			Info{ContainerID: id1, PodUID: pod}},

		// host slices: no container
		{"empty", "", Info{}},
		{"root", "/", Info{}},
		{"init.scope", "/init.scope", Info{}},
		{"session scope", "/user.slice/user-1000.slice/session-3.scope", Info{}},
		{"user manager", "/user.slice/user-1000.slice/user@1000.service/init.scope", Info{}},
		{"tmux spawn", "/user.slice/user-1000.slice/user@1000.service/tmux-spawn-0267755b-4639-4a27-90ed-f19f88e53748.scope", Info{}},
		{"docker daemon", "/system.slice/docker.service", Info{}},
		{"containerd daemon", "/system.slice/containerd.service", Info{}},
		{"kubelet", "/system.slice/kubelet.service", Info{}},
		// systemd escapes a path's '-' as \x2d in unit names: a pod volume's mount unit names the pod's uid
		// but is on the host, not in the pod.
		{"kubelet volume mount unit", `/system.slice/var-lib-kubelet-pods-` + strings.ReplaceAll(pod, "-", `\x2d`) +
			`-volumes-kubernetes.io\x7eprojected-kube\x2dapi\x2daccess\x2d76swc.mount`, Info{}},
		{"systemd-run transient 32-hex", "/system.slice/run-r3c0b1f2e4d5a69788796a5b4c3d2e1f0.scope", Info{}},
		{"32-hex docker-like scope", "/system.slice/docker-3c0b1f2e4d5a69788796a5b4c3d2e1f0.scope", Info{}},
		{"63 hex", "/docker/" + id1[:63], Info{}},
		{"65 hex", "/docker/" + id1 + "0", Info{}},
		{"uppercase id", "/docker/" + strings.ToUpper(id1), Info{}},
		{"id with suffix", "/system.slice/docker-" + id1 + ".scope.bak", Info{}},
		{"id as part of a name", "/system.slice/foo-" + id1 + ".scope", Info{}},
		{"kubepods qos slice only", "/kubepods.slice/kubepods-burstable.slice", Info{}},
		{"pod slice without kubepods marker", "/pod" + pod + "/" + id1, Info{ContainerID: id1}},
		{"static pod: 32-hex config hash is not a uid", "/kubepods/burstable/pod6b3ae7a5a2a8a26a1c0d2c4b8e0c4e3f/" + id1, Info{ContainerID: id1}},
		{"process directly in pod cgroup", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podUnd + ".slice", Info{PodUID: pod}},
		{"bad uuid groups", "/kubepods/pod9c6f4e2a1-b3d-4c5e-8f70-a1b2c3d4e5f6/" + id1, Info{ContainerID: id1}},
		{"non-hex uuid", "/kubepods/pod9c6f4e2a-1b3d-4c5e-8f70-a1b2c3d4e5fz/" + id1, Info{ContainerID: id1}},
		{"double slashes", "//docker//" + id1, Info{ContainerID: id1, Runtime: RuntimeDocker}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Parse(tt.path); got != tt.want {
				t.Errorf("Parse(%q)\n got  %+v\n want %+v", tt.path, got, tt.want)
			}
		})
	}
}

// procCgroup is a /proc/<pid>/cgroup file: one "hierarchy-id:controllers:path" line per hierarchy, v1
// controllers first and the v2 hierarchy as "0::path".
func procCgroup(path string, hierarchies ...string) string {
	var b strings.Builder
	for _, h := range hierarchies {
		p := path
		if h == "11:files" || h == "13:rdma" {
			p = "/" // controllers the runtime does not manage: the process stays at their root
		}
		b.WriteString(h + ":" + p + "\n")
	}
	return b.String()
}

// TestParseProcCgroupFiles: the receiver reads one hierarchy's path of a process (the v2 one, or on a v1 or
// hybrid host whose runtime does not use v2, the first v1 hierarchy in which the process is not at the root).
// Every hierarchy of a container's /proc/<pid>/cgroup, in the v1, v2 and hybrid layouts real nodes have, gives
// the same container and pod; a hierarchy at its root gives nothing.
func TestParseProcCgroupFiles(t *testing.T) {
	v1 := []string{"12:hugetlb", "11:files", "10:cpuset", "9:freezer", "8:pids", "7:devices", "6:net_cls,net_prio",
		"5:perf_event", "4:memory", "3:cpu,cpuacct", "2:blkio", "13:rdma", "1:name=systemd"}
	// This machine: v1 controllers with v2 mounted at /sys/fs/cgroup/unified.
	hybrid := []string{"9:name=systemd", "8:pids", "7:blkio", "6:freezer", "5:devices", "4:memory", "3:cpuset",
		"2:cpuacct", "1:cpu", "0:"}
	systemdPod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/"
	tests := []struct {
		name, file string
		want       Info
	}{
		{"v2, systemd driver, containerd", procCgroup(systemdPod+"cri-containerd-"+id1+".scope", "0:"),
			Info{ContainerID: id1, Runtime: RuntimeContainerd, PodUID: pod}},
		{"v1, systemd driver, cri-o", procCgroup(systemdPod+"crio-"+id1+".scope", v1...),
			Info{ContainerID: id1, Runtime: RuntimeCRIO, PodUID: pod}},
		{"v1, systemd driver, cri-dockerd",
			procCgroup("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"+podUnd+".slice/docker-"+id2+".scope", v1...),
			Info{ContainerID: id2, Runtime: RuntimeDocker, PodUID: pod}},
		{"v1, cgroupfs driver, containerd", procCgroup("/kubepods/burstable/pod"+pod+"/"+id1, v1...),
			Info{ContainerID: id1, PodUID: pod}},
		{"hybrid, systemd driver, containerd: the unified hierarchy has the same scope",
			procCgroup(systemdPod+"cri-containerd-"+id2+".scope", hybrid...),
			Info{ContainerID: id2, Runtime: RuntimeContainerd, PodUID: pod}},
		{"hybrid, cgroupfs driver, kubelet cgroupRoot: the real node of the node tests",
			procCgroup("/compilerwatch-nodetest/kubepods/besteffort/pod"+pod+"/"+id1, hybrid...),
			Info{ContainerID: id1, PodUID: pod}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, line := range strings.Split(strings.TrimSpace(tt.file), "\n") {
				parts := strings.SplitN(line, ":", 3)
				if len(parts) != 3 {
					t.Fatalf("bad fixture line %q", line)
				}
				want := tt.want
				if parts[2] == "/" {
					want = Info{}
				}
				if got := Parse(parts[2]); got != want {
					t.Errorf("line %q:\n got  %+v\n want %+v", line, got, want)
				}
			}
		})
	}
}

func TestParseNoAllocWithoutUnderscoredPod(t *testing.T) {
	paths := []string{
		"/system.slice/docker-" + id1 + ".scope",
		"/kubepods/besteffort/pod" + pod + "/" + id1,
		"/user.slice/user-1000.slice/session-3.scope",
	}
	for _, p := range paths {
		if n := testing.AllocsPerRun(100, func() { _ = Parse(p) }); n != 0 {
			t.Errorf("Parse(%q) allocates %v times, want 0", p, n)
		}
	}
}

var (
	idRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	uidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

func checkInvariants(t *testing.T, path string, got Info) {
	t.Helper()
	if got.ContainerID != "" && !idRE.MatchString(got.ContainerID) {
		t.Fatalf("Parse(%q): container id %q is not 64 lowercase hex", path, got.ContainerID)
	}
	if got.PodUID != "" && !uidRE.MatchString(got.PodUID) {
		t.Fatalf("Parse(%q): pod uid %q is not a canonical uuid", path, got.PodUID)
	}
	switch got.Runtime {
	case "":
	case RuntimeDocker, RuntimeContainerd, RuntimeCRIO, RuntimePodman:
		if got.ContainerID == "" {
			t.Fatalf("Parse(%q): runtime %q without a container id", path, got.Runtime)
		}
	default:
		t.Fatalf("Parse(%q): unknown runtime %q", path, got.Runtime)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/docker/" + id1,
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/cri-containerd-" + id1 + ".scope",
		"/kubepods/besteffort/pod" + pod + "/crio-" + id1,
		"/machine.slice/libpod-" + id1 + ".scope/container",
		"/user.slice/user-1000.slice/session-3.scope",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		checkInvariants(t, path, Parse(path))
	})
}

func BenchmarkParse(b *testing.B) {
	paths := map[string]string{
		"host":       "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-0267755b-4639-4a27-90ed-f19f88e53748.scope",
		"cgroupfs":   "/kubepods/besteffort/pod" + pod + "/" + id1,
		"systemdpod": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnd + ".slice/cri-containerd-" + id1 + ".scope",
	}
	for name, p := range paths {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Parse(p)
			}
		})
	}
}
