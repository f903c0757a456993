package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"context"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// nodeGetter is the optional part of API that reads one Node. restAPI and kubetest.ClientsetAPI have it.
type nodeGetter interface {
	GetNode(ctx context.Context, name string) (*corev1.Node, error)
}

// CheckNode warns when the node name matches no Node. The cache holds that node's pods only, so with a wrong
// name it stays empty and no record gets Kubernetes attributes, without any error. It makes one GET, bounded like
// Start's API server check, and only when the API server answers, so it never delays the start of capture during
// an outage; a forbidden GET (the shipped role grants nothing on nodes) or any other failure is logged at debug
// level only: the cache's status already reports an unusable API server.
func (c *Cache) CheckNode(ctx context.Context) {
	if c == nil || !c.Status().Reachable {
		return
	}
	g, ok := c.client.(nodeGetter)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(pingTimeout, c.timeout))
	defer cancel()
	_, err := g.GetNode(ctx, c.nodeName)
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		c.logger.Warn(`Kubernetes node not found: the pod cache holds this node's pods only, so records will get no `+
			`Kubernetes attributes; check "kubernetes.node_name" or the `+nodeNameEnv+` environment variable`,
			zap.String("node", c.nodeName))
	default:
		c.logger.Debug("Kubernetes node check skipped", zap.String("node", c.nodeName), zap.Error(err))
	}
}
