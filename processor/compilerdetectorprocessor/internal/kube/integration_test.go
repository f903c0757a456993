package kube

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
)

// These tests run the cache against a real kube-apiserver and etcd (see kubetest). Without a kubelet the test
// plays its part: it creates pods with spec.nodeName, writes their container statuses, and deletes them with grace
// period 0.

const itNamespace = "team"

// agentRules is the RBAC the processor documents: get/list/watch pods; get replicasets and jobs.
var agentRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"get"}},
	{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get"}},
}

type itEnv struct {
	cluster *kubetest.Cluster
	admin   kubernetes.Interface
	nextID  int
}

func (e *itEnv) id() string {
	e.nextID++
	return fmt.Sprintf("%064x", 0xc0ffee000000+e.nextID)
}

func TestIntegrationRealAPIServer(t *testing.T) {
	cluster := kubetest.Start(t)
	e := &itEnv{cluster: cluster, admin: cluster.Client}
	ctx := t.Context()
	_, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: itNamespace}}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The agent may do nothing yet: the pod list is forbidden.
	t.Run("pods forbidden: start, log once, sync when granted", e.testPodsForbidden)

	// The agent may only read pods: owner GETs are forbidden and the naming rules answer.
	e.grant(t, agentRules[:1])
	t.Run("forbidden owners fall back to naming rules", e.testForbiddenOwners)

	e.grant(t, agentRules)
	t.Run("node check", e.testNodeCheck)
	c := e.startCache(t, Config{PodLabels: []string{"app"}, PodAnnotations: []string{"team.example/owner"}})
	t.Run("deployment, pending container, then found", func(t *testing.T) { e.testDeployment(t, c) })
	t.Run("daemonset, statefulset, job and cronjob", func(t *testing.T) { e.testWorkloads(t, c) })
	t.Run("other nodes are not cached", func(t *testing.T) { e.testOtherNode(t, c) })
	t.Run("container restart", func(t *testing.T) { e.testRestart(t, c) })
	t.Run("deletion", func(t *testing.T) { e.testDeletion(t, c) })
	t.Run("informer latency", func(t *testing.T) { e.measureLatency(t, c) })
	t.Run("memory for 1000 pods", e.measureMemory)
	// Last: it stops and restarts the API server.
	t.Run("api server stopped mid-test", func(t *testing.T) { e.testAPIServerStopped(t, c) })
}

func (e *itEnv) grant(t *testing.T, rules []rbacv1.PolicyRule) {
	t.Helper()
	ctx := t.Context()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "compilerwatch"}, Rules: rules}
	existing, err := e.admin.RbacV1().ClusterRoles().Get(ctx, role.Name, metav1.GetOptions{})
	if err == nil {
		existing.Rules = rules
		_, err = e.admin.RbacV1().ClusterRoles().Update(ctx, existing, metav1.UpdateOptions{})
		require.NoError(t, err)
		return
	}
	_, err = e.admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = e.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "compilerwatch"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "compilerwatch"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: kubetest.AgentUser}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// startCache starts a cache the way the processor does, from config with a kubeconfig path, as the agent user.
func (e *itEnv) startCache(t *testing.T, cfg Config) *Cache {
	t.Helper()
	return e.startCacheOn(t, testNode, cfg)
}

func (e *itEnv) startCacheOn(t *testing.T, node string, cfg Config) *Cache {
	t.Helper()
	cfg.Enabled = ModeTrue
	cfg.NodeName = node
	cfg.Kubeconfig = e.cluster.Kubeconfig(t, e.cluster.AgentConfig)
	c, err := New(cfg, Settings{Logger: zaptest.NewLogger(t), StartTimeout: 60 * time.Second})
	require.NoError(t, err)
	require.NotNil(t, c)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })
	return c
}

