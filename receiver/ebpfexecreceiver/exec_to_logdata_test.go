package ebpfexecreceiver

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/redact"
)

const (
	testID1 = "3f9a8f2c1d6e4b7a9c0d1e2f3a4b5c6d7e8f90123456789abcdef0123456789a"
	testID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testPod = "9c6f4e2a-1b3d-4c5e-8f70-a1b2c3d4e5f6"

	hostCgroup   = "/user.slice/user-1000.slice/session-3.scope"
	dockerCgroup = "/system.slice/docker-" + testID1 + ".scope"
	podCgroup    = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9c6f4e2a_1b3d_4c5e_8f70_a1b2c3d4e5f6.slice/cri-containerd-" + testID2 + ".scope"
)

type mapUsers map[uint32]string

// userName names the host uid of a host process, and a container process's
// uid in its user namespace, like rootUsers.
func (m mapUsers) userName(ev *event.Event, containerID string) (string, bool) {
	uid := ev.UID
	if containerID != "" {
		if !ev.NSUIDKnown {
			return "", false
		}
		uid = ev.NSUID
	}
	n, ok := m[uid]
	return n, ok
}

var (
	execTime = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	readTime = time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC)
)

func newTestConverter(t testing.TB, redactOn bool) *logsConverter {
	t.Helper()
	r, err := redact.New(redactOn, nil)
	require.NoError(t, err)
	c := newLogsConverter("node-1", "v1.2.3", mapUsers{0: "root", 1000: "alice"}, r)
	c.now = func() time.Time { return readTime }
	return c
}

// fullEvent has every field set, so every optional attribute appears.
func fullEvent() event.Event {
	return event.Event{
		Time:          execTime,
		PID:           4242,
		ParentPID:     4200,
		VPID:          7,
		UID:           1000,
		RUID:          0,
		GID:           1001,
		Comm:          "cc1",
		Filename:      "/usr/bin/cc",
		ExePath:       "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
		Cwd:           "/src",
		ParentExePath: "/usr/bin/gcc-12",
		Args:          []string{"cc", "-O2", "main.c"},
		Argc:          5,
		CgroupPath:    dockerCgroup,
		Ancestors:     []event.Ancestor{{PID: 4200, Comm: "gcc", ExeName: "gcc-12"}, {PID: 1, Comm: "bash"}},
		ExeFile:       upperFile,
		ParentFile:    imageFile,
		Truncated:     event.TruncArgs | event.TruncAncestors,
		NSUID:         1000,
		NSUIDKnown:    true,
		Root:          event.Root{MountNS: 4026532201, Dev: 0x2b, Ino: 2},
		Interactive:   true,
		InInitTree:    event.No,
	}
}

// Files on a container's overlay root, as the kernel reports them.
var (
	imageFile = event.File{Magic: event.MagicOverlay, Flags: event.FileOverlayKnown | event.FileRootMount | event.FileRootFS}
	upperFile = event.File{Magic: event.MagicOverlay, Flags: imageFile.Flags | event.FileOverlayUpper}
)

// minimalEvent has only what every exec has.
func minimalEvent() event.Event {
	return event.Event{Time: execTime, PID: 10, ParentPID: 1, VPID: 10, UID: 4321, RUID: 4321, GID: 4321, Argc: 0}
}

type flatRecord struct {
	resource map[string]any
	scope    pcommon.InstrumentationScope
	rl       plog.ResourceLogs
	sl       plog.ScopeLogs
	lr       plog.LogRecord
	attrs    map[string]any
}

func flattenLogs(ld plog.Logs) []flatRecord {
	var out []flatRecord
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			sl := rl.ScopeLogs().At(j)
			for k := 0; k < sl.LogRecords().Len(); k++ {
				lr := sl.LogRecords().At(k)
				out = append(out, flatRecord{
					resource: rl.Resource().Attributes().AsRaw(), scope: sl.Scope(),
					rl: rl, sl: sl, lr: lr, attrs: lr.Attributes().AsRaw(),
				})
			}
		}
	}
	return out
}

