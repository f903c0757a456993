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

// TestConvertMatchesReference checks the converter against referenceConvert
// on every event of the table, alone and in batches, and across batches of
// one converter (its caches persist from batch to batch).
func TestConvertMatchesReference(t *testing.T) {
	users := goldenUsers
	for _, redactOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("redaction=%v", redactOn), func(t *testing.T) {
			r, err := redact.New(redactOn, []string{`sk-[a-z]+`})
			require.NoError(t, err)
			for _, host := range []string{"node-1", "host\xff"} {
				c := newLogsConverter(host, "v\xfe1", users, r)
				c.now = func() time.Time { return readTime }
				evs := goldenEvents(t)
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

