//go:build linux

package compilerdetectorprocessor_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/compilerwatch/compilerwatch/internal/nodetest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
)

// TestRealNodeStartRace: on a real node (kubelet, containerd, runc, CNI bridge), a pod whose entrypoint runs a
// compiler at once is flagged, and the record carries the container id and the pod attributes that the real
// kubelet's status update provides. The exec happens before kubelet can have written the container id, so the
// record is held until the informer delivers the status.
func TestRealNodeStartRace(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	busybox, err := os.ReadFile("/bin/busybox")
	require.NoError(t, err)
	files, err := nodetest.BusyboxFiles(nil)
	require.NoError(t, err)
	// A compiler by name: the catalog matches gcc as a driver whatever it does.
	files["usr/bin/gcc"] = nodetest.Entry{Data: busybox, Mode: 0o755}
	const image = "localhost/cw/builder:1"
	node := nodetest.Start(t, nodetest.ImageSpec{Ref: image, Files: files})
	admin, err := kubernetes.NewForConfig(node.Config)
	require.NoError(t, err)
	grantDocumentedRBAC(t, admin)

	sink := startPipeline(t, func(cfg *compilerdetectorprocessor.Config) {
		cfg.Dedup.Window = 0
		cfg.Kubernetes.Enabled = "true"
		cfg.Kubernetes.Kubeconfig = node.Kubeconfig(t, node.AgentConfig)
		cfg.Kubernetes.NodeName = nodetest.NodeName
		cfg.Kubernetes.WaitForMetadata = 30 * time.Second
	})

	ctx := context.Background()
	const ns = "default"
	tag := "cw-start-race-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	created := time.Now()
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "builder"},
		Spec: corev1.PodSpec{
			NodeName:                      nodetest.NodeName,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr(int64(1)),
			Containers: []corev1.Container{{
				Name: "build", Image: image, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/sh", "-c", "/usr/bin/gcc " + tag + "; exec /bin/busybox sleep 3600"},
			}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	isOurs := func(r rec) bool {
		return r.str("compilerwatch.exec.comm") == "gcc" && len(r.list("process.command_args")) > 1 &&
			r.list("process.command_args")[1] == tag
	}
	var got rec
	deadline := time.Now().Add(90 * time.Second)
	for {
		var found bool
		for _, r := range execRecords(sink) {
			if isOurs(r) {
				got, found = r, true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record of the pod's gcc exec within 90s; %d exec records", len(execRecords(sink)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	released := time.Now()
	execAt := got.lr.Timestamp().AsTime()
	t.Logf("pod created -> first exec %s; first exec -> record released with attributes %s",
		execAt.Sub(created).Round(time.Millisecond), released.Sub(execAt).Round(time.Millisecond))

	pod, err = admin.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, pod.Status.ContainerStatuses, 1)
	cs := pod.Status.ContainerStatuses[0]
	id, ok := strings.CutPrefix(cs.ContainerID, "containerd://")
	require.True(t, ok, "container id %q", cs.ContainerID)
	t.Logf("pod IP %s, container %s, image %s", pod.Status.PodIP, id, cs.Image)
	assert.NotEqual(t, node.IP, pod.Status.PodIP, "the pod has its own network namespace")

	assert.True(t, got.flagged(), "gcc is flagged: %s", got)
	assert.Equal(t, "gcc", got.str("compilerwatch.compiler.name"))
	want := map[string]any{
		"container.id":       id,
		"k8s.pod.uid":        string(pod.UID),
		"k8s.pod.name":       pod.Name,
		"k8s.namespace.name": ns,
		"k8s.node.name":      nodetest.NodeName,
		"k8s.container.name": "build",
	}
	for k, v := range want {
		assert.Equal(t, v, got.res[k], k)
	}
	assert.Contains(t, []any{"localhost/cw/builder", image}, got.res["container.image.name"])

	// The cgroup path kubelet's cgroupfs driver chose, as the kernel reports it for the container's process.
	wantCgroup := nodetest.CgroupRoot + "/kubepods/besteffort/pod" + string(pod.UID) + "/" + id
	lines := nodetest.ContainerCgroups(t, id)
	require.NotEmpty(t, lines, "a process of container %s", id)
	t.Logf("container cgroups:\n%s", strings.Join(lines, "\n"))
	for _, l := range lines {
		assert.True(t, strings.HasSuffix(l, ":"+wantCgroup), "cgroup line %q, want path %s", l, wantCgroup)
	}
}
