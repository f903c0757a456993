// Package presence is the compiler presence scan: the first time the processor sees a container, it opens the
// container's root and scans it, in the background and bounded, for catalog compilers.
package presence // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/presence"

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.uber.org/zap"

	"github.com/compilerwatch/compilerwatch/internal/inroot"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

// The presence scan answers the rule's "present" half: the first time the processor sees a container, it opens
// the container's root (/proc/<pid>/root of a process checked to be in the container's cgroup) and holds it; a
// bounded background scan then looks through that root for catalog compilers, and emits one
// container.compilers_present record when it finds any. Every path is resolved inside the held root (see
// Root), so no symlink or ".." the container writes can make the scan read or report the host's files, and
// the scan still works when the container's processes have exited in the meantime.

// Bounds of one scan and of the scanner. They keep the scan cheap on a busy node; a root larger than this is
// reported with what was found so far.
const (
	scanMaxEntries    = 50000            // directory entries examined per container
	scanMaxDirs       = 1024             // directories one glob pattern expands to
	scanTimeout       = 10 * time.Second // per container
	scanGrace         = 5 * time.Second  // past scanTimeout, a scan stuck in a system call is abandoned
	MaxStuck          = 2                // abandoned scans at once; past it no new scan starts until one returns
	scanWorkers       = 2                // containers scanned at once
	scanQueue         = 256              // containers waiting, each holding its root open; more are retried on their next record
	MaxAttempts       = 3                // a container with no process left to open its root is tried this often
	scanMaxPIDs       = 16               // pids tried per attempt to find a live process of the container
	scanMaxFound      = 64               // name:path entries reported per container
	scanMaxContainers = 16384            // remembered container ids; past it the memory is reset
)

// scanDirs are the places compilers live, relative to the container's root. Globs use path.Match syntax.
var scanDirs = []string{
	"/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin", "/usr/local/sbin", "/sbin",
	"/usr/lib/gcc/*/*", "/usr/libexec/gcc/*/*", "/usr/lib/gcc-cross/*/*",
	"/usr/lib/jvm/*/bin", "/opt/java/openjdk/bin", "/usr/local/openjdk*/bin", "/opt/*/bin",
	"/usr/local/go/bin", "/usr/lib/go*/bin", "/usr/local/go/pkg/tool/*",
	"/root/.cargo/bin", "/usr/local/cargo/bin", "/usr/local/rustup/toolchains/*/bin", "/root/.rustup/toolchains/*/bin",
	"/root/go/bin", "/root/.local/bin",
}

// presenceTools are the argument-dependent catalog tools whose mere presence means a toolchain is installed.
// java and dotnet are left out: a JRE or .NET runtime image is not a compiler.
var presenceTools = map[string]bool{"go": true, "cargo": true, "zig": true, "swift": true, "tinygo": true}

// Result is what one container's scan found.
type Result struct {
	found    []string // name:path, sorted
	entries  int      // directory entries examined
	errors   int      // directories and entries that could not be read; the scan went on without them
	firstErr error    // the first of them, for the debug log
	limited  bool     // a bound stopped the scan early
}

// treeScan is one scan in progress.
type treeScan struct {
	ctx        context.Context
	root       *inroot.Root
	m          *catalog.Matcher
	maxEntries int // scanMaxEntries; tests lower it
	seen       map[string]bool
	r          Result
}

// ScanTree looks for catalog compilers under root. An entry that cannot be read is counted and skipped; it
// never ends the scan.
func ScanTree(ctx context.Context, root *inroot.Root, m *catalog.Matcher) Result {
	s := treeScan{ctx: ctx, root: root, m: m, maxEntries: scanMaxEntries}
	return s.run()
}

func (s *treeScan) run() Result {
	s.seen = map[string]bool{}
	for _, pattern := range scanDirs {
		for _, dir := range s.expand(pattern) {
			if s.stop() {
				break
			}
			s.scanDir(dir)
		}
		if s.stop() {
			break
		}
	}
	slices.Sort(s.r.found)
	return s.r
}

// stop reports whether a bound that ends the scan is reached, and marks the result limited if so.
func (s *treeScan) stop() bool {
	if s.r.entries > s.maxEntries || len(s.r.found) >= scanMaxFound || s.ctx.Err() != nil {
		s.r.limited = true
		return true
	}
	return false
}

// fail counts an error on one entry. A missing entry or a non-directory where a directory is looked for is
// not an error: most scanned places do not exist in a given image.
func (s *treeScan) fail(err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return
	}
	if s.r.errors == 0 {
		s.r.firstErr = err
	}
	s.r.errors++
}

// list calls fn with the entries of the container directory dir, each counted against the entry bound, until a
// bound is reached.
func (s *treeScan) list(dir string, fn func(fs.DirEntry)) {
	if s.stop() {
		return
	}
	err := s.root.ReadDir(dir, func(de fs.DirEntry) bool {
		s.r.entries++
		if s.stop() {
			return false
		}
		fn(de)
		return true
	})
	if err != nil {
		s.fail(err)
	}
}

