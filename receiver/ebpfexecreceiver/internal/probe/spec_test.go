package probe

import (
	"debug/elf"
	"encoding/binary"
	"go/build"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEmbeddedObjectServesAmd64AndArm64: the linux/amd64 and linux/arm64 builds of this package embed the
// same little-endian BPF object (bpf2go's exec_bpfel.go), and that object parses into the collection spec the
// loader expects. The spec is parsed here on the host's architecture; cilium/ebpf's ELF and BTF parsing is
// the same Go code on every GOARCH, so what differs between the two builds is only which generated file the
// build constraints select, which the second half checks for both. `make test` also compiles this test for
// GOARCH=arm64, and `make image` the whole collector.
func TestEmbeddedObjectServesAmd64AndArm64(t *testing.T) {
	obj, err := elf.Open("exec_bpfel.o")
	require.NoError(t, err)
	defer func() { _ = obj.Close() }()
	assert.Equal(t, elf.EM_BPF, obj.Machine)
	assert.Equal(t, elf.ELFDATA2LSB, obj.Data, "little-endian: amd64 and arm64 kernels run it as is")

	spec, err := loadExec()
	require.NoError(t, err)
	assert.Equal(t, binary.LittleEndian, spec.ByteOrder)
	for _, name := range []string{"handle_exec", "handle_exec_btf"} {
		p := spec.Programs[name]
		require.NotNil(t, p, name)
		// tp_btf: attached by the kernel's BTF id of the tracepoint, whose arguments (task, old pid,
		// linux_binprm) are generic exec code, the same on every architecture.
		assert.Equal(t, ebpf.Tracing, p.Type, name)
		assert.Equal(t, ebpf.AttachTraceRawTp, p.AttachType, name)
		assert.Equal(t, "sched_process_exec", p.AttachTo, name)
	}
	assert.Equal(t, ebpf.RingBuf, spec.Maps["events"].Type)
	for _, m := range []string{"scratch_map", "stats"} {
		assert.NotNil(t, spec.Maps[m], m)
	}

	for _, arch := range []string{"amd64", "arm64"} {
		ctx := build.Default
		ctx.GOOS, ctx.GOARCH, ctx.CgoEnabled = "linux", arch, false
		pkg, err := ctx.ImportDir(".", 0)
		require.NoError(t, err, arch)
		assert.Contains(t, pkg.GoFiles, "exec_bpfel.go", "linux/%s builds the little-endian bindings", arch)
		assert.NotContains(t, pkg.GoFiles, "exec_bpfeb.go", arch)
		assert.Equal(t, []string{"exec_bpfel.o"}, pkg.EmbedPatterns, "linux/%s embeds the object parsed above", arch)
	}
}
