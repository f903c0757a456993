package ebpfexecreceiver

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig().(*Config)
	custom.RingBufferSize = 32 << 20
	custom.MaxArgsBytes = MaxArgsBytesLimit
	custom.MaxPathDepth = MaxPathDepthLimit
	custom.Ancestors = AncestorsLimit
	custom.Batch = BatchConfig{MaxSize: 1024, FlushInterval: time.Second}
	custom.Redaction.Patterns = []string{`(?i)employee_id=(\d+)`, `sk_live_[0-9a-zA-Z]{24}`}
	custom.Prefilter = []string{PrefilterContainers}

	compilers := createDefaultConfig().(*Config)
	compilers.Prefilter = []string{PrefilterCompilers}

	both := createDefaultConfig().(*Config)
	both.Prefilter = []string{PrefilterContainers, PrefilterCompilers}
	bothNamed := createDefaultConfig().(*Config)
	bothNamed.Prefilter = []string{PrefilterContainers, PrefilterCompilers}
	bothNamed.CompilerCatalog = component.MustNewIDWithName(compilerCatalogType, "ci")

	plain := createDefaultConfig().(*Config)
	plain.RingBufferSize = 16 << 20

	off := createDefaultConfig().(*Config)
	off.Redaction.Enabled = false

	smallest := createDefaultConfig().(*Config)
	smallest.RingBufferSize = 16 << 10
	smallest.MaxArgsBytes = 256
	smallest.MaxPathDepth = MinPathDepth
	smallest.Ancestors = 1

	tests := []struct {
		name       string
		want       *Config // for valid entries
		unmarshal  string  // error expected while unmarshalling
		validation string  // error expected from Validate
	}{
		{name: "", want: createDefaultConfig().(*Config)},
		{name: "custom", want: custom},
		{name: "plain_integer_size", want: plain},
		{name: "redaction_off", want: off},
		{name: "ring_buffer_not_power_of_two", validation: `"ring_buffer_size" must be a power of two, got 3MiB`},
		{name: "ring_buffer_below_page", validation: `"ring_buffer_size" must be at least the page size`},
		{name: "ring_buffer_too_large", validation: `"ring_buffer_size" must be at most 1GiB, got 2GiB`},
		{name: "ring_buffer_decimal_unit", unmarshal: `invalid size "8MB"`},
		{name: "max_args_bytes_too_large", validation: `"max_args_bytes" must be between 1 and 32768, got 65536`},
		{name: "max_args_bytes_zero", validation: `"max_args_bytes" must be between 1 and 32768, got 0`},
		{name: "max_path_depth_too_large", validation: `"max_path_depth" must be between 1 and 128, got 129`},
		{name: "max_path_depth_zero", validation: `"max_path_depth" must be between 1 and 128, got 0`},
		{name: "ring_buffer_below_largest_record", validation: `"ring_buffer_size" must be at least 32KiB to hold the largest record (25800 bytes`},
		{name: "ring_buffer_below_largest_record_at_limits", validation: `"ring_buffer_size" must be at least 64KiB to hold the largest record (57832 bytes`},
		{name: "ring_buffer_smallest", want: smallest},
		{name: "ancestors_too_large", validation: `"ancestors" must be between 1 and 16, got 17`},
		{name: "ancestors_zero", validation: `"ancestors" must be between 1 and 16, got 0`},
		{name: "batch_max_size_zero", validation: `"batch.max_size" must be at least 1, got 0`},
		{name: "batch_flush_interval_zero", validation: `"batch.flush_interval" must be positive, got 0s`},
		{name: "bad_pattern", validation: `"redaction.patterns[1]" is not a valid regular expression`},
		{name: "bad_prefilter", validation: `"prefilter" must be "none", "containers", "compilers" or a list of the last two, got "host"`},
		{name: "prefilter_compilers", want: compilers},
		{name: "prefilter_both_list", want: bothNamed},
		{name: "prefilter_both_string", want: both},
		{name: "prefilter_none_and_compilers", validation: `"prefilter" combines "none" with [none compilers]`},
		{name: "prefilter_twice", validation: `"prefilter" lists "compilers" twice`},
		{name: "prefilter_unknown_in_list", validation: `"prefilter" must be "none", "containers", "compilers" or a list of the last two, got "gcc"`},
		{name: "compiler_catalog_without_compilers", validation: `"compiler_catalog" is read only with "prefilter" "compilers"`},
		{name: "compiler_catalog_wrong_type", validation: `"compiler_catalog" must name a compiler_catalog extension, got "health_check"`},
		{name: "unknown_key", unmarshal: "max_arg_bytes"},
	}
	for _, tt := range tests {
		id := component.NewIDWithName(metadata.Type, tt.name)
		t.Run(id.String(), func(t *testing.T) {
			sub, err := cm.Sub(id.String())
			require.NoError(t, err)
			cfg := createDefaultConfig()
			err = sub.Unmarshal(cfg)
			if tt.unmarshal != "" {
				require.ErrorContains(t, err, tt.unmarshal)
				return
			}
			require.NoError(t, err)
			err = confmap.Validate(cfg)
			if tt.validation != "" {
				require.ErrorContains(t, err, tt.validation)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, ByteSize(8<<20), cfg.RingBufferSize)
	assert.True(t, cfg.Redaction.Enabled, "redaction is on by default")
}

func TestRingBufferSizeFitsLargestRecord(t *testing.T) {
	// The largest record: the 104-byte header, argv, three walked paths of
	// min(4096, depth*256) bytes, a 4096-byte filename, a cgroup path of 16
	// levels (4096 bytes, whatever the depth), and per ancestor 24 bytes and
	// an executable name of up to 256. The kernel takes it with an 8-byte header, padded to 8, only
	// into a larger ring.
	tests := []struct {
		args, depth, ancestors int
		record                 int
		min                    ByteSize
	}{
		{defaultMaxArgsBytes, defaultMaxPathDepth, defaultAncestors, 104 + 4096 + 3*4096 + 4096 + 4096 + 4*280, 32 << 10},
		{MaxArgsBytesLimit, MaxPathDepthLimit, AncestorsLimit, 104 + 32768 + 3*4096 + 4096 + 4096 + 16*280, 64 << 10},
		{1, MinPathDepth, 1, 104 + 1 + 3*256 + 4096 + 4096 + 280, 16 << 10},
		{4096, 12, 4, 104 + 4096 + 3*3072 + 4096 + 4096 + 4*280, 32 << 10},
	}
	for _, tt := range tests {
		cfg := createDefaultConfig().(*Config)
		cfg.MaxArgsBytes, cfg.MaxPathDepth, cfg.Ancestors = tt.args, tt.depth, tt.ancestors
		assert.Equal(t, tt.record, probe.MaxRecordSize(tt.args, tt.depth, tt.ancestors))
		cfg.RingBufferSize = tt.min
		assert.NoError(t, cfg.Validate(), "%+v at %s", tt, tt.min)
		cfg.RingBufferSize = tt.min / 2
		assert.ErrorContains(t, cfg.Validate(), `"ring_buffer_size" must be at least `+tt.min.String(), "%+v", tt)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.RingBufferSize = MaxRingBufferSize
	require.NoError(t, cfg.Validate())
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{in: "8MiB", want: 8 << 20},
		{in: "8mib", want: 8 << 20},
		{in: "512 KiB", want: 512 << 10},
		{in: "1GiB", want: 1 << 30},
		{in: "4096", want: 4096},
		{in: "4096B", want: 4096},
		{in: " 64KiB ", want: 64 << 10},
		{in: "8MB", wantErr: true},
		{in: "8M", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "17179869184GiB", wantErr: true}, // overflows 64 bits
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got ByteSize
			err := got.UnmarshalText([]byte(tt.in))
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestByteSizeString(t *testing.T) {
	for in, want := range map[ByteSize]string{
		0: "0B", 3000: "3000B", 4096: "4KiB", 8 << 20: "8MiB", 1 << 30: "1GiB", 3 << 30: "3GiB", 1536 << 10: "1536KiB",
	} {
		assert.Equal(t, want, in.String(), strconv.FormatUint(uint64(in), 10))
		text, err := in.MarshalText()
		require.NoError(t, err)
		var back ByteSize
		require.NoError(t, back.UnmarshalText(text))
		assert.Equal(t, in, back, "round trip of %s", text)
	}
}

func TestConfigStruct(t *testing.T) {
	require.NoError(t, componenttest.CheckConfigStruct(createDefaultConfig()))
}
