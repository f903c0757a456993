package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// State says how much of a record's Kubernetes context was found.
type State int

const (
	// StateUnknown: neither the container nor the pod is in the cache.
	StateUnknown State = iota
	// StateContainerPending: the pod is known (by uid) but the container id is not yet in its status. Pod-level
	// attributes are available; container-level ones may follow once the kubelet reports the container.
	StateContainerPending
	// StateFound: everything the record identifies was found (the container when a container id was given, else
	// the pod).
	StateFound
)

func (s State) String() string {
	switch s {
	case StateContainerPending:
		return "container_pending"
	case StateFound:
		return "found"
	default:
		return "unknown"
	}
}

// Pod is the pod-level context. Labels and Annotations are shared with the cache: read-only.
type Pod struct {
	Name, Namespace, UID, NodeName string
	Labels, Annotations            map[string]string
}

// Container is the container-level context.
type Container struct {
	Name string
	// ID is the full container id (64 hex, runtime prefix stripped).
	ID string
	// Image is the image as written in the pod spec.
	Image string
	// ImageID is the status imageID ("repo@sha256:..." or a bare image id).
	ImageID string
}

// Result is what a lookup found. Container is zero unless the state is StateFound with a container id.
type Result struct {
	Pod       Pod
	Container Container
	Workload  Workload
	// Namespace is set when namespace labels or annotations are configured and the pod's namespace is known.
	Namespace Namespace
}

// Lookup is what the processor needs; *Cache implements it and tests can fake it.
type Lookup interface {
	// Resolve looks a record up by container id (any runtime prefix is accepted) and, failing that, by pod uid.
	// It never blocks.
	Resolve(containerID, podUID string) (Result, State)
	// Enrich resolves the resource's container.id and k8s.pod.uid and writes the attributes found where they are
	// absent. It returns StateUnknown without counting a miss for resources with neither (host processes).
	Enrich(res pcommon.Resource) State
	// WaitForContainer blocks until the container id is in the cache or ctx is done, and reports which.
	WaitForContainer(ctx context.Context, containerID string) bool
}

// Settings are the non-config inputs of New. Zero values mean the documented defaults.
type Settings struct {
	Logger *zap.Logger
	// Client replaces the client built from Config (tests pass a fake clientset through kubetest.ClientsetAPI).
	// With a Client, enabled auto means on.
	Client API
	// StartTimeout bounds how long Start waits for the initial sync when the API server answers (default 10s). The
	// API server check before it is bounded by pingTimeout as well: Start never waits long for an absent API
	// server.
	StartTimeout time.Duration
	// OwnerTTL is how long a ReplicaSet's or Job's owner is cached (default 10m); OwnerNegativeTTL how long a failed
	// GET is (default 1m); OwnerTimeout bounds each GET (default 5s); OwnerWorkers run GETs (default 2).
	OwnerTTL         time.Duration
	OwnerNegativeTTL time.Duration
	OwnerTimeout     time.Duration
	OwnerWorkers     int
	// OnStatusChange, when set, is called from Start with the first Status, then on each change of its Synced,
	// Reachable or Denied parts, in order and never concurrently. It must not call back into the Cache.
	OnStatusChange func(Status)
	// KeepLabels are label keys kept and copied as k8s.pod.label.<key> besides kubernetes.pod_labels: the keys
	// that exclude.pod_labels matches on.
	KeepLabels []string

	env *environment // tests only; nil = the process environment
}

func (s *Settings) applyDefaults() {
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
	if s.StartTimeout <= 0 {
		s.StartTimeout = 10 * time.Second
	}
	if s.OwnerTTL <= 0 {
		s.OwnerTTL = 10 * time.Minute
	}
	if s.OwnerNegativeTTL <= 0 {
		s.OwnerNegativeTTL = time.Minute
	}
	if s.OwnerTimeout <= 0 {
		s.OwnerTimeout = 5 * time.Second
	}
	if s.OwnerWorkers <= 0 {
		s.OwnerWorkers = 2
	}
}

