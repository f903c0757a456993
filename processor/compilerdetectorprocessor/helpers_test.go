package compilerdetectorprocessor

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/presence"
)

const (
	testContainer  = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	testContainer2 = "aaaabbbbccccddddeeeeffff00001111aaaabbbbccccddddeeeeffff00001111"
	testPodUID     = "123e4567-e89b-42d3-a456-426614174000"
)

var testStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// execRec is one exec record as the ebpf_exec receiver emits it.
type execRec struct {
	exe          string
	file         string // defaults to exe
	argv         []string
	comm         string // defaults to catalog.Basename(file) cut to 15 bytes
	anc          []string
	ancExe       []string // the ancestors' executable names; a missing or empty one is the ancestor's comm
	parent       string   // parent executable path
	origin       string
	parentOrigin string
	interactive  bool  // process.interactive, on every record as the receiver writes it
	inInitTree   *bool // compilerwatch.process.in_init_tree when set
}

func appendExec(sl plog.ScopeLogs, pid int64, r execRec) plog.LogRecord {
	file := r.file
	if file == "" {
		file = r.exe
	}
	comm := r.comm
	if comm == "" {
		comm = catalog.Basename(file)
		if len(comm) > catalog.CommLen {
			comm = comm[:catalog.CommLen]
		}
	}
	argv := append([]string{file}, r.argv...)
	lr := sl.LogRecords().AppendEmpty()
	lr.SetEventName("process.exec")
	lr.SetTimestamp(pcommon.NewTimestampFromTime(testStart.Add(time.Duration(pid) * time.Millisecond)))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(testStart.Add(time.Second)))
	lr.Body().SetStr(strings.Join(argv, " "))
	a := lr.Attributes()
	a.PutInt("process.pid", pid)
	a.PutInt("process.parent_pid", pid-1)
	a.PutStr(attr.ExecutablePath, r.exe)
	a.PutStr(attr.ExecutableName, catalog.Basename(r.exe))
	a.PutStr(attr.Command, argv[0])
	_ = a.PutEmptySlice(attr.CommandArgs).FromRaw(toAny(argv))
	a.PutStr(attr.ExecFilename, file)
	a.PutStr(attr.ExecComm, comm)
	_ = a.PutEmptySlice(attr.Ancestors).FromRaw(toAny(r.anc))
	ancExe := make([]string, len(r.anc))
	for i, anc := range r.anc {
		if i < len(r.ancExe) && r.ancExe[i] != "" {
			ancExe[i] = r.ancExe[i]
		} else {
			ancExe[i] = anc[strings.IndexByte(anc, ':')+1:]
		}
	}
	_ = a.PutEmptySlice(attr.AncestorExeNames).FromRaw(toAny(ancExe))
	if r.parent != "" {
		a.PutStr(attr.ParentExecutable, r.parent)
	}
	if len(r.anc) > 0 {
		a.PutStr(attr.ParentCommand, r.anc[0][strings.IndexByte(r.anc[0], ':')+1:])
	}
	if r.origin != "" {
		a.PutStr(attr.ExecutableOrigin, r.origin)
	}
	if r.parentOrigin != "" {
		a.PutStr(attr.ParentExecutableOrigin, r.parentOrigin)
	}
	a.PutBool(attr.Interactive, r.interactive)
	if r.inInitTree != nil {
		a.PutBool(attr.InInitTree, *r.inInitTree)
	}
	return lr
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// appendResource adds a ResourceLogs for a container (id != "") or the host, with extra resource attributes.
func appendResource(ld plog.Logs, containerID string, extra map[string]string) plog.ScopeLogs {
	rl := ld.ResourceLogs().AppendEmpty()
	rl.SetSchemaUrl(semconv.SchemaURL)
	ra := rl.Resource().Attributes()
	ra.PutStr(attr.HostName, "node-1")
	if containerID != "" {
		ra.PutStr(attr.ContainerID, containerID)
		ra.PutStr("container.runtime.name", "containerd")
	}
	for k, v := range extra {
		ra.PutStr(k, v)
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.SetSchemaUrl(semconv.SchemaURL)
	sl.Scope().SetName("github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver")
	return sl
}

// Common execs.
var (
	bashAnc = []string{"100:bash", "1:sh"}
	recGCC  = execRec{exe: "/usr/bin/x86_64-linux-gnu-gcc-12", file: "/usr/bin/gcc", argv: []string{"-c", "main.c"}, anc: bashAnc, parent: "/usr/bin/bash"}
	recCC1  = execRec{exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", argv: []string{"-quiet", "main.c"}, anc: []string{"101:gcc", "100:bash"}, ancExe: []string{"x86_64-linux-gnu-gcc-12"}, parent: "/usr/bin/x86_64-linux-gnu-gcc-12"}
	recAs   = execRec{exe: "/usr/bin/x86_64-linux-gnu-as", file: "/usr/bin/as", anc: []string{"101:gcc", "100:bash"}, ancExe: []string{"x86_64-linux-gnu-gcc-12"}, parent: "/usr/bin/x86_64-linux-gnu-gcc-12"}
	recSh   = execRec{exe: "/usr/bin/dash", file: "/bin/sh", argv: []string{"-c", "echo hi"}, anc: bashAnc, parent: "/usr/bin/bash"}
)

// under returns stage r run by the driver whose exec record has pid: its nearest ancestor becomes that process,
// with the driver's comm and executable name.
func under(r execRec, pid int64, driver execRec) execRec {
	comm := driver.comm
	if comm == "" {
		file := driver.file
		if file == "" {
			file = driver.exe
		}
		comm = catalog.Basename(file)
	}
	r.anc = append([]string{strconv.FormatInt(pid, 10) + ":" + comm}, r.anc[min(1, len(r.anc)):]...)
	r.ancExe = append([]string{catalog.Basename(driver.exe)}, r.ancExe[min(1, len(r.ancExe)):]...)
	r.parent = driver.exe
	return r
}

// clock is a settable time source for the processor.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: testStart} }

// harness is a processor wired to a sink, a fake clock and test telemetry.
type harness struct {
	p    *compilerDetector
	sink *consumertest.LogsSink
	tel  *componenttest.Telemetry
	clk  *clock
}

func newHarness(t *testing.T, cfg *Config, enr metadataSource) *harness {
	t.Helper()
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.BuildInfo.Version = "test"
	sink := new(consumertest.LogsSink)
	p, err := newCompilerDetector(set, cfg, sink, enr)
	require.NoError(t, err)
	clk := newClock()
	p.now = clk.now
	return &harness{p: p, sink: sink, tel: tel, clk: clk}
}

// counter returns the value of one of the processor's counters (0 when never recorded).
func (h *harness) counter(t *testing.T, name string) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is not an int sum", name)
	var v int64
	for _, dp := range sum.DataPoints {
		v += dp.Value
	}
	return v
}

// flagged returns every output record that carries a compiler finding, in order.
func flagged(lds []plog.Logs) []plog.LogRecord {
	var out []plog.LogRecord
	eachRecord(lds, func(_ pcommon.Map, lr plog.LogRecord) {
		if _, ok := lr.Attributes().Get(attr.CompilerName); ok {
			out = append(out, lr)
		}
	})
	return out
}

func eachRecord(lds []plog.Logs, f func(res pcommon.Map, lr plog.LogRecord)) {
	for _, ld := range lds {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					f(rl.Resource().Attributes(), lrs.At(k))
				}
			}
		}
	}
}

func strAttr(m pcommon.Map, k string) string {
	v, _ := m.Get(k)
	return v.AsString()
}

const (
	metricFlagged      = "otelcol_processor_compiler_detector_flagged_records"
	metricExcluded     = "otelcol_processor_compiler_detector_excluded_records"
	metricDeduplicated = "otelcol_processor_compiler_detector_deduplicated_records"
	metricDropped      = "otelcol_processor_compiler_detector_dropped_records"
	metricSummaries    = "otelcol_processor_compiler_detector_dedup_summary_records"
	metricHeld         = "otelcol_processor_compiler_detector_held_records"
	metricHoldExpired  = "otelcol_processor_compiler_detector_hold_expired_records"
	metricAsyncFailed  = "otelcol_processor_compiler_detector_async_emit_failed_records"
)

// setPresence replaces the harness's presence scanner, before Start, by one built from the processor's settings
// as change leaves them.
func (h *harness) setPresence(change func(*presence.Settings)) {
	set := h.p.presenceSettings()
	change(&set)
	h.p.presence = presence.New(set)
}
