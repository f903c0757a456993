package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.uber.org/zap"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/metadata"
)

// The presence scan answers the rule's "present" half: the first time the processor sees a container, a
// bounded background scan looks through the container's root (/proc/<pid>/root) for catalog compilers, and
// emits one container.compilers_present record when it finds any.

// Bounds of one scan and of the scanner. They keep the scan cheap on a busy node; a root larger than this is
// reported with what was found so far.
const (
	scanMaxEntries    = 50000            // directory entries examined per container
	scanTimeout       = 10 * time.Second // per container
	scanWorkers       = 2                // containers scanned at once
	scanQueue         = 256              // containers waiting; more are retried on their next record
	scanMaxAttempts   = 3                // a container whose processes are gone is retried this often
	scanMaxFound      = 64               // name:path entries reported per container
	scanMaxContainers = 16384            // remembered container ids; past it the memory is reset
	symlinkHops       = 8
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

// scanResult is what one container's scan found.
type scanResult struct {
	found   []string // name:path, sorted
	entries int      // directory entries examined
	limited bool     // a bound stopped the scan early
}

// scanRoot looks for catalog compilers under root, without following any symlink out of it: a container's
// absolute symlinks are resolved against root, never against the collector's own root.
func scanRoot(ctx context.Context, root string, m *matcher) (scanResult, error) {
	var r scanResult
	seen := map[string]bool{}
	for _, pattern := range scanDirs {
		dirs, err := expand(root, pattern)
		if err != nil {
			return r, err
		}
		for _, dir := range dirs {
			entries, err := os.ReadDir(filepath.Join(root, dir))
			if err != nil {
				if errors.Is(err, fs.ErrPermission) {
					return r, err
				}
				continue // absent or not a directory
			}
			for _, de := range entries {
				r.entries++
				if r.entries > scanMaxEntries || ctx.Err() != nil || len(r.found) >= scanMaxFound {
					r.limited = true
					slices.Sort(r.found)
					return r, nil
				}
				e := m.lookup(de.Name())
				if e == nil || (e.kind == kindTool && !presenceTools[e.name]) {
					continue
				}
				p := path.Join(dir, de.Name())
				if !executableIn(root, p) {
					continue
				}
				if item := e.name + ":" + p; !seen[item] {
					seen[item] = true
					r.found = append(r.found, item)
				}
			}
		}
	}
	slices.Sort(r.found)
	return r, nil
}

// expand resolves a glob pattern to the directories under root that match it, as container paths.
func expand(root, pattern string) ([]string, error) {
	if !strings.ContainsAny(pattern, "*?[") {
		return []string{pattern}, nil
	}
	matches, err := filepath.Glob(filepath.Join(root, pattern))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		rel, err := filepath.Rel(root, m)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		out = append(out, "/"+filepath.ToSlash(rel))
	}
	return out, nil
}

// executableIn reports whether the container path p is, after resolving symlinks inside root, an executable
// regular file. A dangling link (an alternatives entry whose package is gone) is not a compiler.
func executableIn(root, p string) bool {
	for range symlinkHops {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			return false
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
		}
		target, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return false
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean("/" + target) // Clean of an absolute path cannot climb above "/": root stays the top
	}
	return false
}

// scanJob is a container to scan: its resource (to copy onto the record) and the host pids that may still be
// running in it.
type scanJob struct {
	containerID string
	resource    pcommon.Resource
	pids        []int
}

// presenceScanner runs scans in the background, at most once per container.
type presenceScanner struct {
	m       *matcher
	logger  *zap.Logger
	tb      *metadata.TelemetryBuilder
	emit    func(context.Context, plog.Logs)
	version string
	// procRoot is /proc; tests point it elsewhere.
	procRoot string

	mu       sync.Mutex
	attempts map[string]int // container id → attempts; scanMaxAttempts+1 once scanned
	warned   bool           // permission failures are logged once

	jobs   chan scanJob
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const scanned = scanMaxAttempts + 1

func newPresenceScanner(m *matcher, logger *zap.Logger, tb *metadata.TelemetryBuilder, version string,
	emit func(context.Context, plog.Logs),
) *presenceScanner {
	ctx, cancel := context.WithCancel(context.Background())
	return &presenceScanner{
		m: m, logger: logger, tb: tb, emit: emit, version: version, procRoot: "/proc",
		attempts: make(map[string]int), jobs: make(chan scanJob, scanQueue), ctx: ctx, cancel: cancel,
	}
}

func (s *presenceScanner) start() {
	for range scanWorkers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-s.ctx.Done():
					return
				case job := <-s.jobs:
					s.scan(job)
				}
			}
		}()
	}
}

// stop cancels running scans and joins the workers. Queued containers are not scanned.
func (s *presenceScanner) stop() {
	s.cancel()
	s.wg.Wait()
}

