//go:build linux

package probe_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/probe"
)

// tagged is what a candidate-filter test reads of the records whose argv carries a tag.
type tagged struct {
	mu   sync.Mutex
	recs map[string]event.Event // tag -> decoded record (strings cloned)
	done chan struct{}
}

func collectTagged(p *probe.Probe, prefix string) *tagged {
	c := &tagged{recs: map[string]event.Event{}, done: make(chan struct{})}
	rd := p.Reader()
	go func() {
		defer close(c.done)
		dec := event.NewDecoder()
		var rec ringbuf.Record
		for {
			rd.SetDeadline(time.Now().Add(20 * time.Millisecond))
			err := rd.ReadInto(&rec)
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, ringbuf.ErrFlushed) {
				return
			}
			if err != nil {
				continue
			}
			var ev event.Event
			if dec.Decode(rec.RawSample, 0, &ev) != nil || filepath.Base(ev.Filename) == "runc" {
				continue
			}
			for _, a := range ev.Args {
				if strings.HasPrefix(a, prefix) {
					ev.Args = append([]string(nil), ev.Args...)
					c.mu.Lock()
					c.recs[a] = ev
					c.mu.Unlock()
				}
			}
		}
	}()
	return c
}

func (c *tagged) get(tag string) (event.Event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev, ok := c.recs[tag]
	return ev, ok
}

