package kube

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/runtime"
)

// benchCache returns a started cache holding n pods of one container each, whose GETs for owners have answered.
func benchCache(b *testing.B, n int) *Cache {
	b.Helper()
	objs := make([]runtime.Object, 0, n)
	for i := range n {
		objs = append(objs, newPod(fmt.Sprintf("p%d", i), ownedBy("DaemonSet", "agent"), labels("app", "a", "team", "t"),
			container("c", "registry.example/team/app:1.2.3", "containerd://"+testID(i), "registry.example/team/app@sha256:"+testID(i))))
	}
	c, err := New(Config{Enabled: ModeTrue, NodeName: testNode, PodLabels: []string{"app"}}, Settings{Client: fakeAPI(objs...), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Shutdown(b.Context()) })
	return c
}

func BenchmarkResolve(b *testing.B) {
	c := benchCache(b, 1000)
	id := testID(500)
	b.ReportAllocs()
	for b.Loop() {
		if _, st := c.Resolve(id, ""); st != StateFound {
			b.Fatal(st)
		}
	}
}

func BenchmarkResolveMiss(b *testing.B) {
	c := benchCache(b, 1000)
	id := testID(5000)
	b.ReportAllocs()
	for b.Loop() {
		if _, st := c.Resolve(id, "no-such-uid"); st != StateUnknown {
			b.Fatal(st)
		}
	}
}

// BenchmarkEnrich includes writing the attributes into a fresh resource, as the processor does once per
// ResourceLogs (one per container per batch).
func BenchmarkEnrich(b *testing.B) {
	c := benchCache(b, 1000)
	id := testID(500)
	b.ReportAllocs()
	for b.Loop() {
		res := pcommon.NewResource()
		res.Attributes().PutStr("container.id", id)
		if st := c.Enrich(res); st != StateFound {
			b.Fatal(st)
		}
	}
}
