package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
)

// applier writes a Result onto resource attributes, only where absent: attributes set upstream (by the receiver or
// an earlier processor) win.
type applier struct {
	labels        keySelector
	annotations   keySelector
	nsLabels      keySelector
	nsAnnotations keySelector
}

func newApplier(labels, annotations, nsLabels, nsAnnotations []string) applier {
	return applier{
		labels: newKeySelector(labels), annotations: newKeySelector(annotations),
		nsLabels: newKeySelector(nsLabels), nsAnnotations: newKeySelector(nsAnnotations),
	}
}

// Enrich adds what Lookup finds to res, where attributes are absent.
func (c *Cache) Enrich(res pcommon.Resource) State {
	r, state := c.Lookup(res)
	if state != StateUnknown {
		c.applier.apply(res.Attributes(), &r)
	}
	return state
}

// Lookup resolves res's pod and container by its container.id and k8s.pod.uid, without changing res. A
// resource with neither (a host process) is StateUnknown and not counted as a miss.
func (c *Cache) Lookup(res pcommon.Resource) (Result, State) {
	if c == nil {
		return Result{}, StateUnknown
	}
	attrs := res.Attributes()
	var containerID, podUID string
	if v, ok := attrs.Get(string(semconv.ContainerIDKey)); ok {
		containerID = v.Str()
	}
	if v, ok := attrs.Get(string(semconv.K8SPodUIDKey)); ok {
		podUID = v.Str()
	}
	if containerID == "" && podUID == "" {
		return Result{}, StateUnknown
	}
	return c.Resolve(containerID, podUID)
}

// Apply writes r onto res where attributes are absent, for callers that Resolve themselves.
func (c *Cache) Apply(res pcommon.Resource, r Result) {
	if c != nil {
		c.applier.apply(res.Attributes(), &r)
	}
}

func (a applier) apply(attrs pcommon.Map, r *Result) {
	putStr(attrs, string(semconv.K8SPodNameKey), r.Pod.Name)
	putStr(attrs, string(semconv.K8SPodUIDKey), r.Pod.UID)
	putStr(attrs, string(semconv.K8SNamespaceNameKey), r.Pod.Namespace)
	putStr(attrs, string(semconv.K8SNodeNameKey), r.Pod.NodeName)

	if r.Container.Name != "" {
		putStr(attrs, string(semconv.K8SContainerNameKey), r.Container.Name)
		img := ParseImage(r.Container.Image)
		putStr(attrs, string(semconv.ContainerImageNameKey), img.Name)
		putSlice(attrs, string(semconv.ContainerImageTagsKey), img.Tag)
		putSlice(attrs, string(semconv.ContainerImageRepoDigestsKey), RepoDigest(r.Container.ImageID))
		putStr(attrs, string(semconv.ContainerImageIDKey), ImageID(r.Container.ImageID))
	}

	w := &r.Workload
	putStr(attrs, string(semconv.K8SDeploymentNameKey), w.Deployment)
	putStr(attrs, string(semconv.K8SReplicaSetNameKey), w.ReplicaSet)
	putStr(attrs, string(semconv.K8SDaemonSetNameKey), w.DaemonSet)
	putStr(attrs, string(semconv.K8SStatefulSetNameKey), w.StatefulSet)
	putStr(attrs, string(semconv.K8SJobNameKey), w.Job)
	putStr(attrs, string(semconv.K8SCronJobNameKey), w.CronJob)

	if !a.labels.empty() {
		for k, v := range r.Pod.Labels {
			if a.labels.has(k) {
				putValue(attrs, attr.K8sPodLabel+k, v)
			}
		}
	}
	if !a.annotations.empty() {
		for k, v := range r.Pod.Annotations {
			if a.annotations.has(k) {
				putValue(attrs, attr.K8sPodAnnotation+k, v)
			}
		}
	}
	putSelected(attrs, attr.K8sNamespaceLabel, r.Namespace.Labels, a.nsLabels)
	putSelected(attrs, attr.K8sNamespaceAnnotation, r.Namespace.Annotations, a.nsAnnotations)
}

// putSelected sets prefix+key for each selected key of m, where absent.
func putSelected(attrs pcommon.Map, prefix string, m map[string]string, sel keySelector) {
	for k, v := range m {
		if sel.has(k) {
			putValue(attrs, prefix+k, v)
		}
	}
}

// putStr sets a non-empty value where the key is absent.
func putStr(attrs pcommon.Map, key, v string) {
	if v == "" {
		return
	}
	putValue(attrs, key, v)
}

// putValue sets v (possibly empty: a label may have an empty value) where the key is absent.
func putValue(attrs pcommon.Map, key, v string) {
	if _, ok := attrs.Get(key); !ok {
		attrs.PutStr(key, v)
	}
}

// putSlice sets a one-element string slice where the key is absent.
func putSlice(attrs pcommon.Map, key, v string) {
	if v == "" {
		return
	}
	if _, ok := attrs.Get(key); ok {
		return
	}
	attrs.PutEmptySlice(key).AppendEmpty().SetStr(v)
}
