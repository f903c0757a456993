package ebpfexecreceiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePasswd(t *testing.T) {
	in := strings.Join([]string{
		"root:x:0:0:root:/root:/bin/bash",
		"# comment:x:5:5",
		"",
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
		"+nisuser::::::",
		"-excluded:x:7:7::/:",
		"alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash",
		"alias:x:1000:1000::/home/alias:/bin/sh", // duplicate uid: the first wins
		"broken-no-uid:x",
		"badnum:x:12a:1::/:",
		"toolarge:x:4294967296:1::/:",
		":x:9:9::/:", // no name
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
		"bytes:x:2000:2000::/:\xff",
		"lat\xe9:x:2001:2001::/:",
	}, "\n")
	got, err := parsePasswd(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, map[uint32]string{
		0: "root", 1: "daemon", 1000: "alice", 65534: "nobody", 2000: "bytes", 2001: "lat\uFFFD",
	}, got)
}

func writePasswd(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func TestPasswdResolverFallbackAndReload(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host-passwd")
	local := filepath.Join(dir, "passwd")
	writePasswd(t, local, "root:x:0:0::/:\nlocal:x:1000:1000::/:\n")

	now := time.Unix(1000, 0)
	p := &passwdResolver{paths: []string{host, local}, interval: time.Minute, now: func() time.Time { return now }}

	// The host file is missing: fall back to the next one.
	name, ok := p.userName(1000)
	assert.True(t, ok)
	assert.Equal(t, "local", name)
	assert.Equal(t, local, p.source)

	// The host file appears; the table is reused until the interval passes.
	writePasswd(t, host, "root:x:0:0::/:\nhostuser:x:1000:1000::/:\nnew:x:1001:1001::/:\n")
	now = now.Add(30 * time.Second)
	name, _ = p.userName(1000)
	assert.Equal(t, "local", name, "no reload before the interval")
	_, ok = p.userName(1001)
	assert.False(t, ok, "an unknown uid does not force a reload")

	now = now.Add(31 * time.Second)
	name, _ = p.userName(1000)
	assert.Equal(t, "hostuser", name, "reloaded from the first readable file")
	name, ok = p.userName(1001)
	assert.True(t, ok)
	assert.Equal(t, "new", name)

	// Nothing readable: names disappear rather than go stale.
	require.NoError(t, os.Remove(host))
	require.NoError(t, os.Remove(local))
	now = now.Add(time.Minute)
	_, ok = p.userName(0)
	assert.False(t, ok)
	assert.Equal(t, "", p.source)
}

func TestPasswdResolverUnknownUID(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	writePasswd(t, f, "root:x:0:0::/:\n")
	p := &passwdResolver{paths: []string{f}, interval: time.Minute, now: time.Now}
	_, ok := p.userName(123456)
	assert.False(t, ok)
	name, ok := p.userName(0)
	assert.True(t, ok)
	assert.Equal(t, "root", name)
}

func TestNewPasswdResolverDefaults(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	p := newPasswdResolver()
	assert.Equal(t, []string{"/host/etc/passwd", "/proc/1/root/etc/passwd", "/etc/passwd"}, p.paths)
	assert.Equal(t, passwdReloadInterval, p.interval)

	// In a pod, the image's own /etc/passwd would name host uids wrongly.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	assert.Equal(t, []string{"/host/etc/passwd", "/proc/1/root/etc/passwd"}, newPasswdResolver().paths)
}
