package kube

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
)

func TestCheckNodeWarnsOnUnknownNode(t *testing.T) {
	forbidden := func(client *fake.Clientset) {
		client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, testNode, nil)
		})
	}
	tests := []struct {
		name  string
		objs  []runtime.Object
		setup func(*fake.Clientset)
		warn  bool
	}{
		{name: "node exists", objs: []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}}},
		{name: "no such node", objs: []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "other"}}}, warn: true},
		{name: "forbidden is quiet", setup: forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objs...)
			if tt.setup != nil {
				tt.setup(client)
			}
			tc := startCache(t, Config{}, client, Settings{})
			core, logs := observer.New(zapcore.DebugLevel)
			tc.logger = zap.New(core)
			tc.CheckNode(t.Context())
			warned := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("node not found").Len()
			if tt.warn {
				require.Equal(t, 1, warned, "a node name that matches no node is reported")
				assert.Equal(t, testNode, logs.FilterLevelExact(zapcore.WarnLevel).All()[0].ContextMap()["node"])
			} else {
				assert.Zero(t, warned)
			}
			gets := 0
			for _, a := range client.Actions() {
				if a.GetVerb() == "get" && a.GetResource().Resource == "nodes" {
					gets++
				}
			}
			assert.Equal(t, 1, gets, "one GET of the node")
		})
	}
	var nilCache *Cache
	nilCache.CheckNode(t.Context()) // Kubernetes off: nothing to check
}

func TestKeepLabelsForExclusions(t *testing.T) {
	pod := newPod("p", labels("app", "web", "team", "build", "tier", "x"), container("c", "nginx", "containerd://"+testID(1), ""))
	tests := []struct {
		name       string
		podLabels  []string
		keep       []string
		wantLabels map[string]any
	}{
		{name: "excluded label only", keep: []string{"team"}, wantLabels: map[string]any{"k8s.pod.label.team": "build"}},
		{name: "with selected labels", podLabels: []string{"app"}, keep: []string{"team"},
			wantLabels: map[string]any{"k8s.pod.label.app": "web", "k8s.pod.label.team": "build"}},
		{name: "all selected", podLabels: []string{"*"}, keep: []string{"team"},
			wantLabels: map[string]any{"k8s.pod.label.app": "web", "k8s.pod.label.team": "build", "k8s.pod.label.tier": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := startCache(t, Config{PodLabels: tt.podLabels}, fake.NewClientset(pod.DeepCopy()), Settings{KeepLabels: tt.keep})
			res := resourceWith("container.id", testID(1))
			require.Equal(t, StateFound, tc.Enrich(res))
			got := map[string]any{}
			for k, v := range res.Attributes().AsRaw() {
				if len(k) > len(attr.K8sPodLabel) && k[:len(attr.K8sPodLabel)] == attr.K8sPodLabel && k != attr.K8sPodLabel+podTemplateHashLabel {
					got[k] = v
				}
			}
			assert.Equal(t, tt.wantLabels, got)
			cached := tc.byIndex(indexPodUID, "uid-p")
			require.NotNil(t, cached)
			assert.Equal(t, "build", cached.Labels["team"], "the informer keeps the label an exclusion names")
		})
	}
}