func convertOne(t *testing.T, ev event.Event) flatRecord {
	t.Helper()
	c := newTestConverter(t, true)
	c.Append(&ev)
	recs := flattenLogs(c.Take())
	require.Len(t, recs, 1)
	return recs[0]
}

func TestConvertFullRecord(t *testing.T) {
	r := convertOne(t, fullEvent())

	assert.Equal(t, semconv.SchemaURL, r.rl.SchemaUrl())
	assert.Equal(t, semconv.SchemaURL, r.sl.SchemaUrl())
	assert.Equal(t, metadata.ScopeName, r.scope.Name())
	assert.Equal(t, "v1.2.3", r.scope.Version())
	assert.Equal(t, map[string]any{
		"host.name":              "node-1",
		"container.id":           testID1,
		"container.runtime.name": "docker",
	}, r.resource)

	assert.Equal(t, "process.exec", r.lr.EventName())
	assert.Equal(t, execTime, r.lr.Timestamp().AsTime())
	assert.Equal(t, readTime, r.lr.ObservedTimestamp().AsTime())
	assert.Equal(t, "cc -O2 main.c", r.lr.Body().Str())
	assert.Equal(t, map[string]any{
		"process.pid":                             int64(4242),
		"process.parent_pid":                      int64(4200),
		"process.vpid":                            int64(7),
		"process.executable.path":                 "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
		"process.executable.name":                 "cc1",
		"process.command":                         "cc",
		"process.command_args":                    []any{"cc", "-O2", "main.c"},
		"process.args_count":                      int64(5),
		"process.working_directory":               "/src",
		"process.user.id":                         int64(1000),
		"process.real_user.id":                    int64(0),
		"process.user.name":                       "alice",
		"process.linux.cgroup":                    "0::" + dockerCgroup,
		"compilerwatch.process.group.id":          int64(1001),
		"compilerwatch.exec.filename":             "/usr/bin/cc",
		"compilerwatch.exec.comm":                 "cc1",
		"compilerwatch.parent.executable.path":    "/usr/bin/gcc-12",
		"compilerwatch.parent.command":            "gcc",
		"compilerwatch.ancestors":                 []any{"4200:gcc", "1:bash"},
		"compilerwatch.ancestors.executable.name": []any{"gcc-12", ""},
		"compilerwatch.truncated":                 []any{"args", "ancestors"},
		"compilerwatch.executable.origin":         "upper_layer",
		"compilerwatch.parent.executable.origin":  "image",
		"process.interactive":                     true,
		"compilerwatch.process.in_init_tree":      false,
	}, r.attrs)
}

func TestConvertMinimalRecord(t *testing.T) {
	r := convertOne(t, minimalEvent())
	assert.Equal(t, map[string]any{"host.name": "node-1"}, r.resource, "host process: host.name only")
	assert.Equal(t, "", r.lr.Body().Str())
	// Numbers are always there; every optional attribute is absent.
	assert.Equal(t, map[string]any{
		"process.pid":                    int64(10),
		"process.parent_pid":             int64(1),
		"process.args_count":             int64(0),
		"process.interactive":            false,
		"process.user.id":                int64(4321),
		"process.real_user.id":           int64(4321),
		"compilerwatch.process.group.id": int64(4321),
	}, r.attrs)
}

