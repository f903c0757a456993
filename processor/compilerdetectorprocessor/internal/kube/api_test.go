package kube

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// TestRESTAPI checks the requests the REST client sends (paths, selectors, content negotiation) and that it decodes
// answers and API errors. The real API server tests (integration_test.go) cover the same client end to end.
func TestRESTAPI(t *testing.T) {
	var (
		mu       sync.Mutex
		requests []*http.Request
	)
	reply := func(w http.ResponseWriter, code int, obj any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(obj)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r)
		mu.Unlock()
		switch r.URL.Path {
		case "/api/v1/pods":
			if r.URL.Query().Get("watch") == "true" {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"type": "ADDED", "object": corev1.Pod{
					TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "watched"}}})
				return
			}
			reply(w, http.StatusOK, corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
				Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n"}}}})
		case "/apis/apps/v1/namespaces/ns/replicasets/web-abc":
			reply(w, http.StatusOK, appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{Kind: "ReplicaSet", APIVersion: "apps/v1"},
				ObjectMeta: metav1.ObjectMeta{Name: "web-abc", OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "web", Controller: new(true)}}}})
		case "/apis/batch/v1/namespaces/ns/jobs/nightly-1":
			reply(w, http.StatusForbidden, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden,
				Message: `jobs.batch "nightly-1" is forbidden`})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	api, err := newAPI(&rest.Config{Host: srv.URL}, &health{logger: zap.NewNop(), stats: &counters{}})
	require.NoError(t, err)
	ctx := t.Context()

	pods, err := api.ListPods(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n", Limit: 1})
	require.NoError(t, err)
	require.Len(t, pods.Items, 1)
	assert.Equal(t, "p", pods.Items[0].Name)

	w, err := api.WatchPods(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n", ResourceVersion: "7"})
	require.NoError(t, err)
	ev := <-w.ResultChan()
	w.Stop()
	assert.Equal(t, watch.Added, ev.Type)
	require.IsType(t, &corev1.Pod{}, ev.Object)
	assert.Equal(t, "watched", ev.Object.(*corev1.Pod).Name)

	rs, err := api.GetReplicaSet(ctx, "ns", "web-abc")
	require.NoError(t, err)
	assert.Equal(t, "web", metav1.GetControllerOf(rs).Name)

	_, err = api.GetJob(ctx, "ns", "nightly-1")
	assert.True(t, apierrors.IsForbidden(err), "a 403 Status decodes to a Forbidden API error: %v", err)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, requests, 4)
	list, watchReq := requests[0], requests[1]
	assert.Equal(t, "spec.nodeName=n", list.URL.Query().Get("fieldSelector"))
	assert.Equal(t, "1", list.URL.Query().Get("limit"))
	assert.Equal(t, "application/vnd.kubernetes.protobuf,application/json", list.Header.Get("Accept"),
		"protobuf is preferred, JSON accepted")
	assert.Equal(t, userAgent, list.Header.Get("User-Agent"))
	assert.Equal(t, "true", watchReq.URL.Query().Get("watch"))
	assert.Equal(t, "7", watchReq.URL.Query().Get("resourceVersion"))
	assert.Equal(t, "spec.nodeName=n", watchReq.URL.Query().Get("fieldSelector"))
}
