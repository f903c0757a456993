package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// auth_type tls: client-go's transport cache keeps one client-certificate reloader per distinct
		// configuration for the process's life (it re-reads cert_file and key_file as they rotate). It is
		// client-go's, shared by every client with the same files, and does not grow with restarts of the cache.
		goleak.IgnoreAnyFunction("k8s.io/client-go/transport.(*dynamicClientCert).run"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/transport.(*dynamicClientCert).processNextWorkItem"),
		goleak.IgnoreAnyFunction("k8s.io/apimachinery/pkg/util/wait.PollImmediateUntil"),
		goleak.IgnoreTopFunction("k8s.io/client-go/util/workqueue.(*delayingType[...]).waitingLoop"),
		goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/util/wait.PollImmediateUntilWithContext.poller.func1.1"),
	)
}

const testNode = "node-a"

// testID returns a distinct full container id.
func testID(n int) string { return fmt.Sprintf("%064x", n) }

type podOpt func(*corev1.Pod)

func newPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: testNode},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func onNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }

func ownedBy(kind, name string) podOpt {
	return func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, *metav1.NewControllerRef(
			&metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, schema.GroupVersionKind{Kind: kind}))
	}
}

func labels(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Labels = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func annotations(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Annotations = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

// container adds a spec container and, when id is set, its status.
func container(name, image, id, imageID string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: image})
		if id != "" {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses,
				corev1.ContainerStatus{Name: name, ContainerID: id, Image: "resolved/" + image, ImageID: imageID})
		}
	}
}

type testCache struct {
	*Cache
	client *fake.Clientset
}

