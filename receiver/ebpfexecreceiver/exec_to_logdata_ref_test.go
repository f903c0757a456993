package ebpfexecreceiver

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/cgroup"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/redact"
)

// referenceConvert is the converter as it was before its performance work
// (commit 3a139be), kept verbatim in logic and free of any cache, so that
// the optimised converter can be checked against it byte for byte: same
// resources, scopes, records, attribute order, values and types.
func referenceConvert(hostName, scopeVersion string, users userResolver, redactor *redact.Redactor, now time.Time, events []event.Event) plog.Logs {
	ld := plog.NewLogs()
	groups := map[resourceKey]plog.LogRecordSlice{}
	hostName, scopeVersion = validUTF8(hostName), validUTF8(scopeVersion)
	for i := range events {
		ev := events[i]
		ev.Args = append([]string(nil), ev.Args...)
		info := cgroup.Parse(ev.CgroupPath)
		var cgAttr string
		switch {
		case ev.CgroupPath == "":
		case ev.CgroupV1:
			cgAttr = validUTF8(ev.CgroupPath)
		default:
			cgAttr = "0::" + validUTF8(ev.CgroupPath)
		}
		key := resourceKey{info.ContainerID, info.PodUID}
		records, ok := groups[key]
		if !ok {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.SetSchemaUrl(semconv.SchemaURL)
			attrs := rl.Resource().Attributes()
			attrs.PutStr(string(semconv.HostNameKey), hostName)
			if info.ContainerID != "" {
				attrs.PutStr(string(semconv.ContainerIDKey), info.ContainerID)
				if info.Runtime != "" {
					attrs.PutStr(string(semconv.ContainerRuntimeNameKey), info.Runtime)
				}
			}
			if info.PodUID != "" {
				attrs.PutStr(string(semconv.K8SPodUIDKey), info.PodUID)
			}
			sl := rl.ScopeLogs().AppendEmpty()
			sl.SetSchemaUrl(semconv.SchemaURL)
			sl.Scope().SetName(metadata.ScopeName)
			sl.Scope().SetVersion(scopeVersion)
			records = sl.LogRecords()
			groups[key] = records
		}
		referenceFill(records.AppendEmpty(), &ev, users, redactor, cgAttr, info.ContainerID != "", pcommon.NewTimestampFromTime(now))
	}
	return ld
}

func referenceFill(lr plog.LogRecord, ev *event.Event, users userResolver, redactor *redact.Redactor, cgroupAttr string, inContainer bool, observed pcommon.Timestamp) {
	for i, a := range ev.Args {
		ev.Args[i] = validUTF8(a)
	}
	redactor.Args(ev.Args)

	lr.SetEventName(execEventName)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(ev.Time))
	lr.SetObservedTimestamp(observed)
	lr.Body().SetStr(strings.Join(ev.Args, " "))

	put := func(k, s string) {
		if s != "" {
			lr.Attributes().PutStr(k, validUTF8(s))
		}
	}
	attrs := lr.Attributes()
	attrs.PutInt(string(semconv.ProcessPIDKey), int64(ev.PID))
	attrs.PutInt(string(semconv.ProcessParentPIDKey), int64(ev.ParentPID))
	if ev.VPID != 0 && ev.VPID != ev.PID {
		attrs.PutInt(string(semconv.ProcessVpidKey), int64(ev.VPID))
	}
	if ev.ExePath != "" {
		exe := validUTF8(ev.ExePath)
		attrs.PutStr(string(semconv.ProcessExecutablePathKey), exe)
		attrs.PutStr(string(semconv.ProcessExecutableNameKey), exe[strings.LastIndexByte(exe, '/')+1:])
	}
	if len(ev.Args) > 0 {
		if ev.Args[0] != "" {
			attrs.PutStr(string(semconv.ProcessCommandKey), ev.Args[0])
		}
		args := attrs.PutEmptySlice(string(semconv.ProcessCommandArgsKey))
		for _, a := range ev.Args {
			args.AppendEmpty().SetStr(a)
		}
	}
	attrs.PutInt(string(semconv.ProcessArgsCountKey), int64(ev.Argc))
	put(string(semconv.ProcessWorkingDirectoryKey), ev.Cwd)
	attrs.PutInt(string(semconv.ProcessUserIDKey), int64(ev.UID))
	attrs.PutInt(string(semconv.ProcessRealUserIDKey), int64(ev.RUID))
	if users != nil {
		if name, ok := users.userName(ev.UID); ok {
			put(string(semconv.ProcessUserNameKey), name)
		}
	}
	attrs.PutInt(attrProcessGroupID, int64(ev.GID))
	put(attrExecFilename, ev.Filename)
	put(attrExecComm, ev.Comm)
	put(attrParentExePath, ev.ParentExePath)
	put(attrParentCommand, ev.ParentComm())
	if len(ev.Ancestors) > 0 {
		anc := attrs.PutEmptySlice(attrAncestors)
		for _, a := range ev.Ancestors {
			anc.AppendEmpty().SetStr(validUTF8(strconv.FormatUint(uint64(a.PID), 10) + ":" + a.Comm))
		}
		names := attrs.PutEmptySlice(attrAncestorExeNames)
		for _, a := range ev.Ancestors {
			names.AppendEmpty().SetStr(validUTF8(a.ExeName))
		}
	}
	if names := ev.Truncated.Names(); len(names) > 0 {
		tr := attrs.PutEmptySlice(attrTruncated)
		for _, n := range names {
			tr.AppendEmpty().SetStr(n)
		}
	}
	put(attrExecutableOrigin, ev.ExeFile.Origin(inContainer).String())
	put(attrParentExecutableOri, ev.ParentFile.Origin(inContainer).String())
	put(string(semconv.ProcessLinuxCgroupKey), cgroupAttr)
}

