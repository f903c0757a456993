package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
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
	seq      uint64 // arrival order across containers
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
// of new containers (a held exec record is about 1-2 KB). Past it, the ConsumeLogs that crossed it releases the
// oldest held batches of the node at once (takeOldest): they go on without waiting further, counted as
// hold-expired, and nothing is dropped.
const maxHeldRecords = 20000

// heldRef points at a held batch from the node-wide arrival list. Batches leave their queue from the front, so a
// ref is stale once its queue's front is a later batch (or the queue is empty).
type heldRef struct {
	q   *holdQueue
	key string
	seq uint64
}

func (r heldRef) live() bool { return len(r.q.batches) > 0 && r.seq >= r.q.batches[0].seq }

// holder holds records whose Kubernetes metadata is not yet known, in order per container.
type holder struct {
	enricher enricher
	wait     time.Duration
	max      int // maxHeldRecords; tests lower it

	mu      sync.Mutex
	queues  map[string]*holdQueue
	held    int // records in queues (not in flight)
	batches int // batches in queues
	closed  bool
	// arrival lists held batches oldest first, from arrivalHead on; refs of batches released since are skipped
	// when met and compacted away when they outnumber the live ones.
	arrival     []heldRef
	arrivalHead int
	seq         uint64
}

func newHolder(e enricher, wait time.Duration) *holder {
	return &holder{enricher: e, wait: wait, max: maxHeldRecords, queues: make(map[string]*holdQueue)}
}

// orderKey identifies the container a resource belongs to, for ordering. Host resources have none and are
// never held.
func orderKey(res pcommon.Map) string {
	if id := attr.Str(res, attr.ContainerID); id != "" {
		return id
	}
	return attr.Str(res, attr.K8sPodUID)
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
	logs := plog.NewLogs()
	rl.MoveTo(logs.ResourceLogs().AppendEmpty())
	h.seq++
	q.batches = append(q.batches, heldBatch{logs: logs, deadline: now.Add(h.wait), seq: h.seq})
	h.arrival = append(h.arrival, heldRef{q: q, key: key, seq: h.seq})
	h.held += logs.LogRecordCount()
	h.batches++
	h.compact()
	return true
}

// overBound reports whether more than the bound is held.
func (h *holder) overBound() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held > h.max
}

// takeOldest takes the oldest held batches of the node, in per-container order, until no more than the bound is
// held. Each is in flight until done is called for its key. The oldest held batch of the node is the front of its
// container's queue, found through the arrival list without looking at the other queues.
func (h *holder) takeOldest() []releasedBatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	var due []releasedBatch
	for h.held > h.max && h.arrivalHead < len(h.arrival) {
		ref := h.arrival[h.arrivalHead]
		h.arrival[h.arrivalHead] = heldRef{}
		h.arrivalHead++
		if ref.live() {
			ready := h.enricher.Enrich(ref.q.batches[0].logs.ResourceLogs().At(0).Resource())
			due = append(due, h.pop(ref.key, ref.q, !ready))
		}
	}
	h.compact()
	return due
}

// pop takes the front batch of q, in flight from now on; expired when its metadata is still missing. Called with
// mu held.
func (h *holder) pop(key string, q *holdQueue, expired bool) releasedBatch {
	b := q.batches[0]
	q.batches[0] = heldBatch{}
	q.batches = q.batches[1:]
	q.inflight++
	h.held -= b.logs.LogRecordCount()
	h.batches--
	return releasedBatch{key: key, logs: b.logs, expired: expired}
}

// compact drops the arrival list's refs of released batches once they outnumber the live ones, so that the list
// stays proportional to what is held: amortised constant time per batch. Called with mu held.
func (h *holder) compact() {
	if n := len(h.arrival) - h.arrivalHead; n <= 2*h.batches+64 {
		return
	}
	live := h.arrival[:0]
	for _, r := range h.arrival[h.arrivalHead:] {
		if r.live() {
			live = append(live, r)
		}
	}
	clear(h.arrival[len(live):])
	h.arrival, h.arrivalHead = live, 0
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
			ready := h.enricher.Enrich(q.batches[0].logs.ResourceLogs().At(0).Resource())
			if !ready && !force && now.Before(q.batches[0].deadline) {
				break
			}
			out = append(out, h.pop(key, q, !ready))
		}
	}
	if force {
		clear(h.arrival)
		h.arrival, h.arrivalHead = nil, 0
	}
	h.compact()
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
