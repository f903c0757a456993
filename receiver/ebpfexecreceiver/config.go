package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// Hard limits. The BPF program sizes its scratch buffers and loop bounds
// from these, so Validate refuses anything above them.
const (
	// MaxArgsBytesLimit is the largest max_args_bytes: the size of the BPF
	// per-CPU scratch buffer argv is copied into.
	MaxArgsBytesLimit = probe.ArgsBytesHardMax
	// MaxPathDepthLimit is the largest max_path_depth: the bound of the
	// verifier-checked dentry walk.
	MaxPathDepthLimit = probe.PathDepthHardMax
	// MinPathDepth is the smallest max_path_depth. The limit bounds only the
	// executable, working directory and parent paths: the cgroup walk keeps
	// the top probe.CgroupDepthMax levels whatever it is, so no value of it
	// can drop the component that names the container.
	MinPathDepth = 1
	// AncestorsLimit is the largest ancestors value.
	AncestorsLimit = probe.AncestorsHardMax
	// MaxRingBufferSize bounds ring_buffer_size. The kernel caps a ring
	// buffer below 4 GiB; 1 GiB of locked kernel memory per node is already
	// far beyond any sane setting.
	MaxRingBufferSize ByteSize = 1 << 30
)

// Defaults.
const (
	defaultRingBufferSize ByteSize = 8 << 20
	defaultMaxArgsBytes            = 4096
	defaultMaxPathDepth            = 64
	defaultAncestors               = 4
	defaultBatchMaxSize            = 512
	defaultFlushInterval           = 200 * time.Millisecond
)

// Prefilter values: "prefilter" is one of them, or a list combining
// PrefilterContainers and PrefilterCompilers.
const (
	PrefilterNone       = "none"
	PrefilterContainers = "containers"
	// PrefilterCompilers sends only execs that can matter to compiler
	// detection, by the names of a compiler_detector's catalog (see
	// CompilerCatalog).
	PrefilterCompilers = "compilers"
)

// compilerCatalogType is the type of the extension that holds the
// compiler_detector's catalog.
const compilerCatalogType = "compiler_catalog"

