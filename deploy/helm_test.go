package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/compilerwatch/compilerwatch/internal/helmtest"
	"github.com/compilerwatch/compilerwatch/internal/imagebuild"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
)

// rendered is `helm template` output: the documents by kind.
type rendered map[string][][]byte

func renderChart(t *testing.T, set ...string) rendered {
	t.Helper()
	docs, err := splitDocuments(helmtest.Template(t, "cw", namespace, set...))
	require.NoError(t, err)
	out := rendered{}
	for _, d := range docs {
		var tm struct{ Kind string }
		require.NoError(t, sigsyaml.Unmarshal(d, &tm))
		out[tm.Kind] = append(out[tm.Kind], d)
	}
	return out
}

// one decodes the only object of kind strictly into obj (a k8s.io/api type) or a map.
func (r rendered) one(t *testing.T, kind string, obj any) {
	t.Helper()
	require.Len(t, r[kind], 1, "one %s", kind)
	require.NoError(t, decodeStrict(r[kind][0], obj), kind)
}

func (r rendered) daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	var ds appsv1.DaemonSet
	r.one(t, "DaemonSet", &ds)
	return &ds
}

func (r rendered) config(t *testing.T) map[string]any {
	t.Helper()
	var cm corev1.ConfigMap
	r.one(t, "ConfigMap", &cm)
	return collectorConfig(t, &cm)
}

// TestChartLint: helm lint --strict, and the renders that must be refused: no backend and no findings on stdout
// (the message names both values), a digest that is not one, and misspelt values (values.schema.json).
func TestChartLint(t *testing.T) {
	kv := "--kube-version=" + helmtest.KubeVersion
	helmtest.Run(t, "lint", "--strict", kv, helmtest.Chart, "--set", "exporter.endpoint=otel:4317")
	helmtest.Run(t, "lint", "--strict", kv, helmtest.Chart)
	helmtest.Run(t, "lint", "--strict", kv, helmtest.Chart, "--set", "stdout.enabled=true")
	stderr, err := helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "logFindings=false")
	require.Error(t, err)
	assert.Contains(t, stderr, "set exporter.endpoint (an OTLP gRPC backend, host:port) or logFindings=true")
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "stdout.enabled=false")
	require.Error(t, err, "the deprecated stdout.enabled=false still means no findings on stdout")
	assert.Contains(t, stderr, "or logFindings=true")
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "image.digest=latest")
	require.Error(t, err)
	assert.Contains(t, stderr, "'/image/digest': 'latest' does not match pattern", "values.schema.json checks the digest")
	// A misspelt value is refused rather than ignored.
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "clustername=prod")
	require.Error(t, err)
	assert.Contains(t, stderr, "clustername")
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "compilerDetector.exclude.namespace[0]=ci")
	require.Error(t, err)
	assert.Contains(t, stderr, "namespace")
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "logfindings=true")
	require.Error(t, err)
	assert.Contains(t, stderr, "logfindings")
	// receiver.prefilter: a misspelt filter, one listed twice, and none inside a list are refused by the schema.
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "receiver.prefilter=compiler")
	require.Error(t, err)
	assert.Contains(t, stderr, "at '/receiver/prefilter': value must be one of '', 'none', 'containers', 'compilers'")
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "receiver.prefilter={compilers,compilers}")
	require.Error(t, err)
	assert.Contains(t, stderr, "at '/receiver/prefilter': items at 0 and 1 are equal")
	stderr, err = helmtest.RunErr(t, "template", "cw", kv, helmtest.Chart, "--set", "receiver.prefilter={containers,none}")
	require.Error(t, err)
	assert.Contains(t, stderr, "at '/receiver/prefilter/1': value must be one of 'containers', 'compilers'")
}

