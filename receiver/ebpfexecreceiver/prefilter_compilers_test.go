package ebpfexecreceiver

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadatatest"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// fakeCatalog stands for the compiler_catalog extension.
type fakeCatalog struct {
	names []string
	err   error
}

func (fakeCatalog) Start(context.Context, component.Host) error { return nil }
func (fakeCatalog) Shutdown(context.Context) error              { return nil }
func (c fakeCatalog) CandidateNames() ([]string, error)         { return c.names, c.err }

// notACatalog is an extension of the right type without the catalog's method.
type notACatalog struct{}

func (notACatalog) Start(context.Context, component.Host) error { return nil }
func (notACatalog) Shutdown(context.Context) error              { return nil }

type fakeHost map[component.ID]component.Component

func (h fakeHost) GetExtensions() map[component.ID]component.Component { return h }

var (
	catalogID   = component.MustNewID(compilerCatalogType)
	catalogCI   = component.MustNewIDWithName(compilerCatalogType, "ci")
	healthCheck = component.MustNewID("health_check")
)

func TestCandidateNames(t *testing.T) {
	gcc := fakeCatalog{names: []string{"cc1", "gcc"}}
	for _, tt := range []struct {
		name string
		host fakeHost
		id   component.ID
		want []string
		err  string
	}{
		{name: "the only one", host: fakeHost{catalogID: gcc, healthCheck: nil}, want: gcc.names},
		{name: "named", host: fakeHost{catalogID: fakeCatalog{}, catalogCI: gcc}, id: catalogCI, want: gcc.names},
		{name: "none", host: fakeHost{healthCheck: nil},
			err: `"prefilter: compilers" reads the catalog from a compiler_catalog extension, and the collector runs none`},
		{name: "named, absent", host: fakeHost{catalogID: gcc}, id: catalogCI,
			err: `reads the catalog from extension "compiler_catalog/ci", which the collector does not run`},
		{name: "several", host: fakeHost{catalogID: gcc, catalogCI: gcc},
			err: `several compiler_catalog extensions ([compiler_catalog compiler_catalog/ci]); name one in "compiler_catalog"`},
		{name: "not a catalog", host: fakeHost{catalogID: notACatalog{}},
			err: `extension "compiler_catalog" does not hold a compiler catalog`},
		{name: "nothing published", host: fakeHost{catalogID: fakeCatalog{err: errors.New("no compiler_detector has published")}},
			err: `"prefilter: compilers": no compiler_detector has published`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := candidateNames(tt.host, tt.id)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestStartWithPrefilterCompilers: the catalog's names reach the kernel's filter, and the kernel's counts of
// both filters become filtered_execs by prefilter; a cgroup's first non-candidate exec, sent only as "container
// seen", counts as filtered.
func TestStartWithPrefilterCompilers(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Prefilter = []string{PrefilterCompilers}
	r, src, tel := newFakeReceiver(t, cfg, consumertest.NewNop())
	var loaded probe.Config
	r.load = func(c probe.Config) (source, error) { loaded = c; return src, nil }
	src.stats = probe.Stats{Execs: 100, Filtered: 7, FilteredNonCandidate: 90, CgroupSeen: 2}

	require.Error(t, r.Start(context.Background(), componenttest.NewNopHost()), "no catalog, no start")
	host := fakeHost{catalogID: fakeCatalog{names: []string{"cc1", "gcc", "go"}}}
	require.NoError(t, r.Start(context.Background(), host))
	require.NoError(t, r.Shutdown(context.Background()))
	require.NotNil(t, loaded.Candidates)
	assert.Equal(t, 3, loaded.Candidates.Names())
	assert.True(t, loaded.Candidates.MayMatch("x86_64-linux-gnu-gcc-12"))
	assert.False(t, loaded.Candidates.MayMatch("sh"))
	assert.Zero(t, loaded.HostMountNS, "containers is not on")
	metadatatest.AssertEqualReceiverEbpfExecFilteredExecs(t, tel, []metricdata.DataPoint[int64]{
		{Value: 7, Attributes: attribute.NewSet(attribute.String("prefilter", PrefilterContainers))},
		{Value: 92, Attributes: attribute.NewSet(attribute.String("prefilter", PrefilterCompilers))},
	}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

// TestConvertContainerSeen: a container's first filtered exec becomes a compilerwatch.container.seen record with
// only what the presence scan needs; a host cgroup's, nothing.
func TestConvertContainerSeen(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	conv := newLogsConverter("node-1", "v1", mapUsers{}, nil)
	seen := event.Event{
		PID: 42, ParentPID: 41, Args: []string{"sh", "-c", "secret=hunter2"}, Argc: 3, Comm: "sh",
		ExePath: "/bin/sh", Filename: "/bin/sh", CgroupPath: "/system.slice/docker-" + id + ".scope",
		Ancestors: []event.Ancestor{{PID: 41, Comm: "containerd-shim", ExeName: "containerd-shim"}}, CgroupSeen: true,
	}
	host := seen
	host.CgroupPath = "/user.slice/session-1.scope"
	conv.Append(&seen)
	conv.Append(&host)
	ld := conv.Take()
	require.Equal(t, 1, ld.LogRecordCount(), "the host cgroup's record is not emitted")
	rl := ld.ResourceLogs().At(0)
	v, _ := rl.Resource().Attributes().Get("container.id")
	assert.Equal(t, id, v.Str())
	lr := rl.ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, containerSeenEventName, lr.EventName())
	assert.Equal(t, map[string]any{
		"process.pid": int64(42), "process.parent_pid": int64(41), "compilerwatch.ancestors": []any{"41:containerd-shim"},
		"process.linux.cgroup": "0::/system.slice/docker-" + id + ".scope",
	}, lr.Attributes().AsRaw(), "no argv, no paths: not an exec to export")
	assert.Equal(t, "", lr.Body().AsString())
}
