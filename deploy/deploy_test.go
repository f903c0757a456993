// Package deploy_test checks deploy/: the Dockerfile and the Kubernetes
// manifests. No Docker engine or cluster runs here, so the tests parse the
// files and assert the properties the design promises: a compiler-free image
// of one static binary, and a least-privilege DaemonSet.
package deploy_test

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/compilerwatch/compilerwatch/internal/imagebuild"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"
)

var update = flag.Bool("update", false, "rewrite kubernetes/30-configmap.yaml from testdata/k8s-daemonset.yaml")

const (
	manifestDir       = "kubernetes"
	configMapFile     = "kubernetes/30-configmap.yaml"
	exampleConfigFile = "../testdata/k8s-daemonset.yaml"
	dockerfile        = "Dockerfile"
	rootfsDir         = "/rootfs" // where the Dockerfile's build stage writes the image's files
	distBinary        = "../build/otelcol-compilerwatch"

	namespace   = "compilerwatch"
	configKey   = "config.yaml"
	healthPort  = 13133
	nodeNameEnv = "K8S_NODE_NAME"
)

// manifests are the decoded objects of deploy/kubernetes, one of each kind.
type manifests struct {
	namespace          *corev1.Namespace
	serviceAccount     *corev1.ServiceAccount
	clusterRole        *rbacv1.ClusterRole
	clusterRoleBinding *rbacv1.ClusterRoleBinding
	configMap          *corev1.ConfigMap
	daemonSet          *appsv1.DaemonSet
}

// decodeStrict decodes one YAML document into obj the way the API server's
// strict field validation does: duplicate keys, unknown fields and fields
// whose case differs (readonly for readOnly) are errors. encoding/json, and
// so sigs.k8s.io/yaml's UnmarshalStrict, matches names case-insensitively and
// would accept `readonly: true`, which the API server drops or refuses.
func decodeStrict(doc []byte, obj any) error {
	j, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// splitDocuments returns the non-empty YAML documents of a file.
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := sigsyaml.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		if len(probe) > 0 { // only comments
			docs = append(docs, doc)
		}
	}
}

// decodeManifest decodes doc strictly into the k8s.io/api type of its kind,
// which must be the GroupVersion we ship.
func decodeManifest(doc []byte) (metav1.TypeMeta, any, error) {
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return tm, nil, err
	}
	want := map[string]struct {
		apiVersion string
		obj        any
	}{
		"Namespace":          {"v1", &corev1.Namespace{}},
		"ServiceAccount":     {"v1", &corev1.ServiceAccount{}},
		"ClusterRole":        {"rbac.authorization.k8s.io/v1", &rbacv1.ClusterRole{}},
		"ClusterRoleBinding": {"rbac.authorization.k8s.io/v1", &rbacv1.ClusterRoleBinding{}},
		"ConfigMap":          {"v1", &corev1.ConfigMap{}},
		"DaemonSet":          {"apps/v1", &appsv1.DaemonSet{}},
	}[tm.Kind]
	if want.obj == nil {
		return tm, nil, fmt.Errorf("unexpected kind %q", tm.Kind)
	}
	if tm.APIVersion != want.apiVersion {
		return tm, nil, fmt.Errorf("%s has apiVersion %q, want %q", tm.Kind, tm.APIVersion, want.apiVersion)
	}
	if err := decodeStrict(doc, want.obj); err != nil {
		return tm, nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return tm, want.obj, nil
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var m manifests
	seen := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		docs, err := splitDocuments(data)
		require.NoError(t, err, f)
		for _, doc := range docs {
			tm, obj, err := decodeManifest(doc)
			require.NoError(t, err, f)
			require.Empty(t, seen[tm.Kind], "%s: a second %s (first in %s)", f, tm.Kind, seen[tm.Kind])
			seen[tm.Kind] = f
			switch o := obj.(type) {
			case *corev1.Namespace:
				m.namespace = o
			case *corev1.ServiceAccount:
				m.serviceAccount = o
			case *rbacv1.ClusterRole:
				m.clusterRole = o
			case *rbacv1.ClusterRoleBinding:
				m.clusterRoleBinding = o
			case *corev1.ConfigMap:
				m.configMap = o
			case *appsv1.DaemonSet:
				m.daemonSet = o
			}
		}
	}
	for kind, present := range map[string]bool{
		"Namespace": m.namespace != nil, "ServiceAccount": m.serviceAccount != nil,
		"ClusterRole": m.clusterRole != nil, "ClusterRoleBinding": m.clusterRoleBinding != nil,
		"ConfigMap": m.configMap != nil, "DaemonSet": m.daemonSet != nil,
	} {
		require.True(t, present, "deploy/kubernetes has no %s", kind)
	}
	return m
}

