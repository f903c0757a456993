package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// namespaceAPI is the part of API that lists and watches Namespaces, needed only when namespace labels or
// annotations are configured. restAPI and kubetest.ClientsetAPI have it.
type namespaceAPI interface {
	ListNamespaces(ctx context.Context, opts metav1.ListOptions) (*corev1.NamespaceList, error)
	WatchNamespaces(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// Bounds of what the namespace cache keeps per namespace, in each of labels and annotations. Namespaces are set by
// the cluster's administrators, not by anything inside a container, but `["*"]` would otherwise copy whatever
// they hold (a last-applied-configuration annotation can be hundreds of KB) into every record of the node.
const (
	// MaxNamespaceKeys is the number of labels, and of annotations, kept per namespace: the first in key order.
	MaxNamespaceKeys = 64
	// MaxNamespaceValue is the longest label or annotation value kept, in bytes; a longer one is left out, not cut.
	MaxNamespaceValue = 4096
)

// Namespace is the namespace-level context: the selected labels and annotations. Shared with the cache: read-only.
type Namespace struct {
	Labels, Annotations map[string]string
}

// namespaces is the cluster's Namespaces, trimmed to the selected keys, in an informer of their own.
type namespaces struct {
	api      namespaceAPI
	logger   *zap.Logger
	stats    *counters
	informer cache.SharedIndexInformer
	// denied is set while the API server refuses the list or watch, so the refusal is logged once.
	denied atomic.Bool
}

func newNamespaces(api API, labels, annotations keySelector, logger *zap.Logger, stats *counters) (*namespaces, error) {
	nsAPI, ok := api.(namespaceAPI)
	if !ok {
		return nil, errors.New("kubernetes: namespace labels or annotations are configured but the client cannot list namespaces")
	}
	n := &namespaces{api: nsAPI, logger: logger, stats: stats}
	n.informer = cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(n.listWatch(), api),
		&corev1.Namespace{},
		cache.SharedIndexInformerOptions{ObjectDescription: "namespaces"},
	)
	trim := namespaceTrimmer{labels: labels, annotations: annotations}
	if err := n.informer.SetTransform(trim.transform); err != nil {
		return nil, err
	}
	if err := n.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		n.logger.Debug("Kubernetes namespace list or watch failed; retrying", zap.Error(err))
	}); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *namespaces) listWatch() *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list, err := n.api.ListNamespaces(ctx, opts)
			n.answered("list", err)
			if err != nil {
				return nil, err
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := n.api.WatchNamespaces(ctx, opts)
			n.answered("watch", err)
			return w, err
		},
	}
}

// answered counts a failed request and logs a refusal once until a request succeeds. Namespace labels are extra
// attributes: a refusal does not change the pod cache's status.
func (n *namespaces) answered(verb string, err error) {
	switch {
	case err == nil:
		if n.denied.Swap(false) {
			n.logger.Info("Kubernetes RBAC allows " + verb + " on namespaces again")
		}
	case errors.Is(err, context.Canceled):
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		n.stats.apiErrors.Add(1)
		if !n.denied.Swap(true) {
			n.logger.Error("Kubernetes RBAC does not allow "+verb+" on namespaces; records get no namespace "+
				"labels or annotations until it does: grant get, list and watch on namespaces (the chart does when "+
				"compilerDetector.namespaceLabels or namespaceAnnotations is set)", zap.Error(err))
		}
	default:
		n.stats.apiErrors.Add(1)
	}
}

// get returns the namespace's kept labels and annotations (empty when it is not known).
func (n *namespaces) get(name string) Namespace {
	if n == nil || name == "" {
		return Namespace{}
	}
	obj, ok, err := n.informer.GetIndexer().GetByKey(name)
	if err != nil || !ok {
		return Namespace{}
	}
	ns, _ := obj.(*corev1.Namespace)
	if ns == nil {
		return Namespace{}
	}
	return Namespace{Labels: ns.Labels, Annotations: ns.Annotations}
}

// namespaceTrimmer keeps a namespace's name and its selected labels and annotations, within the bounds.
type namespaceTrimmer struct {
	labels, annotations keySelector
}

func (t namespaceTrimmer) transform(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:            ns.Name,
		ResourceVersion: ns.ResourceVersion,
		Labels:          keepBounded(ns.Labels, t.labels),
		Annotations:     keepBounded(ns.Annotations, t.annotations),
	}}, nil
}

// keepBounded keeps the selected keys, in key order, at most MaxNamespaceKeys of them with values of at most
// MaxNamespaceValue bytes. It is idempotent: the informer may hand it an object it already trimmed.
func keepBounded(in map[string]string, sel keySelector) map[string]string {
	if len(in) == 0 || sel.empty() {
		return nil
	}
	keys := make([]string, 0, len(in))
	for k, v := range in {
		if sel.has(k) && len(v) <= MaxNamespaceValue {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	keys = keys[:min(len(keys), MaxNamespaceKeys)]
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[utf8Safe(k)] = utf8Safe(in[k])
	}
	return out
}