// Cache is the node's pod cache. Methods are safe for concurrent use. A nil *Cache (Kubernetes off) is valid: its
// lookups find nothing and Start/Shutdown do nothing.
type Cache struct {
	logger   *zap.Logger
	client   API
	nodeName string
	selector string
	// observed: the client was built here with the health-tracking transport, which already reports every
	// transport-level failure.
	observed bool
	timeout  time.Duration
	workers  int
	// waitAtStart (wait_for_metadata: true) makes Start wait up to waitTimeout for the first sync and fail without it.
	waitAtStart bool
	waitTimeout time.Duration

	informer cache.SharedIndexInformer
	indexer  cache.Indexer
	deleted  *deletedPods
	owners   *owners
	// namespaces is nil unless namespace labels or annotations are configured.
	namespaces *namespaces
	applier    applier
	stats      counters
	health     *health

	changedMu sync.Mutex
	changed   chan struct{} // closed and replaced on every pod add or update, to wake WaitForContainer

	lifeMu  sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var _ Lookup = (*Cache)(nil)

// New builds the cache from the kubernetes config section. It returns (nil, nil) when Kubernetes is off: enabled
// false, or auto outside a cluster. It does not touch the network; Start does.
func New(cfg Config, set Settings) (*Cache, error) {
	set.applyDefaults()
	env := defaultEnvironment()
	if set.env != nil {
		env = *set.env
	}
	if cfg.Enabled == ModeFalse {
		return nil, nil
	}
	c := &Cache{
		logger:      set.Logger,
		timeout:     set.StartTimeout,
		waitAtStart: cfg.WaitForMetadata.IsBool && cfg.WaitForMetadata.AtStart,
		waitTimeout: cfg.WaitForMetadataTimeout,
		workers:     set.OwnerWorkers,
		applier: newApplier(withKeys(cfg.PodLabels, set.KeepLabels), cfg.PodAnnotations,
			cfg.NamespaceLabels, cfg.NamespaceAnnotations),
		changed: make(chan struct{}),
		deleted: newDeletedPods(),
	}
	c.health = &health{logger: set.Logger, stats: &c.stats, onChange: set.OnStatusChange}
	c.client = set.Client
	var err error
	if c.client == nil {
		var rc *rest.Config
		rc, err = restConfig(&cfg, env)
		if errors.Is(err, errDisabled) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if c.client, err = newAPI(rc, c.health); err != nil {
			return nil, err
		}
		c.observed = true
		routeKlog(c.logger)
	}
	if c.nodeName, err = nodeName(&cfg, env); err != nil {
		return nil, err
	}
	c.health.node = c.nodeName
	c.selector = fields.OneTermEqualSelector("spec.nodeName", c.nodeName).String()
	c.owners = newOwners(c.client, c.logger, &c.stats, c.health, c.observed, &set)
	if cfg.namespaces() {
		c.namespaces, err = newNamespaces(c.client, c.applier.nsLabels, c.applier.nsAnnotations, c.logger, &c.stats)
		if err != nil {
			return nil, err
		}
	}

	trimmer := podTrimmer{labels: c.applier.labels, annotations: c.applier.annotations}
	c.informer = cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(c.listWatch(), c.client),
		&corev1.Pod{},
		cache.SharedIndexInformerOptions{Indexers: indexers(), ObjectDescription: "pods on node " + c.nodeName},
	)
	if err := c.informer.SetTransform(trimmer.transform); err != nil {
		return nil, err
	}
	if err := c.informer.SetWatchErrorHandlerWithContext(c.onWatchError); err != nil {
		return nil, err
	}
	if _, err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onPod(obj) },
		UpdateFunc: func(_, obj any) { c.onPod(obj) },
		DeleteFunc: func(obj any) { c.deleted.add(obj) },
	}); err != nil {
		return nil, err
	}
	c.indexer = c.informer.GetIndexer()
	return c, nil
}

