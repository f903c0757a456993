package compilerdetectorprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

// extensionHost is a host that runs the given extensions.
type extensionHost map[component.ID]component.Component

func (h extensionHost) GetExtensions() map[component.ID]component.Component { return h }

// TestPublishCatalog: at Start the processor publishes its resolved catalog (built-ins and compilers.entries) to
// the compiler_catalog extension, and withdraws it at Shutdown.
func TestPublishCatalog(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ScanForCompilers = false
	cfg.Compilers.Entries = []CompilerEntry{{Name: "mycc", Language: "c", Executables: []string{"mycc", "/opt/bin/zcc"}}}
	h := newHarness(t, cfg, nil)
	cat := catalogextension.New()
	host := extensionHost{component.MustNewID("compiler_catalog"): cat, component.MustNewID("health_check"): nil}
	require.NoError(t, h.p.Start(context.Background(), host))
	names, err := cat.CandidateNames()
	require.NoError(t, err)
	for _, n := range []string{"gcc", "cc1", "go", "mycc", "zcc"} {
		assert.Contains(t, names, n)
	}
	assert.Equal(t, h.p.matcher.CandidateNames(), names)
	require.NoError(t, h.p.Shutdown(context.Background()))
	_, err = cat.CandidateNames()
	assert.ErrorIs(t, err, catalogextension.ErrNothingPublished)
	assert.Equal(t, component.NewID(metadata.Type), h.p.id)
}

// appendSeen adds the receiver's compilerwatch.container.seen record of pid, with ancestors anc.
func appendSeen(sl plog.ScopeLogs, pid int64, anc ...string) {
	lr := sl.LogRecords().AppendEmpty()
	lr.SetEventName(attr.EventContainerSeen)
	lr.Attributes().PutInt(attr.ProcessPID, pid)
	s := lr.Attributes().PutEmptySlice(attr.Ancestors)
	for _, a := range anc {
		s.AppendEmpty().SetStr(a)
	}
}

// TestContainerSeenRecordsAreDropped: a compilerwatch.container.seen record is never passed on, whatever
// only_flagged says, and its resource goes when it held nothing else; exec records next to it are processed.
func TestContainerSeenRecordsAreDropped(t *testing.T) {
	for _, onlyFlagged := range []bool{false, true} {
		cfg := createDefaultConfig().(*Config)
		cfg.ScanForCompilers = false
		cfg.OnlyFlagged = onlyFlagged
		h := newHarness(t, cfg, nil)
		ld := plog.NewLogs()
		appendSeen(appendResource(ld, testContainer, nil), 10, "1:sh")
		sl := appendResource(ld, testContainer2, nil)
		appendSeen(sl, 11)
		appendExec(sl, 12, execRec{exe: "/usr/bin/gcc", file: "/usr/bin/gcc"})
		require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
		out := h.sink.AllLogs()
		require.Len(t, out, 1)
		require.Equal(t, 1, out[0].ResourceLogs().Len(), "the resource that held only a seen record goes")
		require.Equal(t, 1, out[0].LogRecordCount())
		eachRecord(out, func(_ pcommon.Map, lr plog.LogRecord) {
			assert.NotEqual(t, attr.EventContainerSeen, lr.EventName())
		})
		assert.Len(t, flagged(out), 1, "the exec beside it is flagged")
	}
}
