package compilerdetectorprocessor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/compilerwatch/compilerwatch/internal/doccheck"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
)

// emittedNames are the attribute names compilerwatch puts on the records it exports, by where they sit.
type emittedNames struct {
	resource, record map[string]bool
	// resourcePrefixes are templates (k8s.pod.label.<key>): any name under them is emitted.
	resourcePrefixes []string
}

func (e emittedNames) isResource(name string) bool {
	return e.resource[name] || slices.ContainsFunc(e.resourcePrefixes, func(p string) bool {
		return strings.HasPrefix(name, p) && len(name) > len(p)
	})
}

// noAPI is a kube.API that answers nothing: the cache is only used to apply a Result.
type noAPI struct{}

var errNoAPI = errors.New("no API server in this test")

func (noAPI) ListPods(context.Context, metav1.ListOptions) (*corev1.PodList, error) {
	return nil, errNoAPI
}
func (noAPI) WatchPods(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return nil, errNoAPI
}
func (noAPI) GetReplicaSet(context.Context, string, string) (*appsv1.ReplicaSet, error) {
	return nil, errNoAPI
}
func (noAPI) GetJob(context.Context, string, string) (*batchv1.Job, error) { return nil, errNoAPI }

// collectNames adds the resource and record attribute names of ld to e.
func (e emittedNames) collect(ld plog.Logs) {
	eachRecord([]plog.Logs{ld}, func(res pcommon.Map, lr plog.LogRecord) {
		for k := range res.All() {
			e.resource[k] = true
		}
		for k := range lr.Attributes().All() {
			e.record[k] = true
		}
	})
}

// emitted gathers the names from what the components really produce: the receiver's golden output (checked
// against its conversion by the receiver's golden test), this processor's output for the golden input with
// findings, runtime installs, dedup counts and summaries, a presence finding, and the Kubernetes attributes the pod
// cache applies for a pod with every kind of owner. The chart's resource processor adds k8s.cluster.name.
func emitted(t *testing.T) emittedNames {
	t.Helper()
	e := emittedNames{resource: map[string]bool{}, record: map[string]bool{}}

	files, err := filepath.Glob("../../receiver/ebpfexecreceiver/testdata/golden/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		ld, err := golden.ReadLogs(f)
		require.NoError(t, err, f)
		e.collect(ld)
	}

	cfg := createDefaultConfig().(*Config)
	h := newHarness(t, cfg, nil)
	require.NoError(t, h.p.ConsumeLogs(context.Background(), goldenInput()))
	h.clk.advance(2 * time.Hour)
	// A repeat after the window carries the count of the suppressed ones; the others' windows close into summaries.
	ld := plog.NewLogs()
	appendExec(appendResource(ld, testContainer, nil), 50, recGCC)
	require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
	h.p.emitSummaries(context.Background(), true)
	for _, out := range h.sink.AllLogs() {
		e.collect(out)
	}
	require.True(t, e.record[attr.SuppressedCount], "the run produced a dedup count")
	require.True(t, e.record[attr.InstalledAtRuntime], "the run produced a runtime-installed finding")

	// The presence finding: built by the scanner, whose record names are these.
	e.record[attr.CompilersPresent] = true

	c, err := kube.New(kube.Config{Enabled: kube.ModeTrue, NodeName: "node-1", PodLabels: []string{"*"}, PodAnnotations: []string{"*"}},
		kube.Settings{Client: noAPI{}, Logger: zap.NewNop()})
	require.NoError(t, err)
	res := pcommon.NewResource()
	c.Apply(res, kube.Result{
		Pod: kube.Pod{Name: "p", Namespace: "n", UID: testPodUID, NodeName: "node-1",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"team": "a"}},
		Container: kube.Container{Name: "c", ID: testContainer, Image: "registry.example/web:1.2",
			ImageID: "registry.example/web@sha256:" + strings.Repeat("ab", 32)},
		Workload: kube.Workload{Deployment: "d", ReplicaSet: "d-1", DaemonSet: "ds", StatefulSet: "s", Job: "j", CronJob: "cj"},
	})
	for k := range res.Attributes().All() {
		switch {
		case strings.HasPrefix(k, attr.K8sPodLabel):
			e.resourcePrefixes = append(e.resourcePrefixes, attr.K8sPodLabel)
		case strings.HasPrefix(k, attr.K8sPodAnnotation):
			e.resourcePrefixes = append(e.resourcePrefixes, attr.K8sPodAnnotation)
		default:
			e.resource[k] = true
		}
	}
	require.Len(t, e.resourcePrefixes, 2, "labels and annotations applied")
	e.resource["k8s.cluster.name"] = true // the chart's clusterName, set by the resource processor
	return e
}

// placeholder is a <attribute.name> in the runbook's prose and commands.
var placeholder = regexp.MustCompile(`<([a-z0-9_]+(?:\.[a-z0-9_]+)+)>`)

