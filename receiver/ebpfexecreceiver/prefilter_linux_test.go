package ebpfexecreceiver

import (
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

// TestKernelPrefilterContainers runs the real receiver with "prefilter: containers": execs in the host's mount
// namespace are counted but not sent, a runc container's exec is sent in full.
func TestKernelPrefilterContainers(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	c := testenv.NewContainer(t, testenv.Options{
		Mounts: []testenv.Mount{{Destination: "/opt/tools/busybox", Source: "/bin/busybox"}},
	})
	r, sink := startReceiver(t, func(cfg *Config) { cfg.Prefilter = []string{PrefilterContainers} })
	before, err := r.src.Stats()
	require.NoError(t, err)

	const hostExecs = 50
	hostTag := tag(t) + "-host"
	for range hostExecs {
		require.NoError(t, exec.Command("/bin/true", hostTag).Run())
	}
	ctrTag := tag(t) + "-ctr"
	c.MustExec(t, "/opt/tools/busybox", "echo", ctrTag)

	rec := waitFor(t, sink, "the container exec", func(r execRecord) bool {
		return hasArg(ctrTag)(r) && r.str("process.command") == "/opt/tools/busybox"
	})
	assert.Equal(t, c.ID(), rec.res["container.id"], "a container exec is sent in full")
	assert.Equal(t, "/opt/tools/busybox", rec.str("process.executable.path"))

	// The host execs ran before the container's, whose record has arrived: one more flush and any host record
	// would be in the sink too.
	time.Sleep(200 * time.Millisecond)
	for _, r := range flatten(sink) {
		assert.False(t, hasArg(hostTag)(r), "a host exec passed the prefilter: %v", r.attrs)
		assert.NotEmpty(t, r.res["container.id"], "only container execs are sent (host ones have no container.id): %v", r.attrs)
	}

	after, err := r.src.Stats()
	require.NoError(t, err)
	filtered, seen := after.Filtered-before.Filtered, after.Execs-before.Execs
	assert.GreaterOrEqual(t, filtered, uint64(hostExecs), "every host exec is counted as filtered")
	assert.Greater(t, seen, filtered, "execs_seen still counts every exec, the container's included")
	assert.Zero(t, after.Dropped(), "filtering is not loss")
}