// collectorContainer is the DaemonSet's only container.
func collectorContainer(t *testing.T, ds *appsv1.DaemonSet) corev1.Container {
	t.Helper()
	require.Len(t, ds.Spec.Template.Spec.Containers, 1, "one container")
	return ds.Spec.Template.Spec.Containers[0]
}

// collectorConfig is the ConfigMap's collector config as plain YAML.
func collectorConfig(t *testing.T, cm *corev1.ConfigMap) map[string]any {
	t.Helper()
	raw, ok := cm.Data[configKey]
	require.True(t, ok, "ConfigMap has no %q", configKey)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(raw), &cfg))
	return cfg
}

// lookup walks nested maps: lookup(cfg, "processors", "batch").
func lookup(t *testing.T, m map[string]any, keys ...string) any {
	t.Helper()
	var cur any = m
	for i, k := range keys {
		mm, ok := cur.(map[string]any)
		require.True(t, ok, "%s is not a map", strings.Join(keys[:i], "."))
		cur, ok = mm[k]
		require.True(t, ok, "config has no %s", strings.Join(keys[:i+1], "."))
	}
	return cur
}

func TestStrictDecodingRefusesUnknownAndDuplicateFields(t *testing.T) {
	tests := map[string]string{
		"unknown field":    "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPIDs: true\n",
		"field case":       "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPid: true\n",
		"nested case":      "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: c, volumeMounts: [{name: v, mountPath: /v, readonly: true}]}]\n",
		"duplicate field":  "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"duplicate nested": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n  name: y\n",
		"wrong version":    "apiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata: {name: x}\n",
		"unknown kind":     "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := decodeManifest([]byte(doc))
			assert.Error(t, err)
		})
	}
	// The same decoder accepts the correct spelling.
	_, obj, err := decodeManifest([]byte("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPID: true\n"))
	require.NoError(t, err)
	assert.True(t, obj.(*appsv1.DaemonSet).Spec.Template.Spec.HostPID)
}

func TestManifestsNamespaceAndLabels(t *testing.T) {
	m := loadManifests(t)
	assert.Equal(t, namespace, m.namespace.Name)
	// hostPID, hostPath and added capabilities are refused by the baseline
	// and restricted Pod Security Standards.
	assert.Equal(t, "privileged", m.namespace.Labels["pod-security.kubernetes.io/enforce"])
	for kind, meta := range map[string]metav1.ObjectMeta{
		"ServiceAccount": m.serviceAccount.ObjectMeta, "ConfigMap": m.configMap.ObjectMeta, "DaemonSet": m.daemonSet.ObjectMeta,
	} {
		assert.Equal(t, namespace, meta.Namespace, "%s namespace", kind)
	}
	for kind, meta := range map[string]metav1.ObjectMeta{
		"ClusterRole": m.clusterRole.ObjectMeta, "ClusterRoleBinding": m.clusterRoleBinding.ObjectMeta,
	} {
		assert.Empty(t, meta.Namespace, "%s is cluster-scoped", kind)
	}
}

// TestClusterRoleLeastPrivilege: exactly what compiler_detector calls, and
// nothing more: the pod informer of this node, and GETs of owners.
func TestClusterRoleLeastPrivilege(t *testing.T) {
	m := loadManifests(t)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"get"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get"}},
	}
	assert.Equal(t, want, m.clusterRole.Rules)
	assert.Nil(t, m.clusterRole.AggregationRule, "no aggregation: the rules above are all it grants")
}

func TestServiceAccountWiring(t *testing.T) {
	m := loadManifests(t)
	sa := m.serviceAccount
	pod := m.daemonSet.Spec.Template.Spec
	assert.Equal(t, sa.Name, pod.ServiceAccountName, "the DaemonSet runs as the ServiceAccount")
	// compiler_detector needs the token; a false here anywhere breaks
	// kubernetes.enabled: true at start.
	require.NotNil(t, pod.AutomountServiceAccountToken)
	assert.True(t, *pod.AutomountServiceAccountToken)
	if sa.AutomountServiceAccountToken != nil {
		assert.True(t, *sa.AutomountServiceAccountToken)
	}

	crb := m.clusterRoleBinding
	assert.Equal(t, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: m.clusterRole.Name}, crb.RoleRef)
	assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}}, crb.Subjects)
}

