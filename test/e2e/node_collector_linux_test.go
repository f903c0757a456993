//go:build linux

package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/compilerwatch/compilerwatch/internal/helmtest"
	"github.com/compilerwatch/compilerwatch/internal/imagebuild"
	"github.com/compilerwatch/compilerwatch/internal/nodetest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// nodeBuilderImage holds busybox and a copy of it as /usr/bin/gcc: a compiler by name, which the catalog flags
// whatever it does.
const nodeBuilderImage = "localhost/cw/builder:1"

// chartNode is a real node (kubelet, containerd, runc, CNI bridge) with `make image`'s image imported, an OTLP
// sink where the pods reach the host, and the chart's objects installed as a Helm release would install them,
// except that no DaemonSet controller or scheduler runs: the test creates the DaemonSet's pods itself, from
// the DaemonSet object as the API server stored it (see collectorPod).
type chartNode struct {
	node    *nodetest.Node
	admin   kubernetes.Interface
	sink    *otlpSink
	ns      string
	apiPort int
}

// startChartNode starts the node and the sink, creates the release's namespace (deploy/kubernetes's, with its
// Pod Security labels) and the ConfigMap the ServiceAccount admission would publish (kube-root-ca.crt, here the
// API proxy's certificates).
func startChartNode(t *testing.T) *chartNode {
	t.Helper()
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
	node := nodetest.Start(t, nodetest.ImageSpec{Ref: nodeBuilderImage, Files: files})
	require.NoError(t, node.ImportArchive(archive))
	admin, err := kubernetes.NewForConfig(node.Config)
	require.NoError(t, err)
	ctx := context.Background()

	l, err := net.Listen("tcp", net.JoinHostPort(nodetest.HostIP, "0"))
	require.NoError(t, err)
	sink := &otlpSink{addr: l.Addr().String(), logs: new(consumertest.LogsSink)}
	require.NoError(t, l.Close())
	sink.start(t)
	t.Cleanup(func() { sink.stop(t) })

	var ns corev1.Namespace
	decodeManifest(t, filepath.Join(root, "deploy", "kubernetes", "00-namespace.yaml"), &ns)
	_, err = admin.CoreV1().Namespaces().Create(ctx, &ns, metav1.CreateOptions{})
	require.NoError(t, err)
	apiPort, caPEM := node.APIProxy(t)
	_, err = admin.CoreV1().ConfigMaps(ns.Name).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(caPEM)},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return &chartNode{node: node, admin: admin, sink: sink, ns: ns.Name, apiPort: apiPort}
}

// chartRelease is the chart rendered for this node, decoded into the API's types.
type chartRelease struct {
	sa      corev1.ServiceAccount
	role    rbacv1.ClusterRole
	binding rbacv1.ClusterRoleBinding
	cm      corev1.ConfigMap
	ds      appsv1.DaemonSet
}

// render renders the chart as release "cw" with `make image`'s image, the sink as backend (plaintext), and
// the value that leaves SYS_RESOURCE out (this machine's bounding set lacks it), plus set.
func (c *chartNode) render(t *testing.T, set ...string) *chartRelease {
	t.Helper()
	set = append([]string{
		"image.repository=" + imagebuild.Repository, "image.tag=" + imagebuild.Version,
		"exporter.endpoint=" + c.sink.addr, "exporter.tls.insecure=true", "capabilities.sysResource=false",
	}, set...)
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(helmtest.Template(t, "cw", c.ns, set...))))
	var r chartRelease
	kinds := map[string]any{
		"ServiceAccount": &r.sa, "ClusterRole": &r.role, "ClusterRoleBinding": &r.binding, "ConfigMap": &r.cm, "DaemonSet": &r.ds,
	}
	for {
		raw, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal(raw, &tm))
		obj, ok := kinds[tm.Kind]
		if !ok {
			continue // empty documents, and the Service: nothing on this node reads it
		}
		require.NoError(t, yaml.UnmarshalStrict(raw, obj), tm.Kind)
		delete(kinds, tm.Kind)
	}
	require.Empty(t, kinds, "the chart renders each of these once")
	return &r
}

