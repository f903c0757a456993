package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
)

// userResolver names the effective uid of an exec'ing process.
type userResolver interface {
	// userName returns the name of ev's effective uid as the process's own
	// root names it (containerID is "" for a host process), and false when
	// it has none or it cannot be told.
	userName(ev *event.Event, containerID string) (string, bool)
}

// Where the host's passwd is, in order:
//   - /host/etc/passwd: the DaemonSet mounts the host's file there read-only,
//     which needs no extra capability;
//   - /proc/1/root/etc/passwd: the host's root under hostPID, readable as root
//     or with CAP_SYS_PTRACE;
//   - /etc/passwd, but only outside Kubernetes: in a pod it is the image's own
//     file, whose names would be wrong for host uids. Then names are absent.
func defaultPasswdPaths() []string {
	paths := []string{"/host/etc/passwd", "/proc/1/root/etc/passwd"}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		paths = append(paths, "/etc/passwd")
	}
	return paths
}

const (
	passwdReloadInterval = 5 * time.Minute
	passwdMaxBytes       = 16 << 20 // a larger passwd is not a passwd
)

// passwdResolver reads the host's uid → name from the first readable passwd file of its
// list, and re-reads it at most once per interval, when a lookup finds the
// table stale. Names of users added since are absent until then. It is safe
// for concurrent use.
type passwdResolver struct {
	paths    []string
	interval time.Duration
	now      func() time.Time

	mu       sync.Mutex
	names    map[uint32]string
	loadedAt time.Time
	source   string // the file the names came from; "" when none was readable
}

func newPasswdResolver() *passwdResolver {
	return &passwdResolver{paths: defaultPasswdPaths(), interval: passwdReloadInterval, now: time.Now}
}

func (p *passwdResolver) userName(uid uint32) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); p.names == nil || now.Sub(p.loadedAt) >= p.interval {
		p.load()
		p.loadedAt = now
	}
	name, ok := p.names[uid]
	return name, ok
}

// load replaces the table with the first readable file's. When none is
// readable the table becomes empty: a stale name is worse than none.
func (p *passwdResolver) load() {
	p.names, p.source = map[uint32]string{}, ""
	for _, path := range p.paths {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		names, err := parsePasswd(io.LimitReader(f, passwdMaxBytes))
		_ = f.Close()
		if err != nil {
			continue
		}
		p.names, p.source = names, path
		return
	}
}

// parsePasswd reads passwd(5) lines, name:password:uid:gid:gecos:home:shell.
// Comments, NIS "+"/"-" entries and malformed lines are skipped; the first
// entry of a uid wins, as with getpwuid(3).
func parsePasswd(r io.Reader) (map[uint32]string, error) {
	names := map[uint32]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 {
			continue
		}
		_, rest, ok = bytes.Cut(rest, []byte{':'}) // password
		if !ok {
			continue
		}
		uidField, _, ok := bytes.Cut(rest, []byte{':'})
		if !ok {
			continue
		}
		uid, err := strconv.ParseUint(string(uidField), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(uid)]; !dup {
			names[uint32(uid)] = validUTF8(string(name))
		}
	}
	return names, sc.Err()
}
