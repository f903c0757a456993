package distro

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clockTick is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every Linux ABI Go supports.
const clockTick = 10 * time.Millisecond

// CPUTime is the user+system CPU time that every thread of pid has used so far, from /proc/<pid>/stat, in steps
// of 10 ms.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/<pid>/stat line. The comm (field 2) may hold
// spaces and parentheses, so fields are counted from its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("distro: no comm in /proc stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, state
	if len(f) < 13 {
		return 0, fmt.Errorf("distro: short /proc stat line %q", stat)
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("distro: utime: %w", err)
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("distro: stime: %w", err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// CPUUse is the CPU a process used over a stretch of wall-clock time.
type CPUUse struct {
	CPU, Wall time.Duration
}

// PerSecond is the CPU used per second of wall-clock time.
func (u CPUUse) PerSecond() time.Duration {
	if u.Wall <= 0 {
		return 0
	}
	return time.Duration(float64(u.CPU) / u.Wall.Seconds())
}

func (u CPUUse) String() string {
	return fmt.Sprintf("%.2f ms of CPU per second (%s over %s)", float64(u.PerSecond())/float64(time.Millisecond),
		u.CPU, u.Wall.Round(time.Millisecond))
}

// MeasureCPU samples pid's CPU time, waits for window, and samples it again. The result's resolution is 10 ms
// of CPU (USER_HZ), so a window of 60 s resolves about 0.17 ms per second; for an idle collector, start it, let
// it settle (its start-up work is not idle cost), then measure with nothing else exec'ing much.
func MeasureCPU(t testing.TB, pid int, window time.Duration) CPUUse {
	t.Helper()
	c0, err := CPUTime(pid)
	require.NoError(t, err)
	w0 := time.Now()
	time.Sleep(window)
	c1, err := CPUTime(pid)
	require.NoError(t, err)
	return CPUUse{CPU: c1 - c0, Wall: time.Since(w0)}
}

// MeasureIdle starts the distribution with config, lets it settle, and measures its CPU over window, then stops
// it. Idle means that the node execs little meanwhile: every exec is a record to read, and with "prefilter:
// containers" in config the kernel drops the host's execs before the collector sees them.
func MeasureIdle(t testing.TB, config string, settle, window time.Duration) CPUUse {
	t.Helper()
	c := Start(t, config)
	time.Sleep(settle)
	u := MeasureCPU(t, c.Cmd.Process.Pid, window)
	c.Stop(t)
	return u
}