func (e *itEnv) createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	pod.Namespace = itNamespace
	pod.UID = ""
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].TerminationMessagePolicy = corev1.TerminationMessageReadFile
		pod.Spec.Containers[i].ImagePullPolicy = corev1.PullIfNotPresent
	}
	status := pod.Status
	created, err := e.admin.CoreV1().Pods(itNamespace).Create(t.Context(), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	if len(status.ContainerStatuses) > 0 {
		created.Status = status
		created = e.updateStatus(t, created)
	}
	return created
}

func (e *itEnv) updateStatus(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	updated, err := e.admin.CoreV1().Pods(pod.Namespace).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	return updated
}

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
}

func controllerRef(obj metav1.Object, gvk string) []metav1.OwnerReference {
	i := strings.LastIndexByte(gvk, '/')
	gv, kind := gvk[:i], gvk[i+1:]
	return []metav1.OwnerReference{{APIVersion: gv, Kind: kind, Name: obj.GetName(), UID: obj.GetUID(), Controller: new(true)}}
}

// deploymentChain creates Deployment deploy, its ReplicaSet rsName, and returns the RS.
func (e *itEnv) deploymentChain(t *testing.T, deploy, rsName, hash string) *appsv1.ReplicaSet {
	t.Helper()
	ctx := t.Context()
	tmpl := withRestartAlways(podTemplate())
	d, err := e.admin.AppsV1().Deployments(itNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: deploy},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	tmpl.Labels = map[string]string{"app": "x", "pod-template-hash": hash}
	rs, err := e.admin.AppsV1().ReplicaSets(itNamespace).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: rsName, OwnerReferences: controllerRef(d, "apps/v1/Deployment")},
		Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return rs
}

func status(name, id, imageID string) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name: name, ContainerID: "containerd://" + id, ImageID: imageID, Image: "resolved",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}
}

func (e *itEnv) testForbiddenOwners(t *testing.T) {
	// "renamed" is not derivable from the ReplicaSet name: only a GET finds it, and the GET is forbidden.
	rs := e.deploymentChain(t, "renamed", "legacy-5c7f9d", "5c7f9d")
	id := e.id()
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy-5c7f9d-abcde", Labels: map[string]string{"pod-template-hash": "5c7f9d"}, OwnerReferences: controllerRef(rs, "apps/v1/ReplicaSet")},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("app", id, "")}},
	})
	c := e.startCache(t, Config{})
	require.Eventually(t, func() bool { return c.Stats().OwnerGetErrors > 0 }, 30*time.Second, 10*time.Millisecond)
	r, st := c.Resolve(id, "")
	require.Equal(t, StateFound, st)
	assert.Equal(t, Workload{ReplicaSet: "legacy-5c7f9d", Deployment: "legacy"}, r.Workload, "naming rule, not the real owner")
	assert.True(t, c.Stats().APIReachable, "forbidden is an answer, not an outage")
	require.NoError(t, c.Shutdown(t.Context()))
	require.NoError(t, e.admin.CoreV1().Pods(itNamespace).Delete(t.Context(), pod.Name, *metav1.NewDeleteOptions(0)))
}

