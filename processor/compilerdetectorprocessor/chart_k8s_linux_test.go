package compilerdetectorprocessor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/compilerwatch/compilerwatch/internal/helmtest"
	"github.com/compilerwatch/compilerwatch/internal/kubetest"
)

// warnings collects the API server's warning headers.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// TestChartInstallsIntoAPIServer renders the Helm chart with its defaults and with every optional object
// enabled, and applies each object to a real kube-apiserver with server-side apply, dry-run and strict field
// validation: the API's own schemas (and those of the ServiceMonitor, PodMonitor and SecurityContextConstraints
// CRDs under deploy/testdata/crds) validate them, and Pod Security admission in the namespace the docs
// prescribe raises no warning.
func TestChartInstallsIntoAPIServer(t *testing.T) {
	cluster := kubetest.Start(t)
	var warn warnings
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandlerWithContext = nil
	cfg.WarningHandler = &warn
	hc, err := rest.HTTPClientFor(cfg)
	require.NoError(t, err)
	t.Cleanup(hc.CloseIdleConnections)
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	require.NoError(t, err)
	disc, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, hc)
	require.NoError(t, err)
	admin, err := kubernetes.NewForConfigAndClient(cfg, hc)
	require.NoError(t, err)
	ctx := context.Background()

	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	files, err := filepath.Glob("../../deploy/testdata/crds/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 2)
	var crds []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, obj := range decodeObjects(t, raw) {
			_, err := dyn.Resource(crdGVR).Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"})
			require.NoError(t, err, obj.GetName())
			crds = append(crds, obj.GetName())
		}
	}
	for _, name := range crds {
		require.Eventually(t, func() bool {
			crd, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					return true
				}
			}
			return false
		}, 30*time.Second, 100*time.Millisecond, "CRD %s established", name)
	}

	const ns = "compilerwatch"
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	warn.take()

	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	for name, set := range map[string][]string{
		"defaults":   {"exporter.endpoint=otel:4317"},
		"no backend": {},
		"everything": {"exporter.endpoint=otel:4317", "logFindings=false", "clusterName=prod",
			"image.repository=registry.example/cw", "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"imagePullSecrets[0].name=regcred", "priorityClassName=system-node-critical",
			"capabilities.sysResource=true", "apparmor.unconfined=true", "selinux.spcT=true", "openshift.scc=true",
			"serviceMonitor.enabled=true", "podMonitor.enabled=true", "exporter.tls.existingSecret=otlp-tls",
			"exporter.tls.mutual=true", "exporter.headers.authorization=Bearer x", "compilerDetector.exclude.namespaces[0]=ci",
			"compilerDetector.namespaceLabels={team}", "compilerDetector.namespaceAnnotations={owner}",
			"receiver.prefilter=containers", "seccompProfile.type=Localhost", "seccompProfile.localhostProfile=compilerwatch.json"},
	} {
		t.Run(name, func(t *testing.T) {
			kinds := map[string]bool{}
			for _, obj := range decodeObjects(t, helmtest.Template(t, "cw", ns, set...)) {
				gvk := obj.GroupVersionKind()
				kinds[gvk.Kind] = true
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				require.NoError(t, err, gvk.String())
				var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
				if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
					ri = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
				}
				data, err := obj.MarshalJSON()
				require.NoError(t, err)
				_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
					DryRun: []string{metav1.DryRunAll}, FieldManager: "compilerwatch-chart-test", Force: ptr(true), FieldValidation: "Strict",
				})
				if apierrors.IsNotFound(err) {
					t.Fatalf("%s %s: %v", gvk.Kind, obj.GetName(), err)
				}
				require.NoError(t, err, "%s %s", gvk.Kind, obj.GetName())
				assert.Empty(t, warn.take(), "%s %s: API warnings", gvk.Kind, obj.GetName())
			}
			for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"} {
				assert.True(t, kinds[k], "rendered a %s", k)
			}
			if name == "everything" {
				for _, k := range []string{"Service", "ServiceMonitor", "PodMonitor", "SecurityContextConstraints"} {
					assert.True(t, kinds[k], "rendered a %s", k)
				}
			}
		})
	}
}

// decodeObjects splits a multi-document YAML stream into objects.
func decodeObjects(t *testing.T, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			require.NoError(t, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}
