package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/cgroup"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/redact"
)

// The record's EventName, and the attributes semconv has no name for.
const (
	execEventName = "process.exec"
	// containerSeenEventName names the record of a container's first exec
	// that "prefilter: compilers" did not send as an exec: the
	// compiler_detector starts the container's presence scan on it and
	// drops it.
	containerSeenEventName = "compilerwatch.container.seen"

	attrProcessGroupID      = "compilerwatch.process.group.id"
	attrExecFilename        = "compilerwatch.exec.filename"
	attrExecComm            = "compilerwatch.exec.comm"
	attrParentExePath       = "compilerwatch.parent.executable.path"
	attrParentCommand       = "compilerwatch.parent.command"
	attrAncestors           = "compilerwatch.ancestors"
	attrAncestorExeNames    = "compilerwatch.ancestors.executable.name"
	attrTruncated           = "compilerwatch.truncated"
	attrExecutableOrigin    = "compilerwatch.executable.origin"
	attrParentExecutableOri = "compilerwatch.parent.executable.origin"
	attrInInitTree          = "compilerwatch.process.in_init_tree"
)

// cgroupCacheSize bounds the path → container cache. A node runs far fewer
// distinct cgroups than this; when it fills, it is simply emptied.
const cgroupCacheSize = 4096

// convertStats counts what the converter did to one batch, for the
// receiver's telemetry.
type convertStats struct {
	Records          int // log records built
	TruncatedRecords int // records with at least one truncated field
	RedactedArgs     int // arguments in which a secret was masked
}

// logsConverter turns decoded exec events into plog.Logs, one event at a
// time: one ResourceLogs per container (plus one for host processes), each
// with one ScopeLogs. Redaction happens here, so nothing leaves the receiver
// unredacted. It is not safe for concurrent use: the read loop owns it.
type logsConverter struct {
	hostName     string
	scopeVersion string
	users        userResolver
	redactor     *redact.Redactor
	now          func() time.Time

	cgroups map[string]*cgroupEntry

	// The batch being built. groups and touched are reset by Take.
	ld      plog.Logs
	groups  map[resourceKey]plog.LogRecordSlice
	touched []*cgroupEntry // the entries whose records are in this batch
	pending convertStats
	last    convertStats

	scratch    []byte   // reused to format "pid:comm"
	truncNames []string // reused for compilerwatch.truncated
	// ancestors interns "pid:comm" strings: the same parents (a shell, make,
	// a compiler driver) appear in record after record. Bounded like cgroups.
	ancestors map[string]string
}

// resourceKey identifies a resource: "" and "" is the host.
type resourceKey struct {
	containerID, podUID string
}

type cgroupEntry struct {
	info cgroup.Info
	attr string // the process.linux.cgroup value

	// The records of this cgroup's resource in the batch being built, once
	// found in groups: one map lookup per record instead of two. Take
	// clears it, so no entry keeps a batch that was handed on.
	records   plog.LogRecordSlice
	haveBatch bool
}

// newReceiverConverter builds the receiver's converter from its config.
func newReceiverConverter(cfg *Config, set receiver.Settings) (*logsConverter, error) {
	r, err := redact.New(cfg.Redaction.Enabled, cfg.Redaction.Patterns)
	if err != nil {
		return nil, err
	}
	return newLogsConverter(hostName(), set.BuildInfo.Version, newRootUsers(), r), nil
}

// hostName is the node's name. In a DaemonSet the pod has its own UTS
// namespace, so os.Hostname would be the pod's name: prefer K8S_NODE_NAME,
// which the manifests set from the downward API.
func hostName() string {
	if n := os.Getenv("K8S_NODE_NAME"); n != "" {
		return n
	}
	n, _ := os.Hostname()
	return n
}

// newLogsConverter returns a converter. users may be nil (no user names); a
// nil or disabled redactor masks nothing.
func newLogsConverter(hostName, scopeVersion string, users userResolver, redactor *redact.Redactor) *logsConverter {
	return &logsConverter{
		hostName:     validUTF8(hostName),
		scopeVersion: validUTF8(scopeVersion),
		users:        users,
		redactor:     redactor,
		now:          time.Now,
		cgroups:      make(map[string]*cgroupEntry),
		ancestors:    make(map[string]string),
		ld:           plog.NewLogs(),
		groups:       make(map[resourceKey]plog.LogRecordSlice),
	}
}

// Len is the number of records in the batch being built.
func (c *logsConverter) Len() int { return c.pending.Records }

// Take returns the batch built so far and starts a new one. Stats then
// describes the returned batch.
func (c *logsConverter) Take() plog.Logs {
	ld := c.ld
	c.ld = plog.NewLogs()
	clear(c.groups)
	for _, e := range c.touched {
		e.records, e.haveBatch = plog.LogRecordSlice{}, false
	}
	clear(c.touched)
	c.touched = c.touched[:0]
	c.last, c.pending = c.pending, convertStats{}
	return ld
}

