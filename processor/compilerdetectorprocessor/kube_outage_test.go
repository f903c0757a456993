package compilerdetectorprocessor

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/hold"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
)

const metricK8sSynced = "otelcol_processor_compiler_detector_k8s_synced"

// statusHost is a host that records the component status the processor reports.
type statusHost struct {
	mu     sync.Mutex
	events []*componentstatus.Event
}

var _ componentstatus.Reporter = (*statusHost)(nil)

func (h *statusHost) GetExtensions() map[component.ID]component.Component { return nil }

func (h *statusHost) Report(ev *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

func (h *statusHost) last() *componentstatus.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		return nil
	}
	return h.events[len(h.events)-1]
}

func (h *harness) gauge(t *testing.T, name string) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	require.NoError(t, err)
	g, ok := m.Data.(metricdata.Gauge[int64])
	require.True(t, ok, "%s is not an int gauge", name)
	require.Len(t, g.DataPoints, 1)
	return g.DataPoints[0].Value
}

// deadKubeconfig writes a kubeconfig whose API server refuses connections (port 1).
func deadKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	return path
}

// TestKubernetesAPIDownAtStart: with kubernetes.enabled true and an API server that does not answer, Start
// succeeds, the status says RecoverableError, the k8s_synced gauge reads 0, and a container's compiler execution
// flows on at once without Kubernetes attributes instead of being held.
func TestKubernetesAPIDownAtStart(t *testing.T) {
	kubeconfig := deadKubeconfig(t)
	cfg := createDefaultConfig().(*Config)
	cfg.Kubernetes.Enabled = kube.ModeTrue
	cfg.Kubernetes.Kubeconfig = kubeconfig
	cfg.Kubernetes.NodeName = "node-a"
	cfg.Kubernetes.WaitForMetadata.Hold = time.Minute
	h := newHarness(t, cfg, nil)
	host := &statusHost{}
	require.NoError(t, h.p.Start(context.Background(), host), "an unreachable API server must not fail Start")
	t.Cleanup(func() { require.NoError(t, h.p.Shutdown(context.Background())) })

	ev := host.last()
	require.NotNil(t, ev, "the processor reports the pod cache's state")
	assert.Equal(t, componentstatus.StatusRecoverableError, ev.Status())
	assert.ErrorContains(t, ev.Err(), "the API server is not reachable")
	assert.Equal(t, int64(0), h.gauge(t, metricK8sSynced))

	ld := plog.NewLogs()
	appendExec(appendResource(ld, testContainer, map[string]string{attr.K8sPodUID: testPodUID}), 10, recGCC)
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	require.Len(t, h.sink.AllLogs(), 1, "not held: no pod is known, so nothing can be pending")
	out := flagged(h.sink.AllLogs())
	require.Len(t, out, 1)
	res := h.sink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	_, hasPod := res.Get("k8s.pod.name")
	assert.False(t, hasPod)
	assert.Equal(t, int64(0), h.counter(t, metricHeld))
}

// TestWaitForMetadataTrueFailsStart: contrib's wait_for_metadata: true turns the same outage into a Start error
// after wait_for_metadata_timeout, which names the setting and the reason, and Shutdown after it is clean.
func TestWaitForMetadataTrueFailsStart(t *testing.T) {
	kubeconfig := deadKubeconfig(t)
	cfg := createDefaultConfig().(*Config)
	cfg.Kubernetes.AuthType = kube.AuthTypeKubeConfig
	cfg.Kubernetes.Kubeconfig = kubeconfig
	cfg.Kubernetes.NodeName = "node-a"
	cfg.Kubernetes.WaitForMetadata = kube.WaitForMetadata{Hold: hold.DefaultWait, AtStart: true, IsBool: true}
	cfg.Kubernetes.WaitForMetadataTimeout = time.Second
	require.NoError(t, cfg.Validate())
	h := newHarness(t, cfg, nil)
	err := h.p.Start(context.Background(), &statusHost{})
	assert.ErrorContains(t, err, `"kubernetes.wait_for_metadata" is true and the pod cache of node node-a is not synced after 1s: the API server is not reachable`)
	assert.ErrorContains(t, err, "127.0.0.1:1")
	require.NoError(t, h.p.Shutdown(context.Background()))
}

// TestHoldDoesNotWaitThroughAnOutage: a record whose pod is known but whose container is not yet in the status is
// held while the cache follows the API server, and is not held once the API server is lost (the status update it
// waits for cannot come).
func TestHoldDoesNotWaitThroughAnOutage(t *testing.T) {
	var failing atomic.Bool
	client := fake.NewClientset(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", UID: testPodUID},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	})
	client.PrependReactor("get", "replicasets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd down")
		}
		return false, nil, nil
	})
	c, err := kube.New(kube.Config{Enabled: kube.ModeTrue, NodeName: "node-a"},
		kube.Settings{Client: kubetest.ClientsetAPI{Interface: client}, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })
	require.Eventually(t, c.Following, 5*time.Second, 5*time.Millisecond)
	src := kubeSource{c}
	lookup := func(res pcommon.Resource) bool {
		found, ready := src.Lookup(res)
		enrich(res, found)
		return ready
	}

	res := plog.NewLogs().ResourceLogs().AppendEmpty().Resource()
	res.Attributes().PutStr(attr.ContainerID, testContainer)
	res.Attributes().PutStr(attr.K8sPodUID, testPodUID)
	assert.False(t, lookup(res), "pod known, container pending: worth holding")

	// A new pod's owner GET fails with a 503: the API server is lost.
	failing.Store(true)
	_, err = client.CoreV1().Pods("ns").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-x-1", Namespace: "ns", UID: "uid-b", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-x", UID: "uid-rs", Controller: new(true)}}},
		Spec: corev1.PodSpec{NodeName: "node-a"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !c.Following() }, 5*time.Second, 5*time.Millisecond)
	assert.True(t, lookup(res), "the API server is lost: nothing waits for a status update that cannot come")
	assert.Equal(t, "a", strAttr(res.Attributes(), "k8s.pod.name"), "what the cache has is still added")
}

// TestKubernetesConfigErrorsFailStart: what stays a Start error is configuration: a kubeconfig that does not load.
func TestKubernetesConfigErrorsFailStart(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, []byte("clusters: [not, a, kubeconfig\n"), 0o600))
	cfg := createDefaultConfig().(*Config)
	cfg.Kubernetes.Enabled = kube.ModeTrue
	cfg.Kubernetes.Kubeconfig = kubeconfig
	cfg.Kubernetes.NodeName = "node-a"
	h := newHarness(t, cfg, nil)
	err := h.p.Start(context.Background(), &statusHost{})
	assert.ErrorContains(t, err, `cannot load "kubernetes.kubeconfig"`)
	require.NoError(t, h.p.Shutdown(context.Background()))
}