// TestChartStdoutDeprecated: the debug-exporter switch of earlier releases, stdout.enabled, is still accepted and,
// while set, decides instead of logFindings, so an old values file keeps its on or off: true prints findings (as one
// line each, not the debug exporter's dump), false prints none. stdout.verbosity is accepted and ignored. The
// rendered config and the install notes say it is deprecated.
func TestChartStdoutDeprecated(t *testing.T) {
	off := renderChart(t, "exporter.endpoint=otel:4317", "stdout.enabled=false").config(t)
	assert.Equal(t, false, lookup(t, off, "processors", "compiler_detector", "log_findings"))

	r := renderChart(t, "logFindings=false", "stdout.enabled=true", "stdout.verbosity=basic")
	cfg := r.config(t)
	assert.Equal(t, true, lookup(t, cfg, "processors", "compiler_detector", "log_findings"))
	assert.NotContains(t, lookup(t, cfg, "exporters").(map[string]any), "debug", "the debug exporter is gone")
	assert.Equal(t, []any{"nop"}, lookup(t, cfg, "service", "pipelines", "logs", "exporters"))
	var cm corev1.ConfigMap
	r.one(t, "ConfigMap", &cm)
	assert.Contains(t, cm.Data[configKey], "stdout.enabled and stdout.verbosity are deprecated")
	validateWithDistribution(t, r)

	// NOTES.txt carries the same text (compilerwatch.stdoutDeprecation); helm renders it only at install, against a
	// cluster, so it is not checked here.
	plain := renderChart(t, "exporter.endpoint=otel:4317")
	var plainCM corev1.ConfigMap
	plain.one(t, "ConfigMap", &plainCM)
	assert.NotContains(t, plainCM.Data[configKey], "deprecated")
}

// TestChartMatchesManifests: with the plain manifests' name and backend, the chart renders the same pod, the
// same rollout, the same RBAC and the same collector config as deploy/kubernetes.
func TestChartMatchesManifests(t *testing.T) {
	m := loadManifests(t)
	plainEnv := map[string]string{}
	for _, e := range collectorContainer(t, m.daemonSet).Env {
		plainEnv[e.Name] = e.Value
	}
	r := renderChart(t, "fullnameOverride="+m.daemonSet.Name, "exporter.endpoint="+plainEnv["OTLP_ENDPOINT"])

	ds := r.daemonSet(t)
	assert.Equal(t, m.daemonSet.Name, ds.Name)
	assert.Equal(t, m.daemonSet.Spec.Template.Spec, ds.Spec.Template.Spec, "the pod spec of deploy/kubernetes")
	assert.Equal(t, m.daemonSet.Spec.UpdateStrategy, ds.Spec.UpdateStrategy)
	assert.Equal(t, imagebuild.Ref(), collectorContainer(t, ds).Image, "the chart's default image is the placeholder")

	var role rbacv1.ClusterRole
	r.one(t, "ClusterRole", &role)
	assert.Equal(t, m.clusterRole.Rules, role.Rules)
	var sa corev1.ServiceAccount
	r.one(t, "ServiceAccount", &sa)
	assert.Equal(t, m.serviceAccount.Name, sa.Name)

	// The config: the plain one, with the processor's defaults the chart spells out removed.
	chartCfg, plainCfg := r.config(t), collectorConfig(t, m.configMap)
	cd := lookup(t, chartCfg, "processors", "compiler_detector").(map[string]any)
	def := compilerdetectorprocessor.NewFactory().CreateDefaultConfig().(*compilerdetectorprocessor.Config)
	for key, dflt := range map[string]bool{"containers_only": def.ContainersOnly, "scan_for_compilers": def.ScanForCompilers} {
		require.Equal(t, dflt, cd[key], key)
		delete(cd, key)
	}
	assert.Equal(t, plainCfg, chartCfg)
}

