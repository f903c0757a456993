//go:build linux

package probe_test

import (
	"testing"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

func TestKernelCandidateLoads(t *testing.T) {
	for _, v := range []probe.Variant{probe.VariantPortable, probe.VariantDirect} {
		cfg := testConfig(v)
		cfg.Candidates = probe.NewCandidateBloom([]string{"gcc", "cc1"})
		p, err := probe.Load(cfg)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		p.Close()
	}
}
