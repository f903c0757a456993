package dedup

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
)

func TestCompactField(t *testing.T) {
	short := strings.Repeat("a", MaxKeyFieldBytes)
	assert.Equal(t, short, compactField(short))
	long := short + "b"
	c := compactField(long)
	assert.Len(t, c, 65)
	assert.Equal(t, byte(0), c[0])
	assert.NotEqual(t, c, compactField(short+"c"))
	assert.Equal(t, c, compactField(long))
}

// Key fields are bounded in size: a 4 KiB parent path costs no more than a short one beyond its digest, and the
// summary carries its deepest part.
func TestLongKeyFieldsAreBounded(t *testing.T) {
	d := New(Config{Window: time.Hour, Key: []string{KeyContainerID, KeyCompiler, KeyParentExecutable},
		MaxKeys: DefaultMaxKeys, MaxKeysPerContainer: DefaultMaxKeysPerContainer}, zap.NewNop(), "v")
	res := pcommon.NewMap()
	res.PutStr(attr.ContainerID, strings.Repeat("a", 64))
	long := "/" + strings.Repeat("d/", 2000) + "sh"
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, parent := range []string{long, long, long + "x"} {
		d.Observe(res, now, Finding{Compiler: "gcc", Language: "c", ParentExe: parent, KeyParent: parent,
			Severity: plog.SeverityNumberWarn})
	}
	sz := d.Size()
	assert.Equal(t, 2, sz.Keys, "distinct long paths are distinct keys")
	assert.Less(t, sz.Bytes, 2*(EntryOverhead+3*MaxKeyFieldBytes)+OwnerOverhead+1024)

	ld, n := d.ExpireSummaries(now, true)
	require.Equal(t, 1, n, "one window has a suppressed repeat")
	p := attr.Str(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes(), attr.ParentExecutable)
	assert.LessOrEqual(t, len(p), MaxKeyFieldBytes)
	assert.True(t, strings.HasSuffix(long, "/"+p), "the deepest part of the path: %q", p)
}