// nodeName is kubernetes.node_name, else the variable filter.node_from_env_var names, else K8S_NODE_NAME.
func nodeName(cfg *Config, env environment) (string, error) {
	if cfg.NodeName != "" {
		return cfg.NodeName, nil
	}
	if v := cfg.Filter.NodeFromEnvVar; v != "" {
		if name := env.getenv(v); name != "" {
			return name, nil
		}
		return "", fmt.Errorf(`kubernetes: "kubernetes.filter.node_from_env_var" names %s, which is unset or empty `+
			`(in a DaemonSet, set it from the downward API field spec.nodeName)`, v)
	}
	if name := env.getenv(nodeNameEnv); name != "" {
		return name, nil
	}
	return "", errors.New(`kubernetes: the node name is unknown: set "kubernetes.node_name" or the ` +
		nodeNameEnv + ` environment variable (in a DaemonSet, from the downward API field spec.nodeName)`)
}

// listWatch lists and watches this node's pods. The server filters by field selector; the client filters again
// because fake clientsets ignore field selectors, and a pod of another node in the cache would be a wrong answer.
func (c *Cache) listWatch() *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = c.selector
			list, err := c.client.ListPods(ctx, opts)
			if err != nil {
				c.refused("list", err)
				return nil, err
			}
			c.health.success()
			c.health.allowedVerb("list")
			kept := list.Items[:0]
			for i := range list.Items {
				if list.Items[i].Spec.NodeName == c.nodeName {
					kept = append(kept, list.Items[i])
				}
			}
			list.Items = kept
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = c.selector
			w, err := c.client.WatchPods(ctx, opts)
			if err != nil {
				c.refused("watch", err)
				return nil, err
			}
			c.health.success()
			c.health.allowedVerb("watch")
			return newNodeFilter(w, c.nodeName), nil
		},
	}
}

// pingTimeout bounds the API server check in Start, so that a black-holed API server delays the start of capture
// by at most this long.
const pingTimeout = 2 * time.Second

// Start checks the API server (bounded), starts the informer and owner workers, and, when the API server
// answered, waits (bounded) for the initial sync. It does not fail because of the API server: unreachable,
// refused (401, 403) or slow, the condition is logged once, reported through Settings.OnStatusChange and
// Stats, and the informer keeps retrying in the background (client-go's reflector backs off from 0.8s, doubling
// to 30s, with up to as much again in jitter). Until the cache syncs, lookups find nothing and records flow without Kubernetes attributes.
// Configuration errors (no credentials, a kubeconfig that does not parse) are New's.
func (c *Cache) Start(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.started {
		return errors.New("kubernetes: pod cache already started")
	}
	c.started = true
	begin := time.Now()

	// resourceVersion 0 lets the API server answer from its watch cache: a quorum read of etcd from every node of
	// a rollout would load the control plane for a reachability check.
	pingCtx, cancelPing := context.WithTimeout(ctx, min(pingTimeout, c.timeout))
	_, err := c.client.ListPods(pingCtx, metav1.ListOptions{FieldSelector: c.selector, Limit: 1, ResourceVersion: "0"})
	cancelPing()
	if err != nil {
		c.refused("list", err)
		c.classify(err)
	} else {
		c.health.success()
		c.health.allowedVerb("list")
	}
	c.health.publish()

	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	synced := c.informer.HasSyncedChecker().Done()
	c.wg.Go(func() { c.informer.RunWithContext(runCtx) })
	c.wg.Go(func() {
		select {
		case <-synced:
			c.health.markSynced(len(c.indexer.ListKeys()))
		case <-runCtx.Done():
		}
	})
	for range c.workers {
		c.wg.Go(func() { c.owners.run(runCtx) })
	}
	if c.namespaces != nil {
		c.wg.Go(func() { c.namespaces.informer.RunWithContext(runCtx) })
	}
	if c.waitAtStart {
		return c.waitForSync(ctx, begin, synced)
	}
	if err != nil {
		return nil
	}

	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case <-synced:
		// Synced as Start returns, not when the goroutine watching the sync next runs.
		c.health.markSynced(len(c.indexer.ListKeys()))
	case <-ctx.Done():
	case <-timer.C:
		c.logger.Warn("Kubernetes pod cache not synced yet; records flow without Kubernetes attributes until it is",
			zap.String("node", c.nodeName), zap.Duration("waited", c.timeout))
	}
	return nil
}