// referenceEvents is a table of events that exercises every branch of the
// converter: each attribute present and absent, invalid UTF-8 in every
// string, secrets, truncation, every origin, host and container cgroups of
// both versions, and the benchmarks' own mixes.
func referenceEvents(t testing.TB) []event.Event {
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
	add(func(e *event.Event) { e.UID = 0 })
	add(func(e *event.Event) { e.UID = 5555 })
	add(func(e *event.Event) { e.UID, e.RUID = 0, 1000 })
	add(func(e *event.Event) { e.UID = 7 }) // a user whose name is invalid UTF-8
	add(func(e *event.Event) { e.UID = 8 }) // a user whose name is ""
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
	add(func(e *event.Event) {
		e.Args = []string{"mysql", "-uroot", "-phunter2", "--password", "hunter2", "https://bob:pw@db/x"}
	})
	add(func(e *event.Event) { e.Args = []string{"curl", "-u", "bob:pw", "-H", "Authorization: Bearer abc"} })
	add(func(e *event.Event) { e.Args = []string{"app", "--token", "--password=x"} })
	add(func(e *event.Event) { e.Args = []string{"a b", " ", "c"} })
	evs = append(evs, benchEvents(64)...)

	// The pipeline benchmark's records, through the real decoder.
	dec := event.NewDecoder()
	for _, raw := range pipelineRecords()[:64] {
		var ev event.Event
		require.NoError(t, dec.Decode(raw, 0, &ev))
		ev.Args = append([]string(nil), ev.Args...)
		ev.Ancestors = append([]event.Ancestor(nil), ev.Ancestors...)
		evs = append(evs, ev)
	}
	return evs
}

func cloneEvents(src []event.Event) []event.Event {
	out := make([]event.Event, len(src))
	for i := range src {
		out[i] = src[i]
		out[i].Args = append([]string(nil), src[i].Args...)
	}
	return out
}

// TestConvertMatchesReference checks the converter against referenceConvert
// on every event of the table, alone and in batches, and across batches of
// one converter (its caches persist from batch to batch).
func TestConvertMatchesReference(t *testing.T) {
	users := mapUsers{0: "root", 1000: "alice", 7: "b\xffd", 8: ""}
	for _, redactOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("redaction=%v", redactOn), func(t *testing.T) {
			r, err := redact.New(redactOn, []string{`sk-[a-z]+`})
			require.NoError(t, err)
			for _, host := range []string{"node-1", "host\xff"} {
				c := newLogsConverter(host, "v\xfe1", users, r)
				c.now = func() time.Time { return readTime }
				evs := referenceEvents(t)
				evs = append(evs, evs...) // the second time round, every cache is warm

				check := func(name string, batch []event.Event) {
					t.Helper()
					want := referenceConvert(host, "v\xfe1", users, r, readTime, batch)
					c.appendAll(cloneEvents(batch))
					require.Equal(t, len(batch), c.Len())
					got := c.Take()
					requireSameLogs(t, want, got, name)
				}
				for i := range evs {
					check(fmt.Sprintf("event %d", i), evs[i:i+1])
				}
				for from := 0; from < len(evs); from += 37 {
					check(fmt.Sprintf("batch from %d", from), evs[from:min(from+37, len(evs))])
				}
				check("all", evs)
			}
		})
	}
}

func requireSameLogs(t *testing.T, want, got plog.Logs, name string) {
	t.Helper()
	wantB, err := (&plog.ProtoMarshaler{}).MarshalLogs(want)
	require.NoError(t, err)
	gotB, err := (&plog.ProtoMarshaler{}).MarshalLogs(got)
	require.NoError(t, err)
	if string(wantB) != string(gotB) {
		wantJ, _ := (&plog.JSONMarshaler{}).MarshalLogs(want)
		gotJ, _ := (&plog.JSONMarshaler{}).MarshalLogs(got)
		require.Equal(t, string(wantJ), string(gotJ), "%s: output differs from the reference converter", name)
		require.Fail(t, "proto bytes differ, JSON equal", name)
	}
}

// TestRecordAttrCount checks that the converter sizes each record's
// attribute map exactly.
func TestRecordAttrCount(t *testing.T) {
	users := mapUsers{0: "root", 1000: "alice", 7: "b\xffd", 8: ""}
	c := newLogsConverter("node-1", "v1", users, nil)
	for i, ev := range referenceEvents(t) {
		name, _ := users.userName(ev.UID)
		cg := c.cgroup(ev.CgroupPath, ev.CgroupV1)
		want := recordAttrCount(&ev, name, cg.attr, cg.info.ContainerID != "")
		c.Append(&ev)
		lr := c.Take().ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
		require.Equal(t, lr.Attributes().Len(), want, "event %d", i)
		require.LessOrEqual(t, want, recordAttrCap, "event %d", i)
	}
}

// TestTakeReleasesBatch checks that no cgroup cache entry still points into
// a batch that Take handed on.
func TestTakeReleasesBatch(t *testing.T) {
	c := newTestConverter(t, true)
	c.appendAll(cloneEvents(referenceEvents(t)))
	require.NotEmpty(t, c.touched)
	ld := c.Take()
	require.Positive(t, ld.LogRecordCount())
	require.Empty(t, c.touched)
	for path, e := range c.cgroups {
		require.False(t, e.haveBatch, "cgroup %q", path)
		require.Equal(t, plog.LogRecordSlice{}, e.records, "cgroup %q", path)
	}
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