// install creates the release's objects, the DaemonSet included: it is stored as users have it (and defaulted
// by the API server), though no controller acts on it.
func (c *chartNode) install(t *testing.T, r *chartRelease) *appsv1.DaemonSet {
	t.Helper()
	ctx := context.Background()
	_, err := c.admin.CoreV1().ServiceAccounts(c.ns).Create(ctx, &r.sa, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.admin.RbacV1().ClusterRoles().Create(ctx, &r.role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.admin.RbacV1().ClusterRoleBindings().Create(ctx, &r.binding, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.admin.CoreV1().ConfigMaps(c.ns).Create(ctx, &r.cm, metav1.CreateOptions{})
	require.NoError(t, err)
	ds, err := c.admin.AppsV1().DaemonSets(c.ns).Create(ctx, &r.ds, metav1.CreateOptions{})
	require.NoError(t, err)
	return ds
}

// upgrade applies a new render of the chart as `helm upgrade` does: the ConfigMap and the DaemonSet's pod
// template (its config checksum annotation) change in place.
func (c *chartNode) upgrade(t *testing.T, r *chartRelease) *appsv1.DaemonSet {
	t.Helper()
	ctx := context.Background()
	cm, err := c.admin.CoreV1().ConfigMaps(c.ns).Get(ctx, r.cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	cm.Data = r.cm.Data
	_, err = c.admin.CoreV1().ConfigMaps(c.ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	ds, err := c.admin.AppsV1().DaemonSets(c.ns).Get(ctx, r.ds.Name, metav1.GetOptions{})
	require.NoError(t, err)
	ds.Spec = r.ds.Spec
	ds, err = c.admin.AppsV1().DaemonSets(c.ns).Update(ctx, ds, metav1.UpdateOptions{})
	require.NoError(t, err)
	return ds
}

// collectorPod creates the pod the DaemonSet controller would create on this node: the stored DaemonSet's pod
// template, owned by the DaemonSet. What this node lacks is made up for, and nothing else is changed:
//   - there is no scheduler: spec.nodeName binds the pod;
//   - the ServiceAccount admission, which would add the token volume, is off: the same projected volume is added;
//   - kube-apiserver listens on loopback and no Service proxy runs: kubernetes.default.svc maps to nodetest's API
//     proxy at the host's bridge address (hostAliases, KUBERNETES_SERVICE_HOST/PORT).
func (c *chartNode) collectorPod(t *testing.T, ds *appsv1.DaemonSet, name string) *corev1.Pod {
	t.Helper()
	tmpl := ds.Spec.Template.DeepCopy()
	spec := &tmpl.Spec
	spec.NodeName = nodetest.NodeName
	spec.HostAliases = append(spec.HostAliases, corev1.HostAlias{IP: nodetest.HostIP, Hostnames: []string{"kubernetes.default.svc"}})
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
	ctr := &spec.Containers[0]
	ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{
		Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true,
	})
	ctr.Env = append(ctr.Env,
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: "kubernetes.default.svc"},
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: strconv.Itoa(c.apiPort)})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: c.ns, Labels: tmpl.Labels, Annotations: tmpl.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
		},
		Spec: *spec,
	}
	created, err := c.admin.CoreV1().Pods(c.ns).Create(context.Background(), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	return created
}

// waitReady waits until kubelet's readiness probe of the pod's health check passes, and returns the pod.
func (c *chartNode) waitReady(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(120 * time.Second)
	for {
		p, err := c.admin.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		require.NoError(t, err)
		if slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
		}) {
			return p
		}
		if time.Now().After(deadline) {
			out, _ := c.node.Crictl("logs", "--tail", "40", containerIDOf(p))
			t.Fatalf("pod %s not Ready within 120s: %+v\n%s", p.Name, p.Status, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deleteAndWait deletes a pod with its own grace period and waits until the API no longer has it: kubelet
// has stopped its containers.
func (c *chartNode) deleteAndWait(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, c.admin.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}))
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := c.admin.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		require.NoError(t, err)
		if time.Now().After(deadline) {
			t.Fatalf("pod %s still in the API 90s after its deletion", pod.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNodeCollectorPod: the collector runs as a pod from `make image`'s image on a real node, with exactly the
// rendered chart's DaemonSet pod template (values: the sink as backend, SYS_RESOURCE left out, a cluster name):
// not privileged, BPF + PERFMON + SYS_PTRACE only, read-only root, hostPID, seccomp Unconfined, the chart's
// volumes, probes and resources, and its ConfigMap, ServiceAccount and ClusterRole. kubelet's readiness probe
// of the health check passes, the health check answers at the pod's address, and a compiler run in another
// pod reaches the OTLP sink flagged, with the pod's attributes from the API and the cluster name.
func TestNodeCollectorPod(t *testing.T) {
	c := startChartNode(t)
	ctx := context.Background()
	const cluster = "cw-node-cluster"
	rel := c.render(t, "clusterName="+cluster)
	ds := c.install(t, rel)

	collector := c.collectorPod(t, ds, ds.Name+"-"+nodetest.NodeName)
	tmpl := ds.Spec.Template.Spec
	got := collector.Spec
	require.Len(t, got.Containers, 1)
	want, ctr := tmpl.Containers[0], got.Containers[0]
	// The template as the API stored it, field by field; only the harness's additions are appended.
	assert.Equal(t, want.SecurityContext, ctr.SecurityContext, "the chart's security context, unchanged")
	assert.Equal(t, want.Image, ctr.Image)
	assert.Equal(t, want.Args, ctr.Args)
	assert.Equal(t, want.Env, ctr.Env[:len(want.Env)])
	assert.Equal(t, want.VolumeMounts, ctr.VolumeMounts[:len(want.VolumeMounts)])
	assert.Equal(t, want.LivenessProbe, ctr.LivenessProbe)
	assert.Equal(t, want.ReadinessProbe, ctr.ReadinessProbe)
	assert.Equal(t, want.Resources, ctr.Resources)
	assert.Equal(t, want.Ports, ctr.Ports)
	assert.Equal(t, tmpl.Volumes, got.Volumes[:len(tmpl.Volumes)])
	assert.Equal(t, tmpl.ServiceAccountName, got.ServiceAccountName)
	assert.Equal(t, tmpl.TerminationGracePeriodSeconds, got.TerminationGracePeriodSeconds)
	assert.Equal(t, tmpl.Tolerations, got.Tolerations)
	assert.Equal(t, tmpl.NodeSelector, got.NodeSelector)
	// What the chart's template says, spelled out.
	sc := ctr.SecurityContext
	require.NotNil(t, sc)
	assert.True(t, got.HostPID)
	assert.False(t, got.HostNetwork)
	assert.Equal(t, ptrTo(false), sc.Privileged)
	assert.Equal(t, ptrTo(true), sc.ReadOnlyRootFilesystem)
	assert.Equal(t, ptrTo(false), sc.AllowPrivilegeEscalation)
	require.NotNil(t, sc.Capabilities)
	assert.Equal(t, []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE"}, sc.Capabilities.Add, "no SYS_RESOURCE")
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)

	collector = c.waitReady(t, collector)
	t.Logf("collector pod Ready, container %s", containerIDOf(collector))
	// The health check itself, at the pod's own address on the bridge.
	resp, err := http.Get("http://" + net.JoinHostPort(collector.Status.PodIP, "13133") + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "health check: %s", body)
	assert.NotEqual(t, c.node.IP, collector.Status.PodIP, "not host network")

	tag := "cw-node-collector-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	build, err := c.admin.CoreV1().Pods("default").Create(ctx, nodetest.ShellPod("builder", "build", nodeBuilderImage,
		corev1.RestartPolicyNever, "/usr/bin/gcc "+tag+"; exec /bin/busybox sleep 3600"), metav1.CreateOptions{})
	require.NoError(t, err)
	rec := waitRecord(t, c.sink.logs, "the builder pod's gcc", 90*time.Second, withArg(tag))
	build, err = c.admin.CoreV1().Pods("default").Get(ctx, build.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "gcc", rec.str("compilerwatch.compiler.name"))
	for k, v := range map[string]any{
		"container.id":       containerIDOf(build)[len("containerd://"):],
		"k8s.pod.uid":        string(build.UID),
		"k8s.pod.name":       "builder",
		"k8s.namespace.name": "default",
		"k8s.container.name": "build",
		"k8s.node.name":      nodetest.NodeName,
		"k8s.cluster.name":   cluster,
	} {
		assert.Equal(t, v, rec.res[k], k)
	}

	// The same finding in the collector's container log, which `kubectl logs` reads: the chart's logFindings is on
	// by default, and the line carries the pod's attributes from the API.
	line := regexp.MustCompile(`(?m)^WARN def-000-krp gcc ns=default pod=builder ctr=build image=` + regexp.QuoteMeta(nodeBuilderImage) +
		` parent=\S+ origin=\S+ cid=` + containerIDOf(build)[len("containerd://"):][:12] + `$`)
	var log []byte
	require.Eventually(t, func() bool {
		log, _ = c.node.Crictl("logs", strings.TrimPrefix(containerIDOf(collector), "containerd://"))
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
