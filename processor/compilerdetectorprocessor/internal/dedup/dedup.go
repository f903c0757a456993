// Package dedup suppresses repeated findings per key within a window, with bounded memory, and builds the
// summary records of the repeats it suppressed.
package dedup // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.uber.org/zap"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

// Config is the dedup section: repeated findings per key within a window are suppressed.
type Config struct {
	Window time.Duration `mapstructure:"window"`
	Key    []string      `mapstructure:"key"`
	// MaxKeys bounds the open windows on the node; past it the oldest window is evicted, with a summary of its
	// repeats.
	MaxKeys int `mapstructure:"max_keys"`
	// MaxKeysPerContainer bounds the windows with a full key per container; past it the container's new keys
	// collapse to container and compiler (0: always).
	MaxKeysPerContainer int `mapstructure:"max_keys_per_container"`
}

// Key fields of "dedup.key".
const (
	KeyContainerID      = "container.id"
	KeyPodUID           = "k8s.pod.uid"
	KeyHostName         = "host.name"
	KeyCompiler         = "compiler"
	KeyParentExecutable = "parent_executable"
	KeyExecutable       = "executable"
	maxKeyFields        = 6
)

// MaxWindow bounds "dedup.window". A repeat is reported only when its
// window closes, so a longer window hides how often a compiler keeps
// running, and keeps each key's state that long.
const MaxWindow = 24 * time.Hour

// Default dedup limits. A legitimate container opens a handful of keys an hour (one per compiler and parent
// program: make, sh, ninja...); the defaults hold far more, and keep the worst case small: with every key field at
// its longest a window takes about 1.1 KiB (the processor's TestDedupWorstCaseBytes), so 4.5 MiB at max_keys, plus one resource
// copy per container.
const (
	DefaultMaxKeys             = 4096
	DefaultMaxKeysPerContainer = 64
)

// MaxKeyFieldBytes bounds the bytes a key field takes in the dedup state. A longer value (a parent path up to 4 KiB
// is possible) is keyed by its SHA-256 instead, and the summary carries its deepest MaxKeyFieldBytes.
const MaxKeyFieldBytes = 256

// Approximate sizes used to account the dedup state's bytes: an entry with its map slot and list links, and an
// owner (one per container with open windows) without its resource copy.
const (
	EntryOverhead     = 512
	OwnerOverhead     = 160
	dedupAttrOverhead = 64 // per resource attribute copied
)

// dedupKey holds the configured key fields in order. A fixed array keeps lookups allocation-free. A collapsed key
// (a container past its share) holds the container and the compiler only.
type dedupKey struct {
	f         [maxKeyFields]string
	collapsed bool
}

// Metadata levels of a resource: how much the Kubernetes enrichment added.
const (
	levelNone      = iota // no Kubernetes attributes: API down, or the pod unknown
	levelPod              // the pod's attributes, not the container's
	levelContainer        // the container's too
)

func metadataLevel(res pcommon.Map) int {
	if _, ok := res.Get(attr.K8sContainerName); ok {
		return levelContainer
	}
	if _, ok := res.Get(attr.K8sNamespace); ok {
		return levelPod
	}
	return levelNone
}

// Window is one open window.
type Window struct {
	key        dedupKey
	start      time.Time
	end        time.Time
	suppressed int64
	level      int // metadata level of the window's first finding
	// What a summary record needs, captured from the first flagged record of the window.
	compiler  string
	language  string
	parentExe string
	severity  plog.SeverityNumber
	runtime   bool
	bytes     int

	owner *dedupOwner
	// resource is the owner's resource, captured when the entry leaves the state for its summary.
	resource pcommon.Resource
	// Links in the node-wide list and in the owner's list, both in window-start order.
	all, own link
}

type link struct{ prev, next *Window }

// entryList is an intrusive doubly linked list of entries in window-start order; sel picks the links it uses.
type entryList struct {
	head, tail *Window
	sel        func(*Window) *link
}

