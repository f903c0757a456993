//go:build linux

package compilerdetectorprocessor_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
)

// presenceRecords returns the container.compilers_present records of a sink, by container id.
func presenceRecords(sink *consumertest.LogsSink) map[string][]plog.LogRecord {
	out := map[string][]plog.LogRecord{}
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			id, _ := rl.Resource().Attributes().Get("container.id")
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					if lrs.At(k).EventName() == "container.compilers_present" {
						out[id.Str()] = append(out[id.Str()], lrs.At(k))
					}
				}
			}
		}
	}
	return out
}

// TestDriftAndPresence runs real containers on an overlay rootfs, as container runtimes do. The image (lower
// layer) carries a gcc driver; the upper layer starts empty.
//   - presence: the container with a compiler gives exactly one container.compilers_present record listing it,
//     and a second exec does not rescan; a container without compilers gives none;
//   - drift: gcc from the image is flagged WARN with origin image; the same gcc copied in at runtime is flagged
//     ERROR with origin upper_layer and installed_at_runtime.
func TestDriftAndPresence(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	sink := startPipeline(t, func(cfg *compilerdetectorprocessor.Config) {
		require.True(t, cfg.ScanForCompilers, "on by default")
		noDedupNoKube(cfg)
	})

	gccPath, err := filepath.EvalSymlinks("/usr/bin/gcc")
	require.NoError(t, err)
	withCompiler := testenv.NewContainer(t, testenv.Options{
		Overlay: true,
		// The driver's shared libraries come from the host; the driver itself is part of the image.
		Mounts: testenv.HostGCCMounts(t),
		Populate: func(root string) error {
			if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
				return err
			}
			return testenv.CopyFile(gccPath, filepath.Join(root, "usr/local/bin/gcc"), 0o755)
		},
	})
	clean := testenv.NewContainer(t, testenv.Options{Overlay: true})

	run := fmt.Sprintf("%d", time.Now().UnixNano())
	withCompiler.MustExec(t, "/usr/local/bin/gcc", "-DIMAGE_"+run, "--version")
	withCompiler.MustExec(t, "mkdir", "-p", "/usr/local/sbin")
	withCompiler.MustExec(t, "cp", "/usr/local/bin/gcc", "/usr/local/sbin/gcc")
	withCompiler.MustExec(t, "/usr/local/sbin/gcc", "-DRUNTIME_"+run, "--version")
	clean.MustExec(t, "echo", "clean-"+run)

	byArg := func(arg string) func(rec) bool {
		return func(r rec) bool { return slices.Contains(r.list("process.command_args"), arg) && r.containerID() != "" }
	}
	waitForRecord(t, sink, "image gcc", byArg("-DIMAGE_"+run))
	waitForRecord(t, sink, "runtime gcc", byArg("-DRUNTIME_"+run))
	waitForRecord(t, sink, "clean exec", byArg("clean-"+run))

	image := one(t, execRecords(sink), "image gcc", byArg("-DIMAGE_"+run))
	assert.Equal(t, "image", image.str("compilerwatch.executable.origin"))
	assert.Equal(t, "gcc", image.str("compilerwatch.compiler.name"))
	assert.Equal(t, plog.SeverityNumberWarn, image.lr.SeverityNumber())
	assert.NotContains(t, image.attrs, "compilerwatch.compiler.installed_at_runtime")

	runtime := one(t, execRecords(sink), "runtime gcc", byArg("-DRUNTIME_"+run))
	assert.Equal(t, "upper_layer", runtime.str("compilerwatch.executable.origin"))
	assert.Equal(t, "gcc", runtime.str("compilerwatch.compiler.name"))
	assert.Equal(t, plog.SeverityNumberError, runtime.lr.SeverityNumber())
	assert.Equal(t, "ERROR", runtime.lr.SeverityText())
	assert.Equal(t, true, runtime.attrs["compilerwatch.compiler.installed_at_runtime"])

	// Presence: scans run in the background; give them time, then expect exactly one record.
	require.Eventually(t, func() bool { return len(presenceRecords(sink)[withCompiler.ID()]) > 0 },
		15*time.Second, 50*time.Millisecond, "a presence record for the container with gcc")
	withCompiler.MustExec(t, "echo", "again-"+run) // a further exec must not rescan
	waitForRecord(t, sink, "second exec", byArg("again-"+run))
	time.Sleep(time.Second)

	all := presenceRecords(sink)
	require.Len(t, all[withCompiler.ID()], 1, "one presence record per container")
	assert.Empty(t, all[clean.ID()], "a container without compilers gives none")
	lr := all[withCompiler.ID()][0]
	present, _ := lr.Attributes().Get("compilerwatch.compilers_present")
	list := present.Slice().AsRaw()
	t.Logf("compilers present: %v", list)
	assert.Contains(t, list, "gcc:/usr/local/bin/gcc", "the image's gcc")
	assert.True(t, slices.ContainsFunc(list, func(v any) bool { return strings.HasSuffix(v.(string), "/cc1") }), "gcc's cc1 stage")
	assert.Equal(t, plog.SeverityNumberWarn, lr.SeverityNumber())
	rule, _ := lr.Attributes().Get("security_rule.uuid")
	assert.Equal(t, "def-000-krp", rule.Str())
	technique, _ := lr.Attributes().Get("compilerwatch.threat.technique.id")
	assert.Equal(t, "T1027.004", technique.Str())
	version, _ := lr.Attributes().Get("security_rule.version")
	assert.Equal(t, catalog.Version, version.Str())
}