// Config is the ebpf_exec receiver's configuration.
type Config struct {
	// RingBufferSize is the size of the one ring buffer shared by all CPUs,
	// in bytes: a power of two, at least a page. It is locked kernel memory.
	RingBufferSize ByteSize `mapstructure:"ring_buffer_size"`
	// MaxArgsBytes is how many argv bytes are captured per exec.
	MaxArgsBytes int `mapstructure:"max_args_bytes"`
	// MaxPathDepth is how many path components are walked per path.
	MaxPathDepth int `mapstructure:"max_path_depth"`
	// Ancestors is how many pid:comm pairs are captured, the parent first.
	Ancestors int             `mapstructure:"ancestors"`
	Batch     BatchConfig     `mapstructure:"batch"`
	Redaction RedactionConfig `mapstructure:"redaction"`
	// Prefilter is the optional in-kernel filter: PrefilterNone (the
	// default) sends every exec; PrefilterContainers sends only execs outside
	// the host's mount namespace; PrefilterCompilers only execs named like a
	// compiler of the catalog. Both may be combined (a list, or one string
	// with commas). Every exec is counted either way.
	Prefilter []string `mapstructure:"prefilter"`
	// CompilerCatalog is the compiler_catalog extension that
	// PrefilterCompilers reads the catalog's names from; empty takes the
	// only one the collector runs.
	CompilerCatalog component.ID `mapstructure:"compiler_catalog"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// BatchConfig controls how records are grouped before they are passed on.
type BatchConfig struct {
	// MaxSize is the most records per batch.
	MaxSize int `mapstructure:"max_size"`
	// FlushInterval is the longest a record waits for its batch to fill.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
}

// RedactionConfig controls secret masking in arguments.
type RedactionConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// Patterns are Go regexps added to the built-in rules. With a capture
	// group, only group 1 is masked; otherwise the whole match.
	Patterns []string `mapstructure:"patterns"`
}

var _ confmap.Validator = (*Config)(nil)

// createDefaultConfig returns the documented defaults.
func createDefaultConfig() component.Config {
	return &Config{
		RingBufferSize: defaultRingBufferSize,
		MaxArgsBytes:   defaultMaxArgsBytes,
		MaxPathDepth:   defaultMaxPathDepth,
		Ancestors:      defaultAncestors,
		Batch: BatchConfig{
			MaxSize:       defaultBatchMaxSize,
			FlushInterval: defaultFlushInterval,
		},
		Redaction: RedactionConfig{Enabled: true},
		Prefilter: []string{PrefilterNone},
	}
}

// Validate checks the configuration without side effects. It stops at the
// first problem and names the key.
func (cfg *Config) Validate() error {
	page := ByteSize(os.Getpagesize())
	switch rb := cfg.RingBufferSize; {
	case rb == 0 || rb&(rb-1) != 0:
		return fmt.Errorf(`"ring_buffer_size" must be a power of two, got %s`, rb)
	case rb < page:
		return fmt.Errorf(`"ring_buffer_size" must be at least the page size (%s), got %s`, page, rb)
	case rb > MaxRingBufferSize:
		return fmt.Errorf(`"ring_buffer_size" must be at most %s, got %s`, MaxRingBufferSize, rb)
	}
	if err := checkRange("max_args_bytes", cfg.MaxArgsBytes, 1, MaxArgsBytesLimit); err != nil {
		return err
	}
	if err := checkRange("max_path_depth", cfg.MaxPathDepth, MinPathDepth, MaxPathDepthLimit); err != nil {
		return err
	}
	// At least 1: the first ancestor is the parent, whose comm every record
	// carries (compilerwatch.parent.command).
	if err := checkRange("ancestors", cfg.Ancestors, 1, AncestorsLimit); err != nil {
		return err
	}
	// The ring must take the largest record these limits allow: the kernel
	// drops a record that does not fit, every time.
	rec := probe.MaxRecordSize(cfg.MaxArgsBytes, cfg.MaxPathDepth, cfg.Ancestors)
	if need := ByteSize(probe.MinRingBufferSize(rec)); cfg.RingBufferSize < need {
		return fmt.Errorf(`"ring_buffer_size" must be at least %s to hold the largest record (%d bytes with `+
			`"max_args_bytes" %d, "max_path_depth" %d, "ancestors" %d), got %s`,
			need, rec, cfg.MaxArgsBytes, cfg.MaxPathDepth, cfg.Ancestors, cfg.RingBufferSize)
	}
	if cfg.Batch.MaxSize < 1 {
		return fmt.Errorf(`"batch.max_size" must be at least 1, got %d`, cfg.Batch.MaxSize)
	}
	if cfg.Batch.FlushInterval <= 0 {
		return fmt.Errorf(`"batch.flush_interval" must be positive, got %s`, cfg.Batch.FlushInterval)
	}
	if err := cfg.validatePrefilter(); err != nil {
		return err
	}
	for i, p := range cfg.Redaction.Patterns {
		if _, err := regexp.Compile(p); err != nil {
			return fmt.Errorf(`"redaction.patterns[%d]" is not a valid regular expression: %w`, i, err)
		}
	}
	return nil
}

func (cfg *Config) validatePrefilter() error {
	seen := map[string]bool{}
	for _, p := range cfg.Prefilter {
		switch p {
		case PrefilterNone, PrefilterContainers, PrefilterCompilers:
		default:
			return fmt.Errorf(`"prefilter" must be %q, %q, %q or a list of the last two, got %q`,
				PrefilterNone, PrefilterContainers, PrefilterCompilers, p)
		}
		if seen[p] {
			return fmt.Errorf(`"prefilter" lists %q twice`, p)
		}
		seen[p] = true
	}
	if seen[PrefilterNone] && len(cfg.Prefilter) > 1 {
		return fmt.Errorf(`"prefilter" combines %q with %v`, PrefilterNone, cfg.Prefilter)
	}
	if cfg.CompilerCatalog != (component.ID{}) {
		if !seen[PrefilterCompilers] {
			return fmt.Errorf(`"compiler_catalog" is read only with "prefilter" %q`, PrefilterCompilers)
		}
		if cfg.CompilerCatalog.Type().String() != compilerCatalogType {
			return fmt.Errorf(`"compiler_catalog" must name a %s extension, got %q`, compilerCatalogType, cfg.CompilerCatalog)
		}
	}
	return nil
}

// prefilters reports which in-kernel filters the configuration turns on.
func (cfg *Config) prefilters() (containers, compilers bool) {
	return slices.Contains(cfg.Prefilter, PrefilterContainers), slices.Contains(cfg.Prefilter, PrefilterCompilers)
}

func checkRange(key string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%q must be between %d and %d, got %d", key, lo, hi, v)
	}
	return nil
}

// ByteSize is a size in bytes. In configuration it is a plain integer or an
// integer with a binary unit: B, KiB, MiB or GiB ("8MiB"). Decimal units
// (KB, MB) are refused rather than guessed.
type ByteSize uint64

// byteUnits, largest first; matched case-insensitively.
var byteUnits = [...]struct {
	name  string
	shift uint
}{
	{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0},
}

// UnmarshalText parses "8MiB", "512 KiB" or "8388608".
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	num, shift := s, uint(0)
	for _, u := range byteUnits {
		if len(s) >= len(u.name) && strings.EqualFold(s[len(s)-len(u.name):], u.name) {
			num, shift = strings.TrimSpace(s[:len(s)-len(u.name)]), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid size %q: want an integer with an optional unit B, KiB, MiB or GiB", s)
	}
	if n > math.MaxUint64>>shift {
		return fmt.Errorf("invalid size %q: too large", s)
	}
	*b = ByteSize(n << shift)
	return nil
}

// MarshalText writes the largest binary unit that represents b exactly.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String formats b like MarshalText: "8MiB", "4KiB", "3000B".
func (b ByteSize) String() string {
	for _, u := range byteUnits {
		if b != 0 && uint64(b)&(1<<u.shift-1) == 0 || u.shift == 0 {
			return strconv.FormatUint(uint64(b)>>u.shift, 10) + u.name
		}
	}
	return "" // unreachable: the last unit always matches
}
