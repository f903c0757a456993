package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// enricher adds Kubernetes attributes to a resource (issue 4 plugs the pod cache in here; it is nil when
// kubernetes is off). Enrich must not block: it reads a local cache.
type enricher interface {
	// Enrich adds attributes to res where absent. It returns false when the pod is known but the container is
	// not yet in its status, which makes the records worth holding until wait_for_metadata. It may be called
	// again for the same resource and must then be idempotent.
	Enrich(res pcommon.Resource) (ready bool)
}

// heldBatch is one ResourceLogs waiting for metadata.
type heldBatch struct {
	logs     plog.Logs
	deadline time.Time
}

// holdQueue keeps one container's held batches in arrival order. inflight counts batches released but not yet
// delivered: while it is non-zero, new batches for the container queue too, so no record overtakes an earlier
// one of the same container.
type holdQueue struct {
	batches  []heldBatch
	inflight int
}

// releasedBatch is a held batch on its way to the next consumer.
type releasedBatch struct {
	key     string
	logs    plog.Logs
	expired bool // released on deadline or shutdown, not because metadata arrived
}

// maxHeldRecords bounds the records held at once, so memory stays bounded when the API server lags behind a burst
// of new containers (a held exec record is about 1-2 KB). Past it, every held batch is due at the next release
// tick: it goes on without waiting further, counted as hold-expired, and nothing is dropped.
const maxHeldRecords = 20000

// holder holds records whose Kubernetes metadata is not yet known, in order per container.
type holder struct {
	enricher enricher
	wait     time.Duration
	max      int // maxHeldRecords; tests lower it

	mu     sync.Mutex
	queues map[string]*holdQueue
	held   int // records in queues (not in flight)
	closed bool
}

func newHolder(e enricher, wait time.Duration) *holder {
	return &holder{enricher: e, wait: wait, max: maxHeldRecords, queues: make(map[string]*holdQueue)}
}

// orderKey identifies the container a resource belongs to, for ordering. Host resources have none and are
// never held.
func orderKey(res pcommon.Map) string {
	if id := getStr(res, attrContainerID); id != "" {
		return id
	}
	return getStr(res, attrK8sPodUID)
}

// route enriches rl and reports whether it was moved into the hold queue (true) or must be processed now.
func (h *holder) route(rl plog.ResourceLogs, now time.Time) bool {
	ready := h.enricher.Enrich(rl.Resource())
	key := orderKey(rl.Resource().Attributes())
	if key == "" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[key]
	busy := q != nil && (len(q.batches) > 0 || q.inflight > 0)
	if h.closed || (!busy && (ready || h.wait <= 0)) {
		return false
	}
	if q == nil {
		q = &holdQueue{}
		h.queues[key] = q
	}
	held := plog.NewLogs()
	rl.MoveTo(held.ResourceLogs().AppendEmpty())
	q.batches = append(q.batches, heldBatch{logs: held, deadline: now.Add(h.wait)})
	h.held += held.LogRecordCount()
	if h.held > h.max {
		// Over the bound: everything held is due now, in order; the next release tick delivers it.
		for _, q := range h.queues {
			for i := range q.batches {
				q.batches[i].deadline = now
			}
		}
	}
	return true
}

// release takes, in per-container order, the batches whose metadata arrived or whose deadline passed (every
// batch when force is set). Each returned batch is in flight until done is called for its key.
func (h *holder) release(now time.Time, force bool) []releasedBatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	if force {
		h.closed = true
	}
	var out []releasedBatch
	for key, q := range h.queues {
		for len(q.batches) > 0 {
			b := q.batches[0]
			ready := h.enricher.Enrich(b.logs.ResourceLogs().At(0).Resource())
			if !ready && !force && now.Before(b.deadline) {
				break
			}
			q.batches[0] = heldBatch{}
			q.batches = q.batches[1:]
			q.inflight++
			h.held -= b.logs.LogRecordCount()
			out = append(out, releasedBatch{key: key, logs: b.logs, expired: !ready})
		}
	}
	return out
}

// done marks one released batch of key as delivered.
func (h *holder) done(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[key]
	if q == nil {
		return
	}
	q.inflight--
	if q.inflight <= 0 && len(q.batches) == 0 {
		delete(h.queues, key)
	}
}