// testPodsForbidden: RBAC without pods list and watch does not fail Start; the refusal is logged once per verb
// (not once per retry, and never as the API server failing and recovering), and the grant is picked up.
func (e *itEnv) testPodsForbidden(t *testing.T) {
	e.grant(t, nil)
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := New(Config{Enabled: ModeTrue, NodeName: testNode, Kubeconfig: e.cluster.Kubeconfig(t, e.cluster.AgentConfig)},
		Settings{Logger: zap.New(core)})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()), "a 403 is not a reason to stop capturing")
	defer func() { require.NoError(t, c.Shutdown(context.Background())) }()

	// The ping, then the reflector's watch-list, list, and a retry after its backoff.
	require.Eventually(t, func() bool { return c.Stats().APIErrors >= 4 }, 30*time.Second, 10*time.Millisecond)
	s := c.Status()
	assert.True(t, s.Reachable)
	assert.False(t, s.Synced)
	assert.Contains(t, s.Denied, "list")
	denied := messages(logs, zapcore.ErrorLevel, "does not allow list on pods")
	require.Len(t, denied, 1, "logged once, not per retry")
	assert.LessOrEqual(t, len(messages(logs, zapcore.ErrorLevel, "does not allow watch on pods")), 1)
	assert.Empty(t, messages(logs, zapcore.InfoLevel, "reachable"), "no failing/succeeding-again flapping")
	for _, entry := range logs.FilterMessageSnippet("does not allow list on pods").All() {
		assert.Contains(t, entry.ContextMap()["error"], `cannot list resource "pods"`, "the server's own words name the verb")
	}

	e.grant(t, agentRules)
	require.Eventually(t, c.Following, 60*time.Second, 10*time.Millisecond, "synced once RBAC allows it; status %+v", c.Status())
	// One recovery line per verb at most: the watch-list that now succeeds clears both, or a list succeeds first.
	again := messages(logs, zapcore.InfoLevel, "on pods again")
	assert.NotEmpty(t, again)
	assert.LessOrEqual(t, len(again), 2, "%q", again)
	assert.Len(t, messages(logs, zapcore.ErrorLevel, "does not allow list on pods"), 1)
}

// TestIntegrationAPIServerDownAtStart: the cache starts while the API server is down (connections refused), Start
// returns at once without error, and the cache syncs and follows the node's pods once the API server is up.
func TestIntegrationAPIServerDownAtStart(t *testing.T) {
	cluster := kubetest.StartWithAPIServerDown(t)
	e := &itEnv{cluster: cluster, admin: cluster.Client}
	core, logs := observer.New(zapcore.InfoLevel)
	rec := &statusRecorder{}
	c, err := New(Config{Enabled: ModeTrue, NodeName: testNode, Kubeconfig: cluster.Kubeconfig(t, cluster.AgentConfig)},
		Settings{Logger: zap.New(core), OnStatusChange: rec.record})
	require.NoError(t, err)
	begin := time.Now()
	require.NoError(t, c.Start(t.Context()))
	t.Logf("Start returned after %v with the API server down", time.Since(begin))
	assert.Less(t, time.Since(begin), 5*time.Second, "Start does not wait for an API server that is down")
	t.Cleanup(func() { require.NoError(t, c.Shutdown(context.Background())) })
	first := rec.snapshot()
	require.NotEmpty(t, first)
	assert.False(t, first[0].Reachable)
	assert.False(t, first[0].Synced)

	require.NoError(t, cluster.StartAPIServer(t))
	ctx := t.Context()
	_, err = e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: itNamespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	e.grant(t, agentRules)
	id := e.id()
	e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "late"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("c", id, "")}},
	})
	// The reflector backs off between attempts (a few seconds after an outage this short, at most 60 s with jitter).
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	require.True(t, c.WaitForContainer(wctx, id))
	rec.waitFor(t, "OK once synced", Status.OK)
	assert.Len(t, messages(logs, zapcore.WarnLevel, "not reachable"), 1)
	assert.Len(t, messages(logs, zapcore.InfoLevel, "reachable again"), 1)
}