// expand resolves a glob pattern to the container directories that match it, at most scanMaxDirs. Only names
// are matched here; every match is opened later through the root like any other path.
func (s *treeScan) expand(pattern string) []string {
	dirs := []string{"/"}
	for _, part := range strings.Split(strings.Trim(pattern, "/"), "/") {
		if !strings.ContainsAny(part, "*?[") {
			for i := range dirs {
				dirs[i] = path.Join(dirs[i], part)
			}
			continue
		}
		var next []string
		for _, dir := range dirs {
			s.list(dir, func(de fs.DirEntry) {
				if t := de.Type(); t.IsRegular() || t&(fs.ModeNamedPipe|fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice) != 0 {
					return // cannot be a directory; symlinks and unknown types are tried
				}
				if ok, _ := path.Match(part, de.Name()); !ok {
					return
				}
				if len(next) == scanMaxDirs {
					s.r.limited = true // the first scanMaxDirs are scanned; the scan goes on with the next pattern
					return
				}
				next = append(next, path.Join(dir, de.Name()))
			})
		}
		dirs = next
	}
	return dirs
}

// scanDir looks for catalog compilers among the entries of the container directory dir.
func (s *treeScan) scanDir(dir string) {
	s.list(dir, func(de fs.DirEntry) {
		e := s.m.Lookup(de.Name())
		if e == nil || (e.Tool() && !presenceTools[e.Name()]) {
			return
		}
		p := path.Join(dir, de.Name())
		// An executable regular file once symlinks are resolved inside the root. A dangling link (an
		// alternatives entry whose package is gone) is not a compiler.
		mode, err := s.root.Stat(p)
		if err != nil {
			s.fail(err)
			return
		}
		if !mode.IsRegular() || mode.Perm()&0o111 == 0 {
			return
		}
		if item := e.Name() + ":" + p; !s.seen[item] {
			s.seen[item] = true
			s.r.found = append(s.r.found, item)
		}
	})
}

// scanJob is a container to scan: its resource (to copy onto the record) and its root, opened at first sight.
type scanJob struct {
	containerID string
	resource    pcommon.Resource
	root        *inroot.Root
}

// Settings are what a Scanner needs from the processor. The fields after Emit default when zero; tests set them.
type Settings struct {
	Matcher *catalog.Matcher
	// Excluded reports whether a resource is allowlisted: such a container is not scanned, or its record not
	// emitted.
	Excluded func(pcommon.Map) bool
	// Enrich adds what is known by now (Kubernetes attributes) to a record's resource before exclusions are
	// decided; nil adds nothing.
	Enrich    func(pcommon.Resource)
	Logger    *zap.Logger
	Telemetry *metadata.TelemetryBuilder
	Version   string // the scope version of the records
	Emit      func(context.Context, plog.Logs)

	ProcRoot string                                                       // "/proc"
	Timeout  time.Duration                                                // scanTimeout
	Grace    time.Duration                                                // scanGrace
	Support  func() error                                                 // whether the scan can run safely here
	ScanTree func(context.Context, *inroot.Root, *catalog.Matcher) Result // ScanTree
}

// Scanner runs scans in the background, at most once per container.
type Scanner struct {
	m        *catalog.Matcher
	excluded func(pcommon.Map) bool
	enrich   func(pcommon.Resource)
	logger   *zap.Logger
	tb       *metadata.TelemetryBuilder
	emit     func(context.Context, plog.Logs)
	version  string
	procRoot string
	timeout  time.Duration
	grace    time.Duration
	support  func() error
	scanTree func(context.Context, *inroot.Root, *catalog.Matcher) Result

	enabled atomic.Bool  // set by start once the scan can run
	stuck   atomic.Int32 // abandoned scans still blocked in a system call

	mu          sync.Mutex
	attempts    map[string]int      // container id → attempts; scanned once done
	busy        map[string]struct{} // containers queued or being scanned
	warnedOpen  bool                // a root that could not be opened is logged once
	warnedStuck bool                // an abandoned scan is logged once

	jobs   chan scanJob
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const scanned = MaxAttempts + 1

// New returns a scanner; Start starts it.
func New(set Settings) *Scanner {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scanner{
		m: set.Matcher, excluded: set.Excluded, enrich: set.Enrich, logger: set.Logger, tb: set.Telemetry,
		emit: set.Emit, version: set.Version,
		procRoot: cmp.Or(set.ProcRoot, "/proc"), timeout: cmp.Or(set.Timeout, scanTimeout),
		grace: cmp.Or(set.Grace, scanGrace), support: set.Support, scanTree: set.ScanTree,
		attempts: make(map[string]int), busy: make(map[string]struct{}),
		jobs: make(chan scanJob, scanQueue), ctx: ctx, cancel: cancel,
	}
	if s.support == nil {
		s.support = inroot.Support
	}
	if s.scanTree == nil {
		s.scanTree = ScanTree
	}
	return s
}

// Queued is the number of containers waiting for a worker.
func (s *Scanner) Queued() int { return len(s.jobs) }

// Stuck is the number of abandoned scans still blocked in a system call.
func (s *Scanner) Stuck() int32 { return s.stuck.Load() }

// Start starts the workers, or turns the scan off with one log line when it cannot run safely here. Nothing
// else depends on it: exec detection runs either way.
func (s *Scanner) Start() {
	if err := s.support(); err != nil {
		s.logger.Warn("Compiler presence scan is off (scan_for_compilers); exec detection is unaffected. "+
			"Grant CAP_SYS_PTRACE on Linux 5.6 or later to turn it on, or set scan_for_compilers: false.", zap.Error(err))
		return
	}
	for range scanWorkers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-s.ctx.Done():
					return
				case job := <-s.jobs:
					s.run(job)
				}
			}
		}()
	}
	s.enabled.Store(true)
}

