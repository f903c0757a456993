//go:build linux

package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/compilerwatch/compilerwatch/internal/imagebuild"
	"github.com/compilerwatch/compilerwatch/internal/nodetest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// TestNodeCollectorPod: the collector runs as a pod from `make image`'s image on a real node (kubelet,
// containerd, runc, CNI bridge), from the plain manifests' DaemonSet pod template with its security context
// unchanged (not privileged, BPF + PERFMON + SYS_PTRACE only, read-only root, hostPID, RuntimeDefault seccomp
// off) and its ConfigMap, ServiceAccount and ClusterRole. kubelet's readiness probe of its health check passes,
// and a compiler run in another pod reaches the OTLP sink flagged, with the pod's attributes from the API, and the
// collector's container log (kubectl logs) as one line.
//
// There is no controller-manager or scheduler: the pod is created from the template with spec.nodeName, and the
// ServiceAccount admission that would add the token volume is off, so the test adds the same projected volume.
// kube-apiserver listens on loopback: pods reach it through nodetest's proxy at kubernetes.default.svc.
func TestNodeCollectorPod(t *testing.T) {
	testenv.RequireRoot(t)
	root := distro.RepoRoot(t)
	archive := filepath.Join(root, "build", "image", imagebuild.DockerArchive(runtime.GOARCH))
	if _, err := os.Stat(archive); err != nil {
		msg := fmt.Sprintf("%s is not built: run `make image` (make test does)", archive)
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	require.NoError(t, err)
	files, err := nodetest.BusyboxFiles(nil)
	require.NoError(t, err)
	files["usr/bin/gcc"] = nodetest.Entry{Data: busybox, Mode: 0o755}
	const builder = "localhost/cw/builder:1"
	node := nodetest.Start(t, nodetest.ImageSpec{Ref: builder, Files: files})
	require.NoError(t, node.ImportArchive(archive))
	admin, err := kubernetes.NewForConfig(node.Config)
	require.NoError(t, err)
	ctx := context.Background()

	// The OTLP sink, where the pods reach the host.
	l, err := net.Listen("tcp", net.JoinHostPort(nodetest.HostIP, "0"))
	require.NoError(t, err)
	sink := &otlpSink{addr: l.Addr().String()}
	require.NoError(t, l.Close())
	sink.logs = new(consumertest.LogsSink)
	sink.start(t)
	t.Cleanup(func() { sink.stop(t) })

	manifests := filepath.Join(root, "deploy", "kubernetes")
	var ns corev1.Namespace
	decodeManifest(t, filepath.Join(manifests, "00-namespace.yaml"), &ns)
	_, err = admin.CoreV1().Namespaces().Create(ctx, &ns, metav1.CreateOptions{})
	require.NoError(t, err)
	var sa corev1.ServiceAccount
	decodeManifest(t, filepath.Join(manifests, "10-serviceaccount.yaml"), &sa)
	_, err = admin.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, &sa, metav1.CreateOptions{})
	require.NoError(t, err)
	var role rbacv1.ClusterRole
	decodeManifest(t, filepath.Join(manifests, "20-clusterrole.yaml"), &role)
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	var binding rbacv1.ClusterRoleBinding
	decodeManifest(t, filepath.Join(manifests, "21-clusterrolebinding.yaml"), &binding)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &binding, metav1.CreateOptions{})
	require.NoError(t, err)
	var cm corev1.ConfigMap
	decodeManifest(t, filepath.Join(manifests, "30-configmap.yaml"), &cm)
	_, err = admin.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, &cm, metav1.CreateOptions{})
	require.NoError(t, err)
	var ds appsv1.DaemonSet
	decodeManifest(t, filepath.Join(manifests, "40-daemonset.yaml"), &ds)

	apiPort, caPEM := node.APIProxy(t)
	_, err = admin.CoreV1().ConfigMaps(ds.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(caPEM)},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	spec := *ds.Spec.Template.Spec.DeepCopy()
	spec.NodeName = nodetest.NodeName
	spec.HostAliases = []corev1.HostAlias{{IP: nodetest.HostIP, Hostnames: []string{"kubernetes.default.svc"}}}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptrTo(int64(3607))}},
			{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
			}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
				Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
			}}}},
		}},
	}})
	require.Len(t, spec.Containers, 1)
	c := &spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{
		Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true,
	})
	wantSC := c.SecurityContext.DeepCopy()
	for i, e := range c.Env {
		switch e.Name {
		case "OTLP_ENDPOINT":
			c.Env[i].Value = sink.addr
		case "OTLP_INSECURE":
			c.Env[i].Value = "true"
		}
	}
	c.Env = append(c.Env,
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: "kubernetes.default.svc"},
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: strconv.Itoa(apiPort)})
	collector, err := admin.CoreV1().Pods(ds.Namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: ds.Name + "-" + nodetest.NodeName, Labels: ds.Spec.Template.Labels},
		Spec:       spec,
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.Equal(t, wantSC, collector.Spec.Containers[0].SecurityContext, "the manifest's security context, unchanged")
	assert.True(t, collector.Spec.HostPID)

	// Ready means kubelet's readiness probe of the health check passed.
	ready := func() bool {
		p, err := admin.CoreV1().Pods(ds.Namespace).Get(ctx, collector.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		collector = p
		return slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
		})
	}
	deadline := time.Now().Add(120 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			out, _ := node.Crictl("logs", "--tail", "40", containerIDOf(collector))
			t.Fatalf("collector pod not Ready within 120s: %+v\n%s", collector.Status, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("collector pod Ready, container %s", containerIDOf(collector))
	// The health check itself, at the pod's own address on the bridge.
	resp, err := http.Get("http://" + net.JoinHostPort(collector.Status.PodIP, "13133") + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "health check: %s", body)
	assert.NotEqual(t, node.IP, collector.Status.PodIP, "not host network")

	tag := "cw-node-collector-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	build, err := admin.CoreV1().Pods("default").Create(ctx, nodetest.ShellPod("builder", "build", builder,
		corev1.RestartPolicyNever, "/usr/bin/gcc "+tag+"; exec /bin/busybox sleep 3600"), metav1.CreateOptions{})
	require.NoError(t, err)
	got := waitRecord(t, sink.logs, "the builder pod's gcc", 90*time.Second, withArg(tag))
	build, err = admin.CoreV1().Pods("default").Get(ctx, build.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "gcc", got.str("compilerwatch.compiler.name"))
	for k, v := range map[string]any{
		"container.id":       containerIDOf(build)[len("containerd://"):],
		"k8s.pod.uid":        string(build.UID),
		"k8s.pod.name":       "builder",
		"k8s.namespace.name": "default",
		"k8s.container.name": "build",
		"k8s.node.name":      nodetest.NodeName,
	} {
		assert.Equal(t, v, got.res[k], k)
	}

	// The same finding in the collector's container log, which `kubectl logs` reads: the plain manifests set
	// log_findings, and the line carries the pod's attributes from the API.
	line := regexp.MustCompile(`(?m)^WARN def-000-krp gcc ns=default pod=builder ctr=build image=` + regexp.QuoteMeta(builder) +
		` parent=\S+ origin=\S+ cid=` + containerIDOf(build)[len("containerd://"):][:12] + `$`)
	var log []byte
	require.Eventually(t, func() bool {
		log, _ = node.Crictl("logs", strings.TrimPrefix(containerIDOf(collector), "containerd://"))
		return line.Match(log)
	}, 30*time.Second, 250*time.Millisecond, "the finding's line in the collector's log:\n%s", log)
}

func containerIDOf(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 {
		return ""
	}
	return p.Status.ContainerStatuses[0].ContainerID
}

func decodeManifest(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(raw, into), path)
}

func ptrTo[T any](v T) *T { return &v }
