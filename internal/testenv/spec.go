//go:build linux

package testenv

// A minimal OCI runtime spec (config.json), written out here rather than
// taken from `runc spec` so that what the container looks like is visible in
// one place. Only the fields the harness sets are modelled.

type ociSpec struct {
	OCIVersion string      `json:"ociVersion"`
	Process    ociProcess  `json:"process"`
	Root       ociRoot     `json:"root"`
	Hostname   string      `json:"hostname"`
	Mounts     []ociMount  `json:"mounts"`
	Linux      ociLinuxCfg `json:"linux"`
}

type ociProcess struct {
	Terminal        bool            `json:"terminal"`
	User            ociUser         `json:"user"`
	Args            []string        `json:"args"`
	Env             []string        `json:"env"`
	Cwd             string          `json:"cwd"`
	Capabilities    ociCapabilities `json:"capabilities"`
	Rlimits         []ociRlimit     `json:"rlimits"`
	NoNewPrivileges bool            `json:"noNewPrivileges"`
}

type ociUser struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

type ociCapabilities struct {
	Bounding  []string `json:"bounding"`
	Effective []string `json:"effective"`
	Permitted []string `json:"permitted"`
}

type ociRlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

type ociRoot struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type,omitempty"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

type ociLinuxCfg struct {
	CgroupsPath   string         `json:"cgroupsPath"`
	Namespaces    []ociNamespace `json:"namespaces"`
	Resources     ociResources   `json:"resources"`
	MaskedPaths   []string       `json:"maskedPaths"`
	ReadonlyPaths []string       `json:"readonlyPaths"`
}

type ociNamespace struct {
	Type string `json:"type"`
}

type ociResources struct {
	Devices []ociDeviceRule `json:"devices"`
}

type ociDeviceRule struct {
	Allow  bool   `json:"allow"`
	Access string `json:"access"`
}

// defaultCaps is containerd's default capability set, which is what a
// Kubernetes container without securityContext gets.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// defaultPath is the PATH of the container's processes.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildSpec returns the spec for a container with init argv args, extra
// environment env, cgroup path cg and user mounts. /tmp is a rootfs
// directory unless tmpfsTmp, so that files written there at runtime land
// in the overlay upper layer like any other container write.
func buildSpec(args, env []string, cg string, mounts []Mount, tmpfsTmp bool) ociSpec {
	caps := append([]string(nil), defaultCaps...)
	s := ociSpec{
		OCIVersion: "1.0.2-dev",
		Process: ociProcess{
			Args:            args,
			Env:             append([]string{defaultPath, "HOME=/root", "TERM=dumb"}, env...),
			Cwd:             "/",
			Capabilities:    ociCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			Rlimits:         []ociRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     ociRoot{Path: "rootfs"},
		Hostname: "testenv",
		Mounts: []ociMount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: ociLinuxCfg{
			CgroupsPath: cg,
			// No cgroup namespace: on cgroup v1 hosts the kubelet's
			// containers share the host's, and /proc/self/cgroup then shows
			// the full path inside the container too.
			Namespaces: []ociNamespace{{"pid"}, {"ipc"}, {"uts"}, {"mount"}, {"network"}},
			Resources:  ociResources{Devices: []ociDeviceRule{{Allow: false, Access: "rwm"}}},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if tmpfsTmp {
		s.Mounts = append(s.Mounts, ociMount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
	}
	for _, m := range mounts {
		if m.Symlink != "" {
			continue // created in the rootfs, not mounted
		}
		opt := "ro"
		if m.Writable {
			opt = "rw"
		}
		s.Mounts = append(s.Mounts, ociMount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: []string{"rbind", opt}})
	}
	return s
}