func startCache(t *testing.T, cfg Config, client *fake.Clientset, set Settings) testCache {
	t.Helper()
	cfg.Enabled = ModeTrue
	cfg.NodeName = testNode
	set.Client = kubetest.ClientsetAPI{Interface: client}
	set.Logger = zaptest.NewLogger(t)
	if set.StartTimeout == 0 {
		set.StartTimeout = 5 * time.Second
	}
	c, err := New(cfg, set)
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })
	// The fake clientset has no resource versions: an object created between the informer's list and its watch
	// is lost. Wait for the watch before a test mutates anything.
	require.Eventually(t, func() bool {
		for _, a := range client.Actions() {
			if a.GetVerb() == "watch" && a.GetResource().Resource == "pods" {
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond)
	return testCache{Cache: c, client: client}
}

func (tc testCache) updateStatus(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	_, err := tc.client.CoreV1().Pods(pod.Namespace).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func resourceWith(kv ...string) pcommon.Resource {
	r := pcommon.NewResource()
	for i := 0; i < len(kv); i += 2 {
		r.Attributes().PutStr(kv[i], kv[i+1])
	}
	return r
}

func TestResolveByContainerIDWithRuntimePrefixes(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	pod := newPod("web-7d4b9-x2x7q",
		ownedBy("ReplicaSet", "web-7d4b9"), labels("pod-template-hash", "7d4b9", "app", "web"),
		container("app", "reg:5000/team/app:1.2.3", "containerd://"+testID(1), "reg:5000/team/app@"+digest),
		container("sidecar", "envoy", "cri-o://"+testID(2), digest),
	)
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1.36"}}
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", ContainerID: "docker://" + testID(3), ImageID: "docker-pullable://busybox@" + digest}}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "alpine"}}}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "debug", ContainerID: "containerd://" + testID(4)}}
	tc := startCache(t, Config{PodLabels: []string{"app"}}, fake.NewClientset(pod), Settings{})

	tests := []struct {
		name string
		id   string
		want map[string]any
	}{
		{"containerd", testID(1), map[string]any{
			"k8s.container.name":           "app",
			"container.image.name":         "reg:5000/team/app",
			"container.image.tags":         []any{"1.2.3"},
			"container.image.repo_digests": []any{"reg:5000/team/app@" + digest},
			"container.image.id":           digest,
		}},
		{"cri-o, untagged, bare image id", testID(2), map[string]any{
			"k8s.container.name":   "sidecar",
			"container.image.name": "envoy",
			"container.image.id":   digest,
		}},
		{"docker init container", testID(3), map[string]any{
			"k8s.container.name":           "init",
			"container.image.name":         "busybox",
			"container.image.tags":         []any{"1.36"},
			"container.image.repo_digests": []any{"busybox@" + digest},
			"container.image.id":           digest,
		}},
		{"ephemeral container", testID(4), map[string]any{
			"k8s.container.name":   "debug",
			"container.image.name": "alpine",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := resourceWith("container.id", tt.id)
			require.Equal(t, StateFound, tc.Enrich(res))
			want := map[string]any{
				"container.id":        tt.id,
				"k8s.pod.name":        "web-7d4b9-x2x7q",
				"k8s.pod.uid":         "uid-web-7d4b9-x2x7q",
				"k8s.namespace.name":  "team",
				"k8s.node.name":       testNode,
				"k8s.replicaset.name": "web-7d4b9",
				// The fake has no ReplicaSet: the GET fails (not found) and the naming rule answers.
				"k8s.deployment.name": "web",
				"k8s.pod.label.app":   "web",
			}
			for k, v := range tt.want {
				want[k] = v
			}
			assert.Equal(t, want, res.Attributes().AsRaw())
		})
	}
	// Prefixed ids are accepted as lookup keys too.
	_, st := tc.Resolve("containerd://"+testID(1), "")
	assert.Equal(t, StateFound, st)
}

func TestOnlyWhereAbsentAndUTF8(t *testing.T) {
	pod := newPod("p", labels("app", "bad\xffvalue"), container("c", "nginx:1", "containerd://"+testID(1), ""))
	tc := startCache(t, Config{PodLabels: []string{"*"}}, fake.NewClientset(pod), Settings{})
	res := resourceWith("container.id", testID(1), "k8s.pod.name", "set-upstream", "container.image.name", "upstream/image")
	require.Equal(t, StateFound, tc.Enrich(res))
	attrs := res.Attributes().AsRaw()
	assert.Equal(t, "set-upstream", attrs["k8s.pod.name"])
	assert.Equal(t, "upstream/image", attrs["container.image.name"])
	assert.Equal(t, []any{"1"}, attrs["container.image.tags"])
	assert.Equal(t, "bad\uFFFDvalue", attrs["k8s.pod.label.app"])

	// Apply is Enrich for callers that Resolve themselves.
	r, st := tc.Resolve(testID(1), "")
	require.Equal(t, StateFound, st)
	res2 := resourceWith("k8s.container.name", "upstream")
	tc.Apply(res2, r)
	assert.Equal(t, "upstream", res2.Attributes().AsRaw()["k8s.container.name"])
	assert.Equal(t, "p", res2.Attributes().AsRaw()["k8s.pod.name"])
}

func TestLabelAndAnnotationSelection(t *testing.T) {
	pod := newPod("p",
		labels("app", "web", "team", "payments", "pod-template-hash", "abc"),
		annotations("owner", "alice", "kubectl.kubernetes.io/last-applied-configuration", "{...huge...}"),
		container("c", "nginx", "containerd://"+testID(1), ""))
	tests := []struct {
		name                    string
		labels, annotations     []string
		wantLabels, wantAnnots  map[string]any
		wantCachedAnnotationLen int
	}{
		{name: "none", wantCachedAnnotationLen: 0},
		{name: "some", labels: []string{"app", "absent"}, annotations: []string{"owner"},
			wantLabels: map[string]any{"k8s.pod.label.app": "web"}, wantAnnots: map[string]any{"k8s.pod.annotation.owner": "alice"},
			wantCachedAnnotationLen: 1},
		{name: "all", labels: []string{"*"}, annotations: []string{"*"},
			wantLabels:              map[string]any{"k8s.pod.label.app": "web", "k8s.pod.label.team": "payments", "k8s.pod.label.pod-template-hash": "abc"},
			wantAnnots:              map[string]any{"k8s.pod.annotation.owner": "alice", "k8s.pod.annotation.kubectl.kubernetes.io/last-applied-configuration": "{...huge...}"},
			wantCachedAnnotationLen: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := startCache(t, Config{PodLabels: tt.labels, PodAnnotations: tt.annotations}, fake.NewClientset(pod.DeepCopy()), Settings{})
			res := resourceWith("container.id", testID(1))
			require.Equal(t, StateFound, tc.Enrich(res))
			got := map[string]any{}
			for k, v := range res.Attributes().AsRaw() {
				if strings.HasPrefix(k, attr.K8sPodLabel) || strings.HasPrefix(k, attr.K8sPodAnnotation) {
					got[k] = v
				}
			}
			want := map[string]any{}
			for k, v := range tt.wantLabels {
				want[k] = v
			}
			for k, v := range tt.wantAnnots {
				want[k] = v
			}
			assert.Equal(t, want, got)
			// The transform keeps only selected annotations (and the hash label for the Deployment rule).
			cached := tc.byIndex(indexPodUID, "uid-p")
			require.NotNil(t, cached)
			assert.Len(t, cached.Annotations, tt.wantCachedAnnotationLen)
			assert.Equal(t, "abc", cached.Labels[podTemplateHashLabel])
		})
	}
}

func TestTransformKeepsOnlyUsedFields(t *testing.T) {
	big := newPod("p", ownedBy("ReplicaSet", "rs-1"), labels("app", "a"), container("c", "img", "containerd://"+testID(1), "id"))
	big.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	big.OwnerReferences = append(big.OwnerReferences, metav1.OwnerReference{Kind: "ConfigMap", Name: "not-controller"})
	big.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "SECRET", Value: "x"}}
	big.Spec.Volumes = []corev1.Volume{{Name: "v"}}
	big.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady}}
	big.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + testID(9), ExitCode: 1, Message: "oom"}

	wantOwner := big.OwnerReferences[0]
	wantOwner.BlockOwnerDeletion = nil
	tr := podTrimmer{labels: newKeySelector(nil)}
	out, err := tr.transform(big)
	require.NoError(t, err)
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "p", Namespace: "team", UID: "uid-p",
			OwnerReferences: []metav1.OwnerReference{wantOwner},
		},
		Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "img"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "c", ContainerID: "containerd://" + testID(1), Image: "resolved/img", ImageID: "id",
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ContainerID: "containerd://" + testID(9)}},
		}}},
	}
	assert.Equal(t, want, out)
	again, err := tr.transform(out)
	require.NoError(t, err)
	assert.Equal(t, want, again, "the transform must be idempotent")
}

