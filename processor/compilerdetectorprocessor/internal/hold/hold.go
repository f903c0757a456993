// Package hold keeps records whose Kubernetes metadata is not known yet, in order per container, until it is
// known or kubernetes.wait_for_metadata passes. It owns that setting. It never changes a record: whether a
// batch is ready is asked of a Check, and what the check found goes on with the batch, for the processor to
// apply once.
package hold // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/hold"

import (
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// MaxWait bounds "kubernetes.wait_for_metadata". The informer sees a container's id milliseconds after the
// kubelet reports it; a longer hold only delays findings, and every held record waits in memory.
const MaxWait = time.Minute

// DefaultWait is the default of "kubernetes.wait_for_metadata".
const DefaultWait = 5 * time.Second

// ValidateWait checks "kubernetes.wait_for_metadata".
func ValidateWait(wait time.Duration) error {
	if wait < 0 || wait > MaxWait {
		return fmt.Errorf(`"kubernetes.wait_for_metadata" must be between 0s and %s, got %s`, MaxWait, wait)
	}
	return nil
}

// Check resolves the metadata of a held batch's resource without changing it: found is what is known by now,
// ready whether that is complete.
type Check[M any] func(res pcommon.Resource) (found M, ready bool)

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

// Batch is a held batch on its way to the next consumer. Done must be called with its Key once delivered.
type Batch[M any] struct {
	Key     string
	Logs    plog.Logs
	Found   M    // what the last check found, for the processor to apply
	Expired bool // released on deadline, bound or shutdown, not because metadata arrived
}

// MaxRecords bounds the records held at once, so memory stays bounded when the API server lags behind a burst
// of new containers (a held exec record is about 1-2 KB). Past it, the ConsumeLogs that crossed it releases the
// oldest held batches of the node at once (TakeOldest): they go on without waiting further, counted as
// hold-expired, and nothing is dropped.
const MaxRecords = 20000

// heldRef points at a held batch from the node-wide arrival list. Batches leave their queue from the front, so a
// ref is stale once its queue's front is a later batch (or the queue is empty).
type heldRef struct {
	q   *holdQueue
	key string
	seq uint64
}

func (r heldRef) live() bool { return len(r.q.batches) > 0 && r.seq >= r.q.batches[0].seq }

// Holder holds records whose Kubernetes metadata is not yet known, in order per container.
type Holder[M any] struct {
	wait time.Duration
	max  int

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

// New returns a holder that holds batches at most wait (kubernetes.wait_for_metadata), and no more than max
// records at once (MaxRecords).
func New[M any](wait time.Duration, max int) *Holder[M] {
	return &Holder[M]{wait: wait, max: max, queues: make(map[string]*holdQueue)}
}

// CheckEvery is how often held batches are worth checking: 0 when nothing is ever held.
func (h *Holder[M]) CheckEvery() time.Duration {
	if h.wait <= 0 {
		return 0
	}
	return min(max(h.wait/10, 10*time.Millisecond), 250*time.Millisecond)
}

// Held is the number of records held (not in flight).
func (h *Holder[M]) Held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// Route reports whether rl was moved into the hold queue of its container key (true) or must be processed now.
// A record is held when its metadata is not ready, or when an earlier batch of its container is held or in
// flight, so that none overtakes another of its container. key "" (a host resource) is never held.
func (h *Holder[M]) Route(rl plog.ResourceLogs, key string, ready bool, now time.Time) bool {
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

// OverBound reports whether more than the bound is held.
func (h *Holder[M]) OverBound() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held > h.max
}

// TakeOldest takes the oldest held batches of the node, in per-container order, until no more than the bound is
// held. Each is in flight until Done is called for its key. The oldest held batch of the node is the front of its
// container's queue, found through the arrival list without looking at the other queues.
func (h *Holder[M]) TakeOldest(check Check[M]) []Batch[M] {
	h.mu.Lock()
	defer h.mu.Unlock()
	var due []Batch[M]
	for h.held > h.max && h.arrivalHead < len(h.arrival) {
		ref := h.arrival[h.arrivalHead]
		h.arrival[h.arrivalHead] = heldRef{}
		h.arrivalHead++
		if ref.live() {
			found, ready := check(ref.q.batches[0].logs.ResourceLogs().At(0).Resource())
			due = append(due, h.pop(ref.key, ref.q, found, !ready))
		}
	}
	h.compact()
	return due
}

// pop takes the front batch of q, in flight from now on; expired when its metadata is still missing. Called with
// mu held.
func (h *Holder[M]) pop(key string, q *holdQueue, found M, expired bool) Batch[M] {
	b := q.batches[0]
	q.batches[0] = heldBatch{}
	q.batches = q.batches[1:]
	q.inflight++
	h.held -= b.logs.LogRecordCount()
	h.batches--
	return Batch[M]{Key: key, Logs: b.logs, Found: found, Expired: expired}
}

// compact drops the arrival list's refs of released batches once they outnumber the live ones, so that the list
// stays proportional to what is held: amortised constant time per batch. Called with mu held.
func (h *Holder[M]) compact() {
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

// Release takes, in per-container order, the batches whose metadata arrived or whose deadline passed (every
// batch when force is set). Each returned batch is in flight until Done is called for its key.
func (h *Holder[M]) Release(now time.Time, force bool, check Check[M]) []Batch[M] {
	h.mu.Lock()
	defer h.mu.Unlock()
	if force {
		h.closed = true
	}
	var out []Batch[M]
	for key, q := range h.queues {
		for len(q.batches) > 0 {
			found, ready := check(q.batches[0].logs.ResourceLogs().At(0).Resource())
			if !ready && !force && now.Before(q.batches[0].deadline) {
				break
			}
			out = append(out, h.pop(key, q, found, !ready))
		}
	}
	if force {
		clear(h.arrival)
		h.arrival, h.arrivalHead = nil, 0
	}
	h.compact()
	return out
}

// Done marks one released batch of key as delivered.
func (h *Holder[M]) Done(key string) {
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