// ancestor returns b ("pid:comm") as an interned, valid UTF-8 string.
func (c *logsConverter) ancestor(b []byte) string {
	if s, ok := c.ancestors[string(b)]; ok { // the lookup does not allocate
		return s
	}
	if len(c.ancestors) >= cgroupCacheSize {
		clear(c.ancestors)
	}
	s := validUTF8(string(b))
	c.ancestors[string(b)] = s
	return s
}

// Stats describes the batch the last Take returned.
func (c *logsConverter) Stats() convertStats { return c.last }

// Append adds one exec record to the batch. It redacts ev.Args in place and
// replaces invalid UTF-8 in them, so ev must not be read for its raw argv
// afterwards.
func (c *logsConverter) Append(ev *event.Event) {
	observed := pcommon.NewTimestampFromTime(c.now())
	cg := c.cgroup(ev.CgroupPath, ev.CgroupV1)
	if ev.CgroupSeen && cg.info.ContainerID == "" && cg.info.PodUID == "" {
		return // a host cgroup: nothing to scan
	}
	if !cg.haveBatch {
		key := resourceKey{cg.info.ContainerID, cg.info.PodUID}
		records, ok := c.groups[key]
		if !ok {
			records = c.newResource(cg.info)
			c.groups[key] = records
		}
		cg.records, cg.haveBatch = records, true
		c.touched = append(c.touched, cg)
	}
	if ev.CgroupSeen {
		c.fillSeen(cg.records.AppendEmpty(), ev, cg.attr, observed)
		return
	}
	c.fill(cg.records.AppendEmpty(), ev, cg.attr, cg.info.ContainerID, observed)
}

// fillSeen writes the record of a container's first exec that the
// candidate filter did not send as an exec: not the exec, only what the
// presence scan needs to find the container's root (the pid and its
// ancestors) and the cgroup.
func (c *logsConverter) fillSeen(lr plog.LogRecord, ev *event.Event, cgroupAttr string, observed pcommon.Timestamp) {
	c.pending.Records++
	lr.SetEventName(containerSeenEventName)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(ev.Time))
	lr.SetObservedTimestamp(observed)
	attrs := lr.Attributes()
	attrs.EnsureCapacity(4)
	attrs.PutInt(string(semconv.ProcessPIDKey), int64(ev.PID))
	attrs.PutInt(string(semconv.ProcessParentPIDKey), int64(ev.ParentPID))
	if len(ev.Ancestors) > 0 {
		c.putAncestors(attrs, ev)
	}
	putValidStr(attrs, string(semconv.ProcessLinuxCgroupKey), cgroupAttr)
}

// putAncestors writes compilerwatch.ancestors, "pid:comm" nearest first.
func (c *logsConverter) putAncestors(attrs pcommon.Map, ev *event.Event) {
	anc := attrs.PutEmptySlice(attrAncestors)
	anc.EnsureCapacity(len(ev.Ancestors))
	for _, a := range ev.Ancestors {
		c.scratch = strconv.AppendUint(c.scratch[:0], uint64(a.PID), 10)
		c.scratch = append(c.scratch, ':')
		c.scratch = append(c.scratch, a.Comm...)
		anc.AppendEmpty().SetStr(c.ancestor(c.scratch))
	}
}

// appendAll appends a whole batch; tests and benchmarks use it.
func (c *logsConverter) appendAll(events []event.Event) {
	for i := range events {
		c.Append(&events[i])
	}
}

func (c *logsConverter) cgroup(path string, v1 bool) *cgroupEntry {
	if e, ok := c.cgroups[path]; ok {
		return e
	}
	if len(c.cgroups) >= cgroupCacheSize {
		clear(c.cgroups)
	}
	e := &cgroupEntry{info: cgroup.Parse(path)}
	switch {
	case path == "":
	case v1:
		// The v1 hierarchy id and controller are not captured: the path alone.
		e.attr = validUTF8(path)
	default:
		// As the cgroup v2 line of /proc/<pid>/cgroup reads.
		e.attr = "0::" + validUTF8(path)
	}
	c.cgroups[path] = e
	return e
}

func (c *logsConverter) newResource(info cgroup.Info) plog.LogRecordSlice {
	rl := c.ld.ResourceLogs().AppendEmpty()
	rl.SetSchemaUrl(semconv.SchemaURL)
	attrs := rl.Resource().Attributes()
	attrs.EnsureCapacity(4)
	attrs.PutStr(string(semconv.HostNameKey), c.hostName)
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
	sl.Scope().SetVersion(c.scopeVersion)
	return sl.LogRecords()
}