// TestChartValues: each value reaches the object it controls, and no combination makes the pod privileged.
func TestChartValues(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name  string
		set   []string
		check func(t *testing.T, r rendered)
	}{{
		name: "defaults with a backend",
		set:  []string{"exporter.endpoint=otel:4317"},
		check: func(t *testing.T, r rendered) {
			c := collectorContainer(t, r.daemonSet(t))
			assert.Equal(t, []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE"}, c.SecurityContext.Capabilities.Add)
			assert.Nil(t, c.SecurityContext.AppArmorProfile)
			assert.Nil(t, c.SecurityContext.SELinuxOptions)
			assert.Empty(t, r["ServiceMonitor"])
			assert.Empty(t, r["PodMonitor"])
			assert.Empty(t, r["SecurityContextConstraints"])
			cfg := r.config(t)
			pipeline := lookup(t, cfg, "service", "pipelines", "logs").(map[string]any)
			assert.Equal(t, []any{"otlp_grpc"}, pipeline["exporters"])
			assert.Equal(t, []any{"memory_limiter", "compiler_detector", "batch"}, pipeline["processors"])
			assert.Equal(t, true, lookup(t, cfg, "processors", "compiler_detector", "log_findings"), "findings in kubectl logs too")
			var role rbacv1.ClusterRole
			r.one(t, "ClusterRole", &role)
			for _, rule := range role.Rules {
				assert.NotContains(t, rule.Resources, "namespaces", "no namespace labels configured: no RBAC on namespaces")
			}
			k := lookup(t, cfg, "processors", "compiler_detector", "kubernetes").(map[string]any)
			assert.NotContains(t, k, "namespace_labels")
			assert.NotContains(t, k, "namespace_annotations")
		},
	}, {
		name: "no backend: findings only in kubectl logs",
		check: func(t *testing.T, r rendered) {
			cfg := r.config(t)
			assert.Equal(t, true, lookup(t, cfg, "processors", "compiler_detector", "log_findings"))
			assert.Equal(t, []any{"nop"}, lookup(t, cfg, "service", "pipelines", "logs", "exporters"))
			assert.NotContains(t, lookup(t, cfg, "exporters").(map[string]any), "otlp_grpc")
			assert.False(t, slices.ContainsFunc(collectorContainer(t, r.daemonSet(t)).Env, func(e corev1.EnvVar) bool { return e.Name == "OTLP_ENDPOINT" }))
			validateWithDistribution(t, r)
		},
	}, {
		name: "a backend without the stdout lines",
		set:  []string{"exporter.endpoint=otel:4317", "logFindings=false"},
		check: func(t *testing.T, r rendered) {
			cfg := r.config(t)
			assert.Equal(t, false, lookup(t, cfg, "processors", "compiler_detector", "log_findings"))
			assert.Equal(t, []any{"otlp_grpc"}, lookup(t, cfg, "service", "pipelines", "logs", "exporters"))
		},
	}, {
		name: "no backend, digest, pull secret, cluster name",
		set: []string{"image.repository=registry.example/cw", "image.digest=" + digest,
			"imagePullSecrets[0].name=regcred", "clusterName=prod-eu"},
		check: func(t *testing.T, r rendered) {
			ds := r.daemonSet(t)
			c := collectorContainer(t, ds)
			assert.Equal(t, "registry.example/cw@"+digest, c.Image)
			assert.Equal(t, []corev1.LocalObjectReference{{Name: "regcred"}}, ds.Spec.Template.Spec.ImagePullSecrets)
			assert.False(t, slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "OTLP_ENDPOINT" }))
			cfg := r.config(t)
			pipeline := lookup(t, cfg, "service", "pipelines", "logs").(map[string]any)
			assert.Equal(t, []any{"nop"}, pipeline["exporters"])
			assert.Equal(t, []any{"memory_limiter", "compiler_detector", "resource/cluster", "batch"}, pipeline["processors"])
			assert.Equal(t, []any{map[string]any{"key": "k8s.cluster.name", "value": "prod-eu", "action": "upsert"}},
				lookup(t, cfg, "processors", "resource/cluster", "attributes"))
			assert.NotContains(t, lookup(t, cfg, "service", "telemetry", "metrics").(map[string]any), "readers")
			validateWithDistribution(t, r)
		},
	}, {
		name: "capabilities and presets",
		set: []string{"exporter.endpoint=otel:4317", "capabilities.sysResource=true", "compilerDetector.scanForCompilers=false",
			"apparmor.unconfined=true", "selinux.spcT=true", "openshift.scc=true", "priorityClassName=system-node-critical"},
		check: func(t *testing.T, r rendered) {
			ds := r.daemonSet(t)
			c := collectorContainer(t, ds)
			assert.Equal(t, []corev1.Capability{"BPF", "PERFMON", "SYS_RESOURCE"}, c.SecurityContext.Capabilities.Add)
			assert.Equal(t, &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}, c.SecurityContext.AppArmorProfile)
			assert.Equal(t, &corev1.SELinuxOptions{Type: "spc_t"}, c.SecurityContext.SELinuxOptions)
			assert.Equal(t, "system-node-critical", ds.Spec.Template.Spec.PriorityClassName)
			assert.Equal(t, false, lookup(t, r.config(t), "processors", "compiler_detector", "scan_for_compilers"))
			var scc map[string]any
			r.one(t, "SecurityContextConstraints", &scc)
			assert.Equal(t, []any{"BPF", "PERFMON", "SYS_RESOURCE"}, scc["allowedCapabilities"])
			assert.Equal(t, false, scc["allowPrivilegedContainer"])
			assert.Equal(t, []any{"system:serviceaccount:" + namespace + ":cw-compilerwatch"}, scc["users"])
		},
	}, {
		name: "monitors, TLS, headers, exclusions, prefilter",
		set: []string{"exporter.endpoint=otel:4317", "exporter.headers.x-tenant=ops", "exporter.tls.existingSecret=otlp-tls",
			"exporter.tls.mutual=true", "serviceMonitor.enabled=true", "podMonitor.enabled=true",
			"compilerDetector.exclude.namespaces[0]=ci", "receiver.prefilter=containers"},
		check: func(t *testing.T, r rendered) {
			ds := r.daemonSet(t)
			c := collectorContainer(t, ds)
			assert.Contains(t, c.Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 8888, Protocol: corev1.ProtocolTCP})
			assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "tls", MountPath: "/etc/otelcol-compilerwatch-tls", ReadOnly: true})
			assert.Len(t, r["ServiceMonitor"], 1)
			assert.Len(t, r["PodMonitor"], 1)
			assert.Len(t, r["Service"], 1)
			cfg := r.config(t)
			assert.Equal(t, map[string]any{"x-tenant": "ops"}, lookup(t, cfg, "exporters", "otlp_grpc", "headers"))
			assert.Equal(t, "/etc/otelcol-compilerwatch-tls/tls.key", lookup(t, cfg, "exporters", "otlp_grpc", "tls", "key_file"))
			assert.Equal(t, []any{"ci"}, lookup(t, cfg, "processors", "compiler_detector", "exclude", "namespaces"))
			assert.Equal(t, "containers", lookup(t, cfg, "receivers", "ebpf_exec", "prefilter"))
			assert.Len(t, lookup(t, cfg, "service", "telemetry", "metrics", "readers"), 2)
			validateWithDistribution(t, r)
		},
	}, {
		name: "prefilter compilers adds the compiler_catalog extension",
		set:  []string{"receiver.prefilter=compilers"},
		check: func(t *testing.T, r rendered) {
			cfg := r.config(t)
			assert.Equal(t, map[string]any{"ring_buffer_size": "8MiB", "prefilter": "compilers"},
				lookup(t, cfg, "receivers", "ebpf_exec"), "no compiler_catalog key: the receiver takes the only extension")
			assertCatalogExtension(t, cfg)
			validateWithDistribution(t, r)
		},
	}, {
		name: "prefilter containers and compilers, as a list",
		set:  []string{"exporter.endpoint=otel:4317", "receiver.prefilter={containers,compilers}"},
		check: func(t *testing.T, r rendered) {
			cfg := r.config(t)
			assert.Equal(t, map[string]any{"ring_buffer_size": "8MiB", "prefilter": []any{"containers", "compilers"}},
				lookup(t, cfg, "receivers", "ebpf_exec"))
			assertCatalogExtension(t, cfg)
			validateWithDistribution(t, r)
		},
	}, {
		name: "prefilter none is the default",
		set:  []string{"receiver.prefilter=none"},
		check: func(t *testing.T, r rendered) {
			cfg := r.config(t)
			assert.Equal(t, map[string]any{"ring_buffer_size": "8MiB"}, lookup(t, cfg, "receivers", "ebpf_exec"))
			assert.Equal(t, []any{"health_check"}, lookup(t, cfg, "service", "extensions"))
			assert.NotContains(t, lookup(t, cfg, "extensions").(map[string]any), "compiler_catalog")
		},
	}, {
		name: "namespace labels and annotations add the namespaces rule",
		set:  []string{"exporter.endpoint=otel:4317", "compilerDetector.namespaceLabels={team,env}", "compilerDetector.namespaceAnnotations={*}"},
		check: func(t *testing.T, r rendered) {
			k := lookup(t, r.config(t), "processors", "compiler_detector", "kubernetes").(map[string]any)
			assert.Equal(t, []any{"team", "env"}, k["namespace_labels"])
			assert.Equal(t, []any{"*"}, k["namespace_annotations"])
			var role rbacv1.ClusterRole
			r.one(t, "ClusterRole", &role)
			assert.Contains(t, role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}})
			assert.Len(t, role.Rules, 4, "pods, replicasets, jobs and namespaces: nothing else")
			validateWithDistribution(t, r)
		},
	}, {
		name: "namespace annotations alone add the namespaces rule",
		set:  []string{"exporter.endpoint=otel:4317", "compilerDetector.namespaceAnnotations={owner}"},
		check: func(t *testing.T, r rendered) {
			k := lookup(t, r.config(t), "processors", "compiler_detector", "kubernetes").(map[string]any)
			assert.NotContains(t, k, "namespace_labels")
			assert.Equal(t, []any{"owner"}, k["namespace_annotations"])
			var role rbacv1.ClusterRole
			r.one(t, "ClusterRole", &role)
			assert.Contains(t, role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}})
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderChart(t, tt.set...)
			sc := collectorContainer(t, r.daemonSet(t)).SecurityContext
			require.NotNil(t, sc.Privileged)
			assert.False(t, *sc.Privileged, "never privileged")
			assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
			assert.Equal(t, imagebuild.User, fmt.Sprintf("%d:%d", *sc.RunAsUser, *sc.RunAsGroup))
			tt.check(t, r)
		})
	}
}

