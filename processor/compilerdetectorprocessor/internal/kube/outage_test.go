package kube

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
)

// statusRecorder collects what OnStatusChange reports.
type statusRecorder struct {
	mu  sync.Mutex
	all []Status
}

func (r *statusRecorder) record(s Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, s)
}

func (r *statusRecorder) snapshot() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// waitFor waits until some reported status satisfies ok.
func (r *statusRecorder) waitFor(t *testing.T, what string, ok func(Status) bool) {
	t.Helper()
	require.Eventually(t, func() bool { return slices.ContainsFunc(r.snapshot(), ok) }, 20*time.Second, 5*time.Millisecond,
		"%s; reported: %+v", what, r.snapshot())
}

// messages returns the logged messages at level or above that contain sub.
func messages(logs *observer.ObservedLogs, level zapcore.Level, sub string) []string {
	var out []string
	for _, e := range logs.All() {
		if e.Level >= level && strings.Contains(e.Message, sub) {
			out = append(out, e.Message)
		}
	}
	return out
}

// switchableAPI is a fake clientset whose pod list and watch fail with err until err is cleared.
type switchableAPI struct {
	*fake.Clientset
	mu    sync.Mutex
	err   error
	lists atomic.Int32
}

func newSwitchableAPI(err error, objs ...runtime.Object) *switchableAPI {
	a := &switchableAPI{Clientset: fake.NewClientset(objs...), err: err}
	a.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		a.lists.Add(1)
		if err := a.failure(); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
	a.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		if err := a.failure(); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
	return a
}

func (a *switchableAPI) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *switchableAPI) set(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

// TestOutageThenSync: started while the API server is unreachable, the cache finds nothing and says so once,
// keeps retrying, and syncs when the API server comes back; the status goes from not reachable to OK.
func TestOutageThenSync(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	api := newSwitchableAPI(errors.New("dial tcp 10.0.0.1:443: connect: connection refused"),
		newPod("p", container("c", "img", "containerd://"+testID(1), "")))
	rec := &statusRecorder{}
	c, err := New(Config{Enabled: ModeTrue, NodeName: testNode}, Settings{
		Client: kubetest.ClientsetAPI{Interface: api}, Logger: zap.New(core), OnStatusChange: rec.record,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })

	first := rec.snapshot()
	require.NotEmpty(t, first, "Start reports the first status")
	assert.False(t, first[0].Reachable)
	assert.False(t, first[0].Synced)
	_, st := c.Resolve(testID(1), "")
	assert.Equal(t, StateUnknown, st, "nothing is known, so nothing is pending")

	// The reflector retries with backoff (800ms, then doubling with jitter): wait for two more attempts.
	require.Eventually(t, func() bool { return api.lists.Load() >= 3 }, 20*time.Second, 10*time.Millisecond)
	assert.Len(t, messages(logs, zapcore.WarnLevel, "not reachable"), 1, "logged once, not per retry")
	assert.Greater(t, c.Stats().APIErrors, uint64(1), "counted per retry")

	api.set(nil)
	rec.waitFor(t, "synced once the API server answers", Status.OK)
	_, st = c.Resolve(testID(1), "")
	assert.Equal(t, StateFound, st)
	assert.Len(t, messages(logs, zapcore.InfoLevel, "reachable again"), 1)
	assert.Len(t, messages(logs, zapcore.InfoLevel, "pod cache synced"), 1)
	assert.Empty(t, messages(logs, zapcore.ErrorLevel, ""), "an outage is not an error")
}

// TestForbiddenLoggedOnceThenAllowed: a 403 on the pod list is an RBAC problem, not an outage. It does not fail
// Start, is logged once naming the verb and the permissions needed, is retried, and the grant is noticed.
func TestForbiddenLoggedOnceThenAllowed(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	forbidden := apierrors.NewForbidden(corev1.Resource("pods"), "",
		errors.New(`User "system:serviceaccount:compilerwatch:agent" cannot list resource "pods" in API group "" at the cluster scope`))
	api := newSwitchableAPI(forbidden, newPod("p", container("c", "img", "containerd://"+testID(1), "")))
	rec := &statusRecorder{}
	c, err := New(Config{Enabled: ModeTrue, NodeName: testNode}, Settings{
		Client: kubetest.ClientsetAPI{Interface: api}, Logger: zap.New(core), OnStatusChange: rec.record,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })

	require.Eventually(t, func() bool { return api.lists.Load() >= 3 }, 20*time.Second, 10*time.Millisecond)
	s := c.Status()
	assert.True(t, s.Reachable)
	assert.False(t, s.Synced)
	assert.Contains(t, s.Denied, "list")
	denied := messages(logs, zapcore.ErrorLevel, "does not allow list on pods")
	require.Len(t, denied, 1, "logged once, not per retry")
	assert.Contains(t, denied[0], "get, list and watch on pods; get on replicasets (apps) and jobs (batch)")
	assert.Empty(t, messages(logs, zapcore.InfoLevel, "reachable"), "a 403 is not an outage: no reachable/unreachable flapping")

	api.set(nil)
	rec.waitFor(t, "synced once RBAC allows the list", Status.OK)
	_, st := c.Resolve(testID(1), "")
	assert.Equal(t, StateFound, st)
	assert.Len(t, messages(logs, zapcore.InfoLevel, "allows list on pods again"), 1)
	assert.Len(t, messages(logs, zapcore.ErrorLevel, "does not allow list"), 1)
}

// TestStartPingOverHTTP checks the request Start sends through the real transport, and that a 403 answer from a
// server is reported as an RBAC refusal only, never as the API server failing and recovering.
func TestStartPingOverHTTP(t *testing.T) {
	var (
		mu       sync.Mutex
		requests []*http.Request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r)
		mu.Unlock()
		verb := "list"
		if r.URL.Query().Get("watch") == "true" {
			verb = "watch"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden,
			Details: &metav1.StatusDetails{Kind: "pods"},
			Message: `pods is forbidden: User "agent" cannot ` + verb + ` resource "pods" in API group "" at the cluster scope`})
	}))
	t.Cleanup(srv.Close)

	core, logs := observer.New(zapcore.DebugLevel)
	c, err := New(Config{Enabled: ModeTrue, Kubeconfig: writeKubeconfig(t, srv.URL), NodeName: testNode},
		Settings{Logger: zap.New(core)})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })

	count := func() int { mu.Lock(); defer mu.Unlock(); return len(requests) }
	require.Eventually(t, func() bool { return count() >= 4 }, 20*time.Second, 10*time.Millisecond, "the informer retries")
	mu.Lock()
	ping := requests[0]
	mu.Unlock()
	q := ping.URL.Query()
	assert.Equal(t, "/api/v1/pods", ping.URL.Path)
	assert.Equal(t, "1", q.Get("limit"))
	assert.Equal(t, "0", q.Get("resourceVersion"), "served from the watch cache, not a quorum read of etcd")
	assert.Equal(t, "spec.nodeName="+testNode, q.Get("fieldSelector"))

	assert.Len(t, messages(logs, zapcore.ErrorLevel, "does not allow list on pods"), 1)
	assert.LessOrEqual(t, len(messages(logs, zapcore.ErrorLevel, "does not allow watch on pods")), 1)
	assert.Empty(t, messages(logs, zapcore.InfoLevel, "reachable"), "no reachable/unreachable flapping")
	assert.True(t, c.Stats().APIReachable)
	assert.False(t, c.Status().OK())
}