// observe queues a scan the first time a container is seen. It never blocks: with a full queue the container
// is simply tried again on its next record.
func (s *presenceScanner) observe(res pcommon.Resource, rl plog.ResourceLogs) {
	id := getStr(res.Attributes(), attrContainerID)
	if id == "" {
		return
	}
	s.mu.Lock()
	if s.attempts[id] >= scanMaxAttempts {
		s.mu.Unlock()
		return
	}
	if len(s.attempts) >= scanMaxContainers {
		clear(s.attempts)
	}
	s.attempts[id]++
	s.mu.Unlock()

	job := scanJob{containerID: id, resource: pcommon.NewResource(), pids: recordPIDs(rl)}
	res.CopyTo(job.resource)
	select {
	case s.jobs <- job:
	default:
		s.mu.Lock()
		s.attempts[id]-- // not tried: give it another chance
		s.mu.Unlock()
	}
}

// recordPIDs lists the exec'ing pids of rl's records and their ancestors, nearest first; the scan uses the
// first that still runs in the container.
func recordPIDs(rl plog.ResourceLogs) []int {
	var pids []int
	for i := 0; i < rl.ScopeLogs().Len(); i++ {
		lrs := rl.ScopeLogs().At(i).LogRecords()
		for j := 0; j < lrs.Len(); j++ {
			attrs := lrs.At(j).Attributes()
			if v, ok := attrs.Get(attrProcessPID); ok {
				pids = append(pids, int(v.Int()))
			}
			anc := getList(attrs, attrAncestors)
			for k := 0; k < anc.len(); k++ {
				if pid, _, ok := strings.Cut(anc.at(k), ":"); ok {
					if n, err := strconv.Atoi(pid); err == nil {
						pids = append(pids, n)
					}
				}
			}
		}
	}
	return pids
}

var (
	scanFound  = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "found")))
	scanClean  = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "clean")))
	scanFailed = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "failed")))
)

// scan resolves a live process of the container, scans its root, and emits the presence record.
func (s *presenceScanner) scan(job scanJob) {
	ctx, cancel := context.WithTimeout(s.ctx, scanTimeout)
	defer cancel()
	root, ok := s.rootOf(job)
	if !ok {
		s.tb.ProcessorCompilerDetectorContainerScans.Add(ctx, 1, scanFailed)
		return // no process of the container left: retried on its next record
	}
	start := time.Now()
	r, err := scanRoot(ctx, root, s.m)
	if err != nil {
		s.tb.ProcessorCompilerDetectorContainerScans.Add(ctx, 1, scanFailed)
		s.mu.Lock()
		s.attempts[job.containerID] = scanned // a permission problem will not go away by itself
		first := !s.warned
		s.warned = true
		s.mu.Unlock()
		if first {
			s.logger.Warn("compiler presence scan failed; grant CAP_SYS_PTRACE (and CAP_DAC_READ_SEARCH) to read other containers' roots. Logged once.",
				zap.String("container.id", job.containerID), zap.Error(err))
		}
		return
	}
	s.mu.Lock()
	s.attempts[job.containerID] = scanned
	s.mu.Unlock()
	s.logger.Debug("compiler presence scan", zap.String("container.id", job.containerID),
		zap.Int("entries", r.entries), zap.Strings("found", r.found), zap.Bool("limited", r.limited),
		zap.Duration("duration", time.Since(start)))
	if len(r.found) == 0 {
		s.tb.ProcessorCompilerDetectorContainerScans.Add(ctx, 1, scanClean)
		return
	}
	s.tb.ProcessorCompilerDetectorContainerScans.Add(ctx, 1, scanFound)
	s.emit(s.ctx, s.presenceRecord(job, r))
}

// rootOf returns /proc/<pid>/root of the first pid that still runs in the job's container. The cgroup check
// matters: an ancestor may be the host's containerd-shim, whose root is the host's.
func (s *presenceScanner) rootOf(job scanJob) (string, bool) {
	for _, pid := range job.pids {
		cg, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", s.procRoot, pid))
		if err != nil || !strings.Contains(string(cg), job.containerID) {
			continue
		}
		return fmt.Sprintf("%s/%d/root", s.procRoot, pid), true
	}
	return "", false
}

func (s *presenceScanner) presenceRecord(job scanJob, r scanResult) plog.Logs {
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
	lr.SetEventName(eventNameCompilersPresent)
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	lr.SetSeverityText(severityText(plog.SeverityNumberWarn))
	lr.Body().SetStr(fmt.Sprintf("%d compiler executables present in container %s", len(r.found), job.containerID))
	attrs := lr.Attributes()
	putRule(attrs)
	present := attrs.PutEmptySlice(attrCompilersPresent)
	present.EnsureCapacity(len(r.found))
	for _, f := range r.found {
		present.AppendEmpty().SetStr(f)
	}
	if r.limited {
		attrs.PutEmptySlice(attrTruncated).AppendEmpty().SetStr("compilers_present")
	}
	return ld
}
