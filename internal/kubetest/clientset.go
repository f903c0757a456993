package kubetest // import "github.com/compilerwatch/compilerwatch/internal/kubetest"

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/watchlist"
)

// ClientsetAPI adapts a clientset (usually k8s.io/client-go/kubernetes/fake) to the kube package's API interface,
// so unit tests drive the cache with the fake clientset while the distribution uses its own small REST client.
// It lives here, outside the kube package, so that the distribution never links the generated clientset.
type ClientsetAPI struct {
	kubernetes.Interface
}

// ListPods lists pods in all namespaces.
func (c ClientsetAPI) ListPods(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	return c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, opts)
}

// WatchPods watches pods in all namespaces.
func (c ClientsetAPI) WatchPods(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return c.CoreV1().Pods(metav1.NamespaceAll).Watch(ctx, opts)
}

// GetReplicaSet gets one ReplicaSet.
func (c ClientsetAPI) GetReplicaSet(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error) {
	return c.AppsV1().ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{})
}

// GetJob gets one Job.
func (c ClientsetAPI) GetJob(ctx context.Context, namespace, name string) (*batchv1.Job, error) {
	return c.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
}

// GetNode gets one Node.
func (c ClientsetAPI) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	return c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
}

// ListNamespaces lists the cluster's Namespaces.
func (c ClientsetAPI) ListNamespaces(ctx context.Context, opts metav1.ListOptions) (*corev1.NamespaceList, error) {
	return c.CoreV1().Namespaces().List(ctx, opts)
}

// WatchNamespaces watches the cluster's Namespaces.
func (c ClientsetAPI) WatchNamespaces(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return c.CoreV1().Namespaces().Watch(ctx, opts)
}

// IsWatchListSemanticsUnSupported forwards the clientset's answer (the fake clientset cannot stream lists).
func (c ClientsetAPI) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(c.Interface)
}
