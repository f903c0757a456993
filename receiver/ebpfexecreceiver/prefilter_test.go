package ebpfexecreceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseNSLink(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{in: "mnt:[4026531841]", want: 4026531841},
		{in: "mnt:[1]", want: 1},
		{in: "mnt:[0]", wantErr: true},
		{in: "pid:[4026531836]", wantErr: true},
		{in: "mnt:[4026531841", wantErr: true},
		{in: "mnt:[99999999999]", wantErr: true}, // above 32 bits: not an inode number the kernel hands out here
		{in: "mnt:[x]", wantErr: true},
		{in: "", wantErr: true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseNSLink(tt.in)
			if tt.wantErr {
				assert.ErrorContains(t, err, "unexpected mount namespace link")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