// TestDaemonSetPrivileges: the three capabilities instead of privileged, and
// everything else closed.
func TestDaemonSetPrivileges(t *testing.T) {
	m := loadManifests(t)
	pod := m.daemonSet.Spec.Template.Spec
	assert.True(t, pod.HostPID, "hostPID: records carry host pids")
	assert.False(t, pod.HostNetwork, "no host network")
	assert.False(t, pod.HostIPC, "no host IPC")
	assert.False(t, pod.HostUsers != nil && !*pod.HostUsers, "no user namespace: BPF capabilities do not work in one")
	assert.Empty(t, pod.InitContainers)
	assert.Empty(t, pod.EphemeralContainers)
	if pod.SecurityContext != nil {
		assert.Empty(t, pod.SecurityContext.Sysctls, "no sysctls")
	}

	c := collectorContainer(t, m.daemonSet)
	sc := c.SecurityContext
	require.NotNil(t, sc, "container securityContext")
	require.NotNil(t, sc.Privileged, "privileged is explicitly false")
	assert.False(t, *sc.Privileged)
	require.NotNil(t, sc.AllowPrivilegeEscalation)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	require.NotNil(t, sc.ReadOnlyRootFilesystem)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
	// uid 0: Kubernetes grants added capabilities to root only.
	require.NotNil(t, sc.RunAsUser)
	assert.Equal(t, int64(0), *sc.RunAsUser)
	require.NotNil(t, sc.RunAsGroup)
	assert.Equal(t, imagebuild.User, fmt.Sprintf("%d:%d", *sc.RunAsUser, *sc.RunAsGroup), "the image's user is the one the DaemonSet runs as")
	require.NotNil(t, sc.Capabilities)
	// SYS_PTRACE opens container roots: the presence scan (scan_for_compilers) and the container user names, nothing else.
	// SYS_RESOURCE is left out: only kernels before 5.11 need it, and where a node's bounding set lacks it,
	// adding it keeps the container from starting.
	assert.Equal(t, []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE"}, sc.Capabilities.Add)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Nil(t, sc.ProcMount, "default /proc masking")
	// RuntimeDefault seccomp refuses bpf() without SYS_ADMIN: the profile
	// must be a deliberate choice, not the kubelet's default.
	require.NotNil(t, sc.SeccompProfile, "seccompProfile is explicit")
	assert.Contains(t, []corev1.SeccompProfileType{corev1.SeccompProfileTypeUnconfined, corev1.SeccompProfileTypeLocalhost}, sc.SeccompProfile.Type)
	assert.Empty(t, c.Command, "the image's ENTRYPOINT runs")
	assert.Equal(t, imagebuild.Ref(), c.Image, "a placeholder that cannot pull someone else's image")
}

// TestDaemonSetHostMounts: only the two host paths the collector reads, and
// both read-only.
func TestDaemonSetHostMounts(t *testing.T) {
	m := loadManifests(t)
	pod := m.daemonSet.Spec.Template.Spec
	c := collectorContainer(t, m.daemonSet)

	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	hostMounts := map[string]string{} // host path → container path
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		require.True(t, ok, "volumeMount %q has no volume", vm.Name)
		assert.True(t, vm.ReadOnly, "%s is mounted read-only", vm.MountPath)
		assert.True(t, vm.MountPropagation == nil || *vm.MountPropagation == corev1.MountPropagationNone,
			"%s: no mount propagation", vm.MountPath)
		assert.Empty(t, vm.SubPath, "%s: no subPath (a subPath mount never sees updates)", vm.MountPath)
		if v.HostPath != nil {
			hostMounts[v.HostPath.Path] = vm.MountPath
		}
	}
	assert.Equal(t, map[string]string{
		"/sys/kernel/btf": "/sys/kernel/btf",  // vmlinux BTF for CO-RE
		"/etc/passwd":     "/host/etc/passwd", // the receiver's first passwd path
	}, hostMounts)
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			_, mounted := hostMounts[v.HostPath.Path]
			assert.True(t, mounted, "hostPath volume %q is mounted", v.Name)
			require.NotNil(t, v.HostPath.Type, "hostPath %s has a type, so a wrong node fails visibly", v.HostPath.Path)
		}
	}
}