func (l *entryList) pushBack(e *Window) {
	ln := l.sel(e)
	ln.prev, ln.next = l.tail, nil
	if l.tail != nil {
		l.sel(l.tail).next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *entryList) remove(e *Window) {
	ln := l.sel(e)
	if ln.prev != nil {
		l.sel(ln.prev).next = ln.next
	} else {
		l.head = ln.next
	}
	if ln.next != nil {
		l.sel(ln.next).prev = ln.prev
	} else {
		l.tail = ln.prev
	}
	ln.prev, ln.next = nil, nil
}

func selAll(e *Window) *link { return &e.all }
func selOwn(e *Window) *link { return &e.own }

// dedupOwner is the container (container.id, else k8s.pod.uid; "" for the host) that opened windows. Its
// resource, copied once, serves the summaries of all its windows.
type dedupOwner struct {
	id       string
	resource pcommon.Resource
	level    int
	bytes    int
	entries  entryList
	total    int // entries, collapsed ones included
	normal   int // entries with a full key
	// collapsing is set when the owner reached its share, and stays set while it has any entry: until then every
	// new key of it is collapsed to container and compiler.
	collapsing bool
}

// Kinds of limit hits.
const (
	LimitPerContainer = "max_keys_per_container"
	LimitNode         = "max_keys"
)

// limitHits counts the hits of one limit and rate-limits their log line.
type limitHits struct {
	total, logged int64
	lastLog       time.Time
}

// limitLogEvery is how often, at most, a limit hit is logged per kind.
const limitLogEvery = time.Minute

// Observation is what observe decided for one finding.
type Observation struct {
	Flag      bool  // the finding opens a window and is flagged in full
	Carried   int64 // the count suppressed in the key's previous window, for the flagged record
	Collapsed bool  // its container is past its share: the key was collapsed to container and compiler
	// Evicted is the number of windows evicted under max_keys to make room; Summary is the one among them with
	// suppressed repeats, if any, for a summary record (AppendSummaries).
	Evicted int
	Summary *Window
}

// Deduper suppresses repeated findings per key within a window. The first finding of a window is flagged in
// full; later ones are counted. The count is reported on the first finding after the window or, when none
// comes, in a summary record when the window is swept or evicted; a count is never dropped.
//
// Its memory is bounded whatever a container execs: at most maxKeys windows on the node, and a container past
// maxPerContainer of its own has its new keys collapsed to container and compiler (at most one per catalog
// compiler), so it neither grows the state further nor evicts another container's windows.
type Deduper struct {
	window          time.Duration
	fields          []string
	maxKeys         int
	maxPerContainer int
	logger          *zap.Logger
	version         string // the scope version of summary records

	mu      sync.Mutex
	entries map[dedupKey]*Window
	owners  map[string]*dedupOwner
	order   entryList // every entry, oldest window first
	bytes   int
	hits    map[string]*limitHits
}

func New(cfg Config, logger *zap.Logger, version string) *Deduper {
	if cfg.Window <= 0 {
		return nil
	}
	return &Deduper{
		window: cfg.Window, fields: cfg.Key, maxKeys: cfg.MaxKeys, maxPerContainer: cfg.MaxKeysPerContainer,
		logger: logger, version: version,
		entries: make(map[dedupKey]*Window),
		owners:  make(map[string]*dedupOwner),
		order:   entryList{sel: selAll},
		hits:    map[string]*limitHits{LimitPerContainer: {}, LimitNode: {}},
	}
}

// key builds the dedup key of one finding.
func (d *Deduper) key(res pcommon.Map, compiler, parentExe, exePath string) dedupKey {
	var k dedupKey
	for i, f := range d.fields {
		switch f {
		case KeyContainerID:
			k.f[i] = attr.Str(res, attr.ContainerID)
		case KeyPodUID:
			k.f[i] = attr.Str(res, attr.K8sPodUID)
		case KeyHostName:
			k.f[i] = attr.Str(res, attr.HostName)
		case KeyCompiler:
			k.f[i] = compiler
		case KeyParentExecutable:
			k.f[i] = parentExe
		case KeyExecutable:
			k.f[i] = exePath
		}
		k.f[i] = compactField(k.f[i])
	}
	return k
}

// compactField returns s, or for a value longer than MaxKeyFieldBytes its SHA-256, marked by a NUL that no path
// or attribute value the key is made of holds.
func compactField(s string) string {
	if len(s) <= MaxKeyFieldBytes {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "\x00" + hex.EncodeToString(sum[:])
}

// shortPath returns p, or when longer than MaxKeyFieldBytes its deepest part from a component boundary, without
// the leading slash (the receiver's form of a truncated path).
func shortPath(p string) string {
	if len(p) <= MaxKeyFieldBytes {
		return strings.Clone(p)
	}
	tail := p[len(p)-MaxKeyFieldBytes:]
	if i := strings.IndexByte(tail, '/'); i >= 0 && i < len(tail)-1 {
		tail = tail[i+1:]
	}
	return strings.Clone(tail)
}

// Finding is one flagged compiler execution as dedup sees it.
type Finding struct {
	Compiler, Language string
	// ParentExe is compilerwatch.parent.executable.path, for the summary; KeyParent is the parent in the key:
	// that path, or the parent's command when the receiver could not read it.
	ParentExe, KeyParent string
	Executable           string // process.executable.path
	Severity             plog.SeverityNumber
	Runtime              bool
}

// Observe records finding ne of the container res belongs to, at now. res is copied only when the container is
// new or its resource gains Kubernetes metadata.
func (d *Deduper) Observe(res pcommon.Map, now time.Time, ne Finding) Observation {
	k := d.key(res, ne.Compiler, ne.KeyParent, ne.Executable)
	owner := attr.ContainerKey(res)
	d.mu.Lock()
	obs := d.observeLocked(k, owner, res, now, ne)
	var logs [2]struct {
		kind      string
		total, by int64
	}
	n := 0
	for _, kind := range [...]string{LimitPerContainer, LimitNode} {
		h := d.hits[kind]
		if h.total > h.logged && (h.lastLog.IsZero() || now.Sub(h.lastLog) >= limitLogEvery) {
			logs[n].kind, logs[n].total, logs[n].by = kind, h.total, h.total-h.logged
			h.logged, h.lastLog = h.total, now
			n++
		}
	}
	keys, owners := len(d.entries), len(d.owners)
	d.mu.Unlock()
	for _, l := range logs[:n] {
		msg := "Dedup: containers past dedup.max_keys_per_container; their new keys are collapsed to container and compiler"
		if l.kind == LimitNode {
			msg = "Dedup: dedup.max_keys reached; the oldest windows are evicted, with a summary of their repeats"
		}
		d.logger.Warn(msg, zap.String("limit", l.kind), zap.Int64("hits_since_last_log", l.by),
			zap.Int64("hits_total", l.total), zap.Int("keys", keys), zap.Int("containers", owners))
	}
	return obs
}

func (d *Deduper) observeLocked(k dedupKey, owner string, res pcommon.Map, now time.Time, ne Finding) Observation {
	var obs Observation
	level := metadataLevel(res)
	e, ok := d.entries[k]
	o := d.owners[owner]
	if !ok && (d.maxPerContainer == 0 || o != nil && (o.collapsing || o.normal >= d.maxPerContainer)) {
		// Past its share: the container's new keys collapse to container and compiler.
		if o != nil {
			o.collapsing = true
		}
		obs.Collapsed = true
		d.hits[LimitPerContainer].total++
		k = dedupKey{collapsed: true}
		k.f[0], k.f[1] = compactField(owner), ne.Compiler
		e, ok = d.entries[k]
	}
	if ok {
		if now.Before(e.end) && level <= e.level {
			e.suppressed++
			return obs
		}
		// The window ended, or this finding has Kubernetes metadata its first finding lacked (the API server was
		// down or the hold expired): flag it, with what was suppressed so far, and start a new window.
		obs.Flag, obs.Carried = true, e.suppressed
		e.suppressed, e.level = 0, level
		e.start, e.end = now, now.Add(d.window)
		d.order.remove(e)
		d.order.pushBack(e)
		e.owner.entries.remove(e)
		e.owner.entries.pushBack(e)
		d.raiseOwner(e.owner, res, level)
		return obs
	}

	// A new window.
	obs.Flag = true
	if len(d.entries) >= d.maxKeys {
		// The node is full. A collapsing container makes room among its own windows only; others evict the
		// oldest window of the node.
		victim := d.order.head
		if o != nil && o.collapsing && o.entries.head != nil {
			victim = o.entries.head
		}
		if victim != nil {
			if victim.owner == o && o.total == 1 {
				o = nil // removing its last entry deletes the owner
			}
			d.remove(victim)
			obs.Evicted++
			d.hits[LimitNode].total++
			if victim.suppressed > 0 {
				obs.Summary = victim
			}
		}
	}
	if o == nil {
		o = &dedupOwner{id: strings.Clone(owner), entries: entryList{sel: selOwn}, level: -1, collapsing: obs.Collapsed}
		d.owners[o.id] = o
	}
	d.raiseOwner(o, res, level)
	for i := range k.f {
		k.f[i] = strings.Clone(k.f[i]) // own the strings: pdata may reuse the memory they were read from
	}
	e = &Window{
		key: k, start: now, end: now.Add(d.window), level: level, owner: o,
		compiler: ne.Compiler, language: ne.Language, parentExe: shortPath(ne.ParentExe),
		severity: ne.Severity, runtime: ne.Runtime,
	}
	e.bytes = EntryOverhead + len(e.parentExe)
	for _, s := range k.f {
		e.bytes += len(s)
	}
	d.entries[k] = e
	d.order.pushBack(e)
	o.entries.pushBack(e)
	o.total++
	if !k.collapsed {
		o.normal++
	}
	d.bytes += e.bytes
	return obs
}

// raiseOwner replaces o's resource copy with res when res has more Kubernetes metadata.
func (d *Deduper) raiseOwner(o *dedupOwner, res pcommon.Map, level int) {
	if level <= o.level {
		return
	}
	r := pcommon.NewResource()
	r.Attributes().EnsureCapacity(res.Len())
	res.CopyTo(r.Attributes())
	b := OwnerOverhead + len(o.id)
	for k, v := range res.All() {
		b += dedupAttrOverhead + len(k) + len(v.AsString())
	}
	d.bytes += b - o.bytes
	o.resource, o.level, o.bytes = r, level, b
}

// remove takes e out of the state, and its owner with its last entry. e keeps its owner's resource for a summary.
func (d *Deduper) remove(e *Window) {
	o := e.owner
	delete(d.entries, e.key)
	d.order.remove(e)
	o.entries.remove(e)
	o.total--
	if !e.key.collapsed {
		o.normal--
	}
	d.bytes -= e.bytes
	e.resource = o.resource
	if o.total == 0 {
		delete(d.owners, o.id)
		d.bytes -= o.bytes
	}
}

// expire removes the windows that ended at or before now (all of them when all is set) and returns those with
// a suppressed count, for summary records.
func (d *Deduper) expire(now time.Time, all bool) []*Window {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*Window
	for e := d.order.head; e != nil; e = d.order.head {
		if !all && now.Before(e.end) {
			break // windows all last the same: the rest end later
		}
		d.remove(e)
		if e.suppressed > 0 {
			out = append(out, e)
		}
	}
	return out
}

// Size is a snapshot of the dedup state's size.
type Size struct {
	Keys, Collapsed, Containers, Bytes int
}

// Size returns a snapshot of the state's size.
func (d *Deduper) Size() Size {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Size{Keys: len(d.entries), Containers: len(d.owners), Bytes: d.bytes}
	for _, o := range d.owners {
		s.Collapsed += o.total - o.normal
	}
	return s
}

// ExpireSummaries removes the windows that ended at or before now (all of them when all is set) and returns the
// summary records of those with suppressed repeats, in window order, and their number.
func (d *Deduper) ExpireSummaries(now time.Time, all bool) (plog.Logs, int) {
	entries := d.expire(now, all)
	ld := plog.NewLogs()
	if len(entries) == 0 {
		return ld, 0
	}
	// Map order is random; emit in window order so output is stable.
	slices.SortFunc(entries, func(a, b *Window) int {
		return cmp.Or(a.start.Compare(b.start), cmp.Compare(a.compiler, b.compiler), cmp.Compare(a.parentExe, b.parentExe))
	})
	d.AppendSummaries(ld, entries, now)
	return ld, len(entries)
}

// AppendSummaries adds to ld a summary record for each of entries (windows that left the state with suppressed
// repeats), each under a copy of its container's resource (the one with the most Kubernetes attributes seen).
func (d *Deduper) AppendSummaries(ld plog.Logs, entries []*Window, now time.Time) {
	for _, e := range entries {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.SetSchemaUrl(semconv.SchemaURL)
		e.resource.CopyTo(rl.Resource())
		sl := rl.ScopeLogs().AppendEmpty()
		sl.SetSchemaUrl(semconv.SchemaURL)
		sl.Scope().SetName(metadata.ScopeName)
		sl.Scope().SetVersion(d.version)
		lr := sl.LogRecords().AppendEmpty()
		ts := pcommon.NewTimestampFromTime(now)
		lr.SetTimestamp(ts)
		lr.SetObservedTimestamp(ts)
		lr.SetEventName(attr.EventDedupSummary)
		lr.SetSeverityNumber(e.severity)
		lr.SetSeverityText(attr.SeverityText(e.severity))
		lr.Body().SetStr(fmt.Sprintf("%d further executions of %s suppressed since %s",
			e.suppressed, e.compiler, e.start.UTC().Format(time.RFC3339)))
		attrs := lr.Attributes()
		attr.PutRule(attrs)
		attrs.PutStr(attr.CompilerName, e.compiler)
		attrs.PutStr(attr.CompilerLanguage, e.language)
		if e.parentExe != "" {
			attrs.PutStr(attr.ParentExecutable, e.parentExe)
		}
		if e.runtime {
			attrs.PutBool(attr.InstalledAtRuntime, true)
		}
		attrs.PutInt(attr.SuppressedCount, e.suppressed)
	}
}

// ContainerKeys returns the windows container id holds: all of them, and those with a full key (not collapsed).
func (d *Deduper) ContainerKeys(id string) (keys, full int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o := d.owners[id]; o != nil {
		return o.total, o.normal
	}
	return 0, 0
}
