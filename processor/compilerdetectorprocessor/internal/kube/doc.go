// Package kube resolves the Kubernetes context of a container on this node: pod, namespace, container, image and
// owning workload. It keeps a pod cache scoped to the node (a client-go informer with a field selector on
// spec.nodeName, trimmed by a transform so memory stays O(pods on the node)), indexed by container id and pod uid,
// and resolves owners with cached GETs of the ReplicaSet or Job instead of cluster-wide informers.
//
// Lookups never block: they answer from the cache, and owner GETs run on background workers. Start does not fail
// because of the API server: down, refusing (RBAC) or slow, the informer retries in the background and lookups find
// nothing until the cache syncs. When the API server goes away later, the cache keeps answering with what it has.
// Each condition is counted in [Stats], logged once per transition, and reported as a [Status].
//
// The processor uses it as:
//
//	c, err := kube.New(cfg.Kubernetes, kube.Settings{Logger: logger}) // nil, nil when Kubernetes is off
//	err = c.Start(ctx)
//	r, state := c.Lookup(resource) // resolves without changing the resource
//	if state == kube.StateContainerPending && c.Following() {
//		// hold the record and Lookup again later
//	}
//	c.Apply(resource, r) // once, as the record goes on
//	err = c.Shutdown(ctx)
package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