// TestRunbookPlaceholders: every <attribute> of docs/runbook.md is an attribute compilerwatch emits, and the
// runbook covers the attributes a responder needs from one finding.
func TestRunbookPlaceholders(t *testing.T) {
	e := emitted(t)
	raw, err := readDoc("runbook.md")
	require.NoError(t, err)
	used := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(raw, -1) {
		used[m[1]] = true
		assert.True(t, e.isResource(m[1]) || e.record[m[1]], "docs/runbook.md: <%s> is not an attribute compilerwatch emits", m[1])
	}
	for _, need := range []string{
		attr.CompilerName, attr.K8sNamespace, attr.K8sPodName, attr.K8sContainerName, attr.ContainerImage,
		attr.ContainerID, attr.ExecutablePath, attr.ParentExecutable, attr.Ancestors, attr.ExecutableOrigin,
		attr.InstalledAtRuntime, attr.CompilersPresent,
	} {
		assert.True(t, used[need], "docs/runbook.md does not use <%s>", need)
	}
}

func readDoc(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
	return string(b), err
}

// backendRule maps the field names one backend's query language uses back to the attribute names compilerwatch
// emits, with the translation that backend documents (docs/backends.md cites each).
type backendRule struct {
	lang string
	// fields returns the field references of one query.
	fields func(q string) []string
	// check reports what is wrong with one field reference, or "".
	check func(e emittedNames, field string) string
}

// lokiIndexLabels are the resource attributes Loki's OTLP ingestion makes index labels by default.
var lokiIndexLabels = []string{
	"cloud.availability_zone", "cloud.region", "container.name", "deployment.environment", "k8s.cluster.name",
	"k8s.container.name", "k8s.cronjob.name", "k8s.daemonset.name", "k8s.deployment.name", "k8s.job.name",
	"k8s.namespace.name", "k8s.pod.name", "k8s.replicaset.name", "k8s.statefulset.name", "service.instance.id",
	"service.name", "service.namespace",
}

// lokiName is Loki's normalisation of an OTLP attribute name: anything but a letter, digit or _ becomes _.
func lokiName(name string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(name, "_")
}

// datadogTags are the Datadog tags that resource attributes become.
var datadogTags = map[string]string{
	"kube_namespace": "k8s.namespace.name", "pod_name": "k8s.pod.name", "kube_container_name": "k8s.container.name",
	"container_id": "container.id", "image_name": "container.image.name", "kube_deployment": "k8s.deployment.name",
	"kube_cluster_name": "k8s.cluster.name", "kube_replica_set": "k8s.replicaset.name",
	"kube_daemon_set": "k8s.daemonset.name", "kube_stateful_set": "k8s.statefulset.name", "kube_job": "k8s.job.name",
	"kube_cronjob": "k8s.cronjob.name",
}

