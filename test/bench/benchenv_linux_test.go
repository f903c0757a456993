//go:build linux

package bench_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/compilerwatch/compilerwatch/internal/helmtest"
	"github.com/compilerwatch/compilerwatch/internal/kubetest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

// What the shipped configuration runs against: the chart's rendered objects, a real kube-apiserver holding the
// bench's node and pods, and the two runc containers of those pods.

const (
	benchRelease   = "cw"
	benchNamespace = "compilerwatch"
	// benchNode is the node the collector runs for (K8S_NODE_NAME) and the bench's pods are bound to.
	benchNode = "bench-node"
	// benchConfigKey is the collector config's key in the chart's ConfigMap.
	benchConfigKey = "config.yaml"
)

// benchChart is the chart rendered with its defaults plus a few --set values.
type benchChart struct {
	config      string          // the ConfigMap's config.yaml, byte for byte
	env         []corev1.EnvVar // the collector container's environment in the DaemonSet
	clusterRole rbacv1.ClusterRole
	// prefilter, when set, is the receiver's prefilter given as a config overlay, for a value the chart's schema
	// refuses (a chart older than the receiver).
	prefilter string
}

// renderBenchChart renders the chart as a user installs it. A render the chart refuses (a value its schema does
// not know yet) is an error, not a failure: the configuration is then reported as not available.
func renderBenchChart(t *testing.T, set ...string) (*benchChart, error) {
	t.Helper()
	args := []string{"template", benchRelease, helmtest.Chart, "--namespace", benchNamespace, "--kube-version", helmtest.KubeVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	if stderr, err := helmtest.RunErr(t, args...); err != nil {
		return nil, fmt.Errorf("helm template --set %s: %s", strings.Join(set, " --set "), benchCompact(stderr))
	}
	ch := &benchChart{}
	var seen []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(helmtest.Template(t, benchRelease, benchNamespace, set...)), 4096)
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if len(raw) == 0 {
			continue
		}
		b, err := sigsyaml.Marshal(raw)
		require.NoError(t, err)
		switch raw["kind"] {
		case "ConfigMap":
			var cm corev1.ConfigMap
			require.NoError(t, sigsyaml.UnmarshalStrict(b, &cm))
			ch.config = cm.Data[benchConfigKey]
		case "DaemonSet":
			var ds appsv1.DaemonSet
			require.NoError(t, sigsyaml.UnmarshalStrict(b, &ds))
			require.Len(t, ds.Spec.Template.Spec.Containers, 1)
			ch.env = ds.Spec.Template.Spec.Containers[0].Env
		case "ClusterRole":
			require.NoError(t, sigsyaml.UnmarshalStrict(b, &ch.clusterRole))
		default:
			continue
		}
		seen = append(seen, raw["kind"].(string))
	}
	require.ElementsMatch(t, []string{"ConfigMap", "DaemonSet", "ClusterRole"}, seen, "the chart renders one of each")
	require.NotEmpty(t, ch.config, "the ConfigMap holds %s", benchConfigKey)
	return ch, nil
}

// processEnv is the DaemonSet's environment as the kubelet would set it on benchNode: values as given, the
// downward API's spec.nodeName as the node's name. Any other source fails: the bench would not know its value.
func (ch *benchChart) processEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, e := range ch.env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env = append(env, e.Name+"="+benchNode)
		default:
			t.Fatalf("the DaemonSet's env %s has a source the bench cannot resolve", e.Name)
		}
	}
	return env
}