// Stop cancels running scans and joins the workers. Queued containers are not scanned; their roots are closed.
func (s *Scanner) Stop() {
	s.enabled.Store(false)
	s.cancel()
	s.wg.Wait()
	for {
		select {
		case job := <-s.jobs:
			job.root.Close()
		default:
			return
		}
	}
}

var (
	scanFound       = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "found")))
	scanClean       = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "clean")))
	scanFailed      = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "failed")))
	scanExcluded    = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "excluded")))
	scanUnscannable = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "unscannable")))
)

// Observe opens the container's root and queues a scan the first time a container is seen. It never blocks on
// the scan: with a full queue the container is simply tried again on its next record.
func (s *Scanner) Observe(res pcommon.Resource, rl plog.ResourceLogs) {
	if !s.enabled.Load() {
		return
	}
	id := attr.Str(res.Attributes(), attr.ContainerID)
	if id == "" {
		return
	}
	s.mu.Lock()
	_, busy := s.busy[id]
	if busy || s.attempts[id] >= MaxAttempts || len(s.jobs) == cap(s.jobs) || s.stuck.Load() >= MaxStuck {
		s.mu.Unlock()
		return
	}
	if len(s.attempts) >= scanMaxContainers {
		clear(s.attempts)
	}
	s.attempts[id]++
	s.busy[id] = struct{}{}
	s.mu.Unlock()

	// An allowlisted container is not scanned at all. Attributes only get added later, so one excluded now
	// stays excluded.
	if s.excluded(res.Attributes()) {
		s.done(id, scanned)
		s.tb.ProcessorCompilerDetectorContainerScans.Add(s.ctx, 1, scanExcluded)
		return
	}
	root, err := inroot.OpenProcRoot(s.procRoot, recordPIDs(rl), id)
	if err != nil {
		s.done(id, 0) // the attempt stays counted
		if errors.Is(err, inroot.ErrNoProcess) {
			s.tb.ProcessorCompilerDetectorContainerScans.Add(s.ctx, 1, scanUnscannable)
			return
		}
		s.tb.ProcessorCompilerDetectorContainerScans.Add(s.ctx, 1, scanFailed)
		s.warnOnce(&s.warnedOpen, "Compiler presence scan could not open a container's root (a security module denying "+
			"ptrace read access?). Logged once.", zap.String("container.id", id), zap.Error(err))
		return
	}
	job := scanJob{containerID: id, resource: pcommon.NewResource(), root: root}
	res.CopyTo(job.resource)
	select {
	case s.jobs <- job:
	default:
		root.Close()
		s.mu.Lock()
		s.attempts[id]-- // not tried: give it another chance
		delete(s.busy, id)
		s.mu.Unlock()
	}
}

// done ends an attempt on container id; attempts, when non-zero, replaces its attempt count.
func (s *Scanner) done(id string, attempts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, id)
	if attempts != 0 {
		s.attempts[id] = attempts
	}
}

func (s *Scanner) warnOnce(flag *bool, msg string, fields ...zap.Field) {
	s.mu.Lock()
	first := !*flag
	*flag = true
	s.mu.Unlock()
	if first {
		s.logger.Warn(msg, fields...)
	}
}