// waitForSync is Start's wait of wait_for_metadata: true, contrib's meaning: Start returns once the cache (pods,
// and namespaces when configured) has synced, and fails, stopping what it started, when it has not within
// wait_for_metadata_timeout.
func (c *Cache) waitForSync(ctx context.Context, begin time.Time, podsSynced <-chan struct{}) error {
	timeout := c.waitTimeout
	if timeout <= 0 {
		timeout = DefaultWaitForMetadataTimeout
	}
	// The timeout counts from Start's beginning: the API server check is part of the wait.
	ctx, cancel := context.WithDeadline(ctx, begin.Add(timeout))
	defer cancel()
	waits := []<-chan struct{}{podsSynced}
	if c.namespaces != nil {
		waits = append(waits, c.namespaces.informer.HasSyncedChecker().Done())
	}
	for i, synced := range waits {
		select {
		case <-synced:
			if i == 0 {
				c.health.markSynced(len(c.indexer.ListKeys()))
			}
			continue
		case <-ctx.Done():
		}
		what, why := "pod cache", ctx.Err().Error()
		if i == 1 {
			what = "namespace cache"
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = "not synced after " + timeout.String()
			st := c.health.status()
			switch {
			case len(st.Denied) > 0:
				why += ": RBAC does not allow " + strings.Join(st.Denied, " and ") + " on pods"
			case !st.Reachable:
				why += ": the API server is not reachable"
			case i == 1 && c.namespaces.denied.Load():
				why += ": RBAC does not allow list or watch on namespaces"
			}
			if st.Err != nil && i == 0 {
				why += " (" + st.Err.Error() + ")"
			}
		}
		c.stopLocked()
		return fmt.Errorf(`kubernetes: "kubernetes.wait_for_metadata" is true and the %s of node %s is %s `+
			`(set "kubernetes.wait_for_metadata_timeout", or leave wait_for_metadata unset to start without waiting)`,
			what, c.nodeName, why)
	}
	return nil
}

// refused reports a 401 or 403 answer to a list or watch of pods; other errors are left to classify.
func (c *Cache) refused(verb string, err error) {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		c.health.deniedVerb(verb, err)
	}
}

// classify reports a failed list or watch of pods that is not a refusal: a failure without an answer makes the
// API server unreachable, unless the transport has already seen it; an answer that is an error for another reason
// (404, 429 after client-go's own retries) is counted only, since the server did answer.
func (c *Cache) classify(err error) {
	var status apierrors.APIStatus
	switch {
	case errors.Is(err, context.Canceled):
		// Our own shutdown.
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		// Reported by refused, where the verb is known.
	case errors.As(err, &status) && status.Status().Code > 0 && status.Status().Code < http.StatusInternalServerError:
		c.stats.apiErrors.Add(1)
		c.logger.Debug("Kubernetes API server refused a pod request", zap.Error(err))
	case c.observed && transportReported(err):
		// The transport has counted and reported it.
	default:
		c.health.failure(err)
	}
}

// Following reports whether the cache follows the node's pods (Status().OK(), without the copy): synced, the API
// server answering, list and watch allowed. False for a nil Cache.
func (c *Cache) Following() bool {
	if c == nil {
		return false
	}
	return c.health.ok()
}

// Status returns the cache's view of the API server (the zero Status for a nil Cache).
func (c *Cache) Status() Status {
	if c == nil {
		return Status{}
	}
	return c.health.status()
}

// Shutdown stops the informer and owner workers and waits for them, bounded by ctx.
func (c *Cache) Shutdown(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	done := make(chan struct{})
	go func() {
		c.stopLocked()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cache) stopLocked() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
}

func (c *Cache) onWatchError(_ context.Context, _ *cache.Reflector, err error) {
	if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, io.EOF) {
		// The normal life of a watch: the reflector relists.
		c.logger.Debug("Kubernetes pod watch restarting", zap.Error(err))
		return
	}
	c.logger.Debug("Kubernetes pod list or watch failed; retrying", zap.Error(err))
	c.classify(err)
}

func (c *Cache) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	c.health.success()
	c.owners.prefetch(pod)
	c.changedMu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.changedMu.Unlock()
}