// assertCatalogExtension: the compiler_catalog extension, without settings, is configured and started, next to
// health_check.
func assertCatalogExtension(t *testing.T, cfg map[string]any) {
	t.Helper()
	assert.Equal(t, map[string]any{"health_check": map[string]any{"endpoint": "0.0.0.0:13133"}, "compiler_catalog": nil},
		lookup(t, cfg, "extensions"))
	assert.Equal(t, []any{"health_check", "compiler_catalog"}, lookup(t, cfg, "service", "extensions"))
}

// validateWithDistribution runs `otelcol-compilerwatch validate` on the rendered config: the real factories of
// the distribution, resourceprocessor included, accept it.
func validateWithDistribution(t *testing.T, r rendered) {
	t.Helper()
	if _, err := os.Stat(distBinary); err != nil {
		msg := fmt.Sprintf("%s is not built: run `make build` (make test does)", distBinary)
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var cm corev1.ConfigMap
	r.one(t, "ConfigMap", &cm)
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cm.Data[configKey]), 0o600))
	var probe map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data[configKey]), &probe))
	cmd := exec.Command(distBinary, "validate", "--config="+file)
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-1", "OTLP_ENDPOINT=otel:4317", "OTLP_INSECURE=false")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", strings.TrimSpace(string(out)))
}

