package testenv

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseCapEff(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    uint64
		wantErr bool
	}{
		{name: "root", status: "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n", want: 0x1ffffffffff},
		{name: "no sys_resource", status: "CapEff:\t000001fffeffffff\n", want: 0x1fffeffffff},
		{name: "unprivileged", status: "CapEff:\t0000000000000000\n", want: 0},
		{name: "missing line", status: "Name:\tx\n", wantErr: true},
		{name: "malformed", status: "CapEff:\tzz\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCapEff(tt.status)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %x, want %x", got, tt.want)
			}
		})
	}
}

func TestMissingCaps(t *testing.T) {
	tests := []struct {
		eff  uint64
		want []Capability
		out  string
	}{
		{eff: 0x1ffffffffff, want: []Capability{CapBPF, CapPerfmon, CapSysResource}, out: ""},
		{eff: 0x1fffeffffff, want: []Capability{CapBPF, CapPerfmon, CapSysResource}, out: "CAP_SYS_RESOURCE"},
		{eff: 0, want: []Capability{CapBPF, CapSysAdmin}, out: "CAP_BPF, CAP_SYS_ADMIN"},
		{eff: ^uint64(0), want: []Capability{70}, out: "CAP_70"},
	}
	for _, tt := range tests {
		if got := capList(missingCaps(tt.eff, tt.want)); got != tt.out {
			t.Errorf("missingCaps(%x, %v) = %q, want %q", tt.eff, tt.want, got, tt.out)
		}
	}
}

// recordingTB captures Skip and Fatal instead of ending the test, so the
// gate's decision can be asserted.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper() {}

// The first Skip or Fatal is kept: it is where a real test would have ended.
func (r *recordingTB) Skip(args ...any)  { r.Skipf("%s", fmt.Sprint(args...)) }
func (r *recordingTB) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *recordingTB) Skipf(format string, args ...any) {
	if r.skipped == "" && r.failed == "" {
		r.skipped = fmt.Sprintf(format, args...)
	}
}
func (r *recordingTB) Fatalf(format string, args ...any) {
	if r.skipped == "" && r.failed == "" {
		r.failed = fmt.Sprintf(format, args...)
	}
}

// setShort makes the gates see -short as v for the rest of t.
func setShort(t *testing.T, v bool) {
	old := short
	short = func() bool { return v }
	t.Cleanup(func() { short = old })
}

func TestGateSkipsOrFailsInCI(t *testing.T) {
	const missing = "compilerwatch-no-such-binary"
	setShort(t, false)
	for _, ci := range []string{"", "false", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			r := &recordingTB{TB: t}
			RequireBinary(r, "sh", missing)
			msg := r.skipped
			if ci == "true" {
				msg = r.failed
				if r.skipped != "" {
					t.Errorf("skipped in CI: %q", r.skipped)
				}
			} else if r.failed != "" {
				t.Errorf("failed outside CI: %q", r.failed)
			}
			if !strings.Contains(msg, missing) || strings.Contains(msg, "sh,") {
				t.Errorf("message %q should name only the missing binary %q", msg, missing)
			}
		})
	}
}

func TestRequireCapsNamesMissing(t *testing.T) {
	t.Setenv("CI", "")
	setShort(t, false)
	r := &recordingTB{TB: t}
	// Capability 63 does not exist, so it is never in CapEff.
	RequireCaps(r, CapSysAdmin, 63)
	// Without root CAP_SYS_ADMIN is missing too ("missing CAP_SYS_ADMIN, CAP_63").
	if _, missing, _ := strings.Cut(r.skipped, "missing "); !strings.Contains(missing, "CAP_63 (") {
		t.Errorf("skip message %q does not name the missing capability", r.skipped)
	}
}

// TestGatesSkipUnderShort: under -short (make test-unit) every gate skips, even with CI=true and even when the
// requirement is met, and InCI is false, so the artifact checks that consult it skip too.
func TestGatesSkipUnderShort(t *testing.T) {
	t.Setenv("CI", "true")
	setShort(t, true)
	if InCI() {
		t.Error("InCI() under -short with CI=true")
	}
	gates := map[string]func(testing.TB){
		"RequireRoot":           RequireRoot,
		"RequireCaps":           func(tb testing.TB) { RequireCaps(tb, CapBPF) },
		"RequireBinary present": func(tb testing.TB) { RequireBinary(tb, "sh") },
		"RequireBinary missing": func(tb testing.TB) { RequireBinary(tb, "compilerwatch-no-such-binary") },
		"SkipShort":             func(tb testing.TB) { SkipShort(tb, "a cluster") },
	}
	for name, gate := range gates {
		t.Run(name, func(t *testing.T) {
			r := &recordingTB{TB: t}
			gate(r)
			if r.failed != "" || !strings.Contains(r.skipped, "-short") {
				t.Errorf("skipped %q, failed %q; want a skip naming -short", r.skipped, r.failed)
			}
		})
	}
}