func TestDaemonSetEnv(t *testing.T) {
	m := loadManifests(t)
	c := collectorContainer(t, m.daemonSet)
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		_, dup := env[e.Name]
		require.False(t, dup, "env %s set twice", e.Name)
		env[e.Name] = e
	}
	node, ok := env[nodeNameEnv]
	require.True(t, ok, "%s is set", nodeNameEnv)
	require.NotNil(t, node.ValueFrom)
	require.NotNil(t, node.ValueFrom.FieldRef, "%s comes from the downward API", nodeNameEnv)
	assert.Equal(t, "spec.nodeName", node.ValueFrom.FieldRef.FieldPath)
	assert.Empty(t, node.Value)
	assert.Empty(t, c.EnvFrom, "every variable is listed, none imported wholesale")

	// Every ${env:NAME} the config reads without a default must be set.
	raw := m.configMap.Data[configKey]
	refs := regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`).FindAllStringSubmatch(raw, -1)
	require.NotEmpty(t, refs, "the config reads its endpoint from the environment")
	for _, ref := range refs {
		if ref[2] == "" {
			e, ok := env[ref[1]]
			assert.True(t, ok && (e.Value != "" || e.ValueFrom != nil), "the config needs %s, which the DaemonSet does not set", ref[1])
		}
	}
}

func TestDaemonSetResourcesAndProbes(t *testing.T) {
	m := loadManifests(t)
	c := collectorContainer(t, m.daemonSet)
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[name]
		lim, hasLim := c.Resources.Limits[name]
		require.True(t, hasReq, "requests.%s", name)
		require.True(t, hasLim, "limits.%s", name)
		assert.LessOrEqual(t, req.Cmp(lim), 0, "requests.%s <= limits.%s", name, name)
	}

	// The probes hit the health_check extension, which listens on the port
	// the container declares.
	endpoint, _ := lookup(t, collectorConfig(t, m.configMap), "extensions", "health_check", "endpoint").(string)
	assert.Equal(t, fmt.Sprintf("0.0.0.0:%d", healthPort), endpoint, "health_check binds the pod's network namespace")
	require.Len(t, c.Ports, 1, "health_check is the only listening port")
	assert.Equal(t, int32(healthPort), c.Ports[0].ContainerPort)
	assert.Zero(t, c.Ports[0].HostPort, "no host port")
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		require.NotNil(t, p, "%s probe", name)
		require.NotNil(t, p.HTTPGet, "%s probe is an HTTP GET", name)
		assert.Equal(t, "/", p.HTTPGet.Path)
		port := p.HTTPGet.Port
		if port.StrVal != "" {
			assert.Equal(t, c.Ports[0].Name, port.StrVal, "%s probe port", name)
		} else {
			assert.Equal(t, int(healthPort), port.IntValue(), "%s probe port", name)
		}
	}
}

// TestMemoryBudget keeps the container's memory limit consistent with what
// the collector may use: Go memory (GOMEMLIMIT, above memory_limiter's
// limit), the ring buffer and the per-CPU scratch map, both locked kernel
// memory charged to the container's cgroup.
func TestMemoryBudget(t *testing.T) {
	const (
		mib = 1 << 20
		// The BPF scratch record per possible CPU: 64 KiB data area plus a
		// 4 KiB path slack and the header (bpf/exec.c, DATA_SIZE).
		scratchPerCPU = 70 << 10
		// Budgeted possible CPUs; larger nodes need a larger limit.
		budgetCPUs = 256
		// Non-heap process memory outside GOMEMLIMIT: page tables, kernel
		// socket buffers, thread stacks outside Go's accounting.
		slack = 16 * mib
	)
	m := loadManifests(t)
	cfg := collectorConfig(t, m.configMap)
	c := collectorContainer(t, m.daemonSet)

	var ring ebpfexecreceiver.ByteSize
	rbs, _ := lookup(t, cfg, "receivers", "ebpf_exec", "ring_buffer_size").(string)
	require.NoError(t, ring.UnmarshalText([]byte(rbs)))

	limitMiB, _ := lookup(t, cfg, "processors", "memory_limiter", "limit_mib").(int)
	spikeMiB, _ := lookup(t, cfg, "processors", "memory_limiter", "spike_limit_mib").(int)
	require.Positive(t, spikeMiB)
	require.Greater(t, limitMiB, spikeMiB)

	var goMemLimit ebpfexecreceiver.ByteSize
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			require.NoError(t, goMemLimit.UnmarshalText([]byte(e.Value)))
		}
	}
	require.NotZero(t, goMemLimit, "GOMEMLIMIT is set, so the GC works harder before the cgroup limit")
	memLimit := c.Resources.Limits[corev1.ResourceMemory]

	assert.Less(t, uint64(limitMiB)*mib, uint64(goMemLimit), "memory_limiter acts before Go's soft limit")
	need := uint64(goMemLimit) + uint64(ring) + scratchPerCPU*budgetCPUs + slack
	assert.LessOrEqual(t, need, uint64(memLimit.Value()),
		"limits.memory %s < GOMEMLIMIT %s + ring buffer %s + scratch maps %d MiB + slack", memLimit.String(), goMemLimit, ring, scratchPerCPU*budgetCPUs/mib)

	// The sending queue is bounded in serialized bytes; in memory pdata
	// takes up to about twice that, which must fit below the soft limit.
	queue, _ := lookup(t, cfg, "exporters", "otlp_grpc", "sending_queue").(map[string]any)
	assert.Equal(t, "bytes", queue["sizer"], "the queue is bounded by size, not by request count")
	queueBytes, _ := queue["queue_size"].(int)
	require.Positive(t, queueBytes)
	assert.LessOrEqual(t, uint64(queueBytes)*2, uint64(limitMiB-spikeMiB)*mib, "the full queue fits below memory_limiter's soft limit")
}

func TestDaemonSetSchedulesOnEveryNode(t *testing.T) {
	m := loadManifests(t)
	ds := m.daemonSet
	pod := ds.Spec.Template.Spec
	assert.Contains(t, pod.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists}, "tolerates every taint")
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, pod.NodeSelector)
	assert.Nil(t, pod.Affinity, "no affinity narrows the node set")
	require.NotNil(t, ds.Spec.Selector)
	for k, v := range ds.Spec.Selector.MatchLabels {
		assert.Equal(t, v, ds.Spec.Template.Labels[k], "selector label %s matches the pod template", k)
	}
}

// TestConfigMapMatchesExampleConfig: the ConfigMap embeds
// testdata/k8s-daemonset.yaml, which configs_test.go validates with the real
// factories, so the two never drift. -update regenerates the ConfigMap.
func TestConfigMapMatchesExampleConfig(t *testing.T) {
	want, err := os.ReadFile(exampleConfigFile)
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(configMapFile, renderConfigMap(t, want), 0o644))
	}
	m := loadManifests(t)
	assert.Equal(t, map[string]string{configKey: string(want)}, m.configMap.Data,
		"%s differs from %s: run go test ./deploy -run %s -update", configMapFile, exampleConfigFile, t.Name())
	assert.Empty(t, m.configMap.BinaryData)

	cfg := collectorConfig(t, m.configMap)
	logs, _ := lookup(t, cfg, "service", "pipelines", "logs").(map[string]any)
	types := func(key string) []string {
		var out []string
		list, _ := logs[key].([]any)
		for _, id := range list {
			s, _ := id.(string)
			typ, _, _ := strings.Cut(s, "/")
			out = append(out, typ)
		}
		return out
	}
	assert.Equal(t, []string{"ebpf_exec"}, types("receivers"))
	assert.Equal(t, []string{"memory_limiter", "compiler_detector", "batch"}, types("processors"), "memory_limiter first, batch last")
	assert.Equal(t, []string{"otlp_grpc"}, types("exporters"))
	assert.Equal(t, true, lookup(t, cfg, "processors", "compiler_detector", "kubernetes", "enabled"))
	assert.Equal(t, []any{"health_check"}, lookup(t, cfg, "service", "extensions"))
}

// renderConfigMap writes 30-configmap.yaml around the example config.
func renderConfigMap(t *testing.T, config []byte) []byte {
	t.Helper()
	old, err := os.ReadFile(configMapFile)
	require.NoError(t, err)
	// Keep everything up to the block scalar's header line.
	const header = "  " + configKey + ": |\n"
	i := bytes.Index(old, []byte(header))
	require.GreaterOrEqual(t, i, 0, "%s has no %q line", configMapFile, strings.TrimSpace(header))
	var b bytes.Buffer
	b.Write(old[:i+len(header)])
	for _, line := range strings.SplitAfter(string(config), "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString("    ")
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// TestConfigMountedWhereCollectorReads: the DaemonSet's --config path is
// the ConfigMap key inside its mount, and equals the image's default CMD.
func TestConfigMountedWhereCollectorReads(t *testing.T) {
	m := loadManifests(t)
	pod := m.daemonSet.Spec.Template.Spec
	c := collectorContainer(t, m.daemonSet)

	require.Len(t, c.Args, 1)
	configPath, ok := strings.CutPrefix(c.Args[0], "--config=")
	require.True(t, ok, "args: %v", c.Args)

	var found bool
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			assert.Equal(t, m.configMap.Name, v.ConfigMap.Name)
			for _, item := range v.ConfigMap.Items {
				if item.Key == configKey && path.Join(vm.MountPath, item.Path) == configPath {
					found = true
				}
			}
		}
	}
	assert.True(t, found, "%s is the ConfigMap's %s", configPath, configKey)

	df := parseDockerfile(t)
	final := df[len(df)-1]
	cmd := final.only(t, "CMD")
	assert.Equal(t, c.Args, cmd.execForm(t), "the DaemonSet's args equal the image's CMD")
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
	line int
}

// execForm parses a JSON-array (exec form) argument, like ENTRYPOINT ["/x"].
func (in instruction) execForm(t *testing.T) []string {
	t.Helper()
	var v []string
	require.NoError(t, json.Unmarshal([]byte(in.args), &v), "line %d: %s must use the exec (JSON) form", in.line, in.cmd)
	return v
}

// flagsAndArgs splits "--from=build /a /b" into flags and operands.
func (in instruction) flagsAndArgs() (map[string]string, []string) {
	flags := map[string]string{}
	var args []string
	for _, f := range strings.Fields(in.args) {
		if name, ok := strings.CutPrefix(f, "--"); ok && len(args) == 0 {
			k, v, _ := strings.Cut(name, "=")
			flags[k] = v
			continue
		}
		args = append(args, f)
	}
	return flags, args
}

type stage struct {
	from, name   string
	instructions []instruction // after FROM
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instructions {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) only(t *testing.T, cmd string) instruction {
	t.Helper()
	ins := s.all(cmd)
	require.Len(t, ins, 1, "stage %q has exactly one %s", s.name, cmd)
	return ins[0]
}

// parseDockerfile reads deploy/Dockerfile into stages. It handles what
// Docker's parser does for this file: comments (also between continuation
// lines), blank lines and backslash continuations.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	require.NoError(t, err)
	var (
		stages  []stage
		pending strings.Builder
		start   int
	)
	emit := func(text string, line int) {
		cmd, args, _ := strings.Cut(strings.TrimSpace(text), " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: line}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			if len(f) > 0 && strings.HasPrefix(f[0], "--platform=") {
				f = f[1:] // the build stage runs on the build machine and cross-compiles
			}
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else {
				require.Len(t, f, 1, "line %d: FROM with platform flags or junk: %q", line, in.args)
			}
			stages = append(stages, s)
			return
		}
		require.NotEmpty(t, stages, "line %d: %s before FROM", line, in.cmd)
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && pending.Len() == 0) {
			continue
		}
		if pending.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(body + " ")
			continue
		}
		pending.WriteString(trimmed)
		emit(pending.String(), start)
		pending.Reset()
	}
	require.Zero(t, pending.Len(), "the Dockerfile ends inside a continuation")
	require.GreaterOrEqual(t, len(stages), 2, "a multi-stage build")
	return stages
}

// TestDockerfile: the final stage is FROM scratch and copies the rootfs that the image builder writes, so it
// holds exactly the files of `make image`; its entrypoint, command, user and labels are the builder's; the
// build stage builds the binary with the pinned ocb and the flags of `make image`.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	build := stages[0]

	// Final stage: no compiler, no shell, nothing run.
	assert.Equal(t, "scratch", final.from, "final stage FROM scratch")
	for _, in := range final.instructions {
		assert.Contains(t, []string{"COPY", "ENTRYPOINT", "CMD", "LABEL", "USER"}, in.cmd,
			"line %d: %s in the final stage (no RUN or ADD: nothing is installed or executed)", in.line, in.cmd)
	}
	flags, args := final.only(t, "COPY").flagsAndArgs()
	assert.Equal(t, map[string]string{"from": build.name}, flags, "COPY only from the build stage")
	assert.Equal(t, []string{rootfsDir + "/", "/"}, args, "the final stage is the image builder's rootfs")
	assert.Equal(t, imagebuild.Entrypoint, final.only(t, "ENTRYPOINT").execForm(t))
	assert.Equal(t, imagebuild.Cmd, final.only(t, "CMD").execForm(t))
	assert.Equal(t, imagebuild.User, final.only(t, "USER").args)
	labels := map[string]string{}
	for _, in := range final.all("LABEL") {
		for _, m := range regexp.MustCompile(`([\w.-]+)="([^"]*)"`).FindAllStringSubmatch(in.args, -1) {
			labels[m[1]] = m[2]
		}
	}
	assert.Equal(t, imagebuild.Labels, labels)

	// Build stage: the pinned ocb of the Makefile generates the sources, `go build` cross-compiles them with
	// the flags of `make image`, and the image builder writes the rootfs.
	assert.True(t, strings.HasPrefix(build.from, "golang:1.26"), "build stage FROM %s", build.from)
	assert.NotEmpty(t, build.name, "the build stage is named")
	assert.Equal(t, "WORKDIR /src", "WORKDIR "+build.only(t, "WORKDIR").args)
	assert.True(t, slices.ContainsFunc(build.all("ENV"), func(in instruction) bool {
		return slices.Contains(strings.Fields(in.args), "CGO_ENABLED=0")
	}), "the build stage sets ENV CGO_ENABLED=0")
	assert.Equal(t, "TARGETARCH", build.only(t, "ARG").args)
	makefile, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	ocb := "go.opentelemetry.io/collector/cmd/builder@" + makefileOCBVersion(t) + " --config builder-config.yaml --skip-compilation"
	goBuild := `build -trimpath -o linux-%s/` + imagebuild.BinaryName + ` "-ldflags=-s -w" -gcflags= .`
	mk := strings.Join(strings.Fields(string(makefile)), " ")
	assert.Contains(t, mk, "$(OCB) "+strings.TrimPrefix(ocb, "go.opentelemetry.io/collector/cmd/builder@"+makefileOCBVersion(t)+" "))
	assert.Contains(t, mk, "$(GO) "+fmt.Sprintf(goBuild, "$$arch"), "make image builds like this")
	var run string
	for _, in := range build.all("RUN") {
		run += in.args + "\n"
	}
	for _, want := range []string{
		"go run " + ocb,
		"GOOS=linux GOARCH=${TARGETARCH} go " + fmt.Sprintf(goBuild, "${TARGETARCH}"),
		"go run ./deploy/image -root . -rootfs " + rootfsDir + " -arch ${TARGETARCH}",
	} {
		assert.Contains(t, run, want, "the build stage runs this")
	}
	assert.Equal(t, false, builderConfig(t)["dist"].(map[string]any)["cgo_enabled"], "builder-config.yaml sets cgo_enabled: false")
}

