//go:build linux

package probe_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// The reader's Wait, on the real ring: records below the wake-up threshold
// do not end it (the deadline does, and the records are there to drain), a
// quarter of the ring in use does, and so does Flush.
func TestRingWait(t *testing.T) {
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	testenv.RequireBinary(t, "true")
	rec := probe.MaxRecordSize(4096, 64, 4)
	// Large enough that the node's other execs rarely fill a quarter of it
	// during the test; when they do, the wait ends early, as it must.
	const size = 4 << 20
	p, err := probe.Load(probe.Config{RingBufferSize: size, MaxArgsBytes: 4096, MaxPathDepth: 64, MaxAncestors: 4})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	rd := p.Reader()

	run := func(args ...string) {
		t.Helper()
		require.NoError(t, exec.Command("true", args...).Run())
	}

	// One small record: no wake-up, the wait runs to its deadline (unless
	// the node's other execs fill a quarter of the ring meanwhile).
	run("one")
	start := time.Now()
	if err = rd.Wait(start.Add(300 * time.Millisecond)); err == nil {
		assert.GreaterOrEqual(t, rd.AvailableBytes(), size/4-rec, "woken with less than a quarter of the ring in use")
	} else {
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
		assert.Positive(t, rd.AvailableBytes(), "the record waits in the ring")
	}
	drainRing(t, rd)

	// Records with 3 KiB of argv each until a quarter of the ring is in
	// use: the kernel wakes the reader long before the deadline.
	arg := strings.Repeat("a", 1000)
	big := []string{arg, arg, arg}
	woke := make(chan error, 1)
	go func() { woke <- rd.Wait(time.Now().Add(time.Minute)) }()
	deadline := time.Now().Add(30 * time.Second)
	for done := false; !done && time.Now().Before(deadline); {
		select {
		case err := <-woke:
			require.NoError(t, err)
			done = true
		default:
			run(big...)
		}
	}
	assert.GreaterOrEqual(t, rd.AvailableBytes(), size/4-rec, "woken at a quarter of the ring")
	drainRing(t, rd)

	// Flush ends a wait.
	go func() { woke <- rd.Wait(time.Now().Add(time.Minute)) }()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, rd.Flush())
	select {
	case err := <-woke:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Flush did not end Wait")
	}
}

// drainRing reads what the ring holds without blocking.
func drainRing(t *testing.T, rd probe.RecordReader) {
	t.Helper()
	var rec ringbuf.Record
	rd.SetDeadline(time.Now())
	for {
		err := rd.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		require.NoError(t, err)
	}
}
