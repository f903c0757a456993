package nodetest

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodTemplateHash is the pod-template-hash of every ReplicaSet DeploymentPod creates. The deployment controller
// uses a hash of the pod template; a fixed value in the same alphabet is enough here, because only the naming
// convention ("<deployment>-<hash>", the same hash as the pods' label) and the owner chain matter to a reader of
// the pod.
const PodTemplateHash = "6b9f7c5d8"

// DeploymentPod creates in namespace ns a Deployment named name whose pod template is pod's labels and spec, then
// the ReplicaSet and the Pod its controllers would create, and returns all three. No kube-controller-manager or
// scheduler runs with the node, so this mirrors what the deployment and replicaset controllers create: the
// ReplicaSet "<name>-<PodTemplateHash>" with the pod-template-hash label, owned by the Deployment (controller), and
// one pod named from "<replicaset>-" with the same labels, owned by the ReplicaSet (controller) and bound to the
// node by spec.nodeName. The template gets the label app=name (its selector); a Deployment's pods restart
// Always.
func DeploymentPod(ctx context.Context, client kubernetes.Interface, ns, name string, pod *corev1.Pod) (
	*appsv1.Deployment, *appsv1.ReplicaSet, *corev1.Pod, error,
) {
	labels := maps.Clone(pod.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app"] = name
	one := int32(1)
	spec := *pod.Spec.DeepCopy()
	spec.NodeName = "" // the scheduler's choice, not the template's
	spec.RestartPolicy = corev1.RestartPolicyAlways
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}

	dep, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: maps.Clone(labels)},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: maps.Clone(labels)},
			Template: template,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create deployment %s: %w", name, err)
	}

	rsLabels := maps.Clone(labels)
	rsLabels[appsv1.DefaultDeploymentUniqueLabelKey] = PodTemplateHash
	rsTemplate := *template.DeepCopy()
	rsTemplate.Labels = maps.Clone(rsLabels)
	rs, err := client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name + "-" + PodTemplateHash,
			Labels:          maps.Clone(rsLabels),
			OwnerReferences: []metav1.OwnerReference{controllerRef(dep, appsv1.SchemeGroupVersion.String(), "Deployment")},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: maps.Clone(rsLabels)},
			Template: rsTemplate,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return dep, nil, nil, fmt.Errorf("create replicaset for %s: %w", name, err)
	}

	podSpec := *rsTemplate.Spec.DeepCopy()
	podSpec.NodeName = NodeName
	created, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    rs.Name + "-",
			Labels:          maps.Clone(rsLabels),
			OwnerReferences: []metav1.OwnerReference{controllerRef(rs, appsv1.SchemeGroupVersion.String(), "ReplicaSet")},
		},
		Spec: podSpec,
	}, metav1.CreateOptions{})
	if err != nil {
		return dep, rs, nil, fmt.Errorf("create pod of %s: %w", rs.Name, err)
	}
	return dep, rs, created, nil
}

// controllerRef is the owner reference a controller sets on what it creates.
func controllerRef(owner metav1.Object, apiVersion, kind string) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion: apiVersion, Kind: kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: &yes, BlockOwnerDeletion: &yes,
	}
}
