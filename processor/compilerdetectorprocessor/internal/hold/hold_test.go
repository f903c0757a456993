package hold

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

var testStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func neverReady(pcommon.Resource) (struct{}, bool) { return struct{}{}, false }

// The node-wide arrival list that finds the oldest held batch stays proportional to what is held, however many
// batches were released through the metadata path since.
func TestHoldArrivalListIsCompacted(t *testing.T) {
	h := New[struct{}](time.Hour, MaxRecords)
	for i := 0; i < 10000; i++ {
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		key := fmt.Sprintf("%064x", i%50)
		rl.Resource().Attributes().PutStr("container.id", key)
		rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Attributes().PutInt("process.pid", int64(i))
		require.True(t, h.Route(rl, key, false, testStart))
		if i%100 == 99 {
			for _, b := range h.Release(testStart.Add(2*time.Hour), false, neverReady) {
				h.Done(b.Key)
			}
		}
	}
	assert.LessOrEqual(t, len(h.arrival)-h.arrivalHead, 2*h.batches+64)
	assert.Equal(t, h.held, h.batches)
}

func TestValidateWait(t *testing.T) {
	for _, tc := range []struct {
		wait    time.Duration
		wantErr string
	}{
		{wait: 0},
		{wait: DefaultWait},
		{wait: MaxWait},
		{wait: -time.Second, wantErr: `"kubernetes.wait_for_metadata" must be between 0s and 1m0s, got -1s`},
		{wait: 24 * time.Hour, wantErr: `"kubernetes.wait_for_metadata" must be between 0s and 1m0s, got 24h0m0s`},
	} {
		err := ValidateWait(tc.wait)
		if tc.wantErr == "" {
			assert.NoError(t, err, "%s", tc.wait)
			continue
		}
		assert.EqualError(t, err, tc.wantErr)
	}
}

func TestCheckEvery(t *testing.T) {
	assert.Zero(t, New[struct{}](0, MaxRecords).CheckEvery(), "nothing is held without a wait")
	assert.Equal(t, 10*time.Millisecond, New[struct{}](20*time.Millisecond, MaxRecords).CheckEvery())
	assert.Equal(t, 250*time.Millisecond, New[struct{}](DefaultWait, MaxRecords).CheckEvery())
}
