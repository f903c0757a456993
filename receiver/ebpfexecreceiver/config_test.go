package ebpfexecreceiver

import (
	"os"
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
	custom.Prefilter = PrefilterContainers

	plain := createDefaultConfig().(*Config)
	plain.RingBufferSize = 16 << 20

	off := createDefaultConfig().(*Config)
	off.Redaction.Enabled = false

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
		{name: "ancestors_too_large", validation: `"ancestors" must be between 1 and 16, got 17`},
		{name: "ancestors_zero", validation: `"ancestors" must be between 1 and 16, got 0`},
		{name: "batch_max_size_zero", validation: `"batch.max_size" must be at least 1, got 0`},
		{name: "batch_flush_interval_zero", validation: `"batch.flush_interval" must be positive, got 0s`},
		{name: "bad_pattern", validation: `"redaction.patterns[1]" is not a valid regular expression`},
		{name: "bad_prefilter", validation: `"prefilter" must be "none" or "containers", got "host"`},
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

func TestRingBufferSizeAtPageSize(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.RingBufferSize = ByteSize(os.Getpagesize())
	require.NoError(t, cfg.Validate())
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