// waitAll waits for every tag in want, then gives stragglers of the others a moment to arrive.
func (c *tagged) waitAll(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for _, tg := range want {
			if _, ok := c.get(tg); !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return // the caller reports each missing tag
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

func loadCandidates(t *testing.T, v probe.Variant, names []string) *probe.Probe {
	t.Helper()
	cfg := testConfig(v)
	cfg.Candidates = probe.NewCandidateBloom(names)
	p, err := probe.Load(cfg)
	require.NoError(t, err, "load %s with the candidate filter", v)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// safeName turns a name the detector reads into a file name: "" (no executable name) and names with a slash
// become a plain non-candidate name.
func safeName(n string) string {
	if n == "" || n == "." || n == ".." || strings.Contains(n, "/") {
		return "plain"
	}
	return n
}

// TestKernelCandidateFilterLosesNoFinding runs the compiler detector's whole flagging suite through the real
// program with "prefilter: compilers": for each exec the detection tests flag, a hard link of /bin/true named like
// its executable, invoked through a symlink named like its filename with its argv[0]. Every one must be sent, not
// as a cgroup's first exec but on its names; execs named like common tools must be filtered and counted. Both
// programs, both catalogs (built-in, and extended with user entries).
func TestKernelCandidateFilterLosesNoFinding(t *testing.T) {
	testenv.RequireRoot(t)
	trueBin, err := exec.LookPath("true")
	require.NoError(t, err)
	trueBin, err = filepath.EvalSymlinks(trueBin)
	require.NoError(t, err)
	for _, s := range probe.ReadFlaggingSuites(t) {
		for _, v := range []probe.Variant{probe.VariantDirect, probe.VariantPortable} {
			t.Run(s.Catalog+"/"+string(v), func(t *testing.T) {
				dir := t.TempDir()
				master := filepath.Join(dir, "master")
				data, err := os.ReadFile(trueBin)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(master, data, 0o755))

				p := loadCandidates(t, v, s.Candidates)
				prefix := fmt.Sprintf("cw-cand-%d-", time.Now().UnixNano())
				c := collectTagged(p, prefix)
				before, err := p.Stats()
				require.NoError(t, err)

				type run struct{ tag, what string }
				var want []run
				seen := map[string]bool{}
				bloom := probe.NewCandidateBloom(s.Candidates)
				commOnly := 0
				// Each name alone: the executable's, a file name longer than a comm (so the kernel reads it, not
				// comm), argv[0]'s.
				execs := append(s.Execs[:len(s.Execs):len(s.Execs)], s.Execs[0], s.Execs[0], s.Execs[0])
				execs[len(execs)-3].Case, execs[len(execs)-3].ExeName, execs[len(execs)-3].Filename, execs[len(execs)-3].Argv0 =
					"exe only", "gcc", "plain", "plain"
				execs[len(execs)-2].Case, execs[len(execs)-2].ExeName, execs[len(execs)-2].Filename, execs[len(execs)-2].Argv0 =
					"long file name only", "plain", "x86_64-linux-gnu-gcc-12", "plain"
				execs[len(execs)-1].Case, execs[len(execs)-1].ExeName, execs[len(execs)-1].Filename, execs[len(execs)-1].Argv0 =
					"argv0 only", "plain", "plain", "/usr/bin/x86_64-linux-gnu-g++-13"
				for i, e := range execs {
					exe, file := safeName(e.ExeName), safeName(e.Filename)
					key := exe + "\x00" + file + "\x00" + e.Argv0
					if seen[key] {
						continue
					}
					if !bloom.MayMatch(exe) && !bloom.MayMatch(file) && !bloom.MayMatch(e.Argv0) {
						// Flagged on a comm the kernel derives from the file name here (an fexecve'd memfd's
						// dentry name): TestCandidateFilterLosesNoFinding covers it.
						commOnly++
						continue
					}
					seen[key] = true
					d := filepath.Join(dir, fmt.Sprint(i))
					require.NoError(t, os.Mkdir(d, 0o755))
					exePath := filepath.Join(d, exe)
					require.NoError(t, os.Link(master, exePath))
					path := exePath
					if file != exe {
						path = filepath.Join(d, file)
						require.NoError(t, os.Symlink(exePath, path))
					}
					tag := fmt.Sprintf("%s%d", prefix, i)
					cmd := &exec.Cmd{Path: path, Args: []string{e.Argv0, tag}}
					require.NoError(t, cmd.Run(), "%s: %s", e.Case, path)
					want = append(want, run{tag, fmt.Sprintf("%q (exe %q, file %q, argv0 %q)", e.Case, exe, file, e.Argv0)})
				}
				// Common tools, which must be filtered.
				const controls = 40
				var ctl []string
				for i := range controls {
					name := []string{"true", "sh-helper", "make", "python3.11", "containerd-shim-runc-v2"}[i%5]
					d := filepath.Join(dir, fmt.Sprintf("ctl%d", i))
					require.NoError(t, os.Mkdir(d, 0o755))
					path := filepath.Join(d, name)
					require.NoError(t, os.Link(master, path))
					tag := fmt.Sprintf("%sctl%d", prefix, i)
					require.NoError(t, (&exec.Cmd{Path: path, Args: []string{name, tag}}).Run())
					ctl = append(ctl, tag)
				}

				tags := make([]string, len(want))
				for i, w := range want {
					tags[i] = w.tag
				}
				c.waitAll(t, tags)
				for _, w := range want {
					ev, ok := c.get(w.tag)
					if assert.True(t, ok, "flagged exec dropped by the kernel filter: %s", w.what) {
						assert.False(t, ev.CgroupSeen, "sent on its names, not as its cgroup's first: %s", w.what)
					}
				}
				sentCtl := 0
				for _, tg := range ctl {
					if ev, ok := c.get(tg); ok {
						assert.True(t, ev.CgroupSeen, "a common tool passed the filter: %v", ev.Args)
						sentCtl++
					}
				}
				assert.LessOrEqual(t, sentCtl, 1, "only a cgroup's first filtered exec is sent")
				after, err := p.Stats()
				require.NoError(t, err)
				assert.GreaterOrEqual(t, after.FilteredNonCandidate-before.FilteredNonCandidate, uint64(controls-sentCtl),
					"every filtered exec is counted")
				assert.Zero(t, after.Dropped()-before.Dropped())
				t.Logf("%d flagged execs sent, %d common tools filtered, %d flagged on a comm only (not run)",
					len(want), controls-sentCtl, commOnly)
				assert.LessOrEqual(t, commOnly, 2)
			})
		}
	}
}

// TestKernelCandidateFilterCgroupSeen: a container whose execs are all filtered is still seen, once: the first
// filtered exec in its cgroup is sent flagged FlagCgroupSeen, the next is not sent at all.
func TestKernelCandidateFilterCgroupSeen(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox")
	ctr := testenv.NewContainer(t, testenv.Options{})
	p := loadCandidates(t, probe.VariantAuto, []string{"gcc"})
	prefix := fmt.Sprintf("cw-seen-%d-", time.Now().UnixNano())
	c := collectTagged(p, prefix)
	before, err := p.Stats()
	require.NoError(t, err)

	first, second := prefix+"1", prefix+"2"
	ctr.MustExec(t, "/bin/busybox", "echo", first)
	ctr.MustExec(t, "/bin/busybox", "echo", second)
	c.waitAll(t, []string{first})
	ev, ok := c.get(first)
	require.True(t, ok, "the container's first filtered exec is sent")
	assert.True(t, ev.CgroupSeen)
	assert.Contains(t, ev.CgroupPath, ctr.ID(), "with its cgroup, which names the container")
	_, ok = c.get(second)
	assert.False(t, ok, "the next one is filtered")
	after, err := p.Stats()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after.CgroupSeen-before.CgroupSeen, uint64(1))
	assert.GreaterOrEqual(t, after.FilteredNonCandidate-before.FilteredNonCandidate, uint64(1))
}
