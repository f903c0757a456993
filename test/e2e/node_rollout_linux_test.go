//go:build linux

package e2e_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/compilerwatch/compilerwatch/internal/nodetest"
)

// seqLoad is a pod that execs `/bin/busybox true <prefix><n>` every 20 ms, n counting up from 1.
type seqLoad struct {
	prefix string
}

// seen is one exec of the load as the sink received it.
type seen struct {
	cluster string // k8s.cluster.name: which collector generation reported it
	at      time.Time
}

// seqs returns each sequence number the sink received, with every report of it.
func (l seqLoad) seqs(c *chartNode) map[int][]seen {
	out := map[int][]seen{}
	for _, r := range sinkRecords(c.sink.logs.AllLogs()) {
		args := r.strs("process.command_args")
		if len(args) != 3 || !strings.HasPrefix(args[2], l.prefix) {
			continue
		}
		n, err := strconv.Atoi(args[2][len(l.prefix):])
		if err != nil {
			continue
		}
		cluster, _ := r.res["k8s.cluster.name"].(string)
		out[n] = append(out[n], seen{cluster: cluster, at: r.rec.Timestamp().AsTime()})
	}
	return out
}

// span returns the lowest and highest sequence number that cluster's collector reported (0, 0 for none).
func span(m map[int][]seen, cluster string) (lo, hi int) {
	for n, ss := range m {
		if !slices.ContainsFunc(ss, func(s seen) bool { return s.cluster == cluster }) {
			continue
		}
		if lo == 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return lo, hi
}

// at returns when cluster's collector saw exec n.
func at(m map[int][]seen, n int, cluster string) time.Time {
	for _, s := range m[n] {
		if s.cluster == cluster {
			return s.at
		}
	}
	return time.Time{}
}

// waitSeqs polls the sink until cond holds, up to 120 s. It returns the sequence numbers received 3 s later
// (the exporter's batches may arrive out of order), up to the highest one when cond held.
func (l seqLoad) waitSeqs(t *testing.T, c *chartNode, what string, cond func(map[int][]seen) bool) map[int][]seen {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		m := l.seqs(c)
		if cond(m) {
			hi := 0
			for n := range m {
				hi = max(hi, n)
			}
			time.Sleep(3 * time.Second)
			later := l.seqs(c)
			for n := range later {
				if n > hi {
					delete(later, n)
				}
			}
			return later
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 120s (%d sequence numbers received)", what, len(m))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func rolloutCluster(gen int) string { return "cw-rollout-" + strconv.Itoa(gen) }

// TestNodeCollectorRollout measures how long execs go unseen on a real node while the collector rolls to a new
// configuration, with the chart's pod template (see TestNodeCollectorPod). Each configuration sets its own
// clusterName, so every record says which collector reported it, and exports every container exec
// (onlyFlagged false; prefilter containers keeps the host's execs out). A pod execs a numbered marker every
// 20 ms. There is no DaemonSet controller, so the test does what it does on the node, one update strategy
// after the other:
//   - maxSurge 0, maxUnavailable 1 (the DaemonSet default): delete the old pod, wait until it is gone, create
//     the new one. The gap is logged: the last number the old collector reported, the first the new one did,
//     the numbers between them that nobody reported, and the time between those two execs.
//   - maxSurge 1, maxUnavailable 0 (the chart's default): create the new pod, wait until it is Ready, delete the
//     old one. No number goes unreported; the overlap's duplicates are logged.
//
// Exact: each collector's records carry its own configuration's cluster name, the old collector reports nothing
// after it is gone, and every exec from the new collector's first on is reported. The scheduler's binding of the
// new pod (the test sets spec.nodeName) is not part of the measured gap.
func TestNodeCollectorRollout(t *testing.T) {
	c := startChartNode(t)
	ctx := context.Background()
	render := func(gen int) *chartRelease {
		return c.render(t, "clusterName="+rolloutCluster(gen), "compilerDetector.onlyFlagged=false", "receiver.prefilter=containers")
	}
	ds := c.install(t, render(1))
	first := c.waitReady(t, c.collectorPod(t, ds, ds.Name+"-1"))

	load := seqLoad{prefix: "cw-seq-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"}
	_, err := c.admin.CoreV1().Pods("default").Create(ctx, nodetest.ShellPod("load", "load", nodetest.BusyboxImage,
		corev1.RestartPolicyNever, "i=0; while :; do i=$((i+1)); /bin/busybox true "+load.prefix+"$i; /bin/busybox usleep 20000; done"),
		metav1.CreateOptions{})
	require.NoError(t, err)
	load.waitSeqs(t, c, "the first collector reports the load", func(m map[int][]seen) bool {
		_, hi := span(m, rolloutCluster(1))
		return hi > 50
	})

	// maxSurge 0, maxUnavailable 1: the old pod goes first.
	ds = c.upgrade(t, render(2))
	deleted := time.Now()
	c.deleteAndWait(t, first)
	gone := time.Now()
	second := c.collectorPod(t, ds, ds.Name+"-2")
	second = c.waitReady(t, second)
	ready := time.Now()
	m := load.waitSeqs(t, c, "the second collector reports the load", func(m map[int][]seen) bool {
		lo, hi := span(m, rolloutCluster(2))
		return lo > 0 && hi > lo+100
	})
	_, lastOld := span(m, rolloutCluster(1))
	firstNew, hiNew := span(m, rolloutCluster(2))
	require.Greater(t, firstNew, lastOld, "the second collector starts after the first is gone")
	for n := lastOld + 1; n < firstNew; n++ {
		assert.Empty(t, m[n], "exec %d between the last old and the first new report", n)
	}
	for n := firstNew; n <= hiNew; n++ {
		require.Len(t, m[n], 1, "exec %d: the second collector reports every exec from its first on", n)
		assert.Equal(t, rolloutCluster(2), m[n][0].cluster, "exec %d: the new configuration", n)
	}
	for n := 1; n <= lastOld; n++ {
		for _, s := range m[n] {
			assert.Equal(t, rolloutCluster(1), s.cluster, "exec %d before the rollout", n)
		}
	}
	gap := at(m, firstNew, rolloutCluster(2)).Sub(at(m, lastOld, rolloutCluster(1)))
	t.Logf("maxUnavailable 1: last exec reported by the old collector #%d, first by the new #%d: %d execs unseen, %s between them; "+
		"delete -> old pod gone %s, gone -> new pod Ready %s (created by the test at once)",
		lastOld, firstNew, firstNew-lastOld-1, gap.Round(time.Millisecond),
		gone.Sub(deleted).Round(time.Millisecond), ready.Sub(gone).Round(time.Millisecond))

	// maxSurge 1, maxUnavailable 0: the new pod first, the old one goes when the new one is Ready.
	ds = c.upgrade(t, render(3))
	_, from := span(m, rolloutCluster(2))
	third := c.waitReady(t, c.collectorPod(t, ds, ds.Name+"-3"))
	surgeReady := time.Now()
	c.deleteAndWait(t, second)
	oldGone := time.Since(surgeReady)
	m = load.waitSeqs(t, c, "the third collector reports the load after the second is gone", func(m map[int][]seen) bool {
		_, hiOld := span(m, rolloutCluster(2))
		_, hi := span(m, rolloutCluster(3))
		return hi > hiOld+100
	})
	_, lastOld = span(m, rolloutCluster(2))
	firstNew, hiNew = span(m, rolloutCluster(3))
	var unseen, dup []int
	for n := from; n <= hiNew; n++ {
		switch len(m[n]) {
		case 0:
			unseen = append(unseen, n)
		case 2:
			dup = append(dup, n)
		}
		for _, s := range m[n] {
			assert.Contains(t, []string{rolloutCluster(2), rolloutCluster(3)}, s.cluster, "exec %d", n)
		}
	}
	for n := firstNew; n <= hiNew; n++ {
		assert.True(t, slices.ContainsFunc(m[n], func(s seen) bool { return s.cluster == rolloutCluster(3) }),
			"exec %d: the third collector reports every exec from its first on", n)
	}
	assert.Empty(t, unseen, "with maxSurge 1 no exec goes unseen")
	assert.LessOrEqual(t, firstNew, lastOld+1, "the collectors overlap or meet")
	t.Logf("maxSurge 1: new collector's first exec #%d, old collector's last #%d: %d execs unseen, %d reported twice "+
		"(%s of overlap); new pod Ready -> old pod gone %s; third pod %s",
		firstNew, lastOld, len(unseen), len(dup),
		at(m, lastOld, rolloutCluster(2)).Sub(at(m, firstNew, rolloutCluster(3))).Round(time.Millisecond),
		oldGone.Round(time.Millisecond), third.Name)
}
