package kube

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

func deletedTestPod(i int) (*corev1.Pod, string) {
	id := fmt.Sprintf("%064x", i+1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "ns", UID: types.UID(fmt.Sprintf("uid-%d", i))},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "c", ContainerID: "containerd://" + id,
		}}},
	}, id
}

// TestDeletedPods: a deleted pod resolves by container id and pod uid for deletedRetention and no longer, a
// tombstone counts as its pod, and at most maxDeletedPods are kept, the oldest dropped first.
func TestDeletedPods(t *testing.T) {
	now := time.Unix(1000, 0)
	d := newDeletedPods()
	d.now = func() time.Time { return now }

	pod, id := deletedTestPod(0)
	d.add(pod)
	if got := d.byIndex(indexContainerID, id); got == nil || got.Name != "p0" {
		t.Fatalf("by container id: %v", got)
	}
	if got := d.byIndex(indexPodUID, "uid-0"); got == nil {
		t.Fatal("by pod uid: not found")
	}
	tomb, tombID := deletedTestPod(1)
	d.add(cache.DeletedFinalStateUnknown{Key: "ns/p1", Obj: tomb})
	if d.byIndex(indexContainerID, tombID) == nil {
		t.Fatal("tombstone: not found")
	}
	d.add("not a pod")
	if d.len() != 2 {
		t.Fatalf("len %d, want 2", d.len())
	}

	now = now.Add(deletedRetention)
	if d.byIndex(indexContainerID, id) == nil {
		t.Fatal("expired at exactly deletedRetention")
	}
	now = now.Add(time.Millisecond)
	if got := d.byIndex(indexContainerID, id); got != nil {
		t.Fatalf("resolved after deletedRetention: %v", got.Name)
	}
	if d.len() != 0 {
		t.Fatalf("len %d after expiry, want 0", d.len())
	}

	for i := range maxDeletedPods + 1 {
		p, _ := deletedTestPod(i)
		d.add(p)
	}
	if d.len() != maxDeletedPods {
		t.Fatalf("len %d, want the bound %d", d.len(), maxDeletedPods)
	}
	_, first := deletedTestPod(0)
	_, last := deletedTestPod(maxDeletedPods)
	if d.byIndex(indexContainerID, first) != nil || d.byIndex(indexContainerID, last) == nil {
		t.Fatal("the oldest pod must be the one dropped")
	}
	// Deleting the same pod again refreshes it rather than adding an entry.
	p, _ := deletedTestPod(maxDeletedPods)
	d.add(p)
	if d.len() != maxDeletedPods || strings.Count(fmt.Sprint(d.order), "ns/p512") != 1 {
		t.Fatalf("re-deletion: len %d", d.len())
	}
}
