package distro

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		err        bool
	}{
		{"plain", "42 (otelcol) S 1 42 42 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 12 0 300 1000 100", 1750 * time.Millisecond, false},
		{"comm with spaces and parens", "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 6 7", 70 * time.Millisecond, false},
		{"no comm", "42 otelcol S 1", 0, true},
		{"short", "42 (x) S 1 2 3", 0, true},
		{"not a number", "42 (x) S 1 42 42 0 -1 0 0 0 0 0 ab 25 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU(tc.stat)
			if tc.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// CPUTime reads this test process's own stat, which must parse, and grows as the process burns CPU.
func TestCPUTimeOfSelf(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	require.NoError(t, err)
	deadline := time.Now().Add(2 * time.Second)
	for x := 0; time.Now().Before(deadline); x++ {
		if now, err := CPUTime(os.Getpid()); err == nil && now > before {
			return
		}
	}
	t.Fatal("CPUTime did not grow over 2 s of busy looping")
}

func TestCPUUsePerSecond(t *testing.T) {
	assert.Equal(t, 2*time.Millisecond, CPUUse{CPU: 120 * time.Millisecond, Wall: time.Minute}.PerSecond())
	assert.Zero(t, CPUUse{CPU: time.Second}.PerSecond())
	assert.Equal(t, "2.00 ms of CPU per second (120ms over 1m0s)", CPUUse{CPU: 120 * time.Millisecond, Wall: time.Minute}.String())
}
