//go:build linux

package compilerdetectorprocessor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/compilerwatch/compilerwatch/internal/inroot"
	"github.com/compilerwatch/compilerwatch/internal/inroot/inroottest"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/presence"
)

// These tests run the scanner through the processor against a fake /proc: <pid>/cgroup names the process's
// cgroup and <pid>/root links to a directory standing for the container's root. No root privileges needed.

// fakeProc adds a process to a fake /proc, in container id's cgroup, with root as its root.
func fakeProc(t *testing.T, proc string, pid int, id, root string) {
	t.Helper()
	dir := filepath.Join(proc, fmt.Sprint(pid))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::/kubepods/besteffort/podx/"+id+"\n"), 0o644))
	require.NoError(t, os.Symlink(root, filepath.Join(dir, "root")))
}

// fakeRoot builds a container root: files are created with their mode, links with their target.
var fakeRoot = inroottest.FakeRoot

// startScanHarness is a started processor whose scanner reads proc instead of /proc.
func startScanHarness(t *testing.T, cfg *Config, enr metadataSource, proc string) *harness {
	t.Helper()
	h := newHarness(t, cfg, enr)
	h.setPresence(func(s *presence.Settings) {
		s.ProcRoot = proc
		s.Support = func() error { return nil } // tests that need the real check run as root elsewhere
	})
	require.NoError(t, h.p.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, h.p.Shutdown(context.Background())) })
	return h
}

// execIn sends one exec record of pid (with ancestors anc) in container id, with extra resource attributes.
func execIn(t *testing.T, h *harness, id string, pid int64, extra map[string]string, anc ...string) {
	t.Helper()
	ld := plog.NewLogs()
	appendExec(appendResource(ld, id, extra), pid, execRec{exe: "/bin/busybox", file: "/bin/sh", anc: anc})
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
}

// scans returns the presence scans counted with result.
func (h *harness) scans(t *testing.T, result string) int64 {
	t.Helper()
	m, err := h.tel.GetMetric("otelcol_processor_compiler_detector_container_scans")
	if err != nil {
		return 0
	}
	var v int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if r, ok := dp.Attributes.Value("result"); ok && r.AsString() == result {
			v += dp.Value
		}
	}
	return v
}

// presentIn returns the container.compilers_present records of the sink.
func presentIn(h *harness) []pcommon.Map {
	var out []pcommon.Map
	eachRecord(h.sink.AllLogs(), func(res pcommon.Map, lr plog.LogRecord) {
		if lr.EventName() == attr.EventCompilersPresent {
			out = append(out, res)
		}
	})
	return out
}

func rootWithGCC(t *testing.T) string {
	return fakeRoot(t, map[string]os.FileMode{"/usr/bin/gcc": 0o755}, nil)
}

// lateEnricher adds its attributes only from its second call on: the record passes without them, and they are
// known by the time the scan's record is emitted.
type lateEnricher struct {
	attrs map[string]string
	calls atomic.Int32
}

func (e *lateEnricher) Lookup(pcommon.Resource) (podMetadata, bool) {
	if e.calls.Add(1) > 1 {
		return fakeFound(e.attrs), true
	}
	return nil, true
}

// fakeFound is a fake lookup's result: the attributes it adds.
type fakeFound map[string]string

func (f fakeFound) Apply(res pcommon.Resource) {
	for k, v := range f {
		attr.PutStrIfAbsent(res.Attributes(), k, v)
	}
}