func builderConfig(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../builder-config.yaml")
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	return cfg
}

func makefileOCBVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^OCB_VERSION\s*:?=\s*(\S+)`).FindSubmatch(raw)
	require.NotNil(t, m, "Makefile sets OCB_VERSION")
	return string(m[1])
}

// TestCollectorBinaryIsStatic: the binary `make build` writes, which the
// image build reproduces with the same ocb and builder-config.yaml, has no
// interpreter and no shared libraries, so it runs on distroless/static.
func TestCollectorBinaryIsStatic(t *testing.T) {
	if _, err := os.Stat(distBinary); err != nil {
		msg := fmt.Sprintf("%s is not built: run `make build` (make test does)", distBinary)
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	f, err := elf.Open(distBinary)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "PT_INTERP: the binary needs a dynamic loader")
	}
	needed, err := f.ImportedLibraries() // DT_NEEDED
	require.NoError(t, err)
	assert.Empty(t, needed, "DT_NEEDED shared libraries")

	info, err := buildinfo.ReadFile(distBinary)
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	assert.Equal(t, "0", settings["CGO_ENABLED"], "built without cgo")
	assert.True(t, slices.ContainsFunc(info.Deps, func(d *debug.Module) bool {
		return d.Path == "github.com/compilerwatch/compilerwatch"
	}), "the binary contains compilerwatch's components")
}