func TestContainerPendingThenFound(t *testing.T) {
	pod := newPod("starting", container("app", "app:1", "", ""))
	tc := startCache(t, Config{}, fake.NewClientset(pod), Settings{})

	res := resourceWith("container.id", testID(7), "k8s.pod.uid", "uid-starting")
	require.Equal(t, StateContainerPending, tc.Enrich(res))
	assert.Equal(t, "starting", res.Attributes().AsRaw()["k8s.pod.name"])
	assert.NotContains(t, res.Attributes().AsRaw(), "k8s.container.name")

	// A pod-level record (no container id) is complete with the pod.
	_, st := tc.Resolve("", "uid-starting")
	assert.Equal(t, StateFound, st)

	waited := make(chan bool, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		waited <- tc.WaitForContainer(ctx, testID(7))
	}()
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + testID(7)}}
	tc.updateStatus(t, pod)
	require.True(t, <-waited)

	require.Equal(t, StateFound, tc.Enrich(res))
	assert.Equal(t, "app", res.Attributes().AsRaw()["k8s.container.name"])

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	assert.False(t, tc.WaitForContainer(ctx, testID(8)), "an id that never appears waits until ctx is done")

	s := tc.Stats()
	assert.Equal(t, uint64(1), s.ContainerPending)
	assert.Equal(t, uint64(2), s.Hits)
}

func TestUnknown(t *testing.T) {
	tc := startCache(t, Config{}, fake.NewClientset(), Settings{})
	res := resourceWith("container.id", testID(1), "k8s.pod.uid", "nope")
	assert.Equal(t, StateUnknown, tc.Enrich(res))
	assert.Equal(t, 2, res.Attributes().Len(), "nothing added")
	assert.Equal(t, StateUnknown, tc.Enrich(resourceWith("host.name", "h")), "host process")
	assert.Equal(t, uint64(1), tc.Stats().Misses, "a host process is not a miss")
}