// TestPresenceScanExclusions: every exclude rule on the resource keeps the scan's record out, whether the
// attribute is there when the container is first seen (it is then not scanned at all) or arrives later (the
// scan runs; its record is dropped at emit time).
func TestPresenceScanExclusions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exclude ExcludeConfig
		attrs   map[string]string
	}{
		{"namespaces", ExcludeConfig{Namespaces: []string{"build"}}, map[string]string{attr.K8sNamespace: "build"}},
		{"images", ExcludeConfig{Images: []string{"registry.example/ci/*"}}, map[string]string{attr.ContainerImage: "registry.example/ci/runner"}},
		{"pod_labels", ExcludeConfig{PodLabels: map[string]string{"team": "ci"}}, map[string]string{attr.K8sPodLabel + "team": "ci"}},
		{"container_ids", ExcludeConfig{ContainerIDs: []string{testContainer}}, nil},
	} {
		t.Run(tc.name+"/at first sight", func(t *testing.T) {
			proc := t.TempDir()
			fakeProc(t, proc, 10, testContainer, rootWithGCC(t))
			cfg := createDefaultConfig().(*Config)
			cfg.Exclude = tc.exclude
			h := startScanHarness(t, cfg, nil, proc)
			execIn(t, h, testContainer, 10, tc.attrs)
			assert.Equal(t, int64(1), h.scans(t, "excluded"))
			execIn(t, h, testContainer, 10, tc.attrs) // not retried
			time.Sleep(100 * time.Millisecond)
			assert.Equal(t, int64(1), h.scans(t, "excluded"))
			assert.Zero(t, h.scans(t, "found")+h.scans(t, "clean"), "not scanned")
			assert.Empty(t, presentIn(h))
		})
		if tc.attrs == nil {
			continue // the container id is there from the start
		}
		t.Run(tc.name+"/known at emit time", func(t *testing.T) {
			proc := t.TempDir()
			fakeProc(t, proc, 10, testContainer, rootWithGCC(t))
			cfg := createDefaultConfig().(*Config)
			cfg.Exclude = tc.exclude
			h := startScanHarness(t, cfg, &lateEnricher{attrs: tc.attrs}, proc)
			execIn(t, h, testContainer, 10, nil)
			require.Eventually(t, func() bool { return h.scans(t, "excluded") == 1 }, 5*time.Second, 10*time.Millisecond)
			assert.Empty(t, presentIn(h))
			assert.Zero(t, h.scans(t, "found"))
		})
	}

	t.Run("not excluded: the record carries what was known at emit time", func(t *testing.T) {
		proc := t.TempDir()
		fakeProc(t, proc, 10, testContainer, rootWithGCC(t))
		cfg := createDefaultConfig().(*Config)
		cfg.Exclude.Namespaces = []string{"build"}
		h := startScanHarness(t, cfg, &lateEnricher{attrs: map[string]string{attr.K8sNamespace: "prod"}}, proc)
		execIn(t, h, testContainer, 10, nil)
		require.Eventually(t, func() bool { return len(presentIn(h)) == 1 }, 5*time.Second, 10*time.Millisecond)
		assert.Equal(t, "prod", strAttr(presentIn(h)[0], attr.K8sNamespace))
		assert.Equal(t, int64(1), h.scans(t, "found"))
	})
}

// TestPresenceScanPicksAProcessOfTheContainer: pids whose cgroup is another container's (a reused pid, or the
// host's containerd-shim among the ancestors) are skipped; a container with no live process is counted as
// unscannable, retried on its next records, and given up after presence.MaxAttempts.
func TestPresenceScanPicksAProcessOfTheContainer(t *testing.T) {
	proc := t.TempDir()
	fakeProc(t, proc, 20, testContainer2, rootWithGCC(t))                                                 // another container
	fakeProc(t, proc, 21, testContainer, fakeRoot(t, map[string]os.FileMode{"/usr/bin/tcc": 0o755}, nil)) // this one
	h := startScanHarness(t, createDefaultConfig().(*Config), nil, proc)

	execIn(t, h, testContainer, 20, nil, "21:sh", "1:containerd-shim")
	require.Eventually(t, func() bool { return len(presentIn(h)) == 1 }, 5*time.Second, 10*time.Millisecond)
	var found []any
	eachRecord(h.sink.AllLogs(), func(_ pcommon.Map, lr plog.LogRecord) {
		if v, ok := lr.Attributes().Get(attr.CompilersPresent); ok {
			found = v.Slice().AsRaw()
		}
	})
	assert.Equal(t, []any{"tcc:/usr/bin/tcc"}, found, "the root of pid 21, not of pid 20")

	const gone = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
	for range presence.MaxAttempts + 2 {
		execIn(t, h, gone, 30, nil, "20:sh")
	}
	assert.Equal(t, int64(presence.MaxAttempts), h.scans(t, "unscannable"))
	assert.Equal(t, int64(1), h.scans(t, "found"))
}

