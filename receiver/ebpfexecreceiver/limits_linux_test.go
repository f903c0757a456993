//go:build linux

package ebpfexecreceiver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// The largest values Validate accepts are the bounds compiled into the BPF
// program (the limit enum of bpf/exec.h), which probe reads from the
// generated bindings.
func TestLimitsMatchTheBPFProgram(t *testing.T) {
	assert.Equal(t, probe.ArgsBytesHardMax, MaxArgsBytesLimit)
	assert.Equal(t, probe.PathDepthHardMax, MaxPathDepthLimit)
	assert.Equal(t, probe.AncestorsHardMax, AncestorsLimit)

	cfg := createDefaultConfig().(*Config)
	cfg.MaxArgsBytes, cfg.MaxPathDepth, cfg.Ancestors, cfg.RingBufferSize = MaxArgsBytesLimit, MaxPathDepthLimit, AncestorsLimit, MaxRingBufferSize
	require.NoError(t, cfg.Validate())
	for name, mutate := range map[string]func(*Config){
		"max_args_bytes":   func(c *Config) { c.MaxArgsBytes++ },
		"max_path_depth":   func(c *Config) { c.MaxPathDepth++ },
		"ancestors":        func(c *Config) { c.Ancestors++ },
		"ring_buffer_size": func(c *Config) { c.RingBufferSize *= 2 },
	} {
		over := *cfg
		mutate(&over)
		assert.ErrorContains(t, over.Validate(), `"`+name+`"`, "one past the maximum is refused")
	}
}

// TestKernelMaximumLimits loads the program with the largest limits Validate
// accepts, the 1 GiB ring buffer included, and checks that each limit is
// honoured and its truncation flagged.
func TestKernelMaximumLimits(t *testing.T) {
	_, sink := startReceiver(t, func(c *Config) {
		c.RingBufferSize = MaxRingBufferSize
		c.MaxArgsBytes = MaxArgsBytesLimit
		c.MaxPathDepth = MaxPathDepthLimit
		c.Ancestors = AncestorsLimit
	})
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)

	t.Run("args", func(t *testing.T) {
		tg := tag(t)
		argv := []string{"/bin/true", tg}
		for i := 0; i < 1000; i++ {
			argv = append(argv, fmt.Sprintf("%039d", i)) // 40 bytes with its NUL: 40 KB in all
		}
		require.NoError(t, exec.Command(argv[0], argv[1:]...).Run())
		r := waitFor(t, sink, "1002 arguments", hasArg(tg))
		args := r.args()
		assert.Equal(t, int64(len(argv)), r.num("process.args_count"))
		n := len(strings.Join(args, "\x00"))
		assert.True(t, n == MaxArgsBytesLimit || n == MaxArgsBytesLimit-1, "captured %d argv bytes", n)
		assert.Equal(t, argv[:len(args)-1], args[:len(args)-1])
		assert.Contains(t, truncatedNames(r), "args")
	})

	t.Run("path depth", func(t *testing.T) {
		deep := dir + strings.Repeat("/d", 200)
		require.NoError(t, os.MkdirAll(deep, 0o755))
		exe := filepath.Join(deep, "true")
		require.NoError(t, testenv.CopyFile("/bin/true", exe, 0o755))
		tg := tag(t)
		cmd := exec.Command(exe, tg)
		cmd.Dir = deep
		require.NoError(t, cmd.Run())
		r := waitFor(t, sink, "deep path", hasArg(tg))
		got := r.str("process.executable.path")
		assert.Len(t, strings.Split(got, "/"), MaxPathDepthLimit, "the deepest max_path_depth components")
		assert.True(t, strings.HasSuffix(exe, "/"+got))
		assert.Len(t, strings.Split(r.str("process.working_directory"), "/"), MaxPathDepthLimit)
		assert.Subset(t, truncatedNames(r), []string{"path", "cwd"})
	})

	t.Run("path exactly max_path_depth deep", func(t *testing.T) {
		// dir has its own components: pad it to MaxPathDepthLimit with the
		// executable's name as the last.
		levels := MaxPathDepthLimit - strings.Count(dir, "/") - 1
		d := dir + strings.Repeat("/e", levels)
		require.NoError(t, os.MkdirAll(d, 0o755))
		exe := filepath.Join(d, "true")
		require.Equal(t, MaxPathDepthLimit, strings.Count(exe, "/"))
		require.NoError(t, testenv.CopyFile("/bin/true", exe, 0o755))
		tg := tag(t)
		require.NoError(t, exec.Command(exe, tg).Run())
		r := waitFor(t, sink, "path at the depth limit", hasArg(tg))
		assert.Equal(t, exe, r.str("process.executable.path"), "complete, not truncated")
		assert.NotContains(t, truncatedNames(r), "path")
	})

	t.Run("ancestors", func(t *testing.T) {
		// Each level runs the next as a child (not exec: a command follows).
		script := filepath.Join(dir, "chain.sh")
		require.NoError(t, os.WriteFile(script, []byte(`#!/bin/sh
n=$1; shift
if [ "$n" -gt 0 ]; then "$0" $((n - 1)) "$@"; exit $?; fi
exec /bin/true "$@"
`), 0o755))
		tg := tag(t)
		require.NoError(t, exec.Command(script, "20", tg).Run())
		r := waitFor(t, sink, "exec at the end of a chain of 20 shells", func(r execRecord) bool {
			return hasArg(tg)(r) && r.str("process.command") == "/bin/true"
		})
		anc, _ := r.attrs["compilerwatch.ancestors"].([]any)
		require.Len(t, anc, AncestorsLimit)
		for _, a := range anc {
			assert.True(t, strings.HasSuffix(a.(string), ":chain.sh"), "%v", anc)
		}
		assert.Contains(t, truncatedNames(r), "ancestors")
	})
}

func truncatedNames(r execRecord) []string {
	raw, _ := r.attrs["compilerwatch.truncated"].([]any)
	var out []string
	for _, v := range raw {
		out = append(out, v.(string))
	}
	return slices.Clip(out)
}
