package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
)

func namespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

// Namespace labels and annotations reach the resource as k8s.namespace.label/annotation.<key>, for the selected
// keys only, and an update of the namespace is picked up.
func TestNamespaceLabelsAndAnnotations(t *testing.T) {
	pod := newPod("web", container("app", "nginx", "containerd://"+testID(1), ""))
	ns := namespace("team", map[string]string{"team": "payments", "env": "prod", "other": "x"},
		map[string]string{"owner": "alice@example.com", "kubectl.kubernetes.io/last-applied-configuration": "{}"})
	client := fake.NewClientset(pod, ns)
	tc := startCache(t, Config{NamespaceLabels: []string{"team", "env"}, NamespaceAnnotations: []string{"owner"}}, client, Settings{})
	// As for pods (startCache): the fake clientset loses an update made before the watch is established.
	require.Eventually(t, func() bool {
		for _, a := range client.Actions() {
			if a.GetVerb() == "watch" && a.GetResource().Resource == "namespaces" {
				return tc.namespaces.informer.HasSynced()
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond)

	res := resourceWith("container.id", testID(1))
	require.Equal(t, StateFound, tc.Enrich(res))
	got := res.Attributes().AsRaw()
	assert.Equal(t, "payments", got["k8s.namespace.label.team"])
	assert.Equal(t, "prod", got["k8s.namespace.label.env"])
	assert.Equal(t, "alice@example.com", got["k8s.namespace.annotation.owner"])
	assert.NotContains(t, got, "k8s.namespace.label.other")
	assert.NotContains(t, got, "k8s.namespace.annotation.kubectl.kubernetes.io/last-applied-configuration")
	// The cache keeps only the selected keys.
	kept := tc.namespaces.get("team")
	assert.Equal(t, map[string]string{"team": "payments", "env": "prod"}, kept.Labels)

	ns.Labels["team"] = "billing"
	_, err := client.CoreV1().Namespaces().Update(t.Context(), ns, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		res := resourceWith("container.id", testID(1))
		tc.Enrich(res)
		v, _ := res.Attributes().Get("k8s.namespace.label.team")
		return v.Str() == "billing"
	}, 5*time.Second, 5*time.Millisecond)
}

// Without namespace keys configured, no namespace informer runs (and no RBAC on namespaces is needed).
func TestNoNamespaceInformerUnlessConfigured(t *testing.T) {
	client := fake.NewClientset(namespace("team", map[string]string{"team": "payments"}, nil))
	tc := startCache(t, Config{PodLabels: []string{"*"}}, client, Settings{})
	assert.Nil(t, tc.namespaces)
	for _, a := range client.Actions() {
		assert.NotEqual(t, "namespaces", a.GetResource().Resource, "%s %s", a.GetVerb(), a.GetResource())
	}
}

func TestKeepBounded(t *testing.T) {
	in := map[string]string{"long": strings.Repeat("x", MaxNamespaceValue+1), "edge": strings.Repeat("y", MaxNamespaceValue)}
	for i := range 100 {
		in[fmt.Sprintf("k%03d", i)] = "v"
	}
	out := keepBounded(in, newKeySelector([]string{"*"}))
	assert.Len(t, out, MaxNamespaceKeys)
	assert.NotContains(t, out, "long", "a value over the bound is left out, not cut")
	assert.Contains(t, out, "edge")
	assert.Contains(t, out, "k000")
	assert.NotContains(t, out, "k099", "the first keys in key order are kept")
	assert.Equal(t, out, keepBounded(out, newKeySelector([]string{"*"})), "idempotent")
	assert.Nil(t, keepBounded(in, newKeySelector(nil)))
	assert.Equal(t, map[string]string{"k001": "v"}, keepBounded(in, newKeySelector([]string{"k001", "absent"})))
	assert.Equal(t, map[string]string{"bad\uFFFD": "\uFFFD"}, keepBounded(map[string]string{"bad\xff": "\xfe"}, newKeySelector([]string{"*"})))
}

func TestWaitForMetadataUnmarshal(t *testing.T) {
	tests := []struct {
		in   any
		want WaitForMetadata
	}{
		{true, WaitForMetadata{Hold: 5 * time.Second, AtStart: true, IsBool: true}},
		{false, WaitForMetadata{Hold: 5 * time.Second, IsBool: true}},
		{"true", WaitForMetadata{Hold: 5 * time.Second, AtStart: true, IsBool: true}},
		{"2s", WaitForMetadata{Hold: 2 * time.Second}},
		{0, WaitForMetadata{}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.WaitForMetadata.Hold = 5 * time.Second
			require.NoError(t, confmapUnmarshal(map[string]any{"wait_for_metadata": tt.in}, &cfg))
			assert.Equal(t, tt.want, cfg.WaitForMetadata)
		})
	}
	cfg := DefaultConfig()
	assert.ErrorContains(t, confmapUnmarshal(map[string]any{"wait_for_metadata": "soon"}, &cfg), `got "soon"`)
	assert.Error(t, confmapUnmarshal(map[string]any{"wait_for_metadata": []any{1}}, &cfg))
}

// wait_for_metadata: true makes Start wait for the first sync, unlike the default (which returns at once while the
// API server does not answer), and fail, naming the setting and the reason, when it does not come in time.
func TestWaitForMetadataAtStart(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no RBAC"))
	wait := WaitForMetadata{AtStart: true, IsBool: true}

	api := newSwitchableAPI(forbidden, newPod("web", container("app", "nginx", "containerd://"+testID(1), "")))
	c, err := New(Config{Enabled: ModeTrue, NodeName: testNode, WaitForMetadata: wait, WaitForMetadataTimeout: 300 * time.Millisecond},
		Settings{Client: kubetest.ClientsetAPI{Interface: api}, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	start := time.Now()
	err = c.Start(t.Context())
	assert.ErrorContains(t, err, `"kubernetes.wait_for_metadata" is true and the pod cache of node node-a is not synced after 300ms: RBAC does not allow list`)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.NoError(t, c.Shutdown(t.Context()), "Start stopped what it started")

	// Allowed: Start returns synced, and the pod resolves at once.
	api = newSwitchableAPI(nil, newPod("web", container("app", "nginx", "containerd://"+testID(1), "")))
	c, err = New(Config{Enabled: ModeTrue, NodeName: testNode, WaitForMetadata: wait},
		Settings{Client: kubetest.ClientsetAPI{Interface: api}, Logger: zaptest.NewLogger(t), StartTimeout: time.Nanosecond})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })
	assert.True(t, c.Status().Synced)
	_, st := c.Resolve(testID(1), "")
	assert.Equal(t, StateFound, st)
}
