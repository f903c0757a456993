package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// API is the part of the Kubernetes API the cache uses: this node's pods (list and watch) and single GETs of
// ReplicaSets and Jobs. The production implementation is restAPI. Tests adapt a clientset
// (k8s.io/client-go/kubernetes/fake or a real one) with kubetest.ClientsetAPI.
//
// An implementation may also have the method IsWatchListSemanticsUnSupported() bool (client-go's fake clientset
// does); the informer then falls back from streaming lists to list+watch.
type API interface {
	ListPods(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	WatchPods(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	GetReplicaSet(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error)
	GetJob(ctx context.Context, namespace, name string) (*batchv1.Job, error)
}

// restAPI talks to the API server with three REST clients over one HTTP client, and a private scheme of only
// core/v1, apps/v1 and batch/v1.
//
// It replaces client-go's generated clientset (k8s.io/client-go/kubernetes) on purpose: the clientset registers
// every API group of Kubernetes and imports the apply-configuration packages, which more than doubles the
// dependencies the distribution compiles (576 packages against about 330 here) for four calls.
type restAPI struct {
	core, apps, batch *rest.RESTClient
	params            runtime.ParameterCodec
}

var _ API = (*restAPI)(nil)

// scheme knows the three groups the cache reads, plus the meta/v1 options and Status for the unversioned "v1".
var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() {
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(appsv1.AddToScheme(scheme))
	utilruntime.Must(batchv1.AddToScheme(scheme))
}

func newRESTAPI(rc *rest.Config) (*restAPI, error) {
	httpClient, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: building the HTTP client: %w", err)
	}
	client := func(gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
		c := rest.CopyConfig(rc)
		c.GroupVersion = &gv
		c.APIPath = apiPath
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rc, err := rest.RESTClientForConfigAndClient(c, httpClient)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: building the %s client: %w", gv, err)
		}
		return rc, nil
	}
	a := &restAPI{params: runtime.NewParameterCodec(scheme)}
	if a.core, err = client(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if a.apps, err = client(appsv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if a.batch, err = client(batchv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return a, nil
}

func timeoutOf(opts *metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}

// ListPods lists pods in all namespaces (the options carry the node's field selector).
func (a *restAPI) ListPods(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	list := &corev1.PodList{}
	err := a.core.Get().Resource("pods").VersionedParams(&opts, a.params).Timeout(timeoutOf(&opts)).Do(ctx).Into(list)
	if err != nil {
		return nil, err
	}
	return list, nil
}

// WatchPods watches pods in all namespaces.
func (a *restAPI) WatchPods(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return a.core.Get().Resource("pods").VersionedParams(&opts, a.params).Timeout(timeoutOf(&opts)).Watch(ctx)
}

// GetReplicaSet gets one ReplicaSet.
func (a *restAPI) GetReplicaSet(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error) {
	rs := &appsv1.ReplicaSet{}
	if err := a.apps.Get().Namespace(namespace).Resource("replicasets").Name(name).Do(ctx).Into(rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// GetJob gets one Job.
func (a *restAPI) GetJob(ctx context.Context, namespace, name string) (*batchv1.Job, error) {
	job := &batchv1.Job{}
	if err := a.batch.Get().Namespace(namespace).Resource("jobs").Name(name).Do(ctx).Into(job); err != nil {
		return nil, err
	}
	return job, nil
}

// GetNode gets one Node (nodeGetter).
func (a *restAPI) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	node := &corev1.Node{}
	if err := a.core.Get().Resource("nodes").Name(name).Do(ctx).Into(node); err != nil {
		return nil, err
	}
	return node, nil
}

// ListNamespaces lists the cluster's Namespaces (namespaceAPI).
func (a *restAPI) ListNamespaces(ctx context.Context, opts metav1.ListOptions) (*corev1.NamespaceList, error) {
	list := &corev1.NamespaceList{}
	err := a.core.Get().Resource("namespaces").VersionedParams(&opts, a.params).Timeout(timeoutOf(&opts)).Do(ctx).Into(list)
	if err != nil {
		return nil, err
	}
	return list, nil
}

// WatchNamespaces watches the cluster's Namespaces (namespaceAPI).
func (a *restAPI) WatchNamespaces(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return a.core.Get().Resource("namespaces").VersionedParams(&opts, a.params).Timeout(timeoutOf(&opts)).Watch(ctx)
}