func (e *itEnv) testDeployment(t *testing.T, c *Cache) {
	const digest = "sha256:2f6a2a8e0e8c3c6f1d9d2d4b1c0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e"
	rs := e.deploymentChain(t, "frontend", "frontend-6f7d8c9b5", "6f7d8c9b5")
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            "frontend-6f7d8c9b5-q8z2x",
			Labels:          map[string]string{"app": "frontend", "pod-template-hash": "6f7d8c9b5", "unselected": "x"},
			Annotations:     map[string]string{"team.example/owner": "payments", "unselected": "x"},
			OwnerReferences: controllerRef(rs, "apps/v1/ReplicaSet"),
		},
		Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{
			{Name: "web", Image: "registry.example:5000/team/frontend:2.4.1"},
		}},
	})
	id := e.id()
	// The pod is known (its uid comes from the cgroup path) but the kubelet has not reported the container yet.
	res := resourceWith("container.id", id, "k8s.pod.uid", string(pod.UID))
	require.Eventually(t, func() bool { _, st := c.Resolve("", string(pod.UID)); return st == StateFound }, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, StateContainerPending, c.Enrich(res))
	assert.Equal(t, pod.Name, res.Attributes().AsRaw()["k8s.pod.name"])
	assert.NotContains(t, res.Attributes().AsRaw(), "k8s.container.name")

	pod.Status.ContainerStatuses = []corev1.ContainerStatus{status("web", id, "registry.example:5000/team/frontend@"+digest)}
	e.updateStatus(t, pod)
	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.True(t, c.WaitForContainer(wctx, id))
	require.Equal(t, StateFound, c.Enrich(res))
	assert.Equal(t, map[string]any{
		"container.id":                          id,
		"k8s.pod.uid":                           string(pod.UID),
		"k8s.pod.name":                          "frontend-6f7d8c9b5-q8z2x",
		"k8s.namespace.name":                    itNamespace,
		"k8s.node.name":                         testNode,
		"k8s.container.name":                    "web",
		"container.image.name":                  "registry.example:5000/team/frontend",
		"container.image.tags":                  []any{"2.4.1"},
		"container.image.repo_digests":          []any{"registry.example:5000/team/frontend@" + digest},
		"container.image.id":                    digest,
		"k8s.replicaset.name":                   "frontend-6f7d8c9b5",
		"k8s.deployment.name":                   "frontend",
		"k8s.pod.label.app":                     "frontend",
		"k8s.pod.annotation.team.example/owner": "payments",
	}, res.Attributes().AsRaw())

	// The owner came from a GET: a Deployment whose name the ReplicaSet name does not give.
	rs2 := e.deploymentChain(t, "renamed-too", "old-name-7b8c", "7b8c")
	id2 := e.id()
	e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "old-name-7b8c-zzzzz", Labels: map[string]string{"pod-template-hash": "7b8c"}, OwnerReferences: controllerRef(rs2, "apps/v1/ReplicaSet")},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("app", id2, "")}},
	})
	require.Eventually(t, func() bool {
		r, _ := c.Resolve(id2, "")
		return r.Workload == Workload{ReplicaSet: "old-name-7b8c", Deployment: "renamed-too"}
	}, 30*time.Second, 10*time.Millisecond)
	assert.Zero(t, c.Stats().OwnerGetErrors)
}

func (e *itEnv) testWorkloads(t *testing.T, c *Cache) {
	ctx := t.Context()
	ds, err := e.admin.AppsV1().DaemonSets(itNamespace).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "node-agent"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: withRestartAlways(podTemplate())},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	sts, err := e.admin.AppsV1().StatefulSets(itNamespace).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: withRestartAlways(podTemplate())},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	cj, err := e.admin.BatchV1().CronJobs(itNamespace).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "report"},
		Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{
			Spec: batchv1.JobSpec{Template: podTemplate()},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// Not the controller's "<name>-<minutes>" form, so only the GET can name the CronJob.
	cronJob, err := e.admin.BatchV1().Jobs(itNamespace).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "report-manual", OwnerReferences: controllerRef(cj, "batch/v1/CronJob")},
		Spec:       batchv1.JobSpec{Template: podTemplate()},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	plainJob, err := e.admin.BatchV1().Jobs(itNamespace).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "migrate"},
		Spec:       batchv1.JobSpec{Template: podTemplate()},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	tests := []struct {
		name  string
		owner []metav1.OwnerReference
		want  Workload
	}{
		{"daemonset", controllerRef(ds, "apps/v1/DaemonSet"), Workload{DaemonSet: "node-agent"}},
		{"statefulset", controllerRef(sts, "apps/v1/StatefulSet"), Workload{StatefulSet: "db"}},
		{"cronjob", controllerRef(cronJob, "batch/v1/Job"), Workload{Job: "report-manual", CronJob: "report"}},
		{"job", controllerRef(plainJob, "batch/v1/Job"), Workload{Job: "migrate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.id()
			e.createPod(t, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: tt.name + "-pod", OwnerReferences: tt.owner},
				Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("c", id, "")}},
			})
			var last Workload
			require.Eventually(t, func() bool {
				r, _ := c.Resolve(id, "")
				last = r.Workload
				return last == tt.want
			}, 30*time.Second, 10*time.Millisecond, "last %+v", last)
		})
	}
}