var (
	lokiSelector   = regexp.MustCompile(`\{([^{}]*)\}`)
	lokiMatcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	lokiFilter     = regexp.MustCompile(`\|\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=|>|<)`)
	lokiTemplate   = regexp.MustCompile(`\{\{\s*\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	lokiGrouping   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	elasticField   = regexp.MustCompile(`\b((?:resource\.)?attributes\.[a-z0-9_.]*[a-z0-9_])`)
	datadogAttr    = regexp.MustCompile(`@([a-z0-9_.]*[a-z0-9_])`)
	datadogTag     = regexp.MustCompile(`(?:^|[\s"(,])([a-z_]+):`)
	datadogGroupBy = regexp.MustCompile(`\.by\("([^"]*)"\)`)
)

var backendRules = []backendRule{{
	lang: "logql",
	fields: func(q string) []string {
		var out []string
		// Stream selector matchers are marked "{" so the check can require an index label.
		for _, sel := range lokiSelector.FindAllStringSubmatch(lokiTemplate.ReplaceAllString(q, ""), -1) {
			for _, m := range lokiMatcher.FindAllStringSubmatch(sel[1], -1) {
				out = append(out, "{"+m[1])
			}
		}
		for _, re := range []*regexp.Regexp{lokiFilter, lokiTemplate} {
			for _, m := range re.FindAllStringSubmatch(q, -1) {
				out = append(out, m[1])
			}
		}
		for _, m := range lokiGrouping.FindAllStringSubmatch(q, -1) {
			for _, l := range strings.Split(m[1], ",") {
				out = append(out, strings.TrimSpace(l))
			}
		}
		return out
	},
	check: func(e emittedNames, f string) string {
		if name, ok := strings.CutPrefix(f, "{"); ok {
			for _, l := range lokiIndexLabels {
				if lokiName(l) == name && e.resource[l] {
					return ""
				}
			}
			return "a stream selector label that is not an index label of an attribute compilerwatch emits"
		}
		switch f {
		case "severity_text", "severity_number", "scope_name", "scope_version", "service_name":
			return ""
		}
		for n := range e.resource {
			if lokiName(n) == f {
				return ""
			}
		}
		for n := range e.record {
			if lokiName(n) == f {
				return ""
			}
		}
		return "no emitted attribute is named so after Loki's normalisation"
	},
}, {
	lang:   "kql",
	fields: elasticFields,
	check:  elasticCheck,
}, {
	lang:   "esql",
	fields: elasticFields,
	check:  elasticCheck,
}, {
	lang: "datadog",
	fields: func(q string) []string {
		var out []string
		for _, m := range datadogAttr.FindAllStringSubmatch(q, -1) {
			out = append(out, "@"+m[1])
		}
		noAttrs := datadogAttr.ReplaceAllString(q, "")
		for _, m := range datadogTag.FindAllStringSubmatch(noAttrs, -1) {
			out = append(out, m[1])
		}
		for _, m := range datadogGroupBy.FindAllStringSubmatch(q, -1) {
			for _, g := range strings.Split(m[1], ",") {
				if !strings.HasPrefix(g, "@") {
					out = append(out, g)
				}
			}
		}
		return out
	},
	check: func(e emittedNames, f string) string {
		if name, ok := strings.CutPrefix(f, "@"); ok {
			if e.isResource(name) || e.record[name] {
				return ""
			}
			return "not an attribute compilerwatch emits"
		}
		if f == "status" {
			return ""
		}
		if a, ok := datadogTags[f]; ok && e.resource[a] {
			return ""
		}
		return "not a Datadog tag of a resource attribute compilerwatch emits"
	},
}}

func elasticFields(q string) []string {
	var out []string
	for _, m := range elasticField.FindAllStringSubmatch(q, -1) {
		out = append(out, m[1])
	}
	return out
}

func elasticCheck(e emittedNames, f string) string {
	if name, ok := strings.CutPrefix(f, "resource.attributes."); ok {
		if e.isResource(name) {
			return ""
		}
		if e.record[name] {
			return "a log record attribute, under attributes., not resource.attributes."
		}
		return "not an attribute compilerwatch emits"
	}
	name := strings.TrimPrefix(f, "attributes.")
	if e.record[name] {
		return ""
	}
	if e.isResource(name) {
		return "a resource attribute, under resource.attributes."
	}
	return "not an attribute compilerwatch emits"
}

// TestBackendQueriesUseEmittedNames: every query of docs/backends.md refers only to attributes compilerwatch emits,
// after the backend's translation of their names, and every backend has queries.
func TestBackendQueriesUseEmittedNames(t *testing.T) {
	e := emitted(t)
	const doc = "../../docs/backends.md"
	for _, rule := range backendRules {
		queries := doccheck.Queries(doccheck.Blocks(t, doc, rule.lang))
		require.NotEmpty(t, queries, rule.lang)
		for _, q := range queries {
			fields := rule.fields(q.Text)
			assert.NotEmpty(t, fields, "%s query %q refers to no field", rule.lang, q.Text)
			for _, f := range fields {
				if msg := rule.check(e, f); msg != "" {
					t.Errorf("docs/backends.md, %s query %q: %s: %s", rule.lang, q.Comment+" "+q.Text, f, msg)
				}
			}
		}
	}
}

// TestBackendRulesCatchWrongNames: the checks fail on what they must refuse, so a passing doc test means something.
func TestBackendRulesCatchWrongNames(t *testing.T) {
	e := emitted(t)
	bad := map[string]string{
		"logql":   `{k8s_pod_uid="x"} | compilerwatch_compiler_nme="gcc" | line_format "{{.process_exe}}"`,
		"kql":     `attributes.k8s.namespace.name : "prod" and resource.attributes.compilerwatch.compiler.name : gcc and attributes.nope : 1`,
		"esql":    `FROM logs | WHERE attributes.compilerwatch.compiler.nam == "gcc"`,
		"datadog": `@compilerwatch.compiler.nam:gcc kube_namespac:prod`,
	}
	for _, rule := range backendRules {
		var wrong []string
		for _, f := range rule.fields(bad[rule.lang]) {
			if rule.check(e, f) != "" {
				wrong = append(wrong, f)
			}
		}
		switch rule.lang {
		case "logql":
			assert.Equal(t, []string{"{k8s_pod_uid", "compilerwatch_compiler_nme", "process_exe"}, wrong)
		case "kql":
			assert.Equal(t, []string{"attributes.k8s.namespace.name", "resource.attributes.compilerwatch.compiler.name", "attributes.nope"}, wrong)
		case "esql":
			assert.Equal(t, []string{"attributes.compilerwatch.compiler.nam"}, wrong)
		case "datadog":
			assert.Equal(t, []string{"@compilerwatch.compiler.nam", "kube_namespac"}, wrong)
		}
	}
}
