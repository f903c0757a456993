// Package cgroup derives the container id, container runtime and Kubernetes
// pod uid from a process's cgroup path.
//
// The parser is pure and allocation-free except when a pod uid has to be
// rewritten (systemd slices spell it with underscores). It is called once per
// exec, so it walks the path once and never uses regular expressions.
//
// Rules, in short:
//   - A container id is exactly 64 lowercase hex characters. Anything else
//     (a 32-hex systemd transient unit, an uppercase or truncated id) is not a
//     container, so host slices never yield one.
//   - When the path nests containers (docker-in-docker, kind nodes), the
//     innermost id wins: that is the container the process runs in.
//   - The runtime comes from the component that carries the id:
//     docker-<id>.scope and /docker/<id> → docker; cri-containerd-<id>.scope
//     and nerdctl-<id>.scope → containerd; crio-<id>[.scope] → cri-o;
//     libpod-<id>[.scope] → podman. A bare id with no such marker (the
//     kubelet cgroupfs driver's /kubepods/<qos>/pod<uid>/<id>, or
//     containerd's /<namespace>/<id>) leaves the runtime empty: docker,
//     containerd and cri-o via cri-dockerd all produce that shape, and a wrong
//     runtime is worse than none.
//   - conmon scopes (crio-conmon-<id>.scope, libpod-conmon-<id>.scope) are the
//     runtime's monitor on the host, not the container, and yield no id.
//   - The pod uid comes from a kubepods pod component (pod<uid> under a
//     kubepods component, or *kubepods*-pod<uid>.slice) that encloses the
//     container, and is returned as a lowercase dashed UUID. Static pods,
//     whose uid is a 32-hex config hash rather than a UUID, yield no pod uid.
package cgroup // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/cgroup"

import "strings"

// Runtime names, the values of container.runtime.name.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
)

// Info is what a cgroup path says about the process's container.
// Empty fields are unknown.
type Info struct {
	ContainerID string // 64 lowercase hex
	Runtime     string // one of the Runtime* constants, only with ContainerID
	PodUID      string // lowercase dashed UUID
}

// idPrefixes maps a scope or directory prefix to the runtime that creates it.
// Longest-first is not needed: no prefix is a prefix of another.
var idPrefixes = [...]struct {
	prefix, runtime string
}{
	{"docker-", RuntimeDocker},
	{"cri-containerd-", RuntimeContainerd},
	{"nerdctl-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"libpod-", RuntimePodman},
}

const idLen = 64

// Parse extracts the container id, runtime and pod uid from a cgroup path
// such as /proc/<pid>/cgroup shows it (without the "0::" prefix). It never
// fails: unknown shapes give an empty Info.
func Parse(path string) Info {
	var (
		info       Info
		podUID     string // last pod uid seen since the last container id
		sawKubepod bool   // a kubepods component was seen
		parent     string // the previous non-empty component
	)
	rest := path
	for len(rest) > 0 {
		var comp string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			comp, rest = rest[:i], rest[i+1:]
		} else {
			comp, rest = rest, ""
		}
		if comp == "" {
			continue
		}
		if strings.Contains(comp, "kubepods") {
			sawKubepod = true
		}
		if id, rt, ok := containerComponent(comp, parent); ok {
			info.ContainerID, info.Runtime = id, rt
			// The pod must enclose this container; a pod seen above an outer
			// container belongs to that one, not to this one.
			info.PodUID, podUID = podUID, ""
		} else if sawKubepod {
			if uid, ok := podComponent(comp); ok {
				podUID = uid
			}
		}
		parent = comp
	}
	if info.ContainerID == "" {
		// A process directly in a pod's cgroup (no container below it).
		info.PodUID = podUID
	}
	if info.PodUID != "" {
		info.PodUID = canonicalUUID(info.PodUID)
	}
	return info
}

// containerComponent reports whether one path component names a container.
// parent is the component above it, which tells the runtime of a bare id.
func containerComponent(comp, parent string) (id, runtime string, ok bool) {
	if isID(comp) {
		// /docker/<id> is docker's cgroupfs layout. Other bare ids are left
		// without a runtime (see the package comment).
		if parent == "docker" {
			return comp, RuntimeDocker, true
		}
		return comp, "", true
	}
	for _, p := range idPrefixes {
		if !strings.HasPrefix(comp, p.prefix) {
			continue
		}
		s := strings.TrimSuffix(comp[len(p.prefix):], ".scope")
		if isID(s) {
			return s, p.runtime, true
		}
		return "", "", false
	}
	return "", "", false
}

// podComponent recognises pod<uid> (cgroupfs) and *-pod<uid>.slice (systemd).
// The uid is returned as found; canonicalUUID normalises it later.
func podComponent(comp string) (string, bool) {
	var uid string
	switch {
	case strings.HasSuffix(comp, ".slice"):
		s := comp[:len(comp)-len(".slice")]
		i := strings.LastIndexByte(s, '-')
		if i < 0 || !strings.HasPrefix(s[i+1:], "pod") {
			return "", false
		}
		uid = s[i+1+len("pod"):]
	case strings.HasPrefix(comp, "pod"):
		uid = comp[len("pod"):]
	default:
		return "", false
	}
	if !isUUIDLike(uid) {
		return "", false
	}
	return uid, true
}

func isID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f')
}

func isHex(c byte) bool {
	return isLowerHex(c) || ('A' <= c && c <= 'F')
}

// isUUIDLike accepts 8-4-4-4-12 hex groups separated by '-' or '_' (systemd
// escapes '-' in slice names as '_'), in either case.
func isUUIDLike(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' && c != '_' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// canonicalUUID lowercases s and turns '_' into '-'. It returns s itself
// (no allocation) when it is already canonical. s must satisfy isUUIDLike.
func canonicalUUID(s string) string {
	canonical := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '_' || ('A' <= c && c <= 'F') {
			canonical = false
			break
		}
	}
	if canonical {
		return s
	}
	var b [36]byte // one allocation: the string conversion
	copy(b[:], s)
	for i, c := range b {
		switch {
		case c == '_':
			b[i] = '-'
		case 'A' <= c && c <= 'F':
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b[:])
}
