package testenv

import "go.opentelemetry.io/collector/pdata/plog"

// Record is one exported log record with the raw attributes of its resource
// and its own, flattened for assertions.
type Record struct {
	Resource map[string]any
	Attrs    map[string]any
	Log      plog.LogRecord
}

// Records flattens logs into their records, in order.
func Records(logs []plog.Logs) []Record {
	var out []Record
	for _, ld := range logs {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			res := rl.Resource().Attributes().AsRaw()
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					out = append(out, Record{Resource: res, Attrs: lr.Attributes().AsRaw(), Log: lr})
				}
			}
		}
	}
	return out
}