func withRestartAlways(p corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	p.Spec.RestartPolicy = corev1.RestartPolicyAlways
	return p
}

func (e *itEnv) testOtherNode(t *testing.T, c *Cache) {
	before := c.Stats().Pods
	otherID, mineID := e.id(), e.id()
	other := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"},
		Spec:       corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("c", otherID, "")}},
	})
	// A pod created after the other one: once it is seen, the other one's events have been delivered too.
	e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "here"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("c", mineID, "")}},
	})
	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.True(t, c.WaitForContainer(wctx, mineID))
	_, st := c.Resolve(otherID, string(other.UID))
	assert.Equal(t, StateUnknown, st)
	assert.Equal(t, before+1, c.Stats().Pods)
}

func (e *itEnv) testRestart(t *testing.T, c *Cache) {
	first, second := e.id(), e.id()
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "restarting"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("app", first, "")}},
	})
	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.True(t, c.WaitForContainer(wctx, first))

	st := status("app", second, "")
	st.RestartCount = 1
	st.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + first, ExitCode: 137}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{st}
	e.updateStatus(t, pod)
	require.True(t, c.WaitForContainer(wctx, second))
	r, state := c.Resolve(second, "")
	require.Equal(t, StateFound, state)
	assert.Equal(t, "app", r.Container.Name)
	_, state = c.Resolve(first, "")
	assert.Equal(t, StateFound, state, "the previous instance stays resolvable while it is the last terminated one")
}

func (e *itEnv) testDeletion(t *testing.T, c *Cache) {
	id := e.id()
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "doomed"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("c", id, "")}},
	})
	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.True(t, c.WaitForContainer(wctx, id))
	require.NoError(t, e.admin.CoreV1().Pods(itNamespace).Delete(t.Context(), pod.Name, *metav1.NewDeleteOptions(0)))
	require.Eventually(t, func() bool {
		objs, err := c.indexer.ByIndex(indexPodUID, string(pod.UID))
		return err == nil && len(objs) == 0
	}, 30*time.Second, 5*time.Millisecond, "the pod leaves the cache")
	r, st := c.Resolve(id, string(pod.UID))
	require.Equal(t, StateFound, st, "a deleted pod resolves for deletedRetention")
	assert.Equal(t, "doomed", r.Pod.Name)
	c.deleted.mu.Lock()
	c.deleted.now = func() time.Time { return time.Now().Add(deletedRetention + time.Second) }
	c.deleted.mu.Unlock()
	_, st = c.Resolve(id, string(pod.UID))
	assert.Equal(t, StateUnknown, st, "not after deletedRetention")
	c.deleted.mu.Lock()
	c.deleted.now = time.Now
	c.deleted.mu.Unlock()
}