// TestChartValuesDocumented: every value in values.yaml has a row in the chart's README (a map documented as a
// whole, like resources, counts for its keys).
func TestChartValuesDocumented(t *testing.T) {
	raw, err := os.ReadFile("helm/compilerwatch/values.yaml")
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &values))
	readme, err := os.ReadFile("helm/compilerwatch/README.md")
	require.NoError(t, err)
	doc := string(readme)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		if strings.Contains(doc, "`"+path+"`") {
			return
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, child := range m {
				walk(path+"."+k, child)
			}
			return
		}
		// Rows that group siblings: `serviceMonitor.enabled`, `.interval`.
		parent, last := path[:strings.LastIndex(path, ".")+1], path[strings.LastIndex(path, ".")+1:]
		assert.True(t, parent != "" && strings.Contains(doc, "`."+last+"`") && strings.Contains(doc, "`"+parent),
			"values.yaml %s is not documented in the chart's README", path)
	}
	for k, v := range values {
		walk(k, v)
	}
}

// TestHelmVersionPinnedOnce: `make test` compiles the Helm that the tests run.
func TestHelmVersionPinnedOnce(t *testing.T) {
	raw, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^HELM_VERSION\s*:?=\s*(\S+)`).FindSubmatch(raw)
	require.NotNil(t, m, "Makefile sets HELM_VERSION")
	assert.Equal(t, helmtest.Version, string(m[1]))
}
