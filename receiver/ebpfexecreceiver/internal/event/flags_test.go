package event

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryTruncationBitHasAName reads the record_flag enum from the BTF of
// the committed BPF object: each TRUNC_ bit the program can set has exactly
// one compilerwatch.truncated name, and each one fits the mask decode keeps.
func TestEveryTruncationBitHasAName(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec("../probe/exec_bpfel.o")
	require.NoError(t, err)
	var flags *btf.Enum
	require.NoError(t, spec.Types.TypeByName("record_flag", &flags))
	var mask uint64
	for _, v := range flags.Values {
		if v.Name == "TRUNC_MASK" {
			mask = v.Value
		}
	}
	require.NotZero(t, mask)
	var all Truncation
	n := 0
	for _, v := range flags.Values {
		if !strings.HasPrefix(v.Name, "TRUNC_") || v.Name == "TRUNC_MASK" {
			continue
		}
		assert.Equal(t, v.Value, v.Value&mask, "%s is outside TRUNC_MASK", v.Name)
		names := Truncation(v.Value).Names()
		assert.Len(t, names, 1, "%s needs exactly one name in truncNames", v.Name)
		all |= Truncation(v.Value)
		n++
	}
	assert.Len(t, all.Names(), n)
	assert.Len(t, truncNames, n, "truncNames names a bit the BPF program does not have")
}
