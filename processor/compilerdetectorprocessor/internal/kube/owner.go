package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload is the owning workload of a pod. Empty fields mean "none" or "not known".
type Workload struct {
	Deployment  string
	ReplicaSet  string
	DaemonSet   string
	StatefulSet string
	Job         string
	CronJob     string
}

const (
	kindReplicaSet  = "ReplicaSet"
	kindDeployment  = "Deployment"
	kindDaemonSet   = "DaemonSet"
	kindStatefulSet = "StatefulSet"
	kindJob         = "Job"
	kindCronJob     = "CronJob"
)

// ownerKey names a ReplicaSet or Job whose own owner we need.
type ownerKey struct {
	namespace, kind, name string
}

type ownerEntry struct {
	// parentKind/parentName is the controller of the ReplicaSet or Job ("" when it has none).
	parentKind, parentName string
	// failed: the GET was forbidden or failed; the naming rules answer until the entry expires.
	failed   bool
	resolved bool // a GET answered (successfully or not)
	pending  bool // queued or in flight
	expires  time.Time
}

// owners resolves the workload above a pod's ReplicaSet or Job with cached, asynchronous GETs. It never lists or
// watches cluster-wide: a node agent watching every ReplicaSet of a large cluster costs more than the pods it
// serves. Lookups return at once; a miss queues a GET and answers with the naming rules meanwhile.
type owners struct {
	client API
	logger *zap.Logger
	stats  *counters
	health *health
	// observed: the transport reports transport-level failures; do not report them twice.
	observed bool
	ttl      time.Duration
	negTTL   time.Duration
	timeout  time.Duration
	now      func() time.Time

	mu        sync.Mutex
	entries   map[ownerKey]*ownerEntry
	nextSweep int
	forbidden map[string]bool // kinds already logged as forbidden, to log once

	queue chan ownerKey
}

func newOwners(client API, logger *zap.Logger, stats *counters, h *health, observed bool, set *Settings) *owners {
	return &owners{
		client:    client,
		logger:    logger,
		stats:     stats,
		health:    h,
		observed:  observed,
		ttl:       set.OwnerTTL,
		negTTL:    set.OwnerNegativeTTL,
		timeout:   set.OwnerTimeout,
		now:       time.Now,
		entries:   make(map[ownerKey]*ownerEntry),
		nextSweep: minSweep,
		forbidden: make(map[string]bool),
		queue:     make(chan ownerKey, ownerQueueSize),
	}
}

const (
	ownerQueueSize = 1024
	minSweep       = 256
)

// run processes queued GETs until ctx is done. Callers run it on goroutines they join.
func (o *owners) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case key := <-o.queue:
			o.fetch(ctx, key)
		}
	}
}

// prefetch queues the GET for a pod's owner, so it is usually answered before the pod's first exec: a pod is added
// at scheduling time, well before its containers start.
func (o *owners) prefetch(pod *corev1.Pod) {
	if ref := controllerOf(pod); ref != nil && (ref.Kind == kindReplicaSet || ref.Kind == kindJob) {
		o.lookup(ownerKey{pod.Namespace, ref.Kind, ref.Name})
	}
}

// workload derives the workload of a trimmed pod. It does not block.
func (o *owners) workload(pod *corev1.Pod) Workload {
	var w Workload
	ref := controllerOf(pod)
	if ref == nil {
		return w
	}
	switch ref.Kind {
	case kindDaemonSet:
		w.DaemonSet = ref.Name
	case kindStatefulSet:
		w.StatefulSet = ref.Name
	case kindReplicaSet:
		w.ReplicaSet = ref.Name
		if kind, name, ok := o.lookup(ownerKey{pod.Namespace, kindReplicaSet, ref.Name}); ok {
			if kind == kindDeployment {
				w.Deployment = name
			}
		} else {
			w.Deployment = deploymentFromReplicaSet(ref.Name, pod.Labels[podTemplateHashLabel])
		}
	case kindJob:
		w.Job = ref.Name
		if kind, name, ok := o.lookup(ownerKey{pod.Namespace, kindJob, ref.Name}); ok {
			if kind == kindCronJob {
				w.CronJob = name
			}
		} else {
			w.CronJob = cronJobFromJob(ref.Name, o.now())
		}
	}
	return w
}

// lookup returns the cached parent of key, ok=false when no GET has answered yet or the last one failed (callers
// then use the naming rules). A missing or expired entry queues a GET; an expired answer is still served meanwhile.
func (o *owners) lookup(key ownerKey) (kind, name string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entries[key]
	if e == nil {
		e = &ownerEntry{}
		o.entries[key] = e
		o.sweepLocked()
	}
	if !e.pending && (!e.resolved || !o.now().Before(e.expires)) {
		select {
		case o.queue <- key:
			e.pending = true
		default:
			// Queue full (a burst of new workloads): the next lookup retries.
		}
	}
	if !e.resolved || e.failed {
		return "", "", false
	}
	return e.parentKind, e.parentName, true
}

