//go:build !linux

package ebpfexecreceiver

import (
	"errors"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

func loadProbe(probe.Config) (source, error) {
	return nil, errors.New("the ebpf_exec receiver runs only on Linux: it captures execs with eBPF")
}

func bootOffset() int64 { return 0 }
