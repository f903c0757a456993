//go:build linux

package compilerdetectorprocessor_test

import (
	"context"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/compilerwatch/compilerwatch/internal/nodetest"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
)

// TestRealNodeStartRace: on a real node (kubelet, containerd, runc, CNI bridge), a Deployment's pod whose entrypoint
// runs a compiler at once is flagged, and the record carries the container id and the pod attributes that the real
// kubelet's status update provides, the ReplicaSet and Deployment (from a GET of the ReplicaSet) and the cluster
// name. The exec happens before kubelet can have written the container id, so the
// record is held until the informer delivers the status. A compiler run through `crictl exec` carries the same
// attributes; the image's compiler is origin image (WARN), a copy written into the running container's overlay
// upper layer is upper_layer (ERROR). The container's cgroup is the cgroupfs driver's path under kubelet's
// cgroup root. The presence scan reports the image's compiler once for the container.
func TestRealNodeStartRace(t *testing.T) {
	node, admin, sink := startNodePipeline(t)

	ctx := context.Background()
	const ns = "default"
	tag := "cw-start-race-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	created := time.Now()
	dep, rs, pod, err := nodetest.DeploymentPod(ctx, admin, ns, "builder", nodetest.ShellPod("builder", "build", builderImage,
		corev1.RestartPolicyAlways, "/usr/bin/gcc "+tag+"; exec /bin/busybox sleep 3600"))
	require.NoError(t, err)
	t.Logf("deployment %s, replicaset %s, pod %s", dep.Name, rs.Name, pod.Name)
	// The collector's credentials (the documented RBAC) may GET the ReplicaSet, so the Deployment's name comes from
	// the ReplicaSet's controller reference; the naming rule alone would give the same name.
	agent, err := kubernetes.NewForConfig(node.AgentConfig)
	require.NoError(t, err)
	agentRS, err := agent.AppsV1().ReplicaSets(ns).Get(ctx, rs.Name, metav1.GetOptions{})
	require.NoError(t, err, "the collector's RBAC allows get on replicasets")
	require.Len(t, agentRS.OwnerReferences, 1)
	assert.Equal(t, dep.UID, agentRS.OwnerReferences[0].UID)

	got := waitForNodeRecord(t, sink, func(r rec) bool { return isCompilerExec(r, tag) })
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
		"container.id":        id,
		"k8s.pod.uid":         string(pod.UID),
		"k8s.pod.name":        pod.Name,
		"k8s.namespace.name":  ns,
		"k8s.node.name":       nodetest.NodeName,
		"k8s.container.name":  "build",
		"k8s.replicaset.name": "builder-" + nodetest.PodTemplateHash,
		"k8s.deployment.name": "builder",
		"k8s.cluster.name":    nodeClusterName,
	}
	for k, v := range want {
		assert.Equal(t, v, got.res[k], k)
	}
	assert.Equal(t, "localhost/cw/builder", got.res["container.image.name"])

	// A compiler exec'd into the running container through CRI (what kubectl exec does) joins the container's
	// cgroup and carries the same attributes.
	execTag := tag + "-exec"
	out, err := node.Crictl("exec", id, "/usr/bin/gcc", execTag)
	t.Logf("crictl exec: %v: %s", err, out) // busybox has no gcc applet: a non-zero exit is expected
	execRec := waitForNodeRecord(t, sink, func(r rec) bool { return isCompilerExec(r, execTag) })
	assert.True(t, execRec.flagged(), "crictl exec of gcc is flagged: %s", execRec)
	for k, v := range want {
		assert.Equal(t, v, execRec.res[k], "%s on the crictl exec", k)
	}

	// Drift on overlay snapshots that containerd prepared: the image's gcc is origin image (WARN); a copy
	// written into the running container is on the upper layer, which raises it to ERROR.
	assert.Equal(t, "image", got.str("compilerwatch.executable.origin"), "%s", got)
	assert.Equal(t, "image", execRec.str("compilerwatch.executable.origin"), "%s", execRec)
	assert.Equal(t, "WARN", got.lr.SeverityText())
	driftTag := tag + "-drift"
	out, err = node.Crictl("exec", id, "/bin/sh", "-c",
		"mkdir -p /usr/local/bin && cp /usr/bin/gcc /usr/local/bin/gcc && /usr/local/bin/gcc "+driftTag)
	t.Logf("crictl exec (drift): %v: %s", err, out)
	drift := waitForNodeRecord(t, sink, func(r rec) bool { return isCompilerExec(r, driftTag) })
	assert.Equal(t, "/usr/local/bin/gcc", drift.str("process.executable.path"), "%s", drift)
	assert.Equal(t, "upper_layer", drift.str("compilerwatch.executable.origin"), "%s", drift)
	assert.Equal(t, "ERROR", drift.lr.SeverityText(), "%s", drift)
	assert.Equal(t, id, drift.containerID())

	// The cgroup path kubelet's cgroupfs driver chose, as the kernel reports it for the container's process.
	wantCgroup := nodetest.CgroupRoot + "/kubepods/besteffort/pod" + string(pod.UID) + "/" + id
	lines := nodetest.ContainerCgroups(t, id)
	require.NotEmpty(t, lines, "a process of container %s", id)
	t.Logf("container cgroups:\n%s", strings.Join(lines, "\n"))
	for _, l := range lines {
		assert.True(t, strings.HasSuffix(l, ":"+wantCgroup), "cgroup line %q, want path %s", l, wantCgroup)
	}

	// The presence scan ran once, when the container was first seen: it lists the image's compiler only (the
	// drift copy came later), and the later execs did not rescan.
	assertPresence(t, sink, pod, map[string]string{id: "build"})
}

