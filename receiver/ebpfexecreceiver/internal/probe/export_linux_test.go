package probe

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// LoadWithKernelTypes is Load with CO-RE relocating against kernel instead
// of the running kernel's BTF, and against modules as the BTF of kernel
// modules.
func LoadWithKernelTypes(cfg Config, kernel *btf.Spec, modules []*btf.Spec) (*Probe, error) {
	return load(cfg, ebpf.ProgramOptions{KernelTypes: kernel, ExtraRelocationTargets: modules})
}

// ReadFlaggingSuites reads the compiler detector's flagging suite.
func ReadFlaggingSuites(t *testing.T) []FlaggingSuite { return readFlaggingSuites(t) }