// measureLatency reports the time from calling UpdateStatus to the container being resolvable (median of 20),
// next to the UpdateStatus round trip itself. Reported numbers, not assertions: the machine is shared.
func (e *itEnv) measureLatency(t *testing.T, c *Cache) {
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "latency"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	})
	var seenAfter, callTook []time.Duration
	for range 20 {
		id := e.id()
		type seen struct {
			ok bool
			at time.Time
		}
		seenCh := make(chan seen, 1)
		wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		go func() {
			ok := c.WaitForContainer(wctx, id)
			seenCh <- seen{ok, time.Now()}
		}()
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{status("c", id, "")}
		start := time.Now()
		pod = e.updateStatus(t, pod)
		returned := time.Now()
		s := <-seenCh
		cancel()
		require.True(t, s.ok)
		seenAfter = append(seenAfter, s.at.Sub(start))
		callTook = append(callTook, returned.Sub(start))
	}
	slices.Sort(seenAfter)
	slices.Sort(callTook)
	t.Logf("informer latency, UpdateStatus called -> container resolvable: median %v (min %v, max %v, n=%d); "+
		"UpdateStatus round trip alone: median %v",
		seenAfter[len(seenAfter)/2], seenAfter[0], seenAfter[len(seenAfter)-1], len(seenAfter), callTook[len(callTook)/2])
}

// measureMemory reports the heap held by a cache of 1,000 realistic pods on the node (after GC), against a cache
// started before the pods exist. For comparison it reports the same for an untrimmed informer.
func (e *itEnv) measureMemory(t *testing.T) {
	ctx := t.Context()
	const ns, n = "memory", 1000
	_, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				errs <- createRealisticPod(ctx, e.admin, ns, i)
			}
		})
	}
	start := time.Now()
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("created %d realistic pods with statuses in %v", n, time.Since(start).Round(time.Millisecond))

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// The fixed cost (clientset, transport, informer) is what a cache of a node without pods holds.
	before := heap()
	empty := e.startCacheOn(t, "node-without-pods", Config{PodLabels: []string{"app"}})
	fixed := int64(heap()) - int64(before)
	before = heap()
	c := e.startCache(t, Config{PodLabels: []string{"app"}})
	require.Eventually(t, func() bool { return c.Stats().Pods >= n }, 60*time.Second, 10*time.Millisecond)
	full := int64(heap()) - int64(before)
	pods := c.Stats().Pods
	t.Logf("pod cache memory: %d pods on the node: heap +%.0f KiB; fixed cost (no pods) %.0f KiB; per pod %.0f B",
		pods, float64(full)/1024, float64(fixed)/1024, float64(full-fixed)/float64(pods))
	runtime.KeepAlive(c)
	runtime.KeepAlive(empty)

	// The full size of what the transform removes, for context: an informer keeping whole pods.
	list, err := e.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	before = heap()
	kept := list.DeepCopy()
	untrimmed := int64(heap()) - int64(before)
	t.Logf("for comparison, the same %d pods untrimmed (as decoded, no indexes): %.0f B/pod", len(kept.Items), float64(untrimmed)/float64(len(kept.Items)))
	runtime.KeepAlive(kept)
	runtime.KeepAlive(list)
}

