//go:build linux

package compilerdetectorprocessor_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/compilerwatch/compilerwatch/internal/kubetest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
)

// grantDocumentedRBAC binds deploy/'s ClusterRole to the harness's agent user, so the processor runs with exactly
// the permissions the DaemonSet gets.
func grantDocumentedRBAC(t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/kubernetes/20-clusterrole.yaml")
	require.NoError(t, err)
	var role rbacv1.ClusterRole
	require.NoError(t, yaml.UnmarshalStrict(raw, &role))
	ctx := context.Background()
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "compilerwatch-test"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: kubetest.AgentUser}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// TestKubernetesEndToEnd: a real exec in a runc container whose cgroup is shaped like a kubepods one reaches the
// processor before the pod status lists its container. The record is held, released when the status update
// arrives through the informer, and carries the pod, workload and image attributes. A later exec is enriched at
// once. The processor runs against a real kube-apiserver with the documented RBAC.
func TestKubernetesEndToEnd(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	cluster := kubetest.Start(t)
	admin, err := kubernetes.NewForConfig(cluster.Config)
	require.NoError(t, err)
	grantDocumentedRBAC(t, admin)
	grantNamespaces(t, admin)

	ctx := context.Background()
	const node, ns = "node-e2e", "default"
	// Team ownership on the namespace, where it usually lives.
	setNamespaceLabel(t, admin, ns, "team", "payments", map[string]string{"owner": "alice@example.com"})
	dep, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/team/app:1.2.3"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	rs, err := admin.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-5d9c8b7f6", Labels: map[string]string{"app": "web", "pod-template-hash": "5d9c8b7f6"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptr(true)}},
		},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: dep.Spec.Template,
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-5d9c8b7f6-x7k2p", Labels: map[string]string{"app": "web", "pod-template-hash": "5d9c8b7f6", "team": "build"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr(true)}},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.example/team/app:1.2.3"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = admin.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
	})

	// The pipeline: the processor with the agent's credentials, holding up to 20 s for container metadata.
	sink := startPipeline(t, func(cfg *compilerdetectorprocessor.Config) {
		cfg.Kubernetes.Enabled = "true"
		cfg.Kubernetes.Kubeconfig = cluster.Kubeconfig(t, cluster.AgentConfig)
		cfg.Kubernetes.NodeName = node
		cfg.Kubernetes.WaitForMetadata.Hold = 20 * time.Second
		cfg.Kubernetes.PodLabels = []string{"app"}
		cfg.Kubernetes.NamespaceLabels = []string{"team"}
		cfg.Kubernetes.NamespaceAnnotations = []string{"owner"}
		// Not in pod_labels: the cache keeps it because an exclusion matches on it.
		cfg.Exclude.PodLabels = map[string]string{"team": "build"}
	})

	// The container's cgroup carries the pod uid, as the kubelet's would.
	ctr := testenv.NewContainer(t, testenv.Options{PodUID: string(pod.UID)})
	inContainer := func(tag string) func(rec) bool {
		return func(r rec) bool {
			return r.containerID() == ctr.ID() && slices.Contains(r.list("process.command_args"), tag)
		}
	}

	// An exec before the status lists the container: held, not emitted.
	early := fmt.Sprintf("early-%d", time.Now().UnixNano())
	ctr.MustExec(t, "echo", early)
	time.Sleep(1500 * time.Millisecond)
	assert.False(t, slices.ContainsFunc(execRecords(sink), inContainer(early)), "held while the container id is unknown")

	// The kubelet's status update, as the API shows it.
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", ContainerID: "containerd://" + ctr.ID(), Image: "registry.example/team/app:1.2.3",
		ImageID: "registry.example/team/app@sha256:" + strings.Repeat("ab", 32), Ready: true,
	}}}
	updated := time.Now()
	_, err = admin.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)

	waitForRecord(t, sink, "the held exec", inContainer(early))
	t.Logf("held record released %s after the status update", time.Since(updated).Round(time.Millisecond))
	later := fmt.Sprintf("later-%d", time.Now().UnixNano())
	ctr.MustExec(t, "echo", later)
	waitForRecord(t, sink, "the exec after the status update", inContainer(later))

	want := map[string]any{
		"container.id":                   ctr.ID(),
		"k8s.pod.uid":                    string(pod.UID),
		"k8s.pod.name":                   pod.Name,
		"k8s.namespace.name":             ns,
		"k8s.node.name":                  node,
		"k8s.container.name":             "app",
		"container.image.name":           "registry.example/team/app",
		"container.image.tags":           []any{"1.2.3"},
		"container.image.repo_digests":   []any{"registry.example/team/app@sha256:" + strings.Repeat("ab", 32)},
		"k8s.replicaset.name":            rs.Name,
		"k8s.deployment.name":            dep.Name,
		"k8s.pod.label.app":              "web",
		"k8s.pod.label.team":             "build",
		"container.image.id":             "sha256:" + strings.Repeat("ab", 32),
		"k8s.namespace.label.team":       "payments",
		"k8s.namespace.annotation.owner": "alice@example.com",
	}
	for _, tag := range []string{early, later} {
		i := slices.IndexFunc(execRecords(sink), inContainer(tag))
		require.GreaterOrEqual(t, i, 0)
		r := execRecords(sink)[i]
		for k, v := range want {
			assert.Equal(t, v, r.res[k], "%s on the %s exec", k, tag)
		}
	}

	// The team moves: the namespace's new label reaches the next exec's resource.
	setNamespaceLabel(t, admin, ns, "team", "billing", nil)
	var team any
	for deadline := time.Now().Add(30 * time.Second); team != "billing" && time.Now().Before(deadline); {
		moved := fmt.Sprintf("moved-%d", time.Now().UnixNano())
		ctr.MustExec(t, "echo", moved)
		waitForRecord(t, sink, "an exec after the namespace update", inContainer(moved))
		team = execRecords(sink)[slices.IndexFunc(execRecords(sink), inContainer(moved))].res["k8s.namespace.label.team"]
	}
	assert.Equal(t, "billing", team, "the namespace's new label on a later exec")
}

