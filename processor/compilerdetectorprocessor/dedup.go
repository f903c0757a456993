package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// dedupKey holds the configured key fields in order. A fixed array keeps lookups allocation-free.
type dedupKey [maxDedupKeyFields]string

// dedupEntry is one open window.
type dedupEntry struct {
	start      time.Time
	end        time.Time
	suppressed int64
	// What a summary record needs, captured from the first flagged record of the window.
	resource  pcommon.Resource
	compiler  string
	language  string
	parentExe string
	severity  plog.SeverityNumber
	runtime   bool
}

// deduper suppresses repeated findings per key within a window. The first finding of a window is flagged in
// full; later ones are counted. The count is reported on the first finding after the window or, when none
// comes, in a summary record when the window is swept; a count is never dropped.
type deduper struct {
	window time.Duration
	fields []string

	mu      sync.Mutex
	entries map[dedupKey]*dedupEntry
}

func newDeduper(cfg DedupConfig) *deduper {
	if cfg.Window <= 0 {
		return nil
	}
	return &deduper{window: cfg.Window, fields: cfg.Key, entries: make(map[dedupKey]*dedupEntry)}
}

// key builds the dedup key of one finding.
func (d *deduper) key(res pcommon.Map, compiler, parentExe, exePath string) dedupKey {
	var k dedupKey
	for i, f := range d.fields {
		switch f {
		case keyContainerID:
			k[i] = getStr(res, attrContainerID)
		case keyPodUID:
			k[i] = getStr(res, attrK8sPodUID)
		case keyHostName:
			k[i] = getStr(res, attrHostName)
		case keyCompiler:
			k[i] = compiler
		case keyParentExecutable:
			k[i] = parentExe
		case keyExecutable:
			k[i] = exePath
		}
	}
	return k
}

// observe records one finding at now. It returns flag=true when the finding opens a window and must be flagged
// in full, together with the count suppressed in the previous window for that key (0 if none). newEntry is
// called only when a window opens, to capture what a later summary needs.
func (d *deduper) observe(k dedupKey, now time.Time, newEntry func() *dedupEntry) (flag bool, carried int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.entries[k]; ok {
		if now.Before(e.end) {
			e.suppressed++
			return false, 0
		}
		carried = e.suppressed
	} else {
		// Own the key strings: pdata may reuse the memory it read them from.
		for i := range k {
			k[i] = strings.Clone(k[i])
		}
	}
	e := newEntry()
	e.start, e.end = now, now.Add(d.window)
	d.entries[k] = e
	return true, carried
}

// expire removes the windows that ended at or before now (all of them when all is set) and returns those with
// a suppressed count, for summary records.
func (d *deduper) expire(now time.Time, all bool) []*dedupEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*dedupEntry
	for k, e := range d.entries {
		if !all && now.Before(e.end) {
			continue
		}
		delete(d.entries, k)
		if e.suppressed > 0 {
			out = append(out, e)
		}
	}
	return out
}