func createRealisticPod(ctx context.Context, client kubernetes.Interface, ns string, i int) error {
	name := fmt.Sprintf("shop-api-7c9d8f6b5-%05d", i)
	lastApplied := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app":"shop-api"},"name":"shop-api","namespace":"memory"},"spec":{"replicas":1000,"selector":{"matchLabels":{"app":"shop-api"}},"template":{"metadata":{"labels":{"app":"shop-api","tier":"backend"}},"spec":{"containers":[{"env":[{"name":"LOG_LEVEL","value":"info"}],"image":"registry.example/shop/api:3.14.2","name":"api","ports":[{"containerPort":8080}]}]}}}}`
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 10}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{"app": "shop-api", "tier": "backend", "pod-template-hash": "7c9d8f6b5",
				"app.kubernetes.io/version": "3.14.2", "app.kubernetes.io/part-of": "shop"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": lastApplied,
				"prometheus.io/scrape":                             "true", "prometheus.io/port": "9090",
			},
		},
		Spec: corev1.PodSpec{
			NodeName: testNode,
			Volumes:  []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "shop-config"}}}}},
			Containers: []corev1.Container{
				{
					Name: "api", Image: "registry.example/shop/api:3.14.2",
					Env:            []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "DB_HOST", Value: "postgres.shop.svc"}, {Name: "CACHE_TTL", Value: "30s"}},
					Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
					Resources:      res,
					VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/shop"}},
					LivenessProbe:  probe,
					ReadinessProbe: probe,
				},
				{Name: "envoy", Image: "envoyproxy/envoy:v1.31.0", Args: []string{"-c", "/etc/envoy/envoy.yaml"}, Resources: res},
			},
		},
	}
	created, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created.Status.Phase = corev1.PodRunning
	created.Status.PodIP = "10.1.2.3"
	created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	for j, ctr := range pod.Spec.Containers {
		created.Status.ContainerStatuses = append(created.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ctr.Name, Image: ctr.Image, Ready: true,
			ImageID:     ctr.Image + "@sha256:" + fmt.Sprintf("%064x", j+1),
			ContainerID: "containerd://" + fmt.Sprintf("%064x", 0xabc00000+2*i+j),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		})
	}
	_, err = client.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func (e *itEnv) testAPIServerStopped(t *testing.T, c *Cache) {
	id := e.id()
	e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("c", id, "")}},
	})
	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.True(t, c.WaitForContainer(wctx, id))
	errorsBefore := c.Stats().APIErrors

	e.cluster.StopAPIServer(t)
	require.Eventually(t, func() bool { return !c.Stats().APIReachable }, 60*time.Second, 10*time.Millisecond,
		"the lost API server is noticed")
	start := time.Now()
	res := resourceWith("container.id", id)
	require.Equal(t, StateFound, c.Enrich(res), "the cache keeps answering")
	_, st := c.Resolve(e.id(), "")
	assert.Equal(t, StateUnknown, st)
	s := c.Stats()
	t.Logf("with the API server down: 2 lookups in %v; stats %+v", time.Since(start), s)
	assert.Greater(t, s.APIErrors, errorsBefore)

	// It comes back: the informer relists, and new pods are seen again.
	require.NoError(t, e.cluster.StartAPIServer(t))
	id2 := e.id()
	e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "after-outage"},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status("c", id2, "")}},
	})
	wctx2, cancel2 := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel2()
	require.True(t, c.WaitForContainer(wctx2, id2))
	assert.True(t, c.Stats().APIReachable)
}

// testNodeCheck runs CheckNode over the REST client: quiet while the role has nothing on nodes (as shipped), a
// warning once it may read them and the node does not exist, and quiet again once it does.
func (e *itEnv) testNodeCheck(t *testing.T) {
	ctx := t.Context()
	check := func() *observer.ObservedLogs {
		core, logs := observer.New(zapcore.DebugLevel)
		cfg := Config{Enabled: ModeTrue, NodeName: "node-check", Kubeconfig: e.cluster.Kubeconfig(t, e.cluster.AgentConfig)}
		c, err := New(cfg, Settings{Logger: zap.New(core), StartTimeout: 30 * time.Second})
		require.NoError(t, err)
		c.CheckNode(ctx)
		return logs
	}
	warnings := func(logs *observer.ObservedLogs) int {
		return logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("node not found").Len()
	}

	logs := check()
	assert.Zero(t, warnings(logs), "forbidden: quiet")
	assert.Equal(t, 1, logs.FilterMessageSnippet("node check skipped").Len())

	e.grant(t, append(slices.Clone(agentRules), rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}))
	defer e.grant(t, agentRules) // t.Context is canceled by cleanup time
	require.Eventually(t, func() bool { return warnings(check()) == 1 }, 30*time.Second, 100*time.Millisecond,
		"a node name that matches no node")

	_, err := e.admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-check"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = e.admin.CoreV1().Nodes().Delete(context.Background(), "node-check", metav1.DeleteOptions{})
	})
	logs = check()
	assert.Zero(t, warnings(logs))
	assert.Zero(t, logs.FilterMessageSnippet("node check skipped").Len(), "the GET answered")
}