// recordPIDs lists up to scanMaxPIDs distinct exec'ing pids of rl's records and their ancestors, nearest first;
// the scan uses the first that still runs in the container.
func recordPIDs(rl plog.ResourceLogs) []int {
	var pids []int
	add := func(pid int) bool {
		if pid > 0 && !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
		return len(pids) < scanMaxPIDs
	}
	for i := 0; i < rl.ScopeLogs().Len(); i++ {
		lrs := rl.ScopeLogs().At(i).LogRecords()
		for j := 0; j < lrs.Len(); j++ {
			attrs := lrs.At(j).Attributes()
			if v, ok := attrs.Get(attr.ProcessPID); ok && !add(int(v.Int())) {
				return pids
			}
			anc := catalog.ListAttr(attrs, attr.Ancestors)
			for k := 0; k < anc.Len(); k++ {
				if pid, _, ok := strings.Cut(anc.At(k), ":"); ok {
					if n, err := strconv.Atoi(pid); err == nil && !add(n) {
						return pids
					}
				}
			}
		}
	}
	return pids
}

// Scan states shared by a worker and the scan it runs.
const (
	scanRunning int32 = iota
	scanFinished
	scanAbandoned
)

// run scans one container and emits its presence record. A scan blocked in a system call (a hung network or
// FUSE file system in the container) is abandoned after scanTimeout+scanGrace: its goroutine and its root are
// released when the call returns, and at most MaxStuck such scans exist at once.
func (s *Scanner) run(job scanJob) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	var state atomic.Int32
	done := make(chan Result, 1)
	start := time.Now()
	go func() {
		r := s.scanTree(ctx, job.root, s.m)
		job.root.Close()
		if state.CompareAndSwap(scanRunning, scanFinished) {
			done <- r
		} else {
			s.stuck.Add(-1)
		}
	}()
	timer := time.NewTimer(s.timeout + s.grace)
	defer timer.Stop()
	var r Result
	select {
	case r = <-done:
	case <-timer.C:
		if state.CompareAndSwap(scanRunning, scanAbandoned) {
			s.stuck.Add(1)
			s.done(job.containerID, scanned)
			s.tb.ProcessorCompilerDetectorContainerScans.Add(s.ctx, 1, scanFailed)
			s.warnOnce(&s.warnedStuck, "Compiler presence scan of a container did not return in time and was abandoned "+
				"(a hung file system in the container?). Logged once.", zap.String("container.id", job.containerID),
				zap.Duration("after", time.Since(start)))
			return
		}
		r = <-done // it finished just now
	case <-s.ctx.Done():
		// Shutting down: a scan that is not stuck returns at its next entry. Nothing is emitted.
		select {
		case <-done:
		case <-time.After(time.Second):
			if state.CompareAndSwap(scanRunning, scanAbandoned) {
				s.stuck.Add(1)
			}
		}
		return
	}
	s.done(job.containerID, scanned)
	s.logger.Debug("compiler presence scan", zap.String("container.id", job.containerID),
		zap.Int("entries", r.entries), zap.Strings("found", r.found), zap.Bool("limited", r.limited),
		zap.Int("errors", r.errors), zap.NamedError("first_error", r.firstErr), zap.Duration("duration", time.Since(start)))
	if len(r.found) == 0 {
		s.tb.ProcessorCompilerDetectorContainerScans.Add(s.ctx, 1, scanClean)
		return
	}
	// Exclusions are decided now, with the attributes known now: the Kubernetes attributes (namespace, pod
	// labels, image) may have arrived since the container was first seen.
	if s.enrich != nil {
		s.enrich(job.resource)
	}
	if s.excluded(job.resource.Attributes()) {
		s.tb.ProcessorCompilerDetectorContainerScans.Add(s.ctx, 1, scanExcluded)
		return
	}
	s.tb.ProcessorCompilerDetectorContainerScans.Add(s.ctx, 1, scanFound)
	s.emit(s.ctx, s.record(job, r))
}

func (s *Scanner) record(job scanJob, r Result) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.SetSchemaUrl(semconv.SchemaURL)
	job.resource.CopyTo(rl.Resource())
	sl := rl.ScopeLogs().AppendEmpty()
	sl.SetSchemaUrl(semconv.SchemaURL)
	sl.Scope().SetName(metadata.ScopeName)
	sl.Scope().SetVersion(s.version)
	lr := sl.LogRecords().AppendEmpty()
	now := pcommon.NewTimestampFromTime(time.Now())
	lr.SetTimestamp(now)
	lr.SetObservedTimestamp(now)
	lr.SetEventName(attr.EventCompilersPresent)
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	lr.SetSeverityText(attr.SeverityText(plog.SeverityNumberWarn))
	lr.Body().SetStr(fmt.Sprintf("%d compiler executables present in container %s", len(r.found), job.containerID))
	attrs := lr.Attributes()
	attr.PutRule(attrs)
	present := attrs.PutEmptySlice(attr.CompilersPresent)
	present.EnsureCapacity(len(r.found))
	for _, f := range r.found {
		present.AppendEmpty().SetStr(f)
	}
	if r.limited {
		attrs.PutEmptySlice(attr.Truncated).AppendEmpty().SetStr("compilers_present")
	}
	return ld
}
