package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/findinglog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

const (
	// maxMetricNamespaces bounds the k8s.namespace.name values of the findings metrics: the first namespaces to
	// have findings keep their own series, later ones share otherNamespace. With the catalog's compiler names
	// (bounded by the configuration) and two severities, a metric has at most
	// (maxMetricNamespaces+2) × compilers × 2 series.
	maxMetricNamespaces = 64
	// otherNamespace cannot be a namespace's name, which is a DNS label.
	otherNamespace = "_other"

	// Metric attribute of the severity text; the other attributes are the finding's own names.
	severityKey = "severity"
)

// reporter makes findings visible outside the OTLP export: it counts them in the findings metrics and, with
// log_findings, writes one line per finding to out. It is shared by the synchronous path, the async release and
// the presence scans.
type reporter struct {
	tb *metadata.TelemetryBuilder

	mu         sync.Mutex
	out        io.Writer // nil unless log_findings
	namespaces map[string]struct{}
	findingSet map[findingKey]metric.AddOption
	presentSet map[presentKey]metric.AddOption
}

type findingKey struct {
	ns, compiler string
	error, rt    bool
}

type presentKey struct{ ns, compiler string }

func newReporter(tb *metadata.TelemetryBuilder, out io.Writer) *reporter {
	return &reporter{
		tb: tb, out: out, namespaces: map[string]struct{}{},
		findingSet: map[findingKey]metric.AddOption{}, presentSet: map[presentKey]metric.AddOption{},
	}
}

// metricNamespace returns the namespace value a finding is counted under. Called with mu held.
func (r *reporter) metricNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	if _, ok := r.namespaces[ns]; ok {
		return ns
	}
	if len(r.namespaces) >= maxMetricNamespaces {
		return otherNamespace
	}
	r.namespaces[ns] = struct{}{}
	return ns
}

// finding reports a flagged exec record.
func (r *reporter) finding(res pcommon.Map, lr plog.LogRecord, m catalog.Match, runtime bool) {
	sev := attr.SeverityText(lr.SeverityNumber())
	ns := attr.Str(res, attr.K8sNamespace)
	r.mu.Lock()
	defer r.mu.Unlock()
	k := findingKey{ns: r.metricNamespace(ns), compiler: m.Name, error: sev == "ERROR", rt: runtime}
	opt, ok := r.findingSet[k]
	if !ok {
		kv := []attribute.KeyValue{
			attribute.String(attr.CompilerName, k.compiler), attribute.String(severityKey, sev),
			attribute.Bool(attr.InstalledAtRuntime, runtime),
		}
		opt = metric.WithAttributeSet(withNamespace(k.ns, kv))
		r.findingSet[k] = opt
	}
	r.tb.ProcessorCompilerDetectorFindings.Add(context.Background(), 1, opt)
	if r.out == nil {
		return
	}
	attrs := lr.Attributes()
	parent := attr.Str(attrs, attr.ParentExecutable)
	if parent == "" {
		parent = attr.Str(attrs, attr.ParentCommand)
	}
	r.write(findinglog.Finding{
		Severity: sev, Rule: attr.Str(attrs, attr.RuleUUID), Compiler: m.Name,
		Namespace: ns, Pod: attr.Str(res, attr.K8sPodName), Container: attr.Str(res, attr.K8sContainerName),
		Image: image(res), Parent: parent, Origin: attr.Str(attrs, attr.ExecutableOrigin),
		ContainerID: attr.Str(res, attr.ContainerID),
	}.Line())
}

// presence reports the presence findings of ld, which the presence scan emits: one count per distinct compiler.
func (r *reporter) presence(ld plog.Logs) {
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		res := rls.At(i).Resource().Attributes()
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				if lr := lrs.At(k); lr.EventName() == attr.EventCompilersPresent {
					r.presenceRecord(res, lr)
				}
			}
		}
	}
}

func (r *reporter) presenceRecord(res pcommon.Map, lr plog.LogRecord) {
	var names []string
	present := catalog.ListAttr(lr.Attributes(), attr.CompilersPresent)
	for i, n := 0, present.Len(); i < n; i++ {
		name, _, _ := strings.Cut(present.At(i), ":") // name:path
		names = append(names, name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	ns := attr.Str(res, attr.K8sNamespace)
	r.mu.Lock()
	defer r.mu.Unlock()
	mns := r.metricNamespace(ns)
	for _, name := range names {
		k := presentKey{ns: mns, compiler: name}
		opt, ok := r.presentSet[k]
		if !ok {
			opt = metric.WithAttributeSet(withNamespace(mns, []attribute.KeyValue{attribute.String(attr.CompilerName, name)}))
			r.presentSet[k] = opt
		}
		r.tb.ProcessorCompilerDetectorPresenceFindings.Add(context.Background(), 1, opt)
	}
	if r.out == nil {
		return
	}
	r.write(findinglog.Presence{
		Severity: attr.SeverityText(lr.SeverityNumber()), Rule: attr.Str(lr.Attributes(), attr.RuleUUID),
		Compilers: names, Namespace: ns, Pod: attr.Str(res, attr.K8sPodName),
		Container: attr.Str(res, attr.K8sContainerName), Image: image(res), ContainerID: attr.Str(res, attr.ContainerID),
	}.Line())
}

// write writes one line in one call. Called with mu held, so lines never interleave. A failed write (stdout
// closed) is not worth failing a pipeline for; the finding still goes on to the exporters.
func (r *reporter) write(line []byte) {
	_, _ = r.out.Write(line)
}

func withNamespace(ns string, kv []attribute.KeyValue) attribute.Set {
	if ns != "" {
		kv = append(kv, attribute.String(attr.K8sNamespace, ns))
	}
	return attribute.NewSet(kv...)
}

// image is container.image.name with the first of container.image.tags, the way the pod spec names it.
func image(res pcommon.Map) string {
	name := attr.Str(res, attr.ContainerImage)
	if name == "" {
		return ""
	}
	tags := catalog.ListAttr(res, attr.ContainerImageTags)
	if tags.Len() > 0 && tags.At(0) != "" {
		return name + ":" + tags.At(0)
	}
	return name
}
