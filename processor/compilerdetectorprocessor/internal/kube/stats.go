package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Stats is a snapshot of the cache's counters, for the processor's telemetry. Counters are cumulative.
type Stats struct {
	// Pods is the number of pods in the cache (this node's).
	Pods int
	// Hits counts lookups that found the container (or the pod, for records without a container id).
	Hits uint64
	// ContainerPending counts lookups whose pod was known but whose container id was not yet in the status.
	ContainerPending uint64
	// Misses counts lookups that found nothing.
	Misses uint64
	// APIErrors counts failed requests to the API server (list, watch, owner GETs): network errors, 5xx, and a
	// refused (401, 403) list or watch of pods.
	APIErrors uint64
	// OwnerGets counts answered ReplicaSet and Job GETs; OwnerGetErrors those that failed (forbidden included).
	OwnerGets      uint64
	OwnerGetErrors uint64
	// APIReachable is false after a failed request until one succeeds again.
	APIReachable bool
}

type counters struct {
	hits, pending, misses     atomic.Uint64
	apiErrors                 atomic.Uint64
	ownerGets, ownerGetErrors atomic.Uint64
}

// Status is the cache's view of the API server. The three parts change independently, and each logs its own
// transitions once: an outage, an RBAC refusal and the initial sync are different problems with different fixes.
type Status struct {
	// Synced is true once the initial list of the node's pods has completed. It stays true through later outages:
	// the cache keeps its last view and keeps answering from it.
	Synced bool
	// Reachable is false after a request failed without an answer (network error, 5xx) until one is answered.
	Reachable bool
	// Denied names the verbs on pods the API server refuses (RBAC 403 or rejected credentials 401), in the order
	// they were refused; empty when list and watch are allowed.
	Denied []string
	// Err is the latest failure behind a status that is not OK.
	Err error
}

// OK reports whether the cache follows the node's pods: synced, the API server answering, list and watch
// allowed.
func (s Status) OK() bool { return s.Synced && s.Reachable && len(s.Denied) == 0 }

// Problem describes what keeps the status from OK, for a component status or a log line; nil when OK.
func (s Status) Problem() error {
	var what string
	switch {
	case len(s.Denied) > 0:
		what = "not allowed to " + strings.Join(s.Denied, " and ") + " pods (RBAC needs " + requiredRBAC + ")"
	case !s.Reachable:
		what = "the API server is not reachable"
	case !s.Synced:
		what = "the pod cache has not synced yet"
	default:
		return nil
	}
	if s.Err != nil {
		return fmt.Errorf("kubernetes: %s; records flow without Kubernetes attributes the cache cannot give, "+
			"retrying: %w", what, s.Err)
	}
	return fmt.Errorf("kubernetes: %s; records flow without Kubernetes attributes the cache cannot give, retrying", what)
}

// requiredRBAC is what the processor's ClusterRole must grant.
const requiredRBAC = "get, list and watch on pods; get on replicasets (apps) and jobs (batch)"

// health tracks the cache's Status and logs each transition of each part once: a node agent losing its API server
// must say so, but not once per record or per reflector retry, and an outage answered by 403s must not read as
// "failing" and "succeeding again" in turn.
type health struct {
	logger *zap.Logger
	stats  *counters
	node   string
	// onChange, when set, is told every change of Synced, Reachable or Denied, in order: it is called with mu held,
	// so it must not call back into the cache.
	onChange func(Status)

	mu          sync.Mutex
	synced      bool
	unreachable bool
	denied      []string
	lastErr     error
	published   bool
}

func (h *health) status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statusLocked()
}

func (h *health) statusLocked() Status {
	return Status{Synced: h.synced, Reachable: !h.unreachable, Denied: slices.Clone(h.denied), Err: h.lastErr}
}

func (h *health) ok() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.synced && !h.unreachable && len(h.denied) == 0
}

func (h *health) reachable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.unreachable
}

// publish tells onChange the current status; Start calls it once, so the first status is reported even when
// nothing has changed yet.
func (h *health) publish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published = true
	if h.onChange != nil {
		h.onChange(h.statusLocked())
	}
}