func (c *Cache) changedCh() <-chan struct{} {
	c.changedMu.Lock()
	defer c.changedMu.Unlock()
	return c.changed
}

// WaitForContainer implements Lookup.
func (c *Cache) WaitForContainer(ctx context.Context, containerID string) bool {
	id := NormalizeContainerID(containerID)
	if c == nil || id == "" {
		return false
	}
	for {
		// Take the channel before checking, so an update between the check and the select still wakes us.
		ch := c.changedCh()
		if c.byIndex(indexContainerID, id) != nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// byIndex looks in the live pods, then in the recently deleted ones.
func (c *Cache) byIndex(index, key string) *corev1.Pod {
	objs, err := c.indexer.ByIndex(index, key)
	if err != nil || len(objs) == 0 {
		return c.deleted.byIndex(index, key)
	}
	pod, _ := objs[0].(*corev1.Pod)
	return pod
}

// Resolve implements Lookup.
func (c *Cache) Resolve(containerID, podUID string) (Result, State) {
	if c == nil {
		return Result{}, StateUnknown
	}
	id := NormalizeContainerID(containerID)
	if id != "" {
		if pod := c.byIndex(indexContainerID, id); pod != nil {
			if ctr, ok := findContainer(pod, id); ok {
				c.stats.hits.Add(1)
				return c.result(pod, ctr), StateFound
			}
		}
	}
	if podUID != "" {
		if pod := c.byIndex(indexPodUID, podUID); pod != nil {
			if id != "" {
				c.stats.pending.Add(1)
				return c.result(pod, Container{}), StateContainerPending
			}
			c.stats.hits.Add(1)
			return c.result(pod, Container{}), StateFound
		}
	}
	c.stats.misses.Add(1)
	return Result{}, StateUnknown
}

func (c *Cache) result(pod *corev1.Pod, ctr Container) Result {
	return Result{
		Pod: Pod{
			Name:        pod.Name,
			Namespace:   pod.Namespace,
			UID:         string(pod.UID),
			NodeName:    pod.Spec.NodeName,
			Labels:      pod.Labels,
			Annotations: pod.Annotations,
		},
		Container: ctr,
		Workload:  c.owners.workload(pod),
		Namespace: c.namespaces.get(pod.Namespace),
	}
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	return Stats{
		Pods:             len(c.indexer.ListKeys()),
		Hits:             c.stats.hits.Load(),
		ContainerPending: c.stats.pending.Load(),
		Misses:           c.stats.misses.Load(),
		APIErrors:        c.stats.apiErrors.Load(),
		OwnerGets:        c.stats.ownerGets.Load(),
		OwnerGetErrors:   c.stats.ownerGetErrors.Load(),
		APIReachable:     c.health.reachable(),
	}
}

// nodeFilter drops watch events of pods on other nodes. watch.Filter would do, but its goroutine blocks forever
// on a send once the reflector stops reading; this one exits on Stop.
type nodeFilter struct {
	in   watch.Interface
	out  chan watch.Event
	stop chan struct{}
	once sync.Once
	node string
}

func newNodeFilter(in watch.Interface, node string) *nodeFilter {
	f := &nodeFilter{in: in, out: make(chan watch.Event), stop: make(chan struct{}), node: node}
	go f.loop()
	return f
}

func (f *nodeFilter) ResultChan() <-chan watch.Event { return f.out }

func (f *nodeFilter) Stop() {
	f.once.Do(func() {
		close(f.stop)
		f.in.Stop()
	})
}

func (f *nodeFilter) loop() {
	defer close(f.out)
	for {
		var e watch.Event
		var ok bool
		select {
		case <-f.stop:
			return
		case e, ok = <-f.in.ResultChan():
			if !ok {
				return
			}
		}
		if pod, isPod := e.Object.(*corev1.Pod); isPod && (e.Type == watch.Added || e.Type == watch.Modified || e.Type == watch.Deleted) && pod.Spec.NodeName != f.node {
			continue
		}
		select {
		case f.out <- e:
		case <-f.stop:
			return
		}
	}
}
