//go:build linux

package probe

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability bit numbers (linux/capability.h).
const (
	capSysAdmin    = 21
	capSysResource = 24
	capPerfmon     = 38
	capBPF         = 39
)

// CheckPrivileges reads the effective capability set directly. cilium/ebpf
// reports EPERM with a hint about RLIMIT_MEMLOCK, which misleads when the
// real cause is a missing capability, so we check first and name them.
func CheckPrivileges() error {
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	return missingCaps(eff, needsMemlock())
}

// missingCaps is the pure decision: tracing programs need CAP_BPF and
// CAP_PERFMON (or CAP_SYS_ADMIN, which implies both); kernels before 5.11
// charge BPF maps to RLIMIT_MEMLOCK, which only CAP_SYS_RESOURCE may raise.
func missingCaps(eff uint64, memlock bool) error {
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	var missing []string
	if !has(capSysAdmin) {
		if !has(capBPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(capPerfmon) {
			missing = append(missing, "CAP_PERFMON")
		}
	}
	if memlock && !has(capSysResource) {
		missing = append(missing, "CAP_SYS_RESOURCE")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("missing capabilities %s to load the exec BPF program: %s", strings.Join(missing, ", "), privilegeHint(memlock))
}

// privilegeHint says how to grant what this kernel needs. CAP_SYS_RESOURCE
// is asked for only where RLIMIT_MEMLOCK still limits BPF maps: elsewhere it
// is useless, and a shell command naming it fails where the bounding set
// lacks it.
func privilegeHint(memlock bool) string {
	names := []string{"BPF", "PERFMON"}
	if memlock {
		names = append(names, "SYS_RESOURCE")
	}
	caps := make([]string, len(names))
	shell := make([]string, len(names))
	for i, n := range names {
		caps[i] = "CAP_" + n
		shell[i] = "+" + strings.ToLower(n)
	}
	grant := strings.Join(caps[:len(caps)-1], ", ") + " and " + caps[len(caps)-1]
	return fmt.Sprintf("run as root, or grant %s (Kubernetes: securityContext.capabilities.add [%s]; "+
		"systemd: AmbientCapabilities=%s; shell: setpriv --inh-caps=%s --ambient-caps=%s)",
		grant, strings.Join(names, ", "), strings.Join(caps, " "), strings.Join(shell, ","), strings.Join(shell, ","))
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff line in /proc/self/status")
}

// needsMemlock reports whether RLIMIT_MEMLOCK still limits BPF maps here:
// kernels before 5.11, unless the limit is already unlimited.
func needsMemlock() bool {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil && lim.Cur == unix.RLIM_INFINITY {
		return false
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return true
	}
	major, minor := parseKernelVersion(unix.ByteSliceToString(uts.Release[:]))
	return major < 5 || (major == 5 && minor < 11)
}

// parseKernelVersion reads major.minor from a release string. Each part is
// its leading digits: "5.15-rc1" and "6.1rc2" are 5.15 and 6.1.
func parseKernelVersion(release string) (major, minor int) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	return leadingInt(parts[0]), leadingInt(parts[1])
}

func leadingInt(s string) int {
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(s)
	}
	n, _ := strconv.Atoi(s[:end])
	return n
}
