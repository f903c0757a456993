package testenv // import "github.com/compilerwatch/compilerwatch/internal/testenv"

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// short reports whether the tests run with -short (make test-unit); the
// gates' own tests replace it to exercise the full run's behaviour.
var short = testing.Short

// InCI reports whether a test that cannot meet its requirements must fail
// instead of skipping: CI=true, so a misconfigured runner cannot turn the
// kernel tests into silent skips. Under -short it is false even with
// CI=true: `make test-unit` runs only what needs neither root, the kernel
// nor the artifacts of `make build` and `make image`, and skips the rest.
func InCI() bool { return os.Getenv("CI") == "true" && !short() }

// SkipShort skips t under -short (make test-unit), even with CI=true: the
// test needs root, the kernel, containers or a running cluster. The Require
// gates call it first, so tests behind them never run under -short.
func SkipShort(t testing.TB, needs string) {
	t.Helper()
	if short() {
		t.Skip("skipped under -short (make test-unit): the test needs " + needs)
	}
}

// skipOrFatal skips t with msg, or fails it when InCI.
func skipOrFatal(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg + " (CI=true: gated tests must run, not skip)")
		return // only reached with a testing.TB whose Fatal returns
	}
	t.Skip(msg)
}

// Capability is a Linux capability number, as in linux/capability.h.
type Capability uint

// The capabilities the receiver and the container harness need.
const (
	CapDACOverride Capability = 1
	CapSysAdmin    Capability = 21
	CapSysResource Capability = 24
	CapPerfmon     Capability = 38
	CapBPF         Capability = 39
)

var capNames = map[Capability]string{
	CapDACOverride: "CAP_DAC_OVERRIDE",
	CapSysAdmin:    "CAP_SYS_ADMIN",
	CapSysResource: "CAP_SYS_RESOURCE",
	CapPerfmon:     "CAP_PERFMON",
	CapBPF:         "CAP_BPF",
}

// String returns the CAP_* name, or "CAP_<n>" for capabilities this package
// does not name.
func (c Capability) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return "CAP_" + strconv.FormatUint(uint64(c), 10)
}

// RequireRoot skips t (fails it in CI; skips it under -short) unless the process has euid 0 and
// CAP_SYS_ADMIN in its effective set. uid 0 alone is not enough: root in an
// unprivileged user namespace or a capability-dropped container cannot
// mount, create cgroups or load BPF programs.
func RequireRoot(t testing.TB) {
	t.Helper()
	SkipShort(t, "root")
	if uid := os.Geteuid(); uid != 0 {
		skipOrFatal(t, fmt.Sprintf("test requires root: running as euid %d", uid))
		return
	}
	RequireCaps(t, CapSysAdmin)
}

// RequireCaps skips t (fails it in CI; skips it under -short) unless every capability in caps is in
// the effective set (CapEff of /proc/self/status). It reads the set
// directly because a failed BPF call reports EPERM, and cilium/ebpf's
// MEMLOCK hint then points at the wrong cause.
func RequireCaps(t testing.TB, caps ...Capability) {
	t.Helper()
	SkipShort(t, "capabilities "+capList(caps))
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		skipOrFatal(t, fmt.Sprintf("test requires capabilities %s: cannot read /proc/self/status: %v", capList(caps), err))
		return
	}
	eff, err := parseCapEff(string(status))
	if err != nil {
		skipOrFatal(t, fmt.Sprintf("test requires capabilities %s: %v", capList(caps), err))
		return
	}
	if missing := missingCaps(eff, caps); len(missing) > 0 {
		skipOrFatal(t, fmt.Sprintf("test requires capabilities %s: missing %s (CapEff=%016x); run as root or grant them",
			capList(caps), capList(missing), eff))
	}
}

// RequireBinary skips t (fails it in CI) unless every name is found in PATH.
// The binaries it is asked for (runc, gcc, execsnoop, ...) serve the kernel
// and container tests, so it skips under -short too.
func RequireBinary(t testing.TB, names ...string) {
	t.Helper()
	SkipShort(t, strings.Join(names, ", "))
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		skipOrFatal(t, fmt.Sprintf("test requires %s in PATH (PATH=%s)", strings.Join(missing, ", "), os.Getenv("PATH")))
	}
}

// parseCapEff returns the effective capability mask from the text of
// /proc/<pid>/status.
func parseCapEff(status string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed CapEff line %q: %w", sc.Text(), err)
		}
		return mask, nil
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

// missingCaps returns the capabilities of want that are absent from eff.
func missingCaps(eff uint64, want []Capability) []Capability {
	var missing []Capability
	for _, c := range want {
		if c >= 64 || eff&(1<<c) == 0 {
			missing = append(missing, c)
		}
	}
	return missing
}

func capList(caps []Capability) string {
	s := make([]string, len(caps))
	for i, c := range caps {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}
