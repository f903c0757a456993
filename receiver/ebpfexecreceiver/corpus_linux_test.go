//go:build linux

package ebpfexecreceiver

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

var recordCorpus = flag.Bool("record-corpus", false, "re-record testdata/compile_corpus.json from a real make -j2 (root)")

// TestRecordCompileCorpus re-records the compile corpus the benchmarks
// replay: the real probe, with the receiver's default limits, captures a
// `make -j2 -B` of test/bench/testdata/project (the make -j2 load of `make
// bench`) and keeps the execs below that make. It runs only with
// -record-corpus, as root:
//
//	go test -count=1 -run TestRecordCompileCorpus -record-corpus ./receiver/ebpfexecreceiver
//
// What makes the file deterministic: times become offsets from the first
// exec, the build directory (a temporary copy) becomes /src/project and
// the cgroup a host session's. PIDs, gcc's temporary file names and
// everything else stay as captured.
func TestRecordCompileCorpus(t *testing.T) {
	if !*recordCorpus {
		t.Skip("re-records testdata/compile_corpus.json only with -record-corpus")
	}
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	testenv.RequireBinary(t, "gcc", "make")

	dir := t.TempDir()
	src := filepath.Join("..", "..", "test", "bench", "testdata", "project")
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}

	cfg := createDefaultConfig().(*Config)
	p, err := probe.Load(probe.Config{
		RingBufferSize: uint32(cfg.RingBufferSize), MaxArgsBytes: uint32(cfg.MaxArgsBytes),
		MaxPathDepth: uint32(cfg.MaxPathDepth), MaxAncestors: uint32(cfg.Ancestors),
	})
	require.NoError(t, err)
	defer func() { _ = p.Close() }()

	mk := exec.Command("make", "-j2", "-B")
	mk.Dir = dir
	mk.Env = append(os.Environ(), "LC_ALL=C")
	require.NoError(t, mk.Start())
	makePID := uint32(mk.Process.Pid)
	waitErr := make(chan error, 1)
	go func() { waitErr <- mk.Wait() }()

	var (
		dec    = event.NewDecoder()
		rec    ringbuf.Record
		events []event.Event
		below  = map[uint32]bool{makePID: true} // make and its descendants
		done   bool
	)
	rd := p.Reader()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
		err := rd.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if done {
				break
			}
			select {
			case err := <-waitErr:
				require.NoError(t, err, "make -j2 failed")
				done = true
			default:
			}
			continue
		}
		require.NoError(t, err)
		var ev event.Event
		require.NoError(t, dec.Decode(rec.RawSample, 0, &ev))
		if !below[ev.ParentPID] && ev.PID != makePID {
			continue
		}
		below[ev.PID] = true
		ev.Args = slices.Clone(ev.Args)
		ev.Ancestors = slices.Clone(ev.Ancestors)
		events = append(events, ev)
	}
	require.True(t, done, "make -j2 did not finish")
	stats, err := p.Stats()
	require.NoError(t, err)
	require.Zero(t, stats.Dropped(), "the kernel dropped records during the capture")

	t0 := events[0].Time
	var comms []string
	for i := range events {
		ev := &events[i]
		ev.Time = corpusEpoch.Add(ev.Time.Sub(t0))
		ev.Cwd = strings.ReplaceAll(ev.Cwd, dir, corpusDir)
		ev.CgroupPath = hostCgroup
		for j, a := range ev.Args {
			ev.Args[j] = strings.ReplaceAll(a, dir, corpusDir)
		}
		comms = append(comms, ev.Comm)
	}
	for _, want := range []string{"make", "cc", "cc1", "as", "collect2", "ld"} {
		require.Contains(t, comms, want, "the build ran no %s", want)
	}
	b, err := json.MarshalIndent(events, "", " ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(compileCorpusFile, append(b, '\n'), 0o644))
	t.Logf("recorded %d execs of make -j2 into %s", len(events), compileCorpusFile)
}
