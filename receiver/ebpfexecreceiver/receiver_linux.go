//go:build linux

package ebpfexecreceiver

import (
	"golang.org/x/sys/unix"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

func loadProbe(cfg probe.Config) (source, error) {
	p, err := probe.Load(cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// bootOffset is wall-clock time minus the boot clock the BPF program stamps
// records with (bpf_ktime_get_boot_ns), in nanoseconds.
func bootOffset() int64 {
	var rt, bt unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt)
	return rt.Nano() - bt.Nano()
}
