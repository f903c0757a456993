package event

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The FuzzDecode corpus in testdata/fuzz/FuzzDecode holds records the BPF
// program wrote for real execs (kernel_*). Decoding them checks that the
// corpus still matches the record layout: after a layout change in
// bpf/exec.c, regenerate them from a running probe.
func TestDecodeKernelSeeds(t *testing.T) {
	tests := []struct {
		name  string
		check func(t *testing.T, ev *Event)
	}{
		{"kernel_true", func(t *testing.T, ev *Event) {
			assert.Equal(t, "/bin/true", ev.Args[0])
			assert.Zero(t, ev.Truncated&^TruncAncestors)
			assert.True(t, strings.HasPrefix(ev.ExePath, "/"))
			require.NotEmpty(t, ev.Ancestors)
			assert.Equal(t, "probe.test", ev.Ancestors[0].ExeName, "the parent's executable, as the kernel names it")
		}},
		{"kernel_invalid_utf8", func(t *testing.T, ev *Event) {
			assert.Equal(t, "caf\uFFFD", ev.Args[2])
		}},
		{"kernel_args_truncated", func(t *testing.T, ev *Event) {
			assert.NotZero(t, ev.Truncated&TruncArgs)
			assert.Equal(t, uint32(3), ev.Argc)
		}},
		{"kernel_path_truncated", func(t *testing.T, ev *Event) {
			assert.Equal(t, TruncPath|TruncCwd, ev.Truncated&(TruncPath|TruncCwd))
			assert.False(t, strings.HasPrefix(ev.ExePath, "/"), "a truncated path is relative")
		}},
		{"kernel_shebang", func(t *testing.T, ev *Event) {
			assert.Equal(t, "/bin/sh", ev.Args[0])
			assert.True(t, strings.HasSuffix(ev.Filename, "/s.sh"))
		}},
		{"kernel_memfd", func(t *testing.T, ev *Event) {
			assert.Equal(t, OriginMemfd, ev.ExeFile.Origin(false))
			assert.Equal(t, "/memfd:seed (deleted)", ev.ExePath)
		}},
		{"kernel_deleted", func(t *testing.T, ev *Event) {
			assert.Equal(t, OriginDeleted, ev.ExeFile.Origin(false))
			assert.True(t, strings.HasSuffix(ev.ExePath, "/del (deleted)"))
		}},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", tt.name))
			require.NoError(t, err)
			lit, ok := strings.CutPrefix(strings.TrimSpace(string(text)), "go test fuzz v1\n[]byte(")
			require.True(t, ok)
			raw, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			require.NoError(t, err)
			var ev Event
			require.NoError(t, d.Decode([]byte(raw), 0, &ev))
			for _, s := range append([]string{ev.ExePath, ev.Cwd, ev.Filename, ev.Comm}, ev.Args...) {
				assert.True(t, utf8.ValidString(s))
			}
			tt.check(t, &ev)
		})
	}
}
