package kube

import (
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// A pod deleted from the API still resolves for deletedRetention, for at most maxDeletedPods pods: a forced
// deletion (grace period 0) removes the pod from the API at once, while kubelet stops its containers afterwards
// (after at least its minimum grace period of 2 s), and the records of the execs in between, or still in the
// pipeline, need the pod's metadata.
const (
	deletedRetention = 30 * time.Second
	maxDeletedPods   = 512
)

// deletedPods holds recently deleted pods, indexed like the informer's store, oldest evicted first.
type deletedPods struct {
	mu      sync.Mutex
	indexer cache.Indexer
	order   []deletedEntry // oldest first
	now     func() time.Time
}

type deletedEntry struct {
	key string
	at  time.Time
}

func newDeletedPods() *deletedPods {
	return &deletedPods{indexer: cache.NewIndexer(cache.MetaNamespaceKeyFunc, indexers()), now: time.Now}
}

// add keeps a pod the informer reports deleted (the pod, or a DeletedFinalStateUnknown holding it).
func (d *deletedPods) add(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(pod)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked()
	d.order = slices.DeleteFunc(d.order, func(e deletedEntry) bool { return e.key == key })
	if err := d.indexer.Add(pod); err != nil {
		return
	}
	d.order = append(d.order, deletedEntry{key: key, at: d.now()})
	for len(d.order) > maxDeletedPods {
		d.dropOldestLocked()
	}
}

func (d *deletedPods) expireLocked() {
	cutoff := d.now().Add(-deletedRetention)
	for len(d.order) > 0 && d.order[0].at.Before(cutoff) {
		d.dropOldestLocked()
	}
}

func (d *deletedPods) dropOldestLocked() {
	key := d.order[0].key
	d.order = d.order[1:]
	if obj, ok, err := d.indexer.GetByKey(key); err == nil && ok {
		_ = d.indexer.Delete(obj)
	}
}

// byIndex returns a pod deleted less than deletedRetention ago whose index entry matches key.
func (d *deletedPods) byIndex(index, key string) *corev1.Pod {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked()
	objs, err := d.indexer.ByIndex(index, key)
	if err != nil || len(objs) == 0 {
		return nil
	}
	pod, _ := objs[0].(*corev1.Pod)
	return pod
}

func (d *deletedPods) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.order)
}
