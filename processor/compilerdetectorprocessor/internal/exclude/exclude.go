// Package exclude holds the allowlists of the compiler_detector processor: a compiler execution they match is
// counted, not flagged.
package exclude // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/exclude"

import (
	"path"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
)

// Config is the exclude section.
type Config struct {
	Namespaces        []string          `mapstructure:"namespaces"`
	Images            []string          `mapstructure:"images"`
	PodLabels         map[string]string `mapstructure:"pod_labels"`
	ParentExecutables []string          `mapstructure:"parent_executables"`
	ContainerIDs      []string          `mapstructure:"container_ids"`
}

// KubernetesKeys names the exclusions that match attributes only the pod
// cache adds (k8s.namespace.name, container.image.name, k8s.pod.label.*).
func (x Config) KubernetesKeys() []string {
	var keys []string
	if len(x.Namespaces) > 0 {
		keys = append(keys, "exclude.namespaces")
	}
	if len(x.Images) > 0 {
		keys = append(keys, "exclude.images")
	}
	if len(x.PodLabels) > 0 {
		keys = append(keys, "exclude.pod_labels")
	}
	return keys
}

// Exclusions are the compiled allowlists of a Config. They are consulted only for records that matched a
// compiler, so their cost is off the hot path.
type Exclusions struct {
	namespaces   map[string]struct{}
	containerIDs map[string]struct{}
	images       []string          // path.Match patterns on container.image.name
	podLabels    map[string]string // selector: every pair must match
	// Parent patterns containing '/' match compilerwatch.parent.executable.path; the others match its basename
	// and every ancestor's executable name.
	parentPaths []string
	parentNames []string
}

// New compiles cfg.
func New(cfg Config) *Exclusions {
	x := &Exclusions{
		namespaces:   make(map[string]struct{}, len(cfg.Namespaces)),
		containerIDs: make(map[string]struct{}, len(cfg.ContainerIDs)),
		images:       cfg.Images,
		podLabels:    cfg.PodLabels,
	}
	for _, ns := range cfg.Namespaces {
		x.namespaces[ns] = struct{}{}
	}
	for _, id := range cfg.ContainerIDs {
		x.containerIDs[id] = struct{}{}
	}
	for _, p := range cfg.ParentExecutables {
		if strings.Contains(p, "/") {
			x.parentPaths = append(x.parentPaths, p)
		} else {
			x.parentNames = append(x.parentNames, p)
		}
	}
	return x
}

// ResourceExcluded reports whether the resource (container, pod, namespace, image) is allowlisted.
func (x *Exclusions) ResourceExcluded(res pcommon.Map) bool {
	if len(x.containerIDs) > 0 {
		if _, ok := x.containerIDs[attr.Str(res, attr.ContainerID)]; ok {
			return true
		}
	}
	if len(x.namespaces) > 0 {
		if _, ok := x.namespaces[attr.Str(res, attr.K8sNamespace)]; ok {
			return true
		}
	}
	if len(x.images) > 0 {
		if img := attr.Str(res, attr.ContainerImage); img != "" {
			for _, g := range x.images {
				if ok, _ := path.Match(g, img); ok {
					return true
				}
			}
		}
	}
	if len(x.podLabels) > 0 {
		all := true
		for k, want := range x.podLabels {
			v, ok := res.Get(attr.K8sPodLabel + k)
			if !ok || v.Str() != want {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// ParentExcluded reports whether the parent or an ancestor is allowlisted. Names are the kernel's base names of
// the ancestors' executables (mm->exe_file), never comms, which any process can set to anything: a process that
// calls itself "make" is not make. A memfd keeps its "memfd:" prefix, so it never matches a plain name.
func (x *Exclusions) ParentExcluded(parentPath string, ancestorExes catalog.List) bool {
	for _, g := range x.parentPaths {
		if ok, _ := path.Match(g, parentPath); ok && parentPath != "" {
			return true
		}
	}
	if len(x.parentNames) == 0 {
		return false
	}
	check := func(name string) bool {
		if name == "" {
			return false
		}
		for _, g := range x.parentNames {
			if ok, _ := path.Match(g, name); ok {
				return true
			}
		}
		return false
	}
	if check(catalog.Basename(parentPath)) {
		return true
	}
	for i, n := 0, ancestorExes.Len(); i < n; i++ {
		if check(ancestorExes.At(i)) {
			return true
		}
	}
	return false
}
