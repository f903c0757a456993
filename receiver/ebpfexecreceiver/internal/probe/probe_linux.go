//go:build linux

package probe

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Probe is a loaded and attached exec program with its ring-buffer reader.
type Probe struct {
	maps    execMaps
	prog    *ebpf.Program
	variant Variant
	refused error // why VariantDirect was not loaded, under VariantAuto
	link    link.Link
	reader  *ring
}

// programNames maps each variant to its program in bpf/exec.c.
var programNames = map[Variant]string{
	VariantDirect:   execProgHandleExecBtf,
	VariantPortable: execProgHandleExec,
}

// loadSpec reads the BPF object: the embedded one. The BPF time measurement
// swaps in an older object to compare against.
var loadSpec = loadExec

// Load checks privileges and BTF, loads the program with cfg's limits,
// attaches it to tp_btf/sched_process_exec and opens the ring buffer.
// Errors name the cause in terms a user can act on.
func Load(cfg Config) (*Probe, error) {
	return load(cfg, ebpf.ProgramOptions{})
}

// load is Load with program options; tests set the kernel types CO-RE
// relocates against, to load as on a kernel built otherwise.
func load(cfg Config, progOpts ebpf.ProgramOptions) (*Probe, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("kernel BTF is not available (%v): compilerwatch needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.8 are)", err)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; this is a
	// no-op on newer kernels. It needs CAP_SYS_RESOURCE where it matters.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raising RLIMIT_MEMLOCK for BPF maps: %w (grant CAP_SYS_RESOURCE)", err)
	}

	spec, err := loadSpec()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	for name, v := range map[string]uint32{
		execVarMaxArgsBytes: cfg.MaxArgsBytes,
		execVarMaxPathDepth: cfg.MaxPathDepth,
		execVarMaxAncestors: cfg.MaxAncestors,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("setting BPF limit %s: %w", name, err)
		}
	}
	if err := spec.Variables[execVarHostMntNs].Set(cfg.HostMountNS); err != nil {
		return nil, fmt.Errorf("setting the BPF prefilter: %w", err)
	}
	if cfg.Candidates != nil {
		if err := spec.Variables[execVarPrefilterCompilers].Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("setting the BPF candidate filter: %w", err)
		}
		if err := spec.Variables[execVarCandBloom].Set(cfg.Candidates.words); err != nil {
			return nil, fmt.Errorf("setting the BPF candidate filter: %w", err)
		}
	}
	// Wake the reader early only when a quarter of the ring is in use; it
	// polls on its own well before that in normal operation.
	if err := spec.Variables[execVarWakeupBytes].Set(uint64(cfg.RingBufferSize / 4)); err != nil {
		return nil, fmt.Errorf("setting BPF wakeup threshold: %w", err)
	}
	spec.Maps[execMapEvents].MaxEntries = cfg.RingBufferSize
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("counting possible CPUs: %w", err)
	}
	spec.Maps[execMapScratchMap].MaxEntries = uint32(cpus)

	order := []Variant{VariantDirect, VariantPortable}
	switch cfg.Variant {
	case VariantAuto:
	case VariantDirect, VariantPortable:
		order = []Variant{cfg.Variant}
	default:
		return nil, fmt.Errorf("unknown BPF program variant %q", cfg.Variant)
	}

	// The maps first, once: a program that the verifier refuses must not
	// cost a second ring buffer allocation.
	p := &Probe{}
	if err := spec.LoadAndAssign(&p.maps, nil); err != nil {
		return nil, explainLoadError(err)
	}
	opts := &ebpf.CollectionOptions{Programs: progOpts, MapReplacements: map[string]*ebpf.Map{
		execMapEvents:      p.maps.Events,
		execMapScratchMap:  p.maps.ScratchMap,
		execMapStats:       p.maps.Stats,
		execMapSeenCgroups: p.maps.SeenCgroups,
	}}
	for _, v := range order {
		p.prog, err = loadProgram(spec, programNames[v], opts)
		if err == nil {
			p.variant = v
			break
		}
		if v == VariantDirect && cfg.Variant == VariantAuto {
			// Kernels before 6.2 lack bpf_rdonly_cast; a verifier may refuse
			// the direct walks for other reasons. The portable program is the
			// fallback: keep the cause for the log.
			p.refused = err
			continue
		}
		_ = p.maps.Close()
		return nil, explainLoadError(err)
	}
	p.link, err = link.AttachTracing(link.TracingOptions{
		Program:    p.prog,
		AttachType: ebpf.AttachTraceRawTp,
	})
	if err != nil {
		_ = p.prog.Close()
		_ = p.maps.Close()
		return nil, fmt.Errorf("attaching to tp_btf/sched_process_exec: %w", err)
	}
	p.reader, err = newRing(p.maps.Events)
	if err != nil {
		_ = p.link.Close()
		_ = p.prog.Close()
		_ = p.maps.Close()
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	return p, nil
}

