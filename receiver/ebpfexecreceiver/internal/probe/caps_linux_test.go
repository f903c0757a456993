//go:build linux

package probe

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMissingCaps(t *testing.T) {
	const (
		bpf      = uint64(1) << capBPF
		perfmon  = uint64(1) << capPerfmon
		sysAdmin = uint64(1) << capSysAdmin
		sysRes   = uint64(1) << capSysResource
	)
	tests := []struct {
		name    string
		eff     uint64
		memlock bool
		want    string // "" for no error
	}{
		{name: "bpf and perfmon", eff: bpf | perfmon},
		{name: "sys_admin implies both", eff: sysAdmin},
		{name: "old kernel with sys_resource", eff: bpf | perfmon | sysRes, memlock: true},
		{
			name: "none, kernel >= 5.11",
			want: "missing capabilities CAP_BPF, CAP_PERFMON to load the exec BPF program: run as root, or grant CAP_BPF and CAP_PERFMON " +
				"(Kubernetes: securityContext.capabilities.add [BPF, PERFMON]; systemd: AmbientCapabilities=CAP_BPF CAP_PERFMON; " +
				"shell: setpriv --inh-caps=+bpf,+perfmon --ambient-caps=+bpf,+perfmon)",
		},
		{
			name: "none, kernel < 5.11", memlock: true,
			want: "missing capabilities CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE to load the exec BPF program: run as root, or grant " +
				"CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE (Kubernetes: securityContext.capabilities.add [BPF, PERFMON, SYS_RESOURCE]; " +
				"systemd: AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_SYS_RESOURCE; " +
				"shell: setpriv --inh-caps=+bpf,+perfmon,+sys_resource --ambient-caps=+bpf,+perfmon,+sys_resource)",
		},
		{name: "perfmon missing", eff: bpf, want: "missing capabilities CAP_PERFMON to load"},
		{name: "only sys_resource missing on an old kernel", eff: bpf | perfmon, memlock: true, want: "missing capabilities CAP_SYS_RESOURCE to load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := missingCaps(tt.eff, tt.memlock)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseKernelVersion(t *testing.T) {
	for release, want := range map[string][2]int{
		"6.18.44-fc-v657": {6, 18},
		"5.10.0-28-amd64": {5, 10},
		"5.11.0":          {5, 11},
		"4.19.0+":         {4, 19},
		"5.4.0-1103-aws":  {5, 4},
		"6.1rc2":          {6, 1},
		"garbage":         {0, 0},
	} {
		major, minor := parseKernelVersion(release)
		assert.Equal(t, want, [2]int{major, minor}, release)
	}
}