func TestContainerRestart(t *testing.T) {
	pod := newPod("p", container("app", "app:1", "containerd://"+testID(1), ""))
	tc := startCache(t, Config{}, fake.NewClientset(pod), Settings{})
	require.Eventually(t, func() bool { _, st := tc.Resolve(testID(1), ""); return st == StateFound }, 5*time.Second, 5*time.Millisecond)

	restart := func(oldID, newID string) {
		pod.Status.ContainerStatuses[0].ContainerID = "containerd://" + newID
		pod.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + oldID}
		tc.updateStatus(t, pod)
		require.True(t, tc.WaitForContainer(t.Context(), newID))
	}
	restart(testID(1), testID(2))
	r, st := tc.Resolve(testID(2), "")
	require.Equal(t, StateFound, st)
	assert.Equal(t, Container{Name: "app", ID: testID(2), Image: "app:1"}, r.Container)
	// The previous instance stays resolvable while the status names it as the last one: its last execs may still
	// be in the pipeline.
	_, st = tc.Resolve(testID(1), "")
	assert.Equal(t, StateFound, st)

	restart(testID(2), testID(3))
	require.Eventually(t, func() bool { _, st := tc.Resolve(testID(1), ""); return st == StateUnknown }, 5*time.Second, 5*time.Millisecond)
	_, st = tc.Resolve(testID(3), "")
	assert.Equal(t, StateFound, st)
}

func TestDeletionAndOtherNodes(t *testing.T) {
	mine := newPod("mine", container("c", "img", "containerd://"+testID(1), ""))
	other := newPod("other", onNode("node-b"), container("c", "img", "containerd://"+testID(2), ""))
	tc := startCache(t, Config{}, fake.NewClientset(mine, other), Settings{})
	assert.Equal(t, 1, tc.Stats().Pods)
	_, st := tc.Resolve(testID(2), "uid-other")
	assert.Equal(t, StateUnknown, st, "a pod of another node is not cached")

	// Created after the sync (watch path), another node's pod still stays out.
	late := newPod("late-other", onNode("node-b"), container("c", "img", "containerd://"+testID(3), ""))
	_, err := tc.client.CoreV1().Pods("team").Create(t.Context(), late, metav1.CreateOptions{})
	require.NoError(t, err)
	lateMine := newPod("late-mine", container("c", "img", "containerd://"+testID(4), ""))
	_, err = tc.client.CoreV1().Pods("team").Create(t.Context(), lateMine, metav1.CreateOptions{})
	require.NoError(t, err)
	require.True(t, tc.WaitForContainer(t.Context(), testID(4)))
	_, st = tc.Resolve(testID(3), "")
	assert.Equal(t, StateUnknown, st)
	assert.Equal(t, 2, tc.Stats().Pods)

	// A deleted pod leaves the cache, but still resolves for deletedRetention: a forced deletion leaves its
	// containers running for a while.
	require.NoError(t, tc.client.CoreV1().Pods("team").Delete(t.Context(), "mine", *metav1.NewDeleteOptions(0)))
	require.Eventually(t, func() bool { return tc.deleted.len() == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, tc.Stats().Pods)
	res, st := tc.Resolve(testID(1), "uid-mine")
	assert.Equal(t, StateFound, st)
	assert.Equal(t, "mine", res.Pod.Name)
	tc.deleted.mu.Lock()
	tc.deleted.now = func() time.Time { return time.Now().Add(deletedRetention + time.Second) }
	tc.deleted.mu.Unlock()
	_, st = tc.Resolve(testID(1), "uid-mine")
	assert.Equal(t, StateUnknown, st, "not after deletedRetention")
}

func TestWorkloads(t *testing.T) {
	now := time.Now()
	cronSuffix := fmt.Sprint(now.Unix() / 60)
	objects := []runtime.Object{
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "front-abc", Namespace: "team",
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&metav1.ObjectMeta{Name: "frontend"}, appsv1.SchemeGroupVersion.WithKind("Deployment"))}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "bare-rs", Namespace: "team"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report-" + cronSuffix, Namespace: "team",
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&metav1.ObjectMeta{Name: "report"}, batchv1.SchemeGroupVersion.WithKind("CronJob"))}}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate", Namespace: "team"}},
	}
	tests := []struct {
		name      string
		pod       *corev1.Pod
		forbidden bool
		want      Workload
	}{
		{name: "deployment via replicaset GET (name unrelated to the rule)",
			pod: newPod("a", ownedBy("ReplicaSet", "front-abc")), want: Workload{ReplicaSet: "front-abc", Deployment: "frontend"}},
		{name: "bare replicaset", pod: newPod("b", ownedBy("ReplicaSet", "bare-rs")), want: Workload{ReplicaSet: "bare-rs"}},
		{name: "bare replicaset with a stray hash label: the GET wins over the rule",
			pod: newPod("b2", ownedBy("ReplicaSet", "bare-rs"), labels("pod-template-hash", "rs")), want: Workload{ReplicaSet: "bare-rs"}},
		{name: "daemonset", pod: newPod("c", ownedBy("DaemonSet", "agent")), want: Workload{DaemonSet: "agent"}},
		{name: "statefulset", pod: newPod("d", ownedBy("StatefulSet", "db")), want: Workload{StatefulSet: "db"}},
		{name: "cronjob via job GET", pod: newPod("e", ownedBy("Job", "report-"+cronSuffix)), want: Workload{Job: "report-" + cronSuffix, CronJob: "report"}},
		{name: "plain job", pod: newPod("f", ownedBy("Job", "migrate")), want: Workload{Job: "migrate"}},
		{name: "no owner", pod: newPod("g"), want: Workload{}},
		{name: "forbidden: deployment by naming rule", forbidden: true,
			pod:  newPod("h", ownedBy("ReplicaSet", "web-5d8f7c9b6d"), labels("pod-template-hash", "5d8f7c9b6d")),
			want: Workload{ReplicaSet: "web-5d8f7c9b6d", Deployment: "web"}},
		{name: "forbidden: no hash label, no deployment", forbidden: true,
			pod: newPod("i", ownedBy("ReplicaSet", "web-5d8f7c9b6d")), want: Workload{ReplicaSet: "web-5d8f7c9b6d"}},
		{name: "forbidden: cronjob by naming rule", forbidden: true,
			pod: newPod("j", ownedBy("Job", "backup-"+cronSuffix)), want: Workload{Job: "backup-" + cronSuffix, CronJob: "backup"}},
		{name: "forbidden: job name without a schedule suffix", forbidden: true,
			pod: newPod("k", ownedBy("Job", "migrate-2")), want: Workload{Job: "migrate-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(append([]runtime.Object{tt.pod}, objects...)...)
			if tt.forbidden {
				client.PrependReactor("get", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), "x", errors.New("rbac"))
				})
			}
			tc := startCache(t, Config{}, client, Settings{})
			var last Workload
			// Pod ADD prefetched the owner; poll until its GET has answered.
			require.Eventually(t, func() bool {
				r, _ := tc.Resolve("", string(tt.pod.UID))
				last = r.Workload
				return tc.Stats().OwnerGets == ownerGetsFor(tt.pod) && last == tt.want
			}, 5*time.Second, 5*time.Millisecond, "last workload %+v", last)
			if tt.forbidden {
				assert.Equal(t, uint64(1), tc.Stats().OwnerGetErrors)
				assert.True(t, tc.Stats().APIReachable, "forbidden is an answer, not an outage")
			}
		})
	}
}

