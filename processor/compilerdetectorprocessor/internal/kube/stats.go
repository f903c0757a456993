package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"context"
	"errors"
	"net/http"
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
	// forbidden list or watch of pods.
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

// health tracks whether the API server answers, and logs each transition once: a node agent losing its API server
// must say so, but not once per record or per reflector retry.
type health struct {
	logger *zap.Logger
	stats  *counters

	mu          sync.Mutex
	unreachable bool
	// onChange, when set, is told of each transition (tests; the processor may use it for status reporting).
	onChange func(reachable bool)
}

func (h *health) reachable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.unreachable
}

// failure records a failed request: counted every time, logged on the transition only.
func (h *health) failure(err error) {
	h.stats.apiErrors.Add(1)
	h.mu.Lock()
	changed := !h.unreachable
	h.unreachable = true
	cb := h.onChange
	h.mu.Unlock()
	if changed {
		h.logger.Warn("Kubernetes API requests failing; records keep flowing with metadata from the cache only",
			zap.Error(err))
		if cb != nil {
			cb(false)
		}
	}
}

func (h *health) success() {
	h.mu.Lock()
	changed := h.unreachable
	h.unreachable = false
	cb := h.onChange
	h.mu.Unlock()
	if changed {
		h.logger.Info("Kubernetes API requests succeeding again")
		if cb != nil {
			cb(true)
		}
	}
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
