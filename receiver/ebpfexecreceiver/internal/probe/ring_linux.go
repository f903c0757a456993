package probe

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ring is the ring buffer's reader with a wait that parks the goroutine in
// the Go runtime's network poller instead of blocking a thread in epoll: a
// goroutine blocked in a system call for more than 10 ms makes the runtime's
// sysmon thread take its processor back and then poll every 20 µs for a
// millisecond, which cost more than reading the records. The poller watches
// a non-blocking duplicate of the ring's map fd, edge-triggered: it sees the
// kernel's wake-ups (wakeup_bytes), and the deadline covers the rest.
type ring struct {
	*ringbuf.Reader
	file    *os.File
	conn    syscall.RawConn
	flushed atomic.Bool
}

func newRing(m *ebpf.Map) (*ring, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, err
	}
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		_ = rd.Close()
		return nil, fmt.Errorf("duplicating the ring buffer fd: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		_ = rd.Close()
		return nil, fmt.Errorf("making the ring buffer fd non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ringbuf")
	conn, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		_ = rd.Close()
		return nil, err
	}
	return &ring{Reader: rd, file: f, conn: conn}, nil
}

// Wait returns at deadline (os.ErrDeadlineExceeded), when the kernel wakes
// the ring's readers (wakeup_bytes), or at Flush. Records that arrive
// without a wake-up do not end it: they are what the next poll reads.
func (r *ring) Wait(deadline time.Time) error {
	if r.flushed.Load() {
		return nil
	}
	if err := r.file.SetReadDeadline(deadline); err != nil {
		return err
	}
	waited := false
	err := r.conn.Read(func(uintptr) bool {
		done := waited || r.flushed.Load()
		waited = true
		return done
	})
	switch {
	case r.flushed.Load():
		return nil
	case errors.Is(err, os.ErrClosed):
		return ringbuf.ErrClosed
	}
	return err
}

// Flush makes ReadInto return what the ring holds, then ringbuf.ErrFlushed,
// and ends a Wait.
func (r *ring) Flush() error {
	r.flushed.Store(true)
	err := r.Reader.Flush()
	_ = r.file.SetReadDeadline(time.Unix(1, 0))
	return err
}

func (r *ring) Close() error {
	return errors.Join(r.Reader.Close(), r.file.Close())
}