const builderImage = "localhost/cw/builder:1"

// startNodePipeline starts a real node with builderImage (busybox, and a copy of it as /usr/bin/gcc: a compiler
// by name, which the catalog flags whatever it does), and the receiver and processor with the documented RBAC,
// dedup off and a 30 s hold for metadata.
func startNodePipeline(t *testing.T) (*nodetest.Node, kubernetes.Interface, *consumertest.LogsSink) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCaps(t, testenv.CapBPF, testenv.CapPerfmon)
	busybox, err := os.ReadFile("/bin/busybox")
	require.NoError(t, err)
	files, err := nodetest.BusyboxFiles(nil)
	require.NoError(t, err)
	files["usr/bin/gcc"] = nodetest.Entry{Data: busybox, Mode: 0o755}
	node := nodetest.Start(t, nodetest.ImageSpec{Ref: builderImage, Files: files})
	admin, err := kubernetes.NewForConfig(node.Config)
	require.NoError(t, err)
	grantDocumentedRBAC(t, admin)
	sink := startPipelineThrough(t, componenttest.NewNopHost(), func(cfg *compilerdetectorprocessor.Config) {
		cfg.Dedup.Window = 0
		cfg.Kubernetes.Enabled = "true"
		cfg.Kubernetes.Kubeconfig = node.Kubeconfig(t, node.AgentConfig)
		cfg.Kubernetes.NodeName = nodetest.NodeName
		cfg.Kubernetes.WaitForMetadata.Hold = 30 * time.Second
	}, func(next consumer.Logs) consumer.Logs { return clusterNameStage(t, next) })
	return node, admin, sink
}

// nodeClusterName is the chart's clusterName in the node tests.
const nodeClusterName = "cw-node-test"

// clusterNameStage is the resource processor the chart puts after compiler_detector when clusterName is set
// (resource/cluster in the chart's ConfigMap), with the same attribute action, in front of next.
func clusterNameStage(t *testing.T, next consumer.Logs) consumer.Logs {
	t.Helper()
	f := resourceprocessor.NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"attributes": []any{map[string]any{
		"key": "k8s.cluster.name", "value": nodeClusterName, "action": "upsert",
	}}}).Unmarshal(cfg))
	p, err := f.CreateLogs(context.Background(), processortest.NewNopSettings(f.Type()), cfg, next)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { assert.NoError(t, p.Shutdown(context.Background())) })
	return p
}