// changedLocked tells onChange of a transition, once Start has published the first status.
func (h *health) changedLocked() {
	if h.published && h.onChange != nil {
		h.onChange(h.statusLocked())
	}
}

// failure records a request that got no answer: counted every time, logged on the transition only.
func (h *health) failure(err error) {
	h.stats.apiErrors.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if h.unreachable {
		return
	}
	h.unreachable = true
	msg := "Kubernetes API server not reachable; records flow with metadata from the pod cache only, retrying"
	if !h.synced {
		msg = "Kubernetes API server not reachable; records flow without Kubernetes attributes until the pod " +
			"cache syncs, retrying"
	}
	h.logger.Warn(msg, zap.String("node", h.node), zap.Error(err))
	h.changedLocked()
}

// success records an answered request (any status below 500: a 403 is an answer).
func (h *health) success() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.unreachable {
		return
	}
	h.unreachable = false
	if len(h.denied) == 0 {
		h.lastErr = nil
	}
	h.logger.Info("Kubernetes API server reachable again", zap.String("node", h.node))
	h.changedLocked()
}

// deniedVerb records a 401 or 403 answer to a list or watch of pods. It is counted every time and logged once per
// verb until that verb succeeds again.
func (h *health) deniedVerb(verb string, err error) {
	h.stats.apiErrors.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if slices.Contains(h.denied, verb) {
		return
	}
	h.denied = append(h.denied, verb)
	msg := "Kubernetes RBAC does not allow " + verb + " on pods; records flow without the Kubernetes " +
		"attributes the pod cache cannot give, retrying. The ClusterRole needs " + requiredRBAC
	if apierrors.IsUnauthorized(err) {
		msg = "The Kubernetes API server rejects the credentials (401) for " + verb + " on pods; records flow " +
			"without the Kubernetes attributes the pod cache cannot give, retrying. Check the service account token"
	}
	h.logger.Error(msg, zap.String("node", h.node), zap.String("verb", verb), zap.String("resource", "pods"),
		zap.Error(err))
	h.changedLocked()
}

// allowedVerb records a successful list or watch of pods. A watch that is allowed clears a refused list as well:
// the informer streams its initial list over a watch (watch-list), so with the watch allowed the cache works, and
// the list it no longer sends would otherwise stay refused forever.
func (h *health) allowedVerb(verb string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	before := len(h.denied)
	h.denied = slices.DeleteFunc(h.denied, func(v string) bool { return v == verb || verb == "watch" })
	if len(h.denied) == before {
		return
	}
	if len(h.denied) == 0 && !h.unreachable {
		h.lastErr = nil
	}
	h.logger.Info("Kubernetes RBAC allows "+verb+" on pods again", zap.String("node", h.node))
	h.changedLocked()
}

// markSynced records the initial sync of the pod cache.
func (h *health) markSynced(pods int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.synced {
		return
	}
	h.synced = true
	h.logger.Info("Kubernetes pod cache synced", zap.String("node", h.node), zap.Int("pods", pods))
	h.changedLocked()
}

// roundTripper observes every request the cache makes (list, watch, owner GETs) to track reachability: the
// informer retries silently, so the transport is the one place that sees every failure and the API server coming
// back. With it in place, the watch error handler and owner GETs do not report transport errors again.
type roundTripper struct {
	next   http.RoundTripper
	health *health
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	switch {
	case err != nil:
		// A canceled request is our own shutdown or timeout bookkeeping, not the server's failure.
		if !errors.Is(err, context.Canceled) {
			rt.health.failure(err)
		}
	case resp.StatusCode >= http.StatusInternalServerError:
		rt.health.failure(errors.New("HTTP " + resp.Status))
	default:
		rt.health.success()
	}
	return resp, err
}

// transportReported reports whether roundTripper has already seen err: anything that is not an API answer (a
// network error) and 5xx answers.
func transportReported(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code >= http.StatusInternalServerError
	}
	return true
}
