package ebpfexecreceiver

import (
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/plogtest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/redact"
)

var update = flag.Bool("update", false, "rewrite the converter's golden files in testdata/golden")

// goldenEvents is a table of events that exercises every branch of the
// converter: each attribute present and absent, invalid UTF-8 in every
// string, secrets, truncation, every origin, host and container cgroups of
// both versions, ancestors with and without executable names, and the
// benchmarks' own mixes.
func goldenEvents(t testing.TB) []event.Event {
	const bad = "a\xffb\xc3(c\xe2\x82"
	var evs []event.Event
	add := func(mut func(*event.Event)) {
		ev := fullEvent()
		mut(&ev)
		evs = append(evs, ev)
	}
	add(func(*event.Event) {})
	evs = append(evs, minimalEvent())
	add(func(e *event.Event) { e.VPID = e.PID })
	add(func(e *event.Event) { e.VPID = 0 })
	add(func(e *event.Event) { e.UID, e.NSUID = 0, 0 })
	add(func(e *event.Event) { e.UID, e.NSUID = 5555, 5555 })
	add(func(e *event.Event) { e.UID, e.NSUID, e.RUID = 0, 0, 1000 })
	add(func(e *event.Event) { e.UID, e.NSUID = 7, 7 }) // a user whose name is invalid UTF-8
	add(func(e *event.Event) { e.UID, e.NSUID = 8, 8 }) // a user whose name is ""
	// The uid in the container's user namespace names the user: unknown
	// (no name), another uid than the kernel's, and a host process, named
	// by the kernel's uid.
	add(func(e *event.Event) { e.NSUID, e.NSUIDKnown = 0, false })
	add(func(e *event.Event) { e.UID, e.NSUID = 101000, 0 })
	add(func(e *event.Event) { e.CgroupPath, e.UID, e.NSUID = hostCgroup, 0, 1000 })
	// Process context: in and out of the init tree, unknown, and a host
	// process, which has no in_init_tree.
	for _, it := range []event.Tristate{event.Yes, event.No, event.Unknown} {
		add(func(e *event.Event) { e.Interactive, e.InInitTree = false, it })
		add(func(e *event.Event) { e.CgroupPath, e.InInitTree = hostCgroup, it })
	}
	add(func(e *event.Event) { e.Truncated = 0 })
	add(func(e *event.Event) { e.Truncated = 0x7f })
	add(func(e *event.Event) { e.Truncated = event.TruncCgroup })
	add(func(e *event.Event) { e.Truncated = 0xffffffff })
	for _, cg := range []string{dockerCgroup, hostCgroup} {
		for _, f := range originFiles {
			add(func(e *event.Event) { e.CgroupPath, e.ExeFile, e.ParentFile = cg, f, imageFile })
			add(func(e *event.Event) { e.CgroupPath, e.ExeFile, e.ParentFile = cg, upperFile, f })
		}
	}
	add(func(e *event.Event) { e.Ancestors = nil })
	add(func(e *event.Event) { e.Ancestors = []event.Ancestor{{PID: 0}} })
	add(func(e *event.Event) {
		e.Ancestors = []event.Ancestor{{PID: 4294967295, Comm: "123456789012345"}, {PID: 1, Comm: bad}, {PID: 2, Comm: ""}}
	})
	add(func(e *event.Event) {
		e.Ancestors = []event.Ancestor{{PID: 7, Comm: "gcc", ExeName: "ld-linux-x86-64.so.2"}, {PID: 1, Comm: "sh", ExeName: bad}, {PID: 2, ExeName: "memfd:x"}}
	})
	add(func(e *event.Event) { e.Args = nil })
	add(func(e *event.Event) { e.Args = []string{} })
	add(func(e *event.Event) { e.Args = []string{""} })
	add(func(e *event.Event) { e.Args = []string{"", "x"} })
	add(func(e *event.Event) { e.Args = []string{"x", "", ""} })
	add(func(e *event.Event) { e.Argc = 100000 })
	add(func(e *event.Event) { e.ExePath = "" })
	add(func(e *event.Event) { e.ExePath = "memfd:x (deleted)" })
	add(func(e *event.Event) { e.ExePath = "/" })
	add(func(e *event.Event) { e.ExePath = "usr/bin/gcc" })
	add(func(e *event.Event) { e.CgroupPath, e.CgroupV1 = "/docker/"+testID1, true })
	add(func(e *event.Event) { e.CgroupPath = "" })
	add(func(e *event.Event) { e.CgroupPath, e.CgroupV1 = "", true })
	add(func(e *event.Event) { e.CgroupPath = hostCgroup })
	add(func(e *event.Event) { e.CgroupPath = podCgroup })
	add(func(e *event.Event) { e.CgroupPath = "/kubepods/besteffort/pod" + testPod })
	add(func(e *event.Event) { e.Cwd, e.Filename, e.ParentExePath, e.Comm = "", "", "", "" })
	add(func(e *event.Event) {
		e.Comm, e.Filename, e.ExePath, e.Cwd, e.ParentExePath = bad, bad, "/x/"+bad, bad, bad
		e.Args = []string{bad, "--password=" + bad, bad, "\xff"}
		e.CgroupPath = "/system.slice/" + bad + ".service"
		e.Ancestors = []event.Ancestor{{PID: 1, Comm: bad}}
	})
	add(func(e *event.Event) { e.ExePath = "/x/" + bad + "/y" })
	return append(evs, argvEvents(t)...)
}