// imageCompilers is the presence scan's list for builderImage: its one compiler, as name:path.
var imageCompilers = []any{"gcc:/usr/bin/gcc"}

// assertPresence waits for the presence records of the pod's containers (container id → container name) and
// asserts exactly one per container id, listing imageCompilers, with the pod's attributes on its resource, and
// none for any other container of the pod (the sandbox has no compiler).
func assertPresence(t *testing.T, sink *consumertest.LogsSink, pod *corev1.Pod, containers map[string]string) {
	t.Helper()
	byID := func() map[string][]testenv.Record {
		out := map[string][]testenv.Record{}
		for _, r := range testenv.Records(sink.AllLogs()) {
			if r.Log.EventName() == "container.compilers_present" && r.Resource["k8s.pod.uid"] == string(pod.UID) {
				id, _ := r.Resource["container.id"].(string)
				out[id] = append(out[id], r)
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		got := byID()
		for id := range containers {
			if len(got[id]) == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "a presence record for each of %d containers", len(containers))
	time.Sleep(time.Second) // a second scan of the same container would come as fast as the first
	got := byID()
	assert.Len(t, got, len(containers), "presence records only for the pod's containers with compilers: %v", slices.Collect(maps.Keys(got)))
	for id, name := range containers {
		if !assert.Len(t, got[id], 1, "one presence record for container %s", id) {
			continue
		}
		r := got[id][0]
		t.Logf("presence %s: %v", id, r.Attrs["compilerwatch.compilers_present"])
		assert.Equal(t, imageCompilers, r.Attrs["compilerwatch.compilers_present"])
		assert.Equal(t, "WARN", r.Log.SeverityText())
		assert.Equal(t, "def-000-krp", r.Attrs["security_rule.uuid"])
		for k, v := range map[string]any{
			"k8s.pod.name":       pod.Name,
			"k8s.namespace.name": pod.Namespace,
			"k8s.container.name": name,
			"k8s.node.name":      nodetest.NodeName,
		} {
			assert.Equal(t, v, r.Resource[k], "%s of the presence record of %s", k, id)
		}
	}
}

// isCompilerExec selects the exec of /usr/bin/gcc whose first argument is tag.
func isCompilerExec(r rec, tag string) bool {
	args := r.list("process.command_args")
	return r.str("compilerwatch.exec.comm") == "gcc" && len(args) > 1 && args[1] == tag
}

// waitForNodeRecord waits up to 90 s (pod start on a loaded machine) for the last record match selects.
func waitForNodeRecord(t *testing.T, sink *consumertest.LogsSink, match func(rec) bool) rec {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		recs := execRecords(sink)
		for i := len(recs) - 1; i >= 0; i-- {
			if match(recs[i]) {
				return recs[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching exec record within 90s; %d exec records", len(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRealNodeRestart: a container that crashes is restarted by kubelet with a new container id; the findings of
// both runs carry their own run's id and the same pod, and the presence scan reports the image's compiler once
// for each run's container.
func TestRealNodeRestart(t *testing.T) {
	_, admin, sink := startNodePipeline(t)
	ctx := context.Background()
	const ns = "default"
	tag := "cw-restart-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// The first run crashes after 5 s; the second finds the first's mark in the pod's emptyDir and stays up.
	spec := nodetest.ShellPod("crasher", "crash", builderImage, corev1.RestartPolicyAlways,
		"/usr/bin/gcc "+tag+"; if [ -e /run/cw/crashed ]; then exec /bin/busybox sleep 3600; fi; touch /run/cw/crashed; sleep 5; exit 1")
	spec.Spec.Volumes = []corev1.Volume{{Name: "mark", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	spec.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mark", MountPath: "/run/cw"}}
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, spec, metav1.CreateOptions{})
	require.NoError(t, err)

	ids := func() []string {
		var out []string
		for _, r := range execRecords(sink) {
			if isCompilerExec(r, tag) && !slices.Contains(out, r.containerID()) {
				out = append(out, r.containerID())
			}
		}
		return out
	}
	deadline := time.Now().Add(120 * time.Second)
	for len(ids()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("findings from %d container runs within 120s, want 2", len(ids()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	pod, err = admin.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, pod.Status.ContainerStatuses, 1)
	cs := pod.Status.ContainerStatuses[0]
	assert.GreaterOrEqual(t, cs.RestartCount, int32(1))
	t.Logf("restarts %d, container ids seen %q, status %s, last %v, imageID %q", cs.RestartCount, ids(), cs.ContainerID,
		cs.LastTerminationState.Terminated, cs.ImageID)
	first, second := ids()[0], ids()[1]
	assert.NotEqual(t, first, second)
	// The second run is the current one, the first the last one.
	assert.Equal(t, "containerd://"+second, cs.ContainerID)
	if assert.NotNil(t, cs.LastTerminationState.Terminated) {
		assert.Equal(t, "containerd://"+first, cs.LastTerminationState.Terminated.ContainerID)
	}
	for _, r := range execRecords(sink) {
		if !isCompilerExec(r, tag) {
			continue
		}
		assert.True(t, r.flagged(), "%s", r)
		assert.Equal(t, string(pod.UID), r.res["k8s.pod.uid"], "run %s", r.containerID())
		assert.Equal(t, pod.Name, r.res["k8s.pod.name"], "run %s", r.containerID())
		assert.Equal(t, "crash", r.res["k8s.container.name"], "run %s", r.containerID())
		// containerd's imageID of an image imported without a registry digest is the bare local id.
		imageID, _ := r.res["container.image.id"].(string)
		assert.Regexp(t, "^sha256:[0-9a-f]{64}$", imageID, "run %s", r.containerID())
		assert.True(t, strings.HasSuffix(cs.ImageID, imageID), "container.image.id %q from the status imageID %q", imageID, cs.ImageID)
	}
	// Each run is a new container to the presence scan: one record per container id.
	assertPresence(t, sink, pod, map[string]string{first: "crash", second: "crash"})
}

// TestRealNodeDeletion: a pod that runs a compiler in a loop is deleted (grace period 0) while its execs go on;
// the records of its last execs, in flight when kubelet kills it and the API drops the pod, still carry the pod's
// metadata.
func TestRealNodeDeletion(t *testing.T) {
	_, admin, sink := startNodePipeline(t)
	ctx := context.Background()
	const ns = "default"
	tag := "cw-deletion-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "looper"},
		Spec: corev1.PodSpec{
			NodeName:      nodetest.NodeName,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "loop", Image: builderImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/sh", "-c", "while :; do /usr/bin/gcc " + tag + "; /bin/busybox sleep 0.05; done"},
			}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	waitForNodeRecord(t, sink, func(r rec) bool { return isCompilerExec(r, tag) })
	require.NoError(t, admin.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}))
	deleted := time.Now()

	// Gone from the API, and its execs stopped: the count is stable for 2 s.
	count := func() int {
		n := 0
		for _, r := range execRecords(sink) {
			if isCompilerExec(r, tag) {
				n++
			}
		}
		return n
	}
	last, stableSince := count(), time.Now()
	for time.Since(stableSince) < 2*time.Second {
		if time.Since(deleted) > 60*time.Second {
			t.Fatal("execs still arriving 60s after the pod's deletion")
		}
		time.Sleep(100 * time.Millisecond)
		if c := count(); c != last {
			last, stableSince = c, time.Now()
		}
	}
	var after int
	for _, r := range execRecords(sink) {
		if !isCompilerExec(r, tag) {
			continue
		}
		if r.lr.Timestamp().AsTime().After(deleted) {
			after++
		}
		assert.Equal(t, string(pod.UID), r.res["k8s.pod.uid"], "%s", r)
		assert.Equal(t, pod.Name, r.res["k8s.pod.name"], "%s", r)
		assert.Equal(t, "loop", r.res["k8s.container.name"], "%s", r)
	}
	t.Logf("%d records, %d of execs after the delete call", last, after)
}
