package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

const (
	indexContainerID = "containerID"
	indexPodUID      = "podUID"

	// podTemplateHashLabel is kept even when labels are not copied: the Deployment naming fallback needs it.
	podTemplateHashLabel = "pod-template-hash"
)

// keySelector selects label or annotation keys: all, none, or a set.
type keySelector struct {
	all  bool
	keys map[string]struct{}
}

func newKeySelector(keys []string) keySelector {
	s := keySelector{}
	for _, k := range keys {
		if k == "*" {
			return keySelector{all: true}
		}
		if s.keys == nil {
			s.keys = make(map[string]struct{}, len(keys))
		}
		s.keys[k] = struct{}{}
	}
	return s
}

func (s keySelector) has(k string) bool {
	if s.all {
		return true
	}
	_, ok := s.keys[k]
	return ok
}

func (s keySelector) empty() bool { return !s.all && len(s.keys) == 0 }

// withKeys adds extra keys to a selection ("*" in either selects all).
func withKeys(selected, extra []string) []string {
	if len(extra) == 0 {
		return selected
	}
	return append(append([]string(nil), selected...), extra...)
}

// podTrimmer builds the informer's TransformFunc. It keeps only what lookups and attributes use, so the cache holds
// a few hundred bytes per pod instead of the full object (managedFields, volumes, env, probes and
// last-applied-configuration annotations dominate a real pod's size). Strings are made valid UTF-8 here, once per
// pod update, because they end up in pdata.
type podTrimmer struct {
	labels      keySelector
	annotations keySelector
}

func (t podTrimmer) transform(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		// cache.DeletedFinalStateUnknown and friends carry an already-transformed pod.
		return obj, nil
	}
	return t.trim(pod), nil
}

// trim is idempotent: the informer may hand it an object it already trimmed.
func (t podTrimmer) trim(pod *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            utf8Safe(pod.Name),
			Namespace:       utf8Safe(pod.Namespace),
			UID:             pod.UID,
			ResourceVersion: pod.ResourceVersion,
			Labels:          t.keep(pod.Labels, t.labels, true),
			Annotations:     t.keep(pod.Annotations, t.annotations, false),
		},
		Spec: corev1.PodSpec{NodeName: utf8Safe(pod.Spec.NodeName)},
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		// Only the controller matters for workload attributes; other owner references are dropped.
		out.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: ref.APIVersion,
			Kind:       ref.Kind,
			Name:       utf8Safe(ref.Name),
			UID:        ref.UID,
			Controller: ref.Controller,
		}}
	}
	out.Spec.Containers = trimContainers(pod.Spec.Containers)
	out.Spec.InitContainers = trimContainers(pod.Spec.InitContainers)
	if n := len(pod.Spec.EphemeralContainers); n > 0 {
		out.Spec.EphemeralContainers = make([]corev1.EphemeralContainer, n)
		for i := range pod.Spec.EphemeralContainers {
			c := &pod.Spec.EphemeralContainers[i]
			out.Spec.EphemeralContainers[i].Name = utf8Safe(c.Name)
			out.Spec.EphemeralContainers[i].Image = utf8Safe(c.Image)
		}
	}
	out.Status.ContainerStatuses = trimStatuses(pod.Status.ContainerStatuses)
	out.Status.InitContainerStatuses = trimStatuses(pod.Status.InitContainerStatuses)
	out.Status.EphemeralContainerStatuses = trimStatuses(pod.Status.EphemeralContainerStatuses)
	return out
}

func (t podTrimmer) keep(in map[string]string, sel keySelector, label bool) map[string]string {
	if len(in) == 0 {
		return nil
	}
	var out map[string]string
	for k, v := range in {
		if !sel.has(k) && (!label || k != podTemplateHashLabel) {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[utf8Safe(k)] = utf8Safe(v)
	}
	return out
}

func trimContainers(in []corev1.Container) []corev1.Container {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i := range in {
		out[i] = corev1.Container{Name: utf8Safe(in[i].Name), Image: utf8Safe(in[i].Image)}
	}
	return out
}

func trimStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i := range in {
		s := &in[i]
		out[i] = corev1.ContainerStatus{
			Name:        utf8Safe(s.Name),
			ContainerID: s.ContainerID,
			Image:       utf8Safe(s.Image),
			ImageID:     utf8Safe(s.ImageID),
		}
		// The previous instance's id stays resolvable after a restart: its last execs may still be in flight.
		if term := s.LastTerminationState.Terminated; term != nil && term.ContainerID != "" {
			out[i].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: term.ContainerID}
		}
	}
	return out
}

func utf8Safe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// indexers returns the informer's indexes: by full container id (current and previous instance of every regular,
// init and ephemeral container) and by pod uid.
func indexers() cache.Indexers {
	return cache.Indexers{
		indexContainerID: func(obj any) ([]string, error) {
			pod, ok := obj.(*corev1.Pod)
			if !ok {
				return nil, nil
			}
			var ids []string
			forEachStatus(pod, func(s *corev1.ContainerStatus) {
				if id := NormalizeContainerID(s.ContainerID); id != "" {
					ids = append(ids, id)
				}
				if term := s.LastTerminationState.Terminated; term != nil {
					if id := NormalizeContainerID(term.ContainerID); id != "" {
						ids = append(ids, id)
					}
				}
			})
			return ids, nil
		},
		indexPodUID: func(obj any) ([]string, error) {
			pod, ok := obj.(*corev1.Pod)
			if !ok || pod.UID == "" {
				return nil, nil
			}
			return []string{string(pod.UID)}, nil
		},
	}
}

func forEachStatus(pod *corev1.Pod, f func(*corev1.ContainerStatus)) {
	for _, list := range [...][]corev1.ContainerStatus{
		pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses,
	} {
		for i := range list {
			f(&list[i])
		}
	}
}

// findContainer returns the status with the given normalized container id (current or previous instance) and the
// image written in the matching spec.
func findContainer(pod *corev1.Pod, id string) (Container, bool) {
	var found *corev1.ContainerStatus
	forEachStatus(pod, func(s *corev1.ContainerStatus) {
		if found != nil {
			return
		}
		if NormalizeContainerID(s.ContainerID) == id {
			found = s
			return
		}
		if term := s.LastTerminationState.Terminated; term != nil && NormalizeContainerID(term.ContainerID) == id {
			found = s
		}
	})
	if found == nil {
		return Container{}, false
	}
	return Container{Name: found.Name, ID: id, Image: specImage(pod, found.Name, found.Image), ImageID: found.ImageID}, true
}

// specImage prefers the image as written in the spec; the status image is the runtime's resolved form
// ("docker.io/library/nginx:latest" for "nginx").
func specImage(pod *corev1.Pod, name, fallback string) string {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return pod.Spec.Containers[i].Image
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return pod.Spec.InitContainers[i].Image
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return pod.Spec.EphemeralContainers[i].Image
		}
	}
	return fallback
}