// argvEvents are the events of goldenEvents whose argv redaction may change:
// secrets, a custom pattern, invalid UTF-8, and the benchmarks' own mixes.
func argvEvents(t testing.TB) []event.Event {
	const bad = "a\xffb\xc3(c\xe2\x82"
	var evs []event.Event
	add := func(mut func(*event.Event)) {
		ev := fullEvent()
		mut(&ev)
		evs = append(evs, ev)
	}
	add(func(e *event.Event) { e.Args = []string{bad, "--password=" + bad, bad, "\xff"} })
	add(func(e *event.Event) {
		e.Args = []string{"mysql", "-uroot", "-phunter2", "--password", "hunter2", "https://bob:pw@db/x"}
	})
	add(func(e *event.Event) { e.Args = []string{"curl", "-u", "bob:pw", "-H", "Authorization: Bearer abc"} })
	add(func(e *event.Event) { e.Args = []string{"app", "--token", "--password=x"} })
	add(func(e *event.Event) { e.Args = []string{"a b", " ", "c"} })
	add(func(e *event.Event) { e.Args = []string{"key", "sk-abcdef"} }) // the custom pattern
	// The benchmarks' mixes: every cgroup, a secret, and each kind of
	// pipeline record once (the rest repeat these with other pids).
	evs = append(evs, benchEvents(8)...)

	// The pipeline benchmark's records, through the real decoder.
	dec := event.NewDecoder()
	for _, raw := range pipelineRecords()[:16] {
		var ev event.Event
		require.NoError(t, dec.Decode(raw, 0, &ev))
		ev.Args = append([]string(nil), ev.Args...)
		ev.Ancestors = append([]event.Ancestor(nil), ev.Ancestors...)
		evs = append(evs, ev)
	}
	return evs
}

// originFiles are files as the kernel reports them, one per way to decide an origin.
var originFiles = []event.File{
	{},
	{Magic: event.MagicTmpfs, Flags: event.FileMemfd},
	{Magic: 0xef53, Flags: event.FileUnlinked | event.FileRootMount | event.FileRootFS},
	{Magic: event.MagicTmpfs},
	imageFile,
	upperFile,
	{Magic: event.MagicOverlay, Flags: event.FileRootMount | event.FileRootFS},
	{Magic: 0xef53, Flags: event.FileRootMount | event.FileRootFS},
	{Magic: 0xef53},
	{Magic: 0xef53, Flags: event.FileUserNSMount},
}

func cloneEvents(src []event.Event) []event.Event {
	out := make([]event.Event, len(src))
	for i := range src {
		out[i] = src[i]
		out[i].Args = append([]string(nil), src[i].Args...)
	}
	return out
}

// goldenUsers resolves a name, an invalid UTF-8 name and an empty name.
var goldenUsers = mapUsers{0: "root", 1000: "alice", 7: "b\xffd", 8: ""}

// TestConvertGolden converts a table of events in one batch and compares the
// result, byte for byte in its proto form (resources, scopes, records,
// attribute order, values and types), with testdata/golden/<name>.yaml.
// -update rewrites the files from the converter as it is.
func TestConvertGolden(t *testing.T) {
	tests := []struct {
		name     string
		redactOn bool
		host     string
		events   func(testing.TB) []event.Event
	}{
		{name: "redaction_on", redactOn: true, host: "node-1", events: goldenEvents},
		// Only what redaction changes, so the two files do not repeat each other.
		{name: "redaction_off", redactOn: false, host: "host\xff", events: argvEvents},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newGoldenConverter(t, tt.redactOn, tt.host)
			c.appendAll(cloneEvents(tt.events(t)))
			got := c.Take()

			path := filepath.Join("testdata", "golden", tt.name+".yaml")
			if *update {
				require.NoError(t, golden.WriteLogs(t, path, got))
			}
			want, err := golden.ReadLogs(path)
			require.NoError(t, err)
			requireSameLogs(t, want, got, path)
		})
	}
}

func newGoldenConverter(t testing.TB, redactOn bool, host string) *logsConverter {
	r, err := redact.New(redactOn, []string{`sk-[a-z]+`})
	require.NoError(t, err)
	c := newLogsConverter(host, "v\xfe1", goldenUsers, r)
	c.now = func() time.Time { return readTime }
	return c
}