// TestPresenceScanOffWithoutSupport: without CAP_SYS_PTRACE (or openat2) the scan is off with one log line,
// and compiler executions are still flagged.
func TestPresenceScanOffWithoutSupport(t *testing.T) {
	proc := t.TempDir()
	fakeProc(t, proc, 10, testContainer, rootWithGCC(t))
	cfg := createDefaultConfig().(*Config)
	cfg.Dedup.Window = 0
	h := newHarness(t, cfg, nil)
	core, logs := observer.New(zapcore.InfoLevel)
	h.setPresence(func(s *presence.Settings) {
		s.Logger = zap.New(core)
		s.ProcRoot = proc
		s.Support = func() error { return errors.New("CAP_SYS_PTRACE is not in the effective set") }
	})
	require.NoError(t, h.p.Start(context.Background(), componenttest.NewNopHost()))

	for range 3 {
		ld := plog.NewLogs()
		appendExec(appendResource(ld, testContainer, nil), 10, recGCC)
		require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	}
	require.NoError(t, h.p.Shutdown(context.Background()))
	assert.Len(t, flagged(h.sink.AllLogs()), 3, "detection is unaffected")
	assert.Empty(t, presentIn(h))
	_, err := h.tel.GetMetric("otelcol_processor_compiler_detector_container_scans")
	assert.Error(t, err, "no scan counted at all")
	require.Equal(t, 1, logs.Len(), "one log line")
	assert.Contains(t, logs.All()[0].Message, "Compiler presence scan is off")
	assert.Contains(t, logs.All()[0].ContextMap()["error"], "CAP_SYS_PTRACE")
}

// TestPresenceScanAbandonsStuckScans: a scan blocked in a system call (a hung file system) is abandoned after
// its time; with presence.MaxStuck abandoned, no new scan starts until one returns.
func TestPresenceScanAbandonsStuckScans(t *testing.T) {
	proc := t.TempDir()
	ids := []string{testContainer, testContainer2, "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}
	for i, id := range ids {
		fakeProc(t, proc, 10+i, id, rootWithGCC(t))
	}
	h := newHarness(t, createDefaultConfig().(*Config), nil)
	release := make(chan struct{})
	var blocked atomic.Bool
	blocked.Store(true)
	h.setPresence(func(s *presence.Settings) {
		s.ProcRoot, s.Support = proc, func() error { return nil }
		s.Timeout, s.Grace = 10*time.Millisecond, 10*time.Millisecond
		s.ScanTree = func(ctx context.Context, root *inroot.Root, m *catalog.Matcher) presence.Result {
			if blocked.Load() {
				<-release // ignores ctx, like a system call would
			}
			return presence.ScanTree(ctx, root, m)
		}
	})
	s := h.p.presence
	require.NoError(t, h.p.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, h.p.Shutdown(context.Background())) }()

	execIn(t, h, ids[0], 10, nil)
	execIn(t, h, ids[1], 11, nil)
	require.Eventually(t, func() bool { return s.Stuck() == presence.MaxStuck }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, int64(2), h.scans(t, "failed"))
	execIn(t, h, ids[2], 12, nil)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, int64(2), h.scans(t, "failed"), "no new scan while presence.MaxStuck are stuck")
	assert.Zero(t, s.Queued())

	blocked.Store(false)
	close(release)
	require.Eventually(t, func() bool { return s.Stuck() == 0 }, 5*time.Second, 5*time.Millisecond)
	execIn(t, h, ids[2], 12, nil) // its next record
	require.Eventually(t, func() bool { return h.scans(t, "found") == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Len(t, presentIn(h), 1, "only the scan that was not abandoned emits")
}