// grantNamespaces adds the rule the chart adds to its ClusterRole when namespace labels or annotations are set.
func grantNamespaces(t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	roles, err := admin.RbacV1().ClusterRoleBindings().Get(ctx, "compilerwatch-test", metav1.GetOptions{})
	require.NoError(t, err)
	role, err := admin.RbacV1().ClusterRoles().Get(ctx, roles.RoleRef.Name, metav1.GetOptions{})
	require.NoError(t, err)
	role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}})
	_, err = admin.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// setNamespaceLabel sets one label (and, when given, annotations) on a real Namespace.
func setNamespaceLabel(t *testing.T, admin kubernetes.Interface, name, key, value string, annotations map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns, err := admin.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[key] = value
	if annotations != nil {
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		maps.Copy(ns.Annotations, annotations)
	}
	_, err = admin.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// statusHost records the component status the processor reports.
type statusHost struct {
	mu     sync.Mutex
	events []*componentstatus.Event
}

func (h *statusHost) GetExtensions() map[component.ID]component.Component { return nil }

func (h *statusHost) Report(ev *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

func (h *statusHost) last() componentstatus.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		return componentstatus.StatusNone
	}
	return h.events[len(h.events)-1].Status()
}

// TestKubernetesAPIServerDownAtStart: the processor starts while the control plane is down (connections to the API
// server refused), with kubernetes.enabled true as deploy/ ships it. Capture starts at once: gcc run in a runc
// container is flagged without Kubernetes attributes, and the status says RecoverableError. Once the API server is
// up and the documented RBAC granted, later findings carry the pod's attributes and the status is OK. The pipeline
// runs throughout.
func TestKubernetesAPIServerDownAtStart(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	mounts := testenv.HostGCCMounts(t)
	cluster := kubetest.StartWithAPIServerDown(t)
	const node, ns = "node-outage", "default"

	host := &statusHost{}
	started := time.Now()
	sink := startPipelineOn(t, host, func(cfg *compilerdetectorprocessor.Config) {
		cfg.Dedup.Window = 0 // every finding visible
		cfg.Kubernetes.Enabled = "true"
		cfg.Kubernetes.Kubeconfig = cluster.Kubeconfig(t, cluster.AgentConfig)
		cfg.Kubernetes.NodeName = node
		cfg.Kubernetes.WaitForMetadata.Hold = 20 * time.Second
	})
	t.Logf("pipeline started in %s with the API server down", time.Since(started).Round(time.Millisecond))
	assert.Equal(t, componentstatus.StatusRecoverableError, host.last())

	ctr := testenv.NewContainer(t, testenv.Options{Mounts: mounts})
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	gcc := func(tag string) func(rec) bool {
		ctr.MustExec(t, "gcc", "-DCW_"+tag+"_"+run, "--version")
		return func(r rec) bool {
			return r.containerID() == ctr.ID() && r.flagged() && slices.Contains(r.list("process.command_args"), "-DCW_"+tag+"_"+run)
		}
	}

	down := gcc("DOWN")
	waitForRecord(t, sink, "the finding made while the API server is down", down)
	r := one(t, execRecords(sink), "the finding made while the API server is down", down)
	assert.Equal(t, "gcc", r.str("compilerwatch.compiler.name"))
	for _, k := range []string{"k8s.pod.name", "k8s.namespace.name", "k8s.container.name"} {
		assert.NotContains(t, r.res, k, "no Kubernetes attributes while the API server is down")
	}

	// The control plane comes back; the kubelet reports the container in the pod's status.
	require.NoError(t, cluster.StartAPIServer(t))
	admin := cluster.Client
	grantDocumentedRBAC(t, admin)
	ctx := context.Background()
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "builder", Labels: map[string]string{"app": "builder"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "build", Image: "registry.example/team/builder:7"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = admin.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
	})
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "build", ContainerID: "containerd://" + ctr.ID(), Image: "registry.example/team/builder:7", Ready: true,
	}}}
	_, err = admin.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	up := time.Now()

	// The informer retries with backoff (a few seconds after an outage this short, at most 60 s with jitter):
	// compile until a finding is enriched.
	var enriched rec
	for i := 0; ; i++ {
		require.Less(t, time.Since(up), 2*time.Minute, "no enriched finding within 2 minutes of the API server coming up")
		match := gcc(fmt.Sprintf("UP%d", i))
		waitForRecord(t, sink, "a finding after the API server is up", match)
		if r := one(t, execRecords(sink), "a finding after the API server is up", match); r.res["k8s.pod.name"] != nil {
			enriched = r
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("first enriched finding %s after the API server came up", time.Since(up).Round(time.Millisecond))
	for k, v := range map[string]any{
		"k8s.pod.name":         pod.Name,
		"k8s.namespace.name":   ns,
		"k8s.node.name":        node,
		"k8s.container.name":   "build",
		"container.image.name": "registry.example/team/builder",
	} {
		assert.Equal(t, v, enriched.res[k], k)
	}
	require.Eventually(t, func() bool { return host.last() == componentstatus.StatusOK }, 30*time.Second, 10*time.Millisecond,
		"status OK once the pod cache follows the API server")
}

func ptr[T any](v T) *T { return &v }