// fill writes one record. String attributes the kernel left empty are
// omitted rather than exported as "". containerID is the container the
// cgroup names, "" for the host: the origins and the user name depend on it.
func (c *logsConverter) fill(lr plog.LogRecord, ev *event.Event, cgroupAttr, containerID string, observed pcommon.Timestamp) {
	inContainer := containerID != ""
	c.pending.Records++
	if ev.Truncated != 0 {
		c.pending.TruncatedRecords++
	}

	// UTF-8 first: the redactor keeps valid input valid.
	for i, a := range ev.Args {
		ev.Args[i] = validUTF8(a)
	}
	c.pending.RedactedArgs += c.redactor.Args(ev.Args)

	lr.SetEventName(execEventName)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(ev.Time))
	lr.SetObservedTimestamp(observed)
	lr.Body().SetStr(strings.Join(ev.Args, " "))

	var userName string
	if c.users != nil {
		userName, _ = c.users.userName(ev, containerID)
	}

	attrs := lr.Attributes()
	attrs.EnsureCapacity(recordAttrCount(ev, userName, cgroupAttr, inContainer))
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
		args.EnsureCapacity(len(ev.Args))
		for _, a := range ev.Args {
			args.AppendEmpty().SetStr(a)
		}
	}
	attrs.PutInt(string(semconv.ProcessArgsCountKey), int64(ev.Argc))
	putStr(attrs, string(semconv.ProcessWorkingDirectoryKey), ev.Cwd)
	attrs.PutInt(string(semconv.ProcessUserIDKey), int64(ev.UID))
	attrs.PutInt(string(semconv.ProcessRealUserIDKey), int64(ev.RUID))
	putStr(attrs, string(semconv.ProcessUserNameKey), userName)
	attrs.PutInt(attrProcessGroupID, int64(ev.GID))
	putStr(attrs, attrExecFilename, ev.Filename)
	putStr(attrs, attrExecComm, ev.Comm)
	putStr(attrs, attrParentExePath, ev.ParentExePath)
	putStr(attrs, attrParentCommand, ev.ParentComm())
	if len(ev.Ancestors) > 0 {
		c.putAncestors(attrs, ev)
		// Parallel to the list above: what the kernel executes for each
		// ancestor, which, unlike its comm, the process cannot rename.
		names := attrs.PutEmptySlice(attrAncestorExeNames)
		names.EnsureCapacity(len(ev.Ancestors))
		for _, a := range ev.Ancestors {
			names.AppendEmpty().SetStr(validUTF8(a.ExeName))
		}
	}
	if ev.Truncated != 0 {
		c.truncNames = ev.Truncated.AppendNames(c.truncNames[:0])
		tr := attrs.PutEmptySlice(attrTruncated)
		tr.EnsureCapacity(len(c.truncNames))
		for _, n := range c.truncNames {
			tr.AppendEmpty().SetStr(n)
		}
	}
	// These three are valid UTF-8 already: constants, and the cgroup
	// value, validated when cached.
	putValidStr(attrs, attrExecutableOrigin, ev.ExeFile.Origin(inContainer).String())
	putValidStr(attrs, attrParentExecutableOri, ev.ParentFile.Origin(inContainer).String())
	putValidStr(attrs, string(semconv.ProcessLinuxCgroupKey), cgroupAttr)
	attrs.PutBool(string(semconv.ProcessInteractiveKey), ev.Interactive)
	if inInitTreeKnown(ev, inContainer) {
		attrs.PutBool(attrInInitTree, ev.InInitTree == event.Yes)
	}
}

// inInitTreeKnown says whether compilerwatch.process.in_init_tree is set:
// for a container's process whose pid namespace the kernel could walk out
// of. A host process, or one of a container sharing the node's pid
// namespace, has no first process of its own to descend from.
func inInitTreeKnown(ev *event.Event, inContainer bool) bool {
	return inContainer && ev.InInitTree != event.Unknown
}

// recordAttrCount is how many attributes fill puts on the record of ev, so
// that the map is allocated once at its exact size.
func recordAttrCount(ev *event.Event, userName, cgroupAttr string, inContainer bool) int {
	n := 7 // pid, parent pid, args count, uid, real uid, gid, interactive
	count := func(present bool) {
		if present {
			n++
		}
	}
	count(ev.VPID != 0 && ev.VPID != ev.PID)
	if ev.ExePath != "" {
		n += 2
	}
	if len(ev.Args) > 0 {
		n++
		count(ev.Args[0] != "")
	}
	count(ev.Cwd != "")
	count(userName != "")
	count(ev.Filename != "")
	count(ev.Comm != "")
	count(ev.ParentExePath != "")
	count(ev.ParentComm() != "")
	if len(ev.Ancestors) > 0 {
		n += 2
	}
	count(ev.Truncated != 0)
	count(ev.ExeFile.Origin(inContainer) != event.OriginUnknown)
	count(ev.ParentFile.Origin(inContainer) != event.OriginUnknown)
	count(cgroupAttr != "")
	count(inInitTreeKnown(ev, inContainer))
	return n
}

// putStr sets a string attribute, valid UTF-8, unless s is empty.
func putStr(attrs pcommon.Map, key, s string) {
	if s != "" {
		attrs.PutStr(key, validUTF8(s))
	}
}

// putValidStr is putStr for a string known to be valid UTF-8.
func putValidStr(attrs pcommon.Map, key, s string) {
	if s != "" {
		attrs.PutStr(key, s)
	}
}

// validUTF8 returns s, or a copy with each invalid byte sequence replaced by
// U+FFFD. The check costs no allocation for valid strings.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