// sweepLocked drops entries that expired long ago, when the map has doubled since the last sweep, so the cache
// tracks the workloads recently seen on the node rather than every one ever seen.
func (o *owners) sweepLocked() {
	if len(o.entries) < o.nextSweep {
		return
	}
	cutoff := o.now().Add(-o.ttl)
	for k, e := range o.entries {
		if e.resolved && !e.pending && e.expires.Before(cutoff) {
			delete(o.entries, k)
		}
	}
	o.nextSweep = max(minSweep, 2*len(o.entries))
}

func (o *owners) fetch(ctx context.Context, key ownerKey) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var (
		meta *metav1.ObjectMeta
		err  error
	)
	switch key.kind {
	case kindReplicaSet:
		rs, e := o.client.GetReplicaSet(ctx, key.namespace, key.name)
		if e == nil {
			meta = &rs.ObjectMeta
		}
		err = e
	case kindJob:
		job, e := o.client.GetJob(ctx, key.namespace, key.name)
		if e == nil {
			meta = &job.ObjectMeta
		}
		err = e
	}

	entry := ownerEntry{resolved: true}
	switch {
	case err == nil:
		o.stats.ownerGets.Add(1)
		entry.expires = o.now().Add(o.ttl)
		if ref := metav1.GetControllerOfNoCopy(meta); ref != nil {
			entry.parentKind, entry.parentName = ref.Kind, ref.Name
		}
		o.health.success()
	case ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded:
		// Shutdown: leave the entry unresolved, without counting an error.
		o.mu.Lock()
		if e := o.entries[key]; e != nil {
			e.pending = false
		}
		o.mu.Unlock()
		return
	default:
		o.stats.ownerGets.Add(1)
		o.stats.ownerGetErrors.Add(1)
		entry.failed = true
		entry.expires = o.now().Add(o.negTTL)
		switch {
		case apierrors.IsForbidden(err):
			o.logForbidden(key.kind, err)
		case apierrors.IsNotFound(err):
			// The ReplicaSet or Job is gone (the pod is being orphaned or deleted); the naming rules still apply.
		default:
			if !o.observed || !transportReported(err) {
				o.health.failure(err)
			}
		}
	}
	o.mu.Lock()
	o.entries[key] = &entry
	o.mu.Unlock()
}

func (o *owners) logForbidden(kind string, err error) {
	o.mu.Lock()
	first := !o.forbidden[kind]
	o.forbidden[kind] = true
	o.mu.Unlock()
	if first {
		o.logger.Warn("Kubernetes RBAC forbids getting owners; the workload name falls back to naming rules. "+
			"Grant get on replicasets (apps) and jobs (batch) for exact names.",
			zap.String("kind", kind), zap.Error(err))
	}
}

func controllerOf(pod *corev1.Pod) *metav1.OwnerReference {
	return metav1.GetControllerOfNoCopy(pod)
}

// deploymentFromReplicaSet applies the Deployment controller's naming rule: a ReplicaSet it creates is named
// "<deployment>-<pod-template-hash>" and its pods carry that hash label. Both must agree, so a bare ReplicaSet is
// not mistaken for a Deployment's.
func deploymentFromReplicaSet(rsName, hash string) string {
	if hash == "" || !strings.HasSuffix(rsName, "-"+hash) {
		return ""
	}
	return rsName[:len(rsName)-len(hash)-1]
}

// cronJobFromJob applies the CronJob controller's naming rule: "<cronjob>-<scheduled time in minutes since the
// epoch>". The suffix must decode to a plausible schedule time (after 2015, before tomorrow), so a Job named
// "migrate-2" is not taken for a CronJob's.
func cronJobFromJob(jobName string, now time.Time) string {
	i := strings.LastIndexByte(jobName, '-')
	if i <= 0 || i == len(jobName)-1 {
		return ""
	}
	suffix := jobName[i+1:]
	if strings.TrimLeft(suffix, "0123456789") != "" {
		return "" // ParseInt would accept a sign
	}
	minutes, err := strconv.ParseInt(suffix, 10, 64)
	if err != nil || minutes <= 0 || minutes > now.Unix()/60+24*60 {
		return ""
	}
	if time.Unix(minutes*60, 0).Before(cronJobEpoch) {
		return ""
	}
	return jobName[:i]
}

// cronJobEpoch predates CronJob (alpha in Kubernetes 1.4, 2016).
var cronJobEpoch = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
