//go:build linux

package probe

import (
	"errors"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// drain reads and discards records until stop is closed.
func drain(p *Probe, stop <-chan struct{}) {
	var rec ringbuf.Record
	for {
		select {
		case <-stop:
			return
		default:
		}
		p.reader.SetDeadline(time.Now().Add(20 * time.Millisecond))
		if err := p.reader.ReadInto(&rec); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}