// TestPresenceHostileSymlinks runs a real container whose scanned directories are links that try to lead the
// scan out of the container: absolute links, ".." chains, /proc/1/root and /proc/self/root, loops. The host has
// gcc in /usr/bin, so any leak shows. The container's only compiler is /srv/tools/tcc, which two of the links
// reach from inside: the record lists exactly those, and the loops and magic links cost the rest nothing.
func TestPresenceHostileSymlinks(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	_, err := os.Stat("/usr/bin/gcc")
	require.NoError(t, err, "the host's gcc makes a leak visible")
	sink := startPipeline(t, noDedupNoKube)

	links := map[string]string{
		"/opt/abs/bin":                  "/srv/tools",                           // absolute: the container's /srv/tools
		"/usr/sbin":                     "../../../../../../../../../srv/tools", // ".." chain that stays in the root
		"/usr/local/bin":                "../../../../../../../../../usr/bin",   // ".." chain towards the host's /usr/bin
		"/opt/host/bin":                 "/usr/bin",                             // absolute, the host's /usr/bin
		"/opt/proc/bin":                 "/proc/1/root/usr/bin",                 // magic links
		"/opt/self/bin":                 "/proc/self/root/usr/bin",
		"/opt/loop/bin":                 "/opt/loop/bin", // loops
		"/opt/ping/bin":                 "/opt/pong/bin",
		"/opt/pong/bin":                 "/opt/ping/bin",
		"/usr/lib/gcc/x86_64-linux-gnu": "/proc/1/root/usr/lib/gcc/x86_64-linux-gnu", // under a glob
		"/usr/lib/jvm/host":             "/proc/self/root/usr/lib/jvm/default-java",
		"/usr/local/go":                 "../../../../../../../../usr/lib/go",
		"/sbin/gcc":                     "/proc/1/root/usr/bin/gcc", // file links
		"/bin/cc":                       "../../../../../../../usr/bin/gcc",
	}
	c := testenv.NewContainer(t, testenv.Options{
		Populate: func(root string) error {
			if err := os.MkdirAll(filepath.Join(root, "srv/tools"), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(root, "srv/tools/tcc"), []byte("#!/bin/sh\n"), 0o755); err != nil {
				return err
			}
			for _, p := range slices.Sorted(maps.Keys(links)) {
				target := links[p]
				if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
					return err
				}
				if err := os.Remove(filepath.Join(root, p)); err != nil && !os.IsNotExist(err) {
					return err // an empty directory of the base rootfs is replaced
				}
				if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
					return err
				}
			}
			return nil
		},
	})
	run := fmt.Sprintf("hostile-%d", time.Now().UnixNano())
	// The shell lives on while the scan opens its root.
	c.MustExec(t, "sh", "-c", "echo "+run+"; sleep 2")
	require.Eventually(t, func() bool { return len(presenceRecords(sink)[c.ID()]) > 0 },
		15*time.Second, 50*time.Millisecond, "a presence record for the container")
	time.Sleep(500 * time.Millisecond)
	all := presenceRecords(sink)
	require.Len(t, all[c.ID()], 1)
	present, _ := all[c.ID()][0].Attributes().Get("compilerwatch.compilers_present")
	assert.Equal(t, []any{"tcc:/opt/abs/bin/tcc", "tcc:/usr/sbin/tcc"}, present.Slice().AsRaw(),
		"only what is inside the container")
	_, truncated := all[c.ID()][0].Attributes().Get("compilerwatch.truncated")
	assert.False(t, truncated)
}