func ownerGetsFor(p *corev1.Pod) uint64 {
	if ref := metav1.GetControllerOf(p); ref != nil && (ref.Kind == "ReplicaSet" || ref.Kind == "Job") {
		return 1
	}
	return 0
}

func TestCronJobFromJob(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	minutes := now.Unix() / 60
	tests := []struct {
		job, want string
	}{
		{fmt.Sprintf("nightly-%d", minutes), "nightly"},
		{fmt.Sprintf("my-cron-%d", minutes-60*24*30), "my-cron"},
		{"migrate-2", ""}, // before CronJob existed
		{fmt.Sprintf("future-%d", minutes+3*24*60), ""}, // scheduled days from now
		{"nightly-abc", ""},
		{"nightly-", ""},
		{fmt.Sprintf("-%d", minutes), ""},
		{fmt.Sprintf("signed-+%d", minutes), ""},
		{"noseparator", ""},
	}
	for _, tt := range tests {
		t.Run(tt.job, func(t *testing.T) {
			assert.Equal(t, tt.want, cronJobFromJob(tt.job, now))
		})
	}
}

func TestAPIErrorsAndRecovery(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	client := fake.NewClientset(newPod("p", ownedBy("ReplicaSet", "web-abc"), labels("pod-template-hash", "abc"),
		container("c", "img", "containerd://"+testID(1), "")))
	client.PrependReactor("get", "replicasets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd down")
		}
		return true, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "team",
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&metav1.ObjectMeta{Name: "web-renamed"}, appsv1.SchemeGroupVersion.WithKind("Deployment"))}}}, nil
	})
	rec := &statusRecorder{}
	tc := startCache(t, Config{}, client, Settings{OwnerNegativeTTL: time.Millisecond, OnStatusChange: rec.record})
	// The recorder proves the transition. Stats are not read for it: the pod list and watch succeed meanwhile,
	// so reachability may already be back by the time they are read.
	rec.waitFor(t, "the failed owner GET makes the API unreachable", func(s Status) bool { return !s.Reachable })
	assert.GreaterOrEqual(t, tc.Stats().APIErrors, uint64(1))
	// Lookups keep answering from the cache, with the naming rule for the Deployment.
	r, st := tc.Resolve(testID(1), "")
	require.Equal(t, StateFound, st)
	assert.Equal(t, "web", r.Workload.Deployment)

	failing.Store(false)
	require.Eventually(t, func() bool {
		r, _ := tc.Resolve(testID(1), "")
		return r.Workload.Deployment == "web-renamed"
	}, 5*time.Second, 5*time.Millisecond)
	rec.waitFor(t, "reachable and synced again", Status.OK)
	assert.True(t, tc.Stats().APIReachable)
	assert.NoError(t, tc.Status().Problem())
}