// loadProgram loads one program of spec, with the maps already created.
func loadProgram(spec *ebpf.CollectionSpec, name string, opts *ebpf.CollectionOptions) (*ebpf.Program, error) {
	var obj struct {
		Prog *ebpf.Program `ebpf:"prog"`
	}
	// LoadAndAssign looks programs up by the tag; retag a shallow copy.
	s := spec.Copy()
	ps, ok := s.Programs[name]
	if !ok {
		return nil, fmt.Errorf("program %s is not in the embedded BPF object", name)
	}
	s.Programs = map[string]*ebpf.ProgramSpec{"prog": ps}
	if err := s.LoadAndAssign(&obj, opts); err != nil {
		return nil, err
	}
	return obj.Prog, nil
}

// Variant returns the program that was loaded.
func (p *Probe) Variant() Variant { return p.variant }

// DirectRefused returns why VariantDirect was not loaded when VariantAuto
// fell back to VariantPortable, or nil. The cause is shortened to its last
// verifier line.
func (p *Probe) DirectRefused() error {
	if p.refused == nil {
		return nil
	}
	var ve *ebpf.VerifierError
	if errors.As(p.refused, &ve) && len(ve.Log) > 0 {
		return fmt.Errorf("verifier: %s", ve.Log[len(ve.Log)-1])
	}
	return p.refused
}

// Reader returns the ring-buffer reader. Close the Probe, not the reader.
func (p *Probe) Reader() RecordReader { return p.reader }

// Stats reads the kernel-side counters.
func (p *Probe) Stats() (Stats, error) {
	var s Stats
	for idx, dst := range map[execStatIdx]*uint64{
		execStatIdxSTAT_EXECS:            &s.Execs,
		execStatIdxSTAT_RB_DROPS:         &s.RingbufDrops,
		execStatIdxSTAT_NO_SCRATCH:       &s.ScratchMisses,
		execStatIdxSTAT_FILTERED:         &s.Filtered,
		execStatIdxSTAT_FILTERED_NONCAND: &s.FilteredNonCandidate,
		execStatIdxSTAT_CGROUP_SEEN:      &s.CgroupSeen,
	} {
		var perCPU []uint64
		if err := p.maps.Stats.Lookup(uint32(idx), &perCPU); err != nil {
			return s, fmt.Errorf("reading BPF stats: %w", err)
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	return s, nil
}

// ProgramID returns the kernel id of the attached program, for tests and
// diagnostics.
func (p *Probe) ProgramID() (ebpf.ProgramID, error) {
	info, err := p.prog.Info()
	if err != nil {
		return 0, err
	}
	id, _ := info.ID()
	return id, nil
}

// Detach stops new records; records already in the ring can still be read.
func (p *Probe) Detach() error {
	if p.link == nil {
		return nil
	}
	err := p.link.Close()
	p.link = nil
	return err
}

// Close detaches the program and releases every kernel object. A reader
// blocked in ReadInto returns ringbuf.ErrClosed.
func (p *Probe) Close() error {
	var errs []error
	if p.reader != nil {
		errs = append(errs, p.reader.Close())
	}
	if p.link != nil {
		errs = append(errs, p.link.Close())
	}
	errs = append(errs, p.prog.Close(), p.maps.Close())
	return errors.Join(errs...)
}

// explainLoadError turns load failures into messages a user can act on.
func explainLoadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		log := ve.Log
		if len(log) > 20 {
			log = log[len(log)-20:]
		}
		return fmt.Errorf("the kernel's BPF verifier rejected the exec program (kernel too old or unusual config?); last verifier lines:\n%s\n: %w",
			strings.Join(log, "\n"), err)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("this kernel lacks a BPF feature compilerwatch needs (BTF, ring buffer: Linux 5.8+, tp_btf): %w", err)
	}
	if errors.Is(err, os.ErrPermission) {
		// cilium/ebpf suggests raising MEMLOCK on EPERM. The capabilities were
		// checked before loading, so the usual cause is a policy above them.
		return fmt.Errorf("loading the BPF program was not permitted although the capabilities are present: %w; "+
			"check the seccomp profile (container runtimes' default profiles refuse bpf() without CAP_SYS_ADMIN: "+
			"use a profile that allows it, see deploy/kubernetes), kernel lockdown (/sys/kernel/security/lockdown), "+
			"and kernel.unprivileged_bpf_disabled", err)
	}
	return fmt.Errorf("loading the BPF program: %w", err)
}