// benchCompact is helm's message on one line, shortened.
func benchCompact(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// benchCluster is the cluster side of the bench: the test kube-apiserver and the two pods whose containers run the
// container loads.
type benchCluster struct {
	kubeconfig string // the agent's: exactly the chart's ClusterRole
	storm, ci  *testenv.Container
	buildDir   string // host directory mounted read-write at /build in the CI runner
}

// Container paths of the bench's tools and of the CI runner's build directory.
const (
	benchToolsMount = "/bench"
	benchBuildMount = "/build"
)

// startBenchEnv starts the kube-apiserver, grants the agent user the chart's ClusterRole, creates the node and
// two pods bound to it, starts their containers with the pods' uids in their cgroups, and writes the container
// ids into the pods' status as the kubelet would.
func startBenchEnv(t *testing.T, tl benchTools, role rbacv1.ClusterRole) *benchCluster {
	t.Helper()
	cluster := kubetest.Start(t)
	admin := cluster.Client
	ctx := context.Background()

	role.ResourceVersion = ""
	_, err := admin.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "compilerwatch-bench"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: kubetest.AgentUser}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: benchNode}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ci"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	env := &benchCluster{kubeconfig: cluster.Kubeconfig(t, cluster.AgentConfig), buildDir: t.TempDir()}
	tools := testenv.Mount{Destination: benchToolsMount, Source: tl.dir}

	// The storm's pod: a web server's, no compiler on its filesystem.
	pod := benchPod(t, admin, "default", "web-7f9c4d5b8-x2k4q", "registry.example/web/app:1.4.2")
	env.storm = testenv.NewContainer(t, testenv.Options{PodUID: string(pod.UID), Mounts: []testenv.Mount{tools}})
	benchSetContainerStatus(t, admin, pod, env.storm.ID())

	// The CI runner's pod: the host's gcc and make (its /usr and library directories, read-only) and a writable
	// build directory.
	pod = benchPod(t, admin, "ci", "ci-runner-4tz8m", "registry.example/ci/runner:2.3")
	mounts := []testenv.Mount{tools, {Destination: "/usr", Source: "/usr"}, {Destination: benchBuildMount, Source: env.buildDir, Writable: true}}
	// The host's cc is a link through /etc/alternatives (Debian), which the project's Makefile runs.
	if fi, err := os.Stat("/etc/alternatives"); err == nil && fi.IsDir() {
		mounts = append(mounts, testenv.Mount{Destination: "/etc/alternatives", Source: "/etc/alternatives"})
	}
	for _, lib := range []string{"/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(lib)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0: // merged /usr: lib -> usr/lib
			target, err := os.Readlink(lib)
			require.NoError(t, err)
			mounts = append(mounts, testenv.Mount{Destination: lib, Symlink: target})
		default:
			mounts = append(mounts, testenv.Mount{Destination: lib, Source: lib})
		}
	}
	env.ci = testenv.NewContainer(t, testenv.Options{PodUID: string(pod.UID), Mounts: mounts})
	benchSetContainerStatus(t, admin, pod, env.ci.ID())
	out := env.ci.MustExec(t, "/usr/bin/make", "--version")
	require.Contains(t, out, "GNU Make", "make runs in the CI runner")
	out = env.ci.MustExec(t, "/usr/bin/cc", "--version")
	require.NotEmpty(t, out, "cc runs in the CI runner")
	return env
}

// benchPod creates a pod bound to benchNode, with one container.
func benchPod(t *testing.T, admin kubernetes.Interface, ns, name, image string) *corev1.Pod {
	t.Helper()
	pod, err := admin.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": strings.SplitN(name, "-", 2)[0]}},
		Spec:       corev1.PodSpec{NodeName: benchNode, Containers: []corev1.Container{{Name: "main", Image: image}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return pod
}

// benchSetContainerStatus writes the running container's id into the pod's status, as the kubelet does.
func benchSetContainerStatus(t *testing.T, admin kubernetes.Interface, pod *corev1.Pod, id string) {
	t.Helper()
	image := pod.Spec.Containers[0].Image
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "main", ContainerID: "containerd://" + id, Image: image, Ready: true,
		ImageID: strings.SplitN(image, ":", 2)[0] + "@sha256:" + strings.Repeat("5e", 32),
		State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
	}}}
	_, err := admin.CoreV1().Pods(pod.Namespace).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	require.NoError(t, err)
}