// TestConvertBatchingInvariant checks that how events are cut into batches,
// and the caches one converter keeps from batch to batch, change nothing:
// converting goldenEvents twice, one event per batch, in batches of 37, or all
// at once, gives each resource the same records in the same order.
func TestConvertBatchingInvariant(t *testing.T) {
	for _, redactOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("redaction=%v", redactOn), func(t *testing.T) {
			evs := goldenEvents(t)
			evs = append(evs, evs...) // the second time round, every cache is warm
			convert := func(size int) map[string][]string {
				c := newGoldenConverter(t, redactOn, "node-1")
				out := map[string][]string{}
				for from := 0; from < len(evs); from += size {
					batch := evs[from:min(from+size, len(evs))]
					c.appendAll(cloneEvents(batch))
					require.Equal(t, len(batch), c.Len())
					regroup(t, c.Take(), out)
				}
				return out
			}
			want := convert(len(evs))
			half := map[string][]string{}
			c := newGoldenConverter(t, redactOn, "node-1")
			c.appendAll(cloneEvents(evs[:len(evs)/2]))
			regroup(t, c.Take(), half)
			for k, recs := range want {
				require.Equal(t, append(half[k], half[k]...), recs, "the warm second pass differs from the first")
			}
			for _, size := range []int{1, 37} {
				require.Equal(t, want, convert(size), "batches of %d", size)
			}
		})
	}
}

// regroup appends each record of ld, as proto bytes, to the list of its
// resource and scope (also as proto bytes) in out.
func regroup(t *testing.T, ld plog.Logs, out map[string][]string) {
	t.Helper()
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			head := plog.NewLogs()
			hrl := head.ResourceLogs().AppendEmpty()
			rl.Resource().CopyTo(hrl.Resource())
			hrl.SetSchemaUrl(rl.SchemaUrl())
			hsl := hrl.ScopeLogs().AppendEmpty()
			sl.Scope().CopyTo(hsl.Scope())
			hsl.SetSchemaUrl(sl.SchemaUrl())
			key := string(marshal(t, head))
			for _, lr := range sl.LogRecords().All() {
				one := plog.NewLogs()
				lr.CopyTo(one.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty())
				out[key] = append(out[key], string(marshal(t, one)))
			}
		}
	}
}

func marshal(t *testing.T, ld plog.Logs) []byte {
	t.Helper()
	b, err := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	require.NoError(t, err)
	return b
}

func requireSameLogs(t *testing.T, want, got plog.Logs, name string) {
	t.Helper()
	if string(marshal(t, want)) == string(marshal(t, got)) {
		return
	}
	require.NoError(t, plogtest.CompareLogs(want, got), name)
	// Equal but for order or types: show the first record that differs.
	w, g := map[string][]string{}, map[string][]string{}
	regroup(t, want, w)
	regroup(t, got, g)
	for k, recs := range w {
		for i := range min(len(recs), len(g[k])) {
			if recs[i] != g[k][i] {
				require.Equal(t, jsonRecord(t, recs[i]), jsonRecord(t, g[k][i]), "%s: record %d of a resource differs", name, i)
			}
		}
	}
	require.Fail(t, "the proto bytes differ", name)
}

// jsonRecord turns a record marshalled by regroup into JSON.
func jsonRecord(t *testing.T, b string) string {
	t.Helper()
	ld, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs([]byte(b))
	require.NoError(t, err)
	j, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
	require.NoError(t, err)
	return string(j)
}

// TestRecordAttrCount checks that recordAttrCount, which sizes each record's
// attribute map, counts exactly what fill puts on the record of every golden
// event, and that the table holds a record with every attribute fill writes,
// so that a new attribute fails here until it is counted.
func TestRecordAttrCount(t *testing.T) {
	c := newLogsConverter("node-1", "v1", goldenUsers, nil)
	keys := map[string]bool{}
	most := 0
	for i, ev := range goldenEvents(t) {
		cg := c.cgroup(ev.CgroupPath, ev.CgroupV1)
		name, _ := goldenUsers.userName(&ev, cg.info.ContainerID)
		want := recordAttrCount(&ev, name, cg.attr, cg.info.ContainerID != "")
		c.Append(&ev)
		lr := c.Take().ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
		require.Equal(t, want, lr.Attributes().Len(), "event %d", i)
		for k := range lr.Attributes().All() {
			keys[k] = true
		}
		most = max(most, want)
	}
	require.Len(t, keys, most, "one golden event gets every attribute")
}

// TestTakeReleasesBatch checks that no cgroup cache entry still points into
// a batch that Take handed on.
func TestTakeReleasesBatch(t *testing.T) {
	c := newTestConverter(t, true)
	c.appendAll(cloneEvents(goldenEvents(t)))
	require.NotEmpty(t, c.touched)
	ld := c.Take()
	require.Positive(t, ld.LogRecordCount())
	require.Empty(t, c.touched)
	for path, e := range c.cgroups {
		require.False(t, e.haveBatch, "cgroup %q", path)
		require.Equal(t, plog.LogRecordSlice{}, e.records, "cgroup %q", path)
	}
}