func TestConvertAttributeRules(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*event.Event)
		key    string
		want   any // nil: absent
	}{
		{"vpid equal to pid", func(e *event.Event) { e.VPID = e.PID }, "process.vpid", nil},
		{"vpid unknown", func(e *event.Event) { e.VPID = 0 }, "process.vpid", nil},
		{"vpid differs", func(e *event.Event) { e.VPID = 1 }, "process.vpid", int64(1)},
		{"user name resolvable", func(e *event.Event) { e.UID, e.NSUID = 0, 0 }, "process.user.name", "root"},
		{"user name unknown", func(e *event.Event) { e.UID, e.NSUID = 5555, 5555 }, "process.user.name", nil},
		{"user name is the effective uid's", func(e *event.Event) { e.UID, e.NSUID, e.RUID = 0, 0, 1000 }, "process.user.name", "root"},
		{"container user: the uid in its user namespace", func(e *event.Event) { e.UID, e.NSUID = 101000, 0 }, "process.user.name", "root"},
		{"container user: namespace uid unknown", func(e *event.Event) { e.NSUIDKnown = false }, "process.user.name", nil},
		{"host user: the kernel's uid", func(e *event.Event) { e.CgroupPath, e.UID, e.NSUID = hostCgroup, 0, 1000 }, "process.user.name", "root"},
		{"no terminal", func(e *event.Event) { e.Interactive = false }, "process.interactive", false},
		{"terminal", func(e *event.Event) { e.Interactive = true }, "process.interactive", true},
		{"in the init tree", func(e *event.Event) { e.InInitTree = event.Yes }, "compilerwatch.process.in_init_tree", true},
		{"entered from outside", func(e *event.Event) { e.InInitTree = event.No }, "compilerwatch.process.in_init_tree", false},
		{"init tree unknown", func(e *event.Event) { e.InInitTree = event.Unknown }, "compilerwatch.process.in_init_tree", nil},
		{"host process: no init tree", func(e *event.Event) { e.CgroupPath, e.InInitTree = hostCgroup, event.Yes }, "compilerwatch.process.in_init_tree", nil},
		{"no truncation", func(e *event.Event) { e.Truncated = 0 }, "compilerwatch.truncated", nil},
		{"every truncation", func(e *event.Event) {
			e.Truncated = event.TruncArgs | event.TruncPath | event.TruncCwd | event.TruncParentPath | event.TruncFilename | event.TruncCgroup | event.TruncAncestors
		}, "compilerwatch.truncated", []any{"args", "path", "cwd", "parent_path", "filename", "cgroup", "ancestors"}},
		{"origin", func(*event.Event) {}, "compilerwatch.executable.origin", "upper_layer"},
		{"parent origin", func(*event.Event) {}, "compilerwatch.parent.executable.origin", "image"},
		{"origin unknown", func(e *event.Event) { e.ExeFile = event.File{} }, "compilerwatch.executable.origin", nil},
		{"parent origin unknown", func(e *event.Event) { e.ParentFile = event.File{} }, "compilerwatch.parent.executable.origin", nil},
		{"memfd origin", func(e *event.Event) { e.ExeFile.Flags |= event.FileMemfd }, "compilerwatch.executable.origin", "memfd"},
		{"own non-overlay root: no origin", func(e *event.Event) {
			e.ExeFile = event.File{Magic: 0x9123683e, Flags: event.FileRootMount | event.FileRootFS}
		}, "compilerwatch.executable.origin", nil},
		{"host process: host", func(e *event.Event) {
			e.CgroupPath, e.ParentFile = hostCgroup, event.File{Magic: 0xef53, Flags: event.FileRootMount | event.FileRootFS}
		}, "compilerwatch.parent.executable.origin", "host"},
		{"no ancestors: no parent command", func(e *event.Event) { e.Ancestors = nil }, "compilerwatch.parent.command", nil},
		{"no ancestors: no list", func(e *event.Event) { e.Ancestors = nil }, "compilerwatch.ancestors", nil},
		{"no ancestors: no executable names", func(e *event.Event) { e.Ancestors = nil }, "compilerwatch.ancestors.executable.name", nil},
		{"empty argv", func(e *event.Event) { e.Args = nil }, "process.command_args", nil},
		{"empty argv: no command", func(e *event.Event) { e.Args = nil }, "process.command", nil},
		{"empty argv[0]", func(e *event.Event) { e.Args = []string{"", "x"} }, "process.command", nil},
		{"args_count is argc, not len(args)", func(e *event.Event) { e.Argc = 100000 }, "process.args_count", int64(100000)},
		{"no exe path: no name", func(e *event.Event) { e.ExePath = "" }, "process.executable.name", nil},
		{"exe without slash", func(e *event.Event) { e.ExePath = "memfd:x (deleted)" }, "process.executable.name", "memfd:x (deleted)"},
		{"cgroup v1 path", func(e *event.Event) { e.CgroupPath, e.CgroupV1 = "/docker/"+testID1, true }, "process.linux.cgroup", "/docker/" + testID1},
		{"no cgroup", func(e *event.Event) { e.CgroupPath = "" }, "process.linux.cgroup", nil},
		{"no cwd", func(e *event.Event) { e.Cwd = "" }, "process.working_directory", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := fullEvent()
			tt.mutate(&ev)
			r := convertOne(t, ev)
			got, ok := r.attrs[tt.key]
			if tt.want == nil {
				assert.False(t, ok, "%s should be absent, got %v", tt.key, got)
				return
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConvertGroupsByContainer(t *testing.T) {
	c := newTestConverter(t, true)
	mk := func(pid uint32, cg string) event.Event {
		ev := minimalEvent()
		ev.PID, ev.CgroupPath = pid, cg
		return ev
	}
	c.appendAll([]event.Event{
		mk(1, hostCgroup), mk(2, dockerCgroup), mk(3, podCgroup), mk(4, dockerCgroup),
		mk(5, "/init.scope"), mk(6, podCgroup), mk(7, ""),
	})
	require.Equal(t, 7, c.Len())
	ld := c.Take()
	assert.Equal(t, 0, c.Len(), "Take starts a new batch")
	assert.Equal(t, convertStats{Records: 7}, c.Stats())

	rls := ld.ResourceLogs()
	require.Equal(t, 3, rls.Len(), "host + 2 containers, in order of first appearance")
	pids := func(i int) []int64 {
		var out []int64
		lrs := rls.At(i).ScopeLogs().At(0).LogRecords()
		for k := 0; k < lrs.Len(); k++ {
			v, _ := lrs.At(k).Attributes().Get("process.pid")
			out = append(out, v.Int())
		}
		return out
	}
	assert.Equal(t, map[string]any{"host.name": "node-1"}, rls.At(0).Resource().Attributes().AsRaw())
	assert.Equal(t, []int64{1, 5, 7}, pids(0))
	assert.Equal(t, map[string]any{"host.name": "node-1", "container.id": testID1, "container.runtime.name": "docker"},
		rls.At(1).Resource().Attributes().AsRaw())
	assert.Equal(t, []int64{2, 4}, pids(1))
	assert.Equal(t, map[string]any{"host.name": "node-1", "container.id": testID2, "container.runtime.name": "containerd", "k8s.pod.uid": testPod},
		rls.At(2).Resource().Attributes().AsRaw())
	assert.Equal(t, []int64{3, 6}, pids(2))
	for i := 0; i < rls.Len(); i++ {
		assert.Equal(t, 1, rls.At(i).ScopeLogs().Len())
	}

	// The next batch starts its own grouping.
	ev := mk(8, dockerCgroup)
	c.Append(&ev)
	ld2 := c.Take()
	require.Equal(t, 1, ld2.ResourceLogs().Len())
	assert.Equal(t, 1, ld2.LogRecordCount())
	assert.Equal(t, 7, ld.LogRecordCount(), "an earlier batch is not touched")
}

func TestConvertInvalidUTF8Everywhere(t *testing.T) {
	const bad = "a\xffb\xc3(c\xe2\x82"
	ev := fullEvent()
	ev.Comm, ev.Filename, ev.ExePath, ev.Cwd, ev.ParentExePath = bad, bad, "/x/"+bad, bad, bad
	ev.Args = []string{bad, "--password=" + bad, bad}
	ev.CgroupPath = "/system.slice/" + bad + ".service"
	ev.Ancestors = []event.Ancestor{{PID: 1, Comm: bad}}

	c := newLogsConverter("host\xff", "v\xfe", mapUsers{1000: "al\xffice"}, nil)
	c.Append(&ev)
	ld := c.Take()

	var check func(path string, v pcommon.Value)
	check = func(path string, v pcommon.Value) {
		switch v.Type() {
		case pcommon.ValueTypeStr:
			assert.True(t, utf8.ValidString(v.Str()), "%s = %q is not valid UTF-8", path, v.Str())
		case pcommon.ValueTypeSlice:
			for i := 0; i < v.Slice().Len(); i++ {
				check(fmt.Sprintf("%s[%d]", path, i), v.Slice().At(i))
			}
		}
	}
	checkMap := func(prefix string, m pcommon.Map) {
		for k, v := range m.All() {
			check(prefix+k, v)
		}
	}
	recs := flattenLogs(ld)
	require.Len(t, recs, 1)
	r := recs[0]
	checkMap("resource.", r.rl.Resource().Attributes())
	checkMap("record.", r.lr.Attributes())
	check("body", r.lr.Body())
	assert.True(t, utf8.ValidString(r.scope.Version()))
	assert.Equal(t, "a\uFFFDb\uFFFD(c\uFFFD", r.attrs["compilerwatch.exec.comm"], "invalid bytes become U+FFFD")
	assert.Equal(t, "al\uFFFDice", r.attrs["process.user.name"], "passwd names are sanitised on load, and again here")

	// The exporter must accept it: a proto round trip keeps every record.
	b, err := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	require.NoError(t, err)
	back, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(b)
	require.NoError(t, err)
	assert.Equal(t, 1, back.LogRecordCount())
}

func TestConvertRedacts(t *testing.T) {
	const secret = "hunter2-Zq8x"
	ev := fullEvent()
	ev.Args = []string{"mysql", "-uroot", "-p" + secret, "--password", secret, "https://bob:" + secret + "@db/x"}

	c := newTestConverter(t, true)
	c.Append(&ev)
	ld := c.Take()
	assert.Equal(t, 3, c.Stats().RedactedArgs)
	assert.Equal(t, 1, c.Stats().TruncatedRecords)

	r := flattenLogs(ld)[0]
	assert.Equal(t, []any{"mysql", "-uroot", "-p****", "--password", "****", "https://bob:****@db/x"}, r.attrs["process.command_args"])
	assert.Equal(t, "mysql -uroot -p**** --password **** https://bob:****@db/x", r.lr.Body().Str())

	b, err := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	require.NoError(t, err)
	assert.NotContains(t, string(b), secret, "the raw secret must appear nowhere in the exported bytes")
	j, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
	require.NoError(t, err)
	assert.NotContains(t, string(j), secret)

	// Disabled: the argv is kept as is.
	ev = fullEvent()
	ev.Args = []string{"app", "--password=" + secret}
	off := newTestConverter(t, false)
	off.Append(&ev)
	assert.Contains(t, flattenLogs(off.Take())[0].lr.Body().Str(), secret)
	assert.Equal(t, 0, off.Stats().RedactedArgs)
}

func TestCgroupCacheIsBounded(t *testing.T) {
	c := newTestConverter(t, true)
	for i := 0; i < cgroupCacheSize+10; i++ {
		ev := minimalEvent()
		ev.CgroupPath = fmt.Sprintf("/system.slice/unit-%d.service", i)
		c.Append(&ev)
		require.LessOrEqual(t, len(c.cgroups), cgroupCacheSize)
	}
	assert.Equal(t, 1, c.Take().ResourceLogs().Len(), "all host processes")
}

// benchEvents is a realistic mix: mostly container execs of a few
// containers, a few host execs, an occasional secret.
func benchEvents(n int) []event.Event {
	cgroups := []string{hostCgroup, dockerCgroup, podCgroup,
		"/kubepods/besteffort/pod" + testPod + "/" + strings.Repeat("ab", 32)}
	evs := make([]event.Event, n)
	for i := range evs {
		ev := fullEvent()
		ev.PID = uint32(10000 + i)
		ev.CgroupPath = cgroups[i%len(cgroups)]
		ev.Args = []string{"/usr/bin/gcc", "-O2", "-g", "-Wall", "-c", fmt.Sprintf("src/file%d.c", i), "-o", fmt.Sprintf("obj/file%d.o", i)}
		if i%64 == 0 {
			ev.Args = append(ev.Args, "--password=x")
		}
		evs[i] = ev
	}
	return evs
}

func BenchmarkConvert512(b *testing.B) {
	c := newTestConverter(b, true)
	src := benchEvents(512)
	evs := make([]event.Event, len(src))
	b.ReportAllocs()
	for b.Loop() {
		// Append redacts in place: give each round a fresh argv.
		for i := range src {
			evs[i] = src[i]
			evs[i].Args = append(evs[i].Args[:0:0], src[i].Args...)
		}
		c.appendAll(evs)
		_ = c.Take()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/event")
}