// TestStartDoesNotFailOnTheAPIServer: an API server that is unreachable or refuses the requests is not a Start
// error, whatever kubernetes.enabled says; Start returns at once and the status says what is wrong.
func TestStartDoesNotFailOnTheAPIServer(t *testing.T) {
	listFails := func(err error) API {
		c := fake.NewClientset()
		c.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err })
		c.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, err })
		return kubetest.ClientsetAPI{Interface: c}
	}
	for _, mode := range []Mode{ModeTrue, ModeAuto} {
		t.Run(string(mode)+", unreachable", func(t *testing.T) {
			c, err := New(Config{Enabled: mode, NodeName: testNode}, Settings{Client: listFails(errors.New("connection refused"))})
			require.NoError(t, err)
			require.NoError(t, c.Start(t.Context()))
			_, st := c.Resolve(testID(1), "")
			assert.Equal(t, StateUnknown, st)
			s := c.Status()
			assert.False(t, s.Reachable)
			assert.False(t, s.Synced)
			assert.ErrorContains(t, s.Problem(), "kubernetes: the API server is not reachable")
			assert.ErrorContains(t, s.Problem(), "connection refused")
			require.NoError(t, c.Shutdown(t.Context()))
		})
	}
	t.Run("forbidden", func(t *testing.T) {
		c, err := New(Config{Enabled: ModeTrue, NodeName: testNode}, Settings{Client: listFails(apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("rbac")))})
		require.NoError(t, err)
		require.NoError(t, c.Start(t.Context()))
		s := c.Status()
		assert.True(t, s.Reachable, "a 403 is an answer")
		assert.Equal(t, []string{"list"}, s.Denied)
		assert.ErrorContains(t, s.Problem(), `not allowed to list pods (RBAC needs get, list and watch on pods`)
		require.NoError(t, c.Shutdown(t.Context()))
	})
	t.Run("real transport to a closed port", func(t *testing.T) {
		kubeconfig := writeKubeconfig(t, "https://127.0.0.1:1")
		c, err := New(Config{Enabled: ModeTrue, Kubeconfig: kubeconfig, NodeName: testNode}, Settings{StartTimeout: time.Minute})
		require.NoError(t, err)
		begin := time.Now()
		require.NoError(t, c.Start(t.Context()))
		assert.Less(t, time.Since(begin), time.Minute, "Start does not wait for a sync that cannot come")
		assert.False(t, c.Stats().APIReachable)
		assert.ErrorContains(t, c.Status().Problem(), "127.0.0.1:1")
		require.NoError(t, c.Shutdown(t.Context()))
	})
	t.Run("started twice", func(t *testing.T) {
		tc := startCache(t, Config{}, fake.NewClientset(), Settings{})
		assert.ErrorContains(t, tc.Start(t.Context()), "already started")
	})
}
