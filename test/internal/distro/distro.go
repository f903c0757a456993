// Package distro runs the ocb-built distribution (build/otelcol-compilerwatch) as a real process for the
// end-to-end tests, the benchmark harness and the demo under test/: it finds the binary, writes a config, starts
// the collector, waits for what it prints and stops it with SIGTERM, requiring a clean exit. Import it from
// _test.go files only.
package distro

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

// BinaryPath is where `make build` writes the distribution, relative to the repository root.
const BinaryPath = "build/otelcol-compilerwatch"

// RepoRoot returns the repository root: the nearest directory above the working directory (the test's package
// directory) that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("distro: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binary returns the absolute path of the ocb-built collector. `make test` builds it first; a bare `go test`
// skips (fails under CI=true).
func Binary(t testing.TB) string {
	t.Helper()
	abs := filepath.Join(RepoRoot(t), BinaryPath)
	if _, err := os.Stat(abs); err != nil {
		msg := fmt.Sprintf("%s is not built: run `make build` (make test does)", BinaryPath)
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return abs
}

// SyncBuffer collects a process's output for polling from the test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Collector is the distribution running as a real process.
type Collector struct {
	Cmd *exec.Cmd
	// Out is its stdout and stderr.
	Out *SyncBuffer
	// Stdout is its stdout alone (the collector's own logs go to stderr).
	Stdout *SyncBuffer
	// Done receives Cmd.Wait's result once; a reader that only peeks puts it back.
	Done chan error
}

// Launch starts argv (the distribution, possibly behind a wrapper such as setpriv) without waiting for it to be
// ready. A collector still running at cleanup is killed.
func Launch(t testing.TB, argv ...string) *Collector {
	t.Helper()
	c := &Collector{Out: &SyncBuffer{}, Stdout: &SyncBuffer{}, Done: make(chan error, 1)}
	c.Cmd = exec.Command(argv[0], argv[1:]...)
	c.Cmd.Stdout, c.Cmd.Stderr = io.MultiWriter(c.Out, c.Stdout), c.Out
	require.NoError(t, c.Cmd.Start())
	go func() { c.Done <- c.Cmd.Wait() }()
	t.Cleanup(func() {
		if c.Cmd.ProcessState == nil {
			_ = c.Cmd.Process.Kill()
			if err := <-c.Done; err != nil {
				t.Logf("collector killed at cleanup: %v", err)
			}
		}
	})
	return c
}

// WriteConfig writes a collector config into a fresh temporary directory.
func WriteConfig(t testing.TB, config string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(config), 0o600))
	return p
}

// Start runs the distribution with config and waits until it is ready.
func Start(t testing.TB, config string) *Collector {
	t.Helper()
	c := Launch(t, Binary(t), "--config", WriteConfig(t, config))
	c.WaitOutput(t, "Everything is ready", 60*time.Second)
	return c
}

// WaitOutput waits until the collector has printed want; it fails the test if the collector exits first.
func (c *Collector) WaitOutput(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(c.Out.String(), want) {
			return
		}
		select {
		case err := <-c.Done:
			c.Done <- err
			t.Fatalf("collector exited (%v) before printing %q:\n%s", err, want, c.Out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("collector did not print %q within %s:\n%s", want, timeout, c.Out.String())
}

// Stop sends SIGTERM and requires a clean exit.
func (c *Collector) Stop(t testing.TB) {
	t.Helper()
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-c.Done:
		c.Done <- err
		require.NoError(t, err, "exit after SIGTERM:\n%s", c.Out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("collector did not exit within 30s of SIGTERM:\n%s", c.Out.String())
	}
	assert.Contains(t, c.Out.String(), "Shutdown complete")
}

// FreePort reserves a loopback port for a server the test starts.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
