//go:build linux

package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// HostGCCMounts returns the mounts and symlinks that let the host's gcc
// compile (gcc -c) and link a C program inside a NewContainer rootfs, as
// gcc, as cc, and as a renamed copy of the driver. It asks gcc itself what
// it runs and reads (-print-prog-name, -print-file-name, the include search
// list, libc.so's GROUP), adds the shared libraries of every program (ldd),
// and replicates every symlink on the way, so that /usr/bin/gcc and
// /usr/bin/cc stay links as on the host. Programs in bin directories are
// mounted one file at a time; everything else as its whole directory.
//
// It skips t (fails it in CI) when gcc is not installed, and fails t when
// discovery fails.
func HostGCCMounts(t testing.TB) []Mount {
	t.Helper()
	RequireBinary(t, "gcc", "cc", "ldd")
	m, err := discoverGCC()
	if err != nil {
		t.Fatalf("testenv: discover gcc: %v", err)
	}
	return m
}

// HostGoMounts returns the mounts and the environment that let the host's
// Go toolchain run `go build` inside a NewContainer rootfs, offline:
// GOROOT read-only at its host path, and the host's GOCACHE read-write at
// its host path. Sharing the cache (content-addressed and safe for
// concurrent use) is what keeps `go build` in seconds: an empty cache
// rebuilds the runtime, about 15-30s here. A test that wants a warm cache
// on a fresh runner runs the same build on the host first with env.
//
// env sets PATH, GOCACHE, GOPATH and HOME under /tmp, CGO_ENABLED=0,
// GOTOOLCHAIN=local, GOPROXY=off, GOFLAGS= and GOENV=off, GOTELEMETRY=off.
func HostGoMounts(t testing.TB) (mounts []Mount, env []string) {
	t.Helper()
	RequireBinary(t, "go")
	goroot, err := goEnv("GOROOT")
	if err == nil && goroot == "" {
		err = errors.New("go env GOROOT is empty")
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if goroot, err = filepath.EvalSymlinks(goroot); err != nil {
		t.Fatalf("testenv: GOROOT: %v", err)
	}
	mounts = []Mount{{Destination: goroot, Source: goroot}}
	cache := "/tmp/gocache"
	if c, err := goEnv("GOCACHE"); err == nil && filepath.IsAbs(c) {
		if err := os.MkdirAll(c, 0o755); err != nil {
			t.Fatalf("testenv: GOCACHE: %v", err)
		}
		if c, err = filepath.EvalSymlinks(c); err != nil {
			t.Fatalf("testenv: GOCACHE: %v", err)
		}
		mounts = append(mounts, Mount{Destination: c, Source: c, Writable: true})
		cache = c
	}
	env = []string{
		"PATH=" + filepath.Join(goroot, "bin") + ":" + strings.TrimPrefix(defaultPath, "PATH="),
		"GOCACHE=" + cache,
		"GOPATH=/tmp/gopath",
		"HOME=/tmp",
		"CGO_ENABLED=0",
		"GOTOOLCHAIN=local",
		"GOPROXY=off",
		"GOFLAGS=",
		"GOENV=off",
		"GOTELEMETRY=off",
	}
	return mounts, env
}

func goEnv(key string) (string, error) {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// gccPrograms are what the driver executes for compile, assemble and link.
var gccPrograms = []string{"cc1", "collect2", "lto-wrapper", "as", "ld"}

// gccFiles are what the link step opens, looked up with -print-file-name.
var gccFiles = []string{
	"crt1.o", "crti.o", "crtn.o", "crtbegin.o", "crtend.o", "Scrt1.o", "crtbeginS.o", "crtendS.o",
	"libc.so", "libc_nonshared.a", "libgcc.a", "libgcc_s.so", "libgcc_s.so.1", "liblto_plugin.so",
}

func discoverGCC() ([]Mount, error) {
	r := newResolver("")
	for _, name := range []string{"gcc", "cc"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, err
		}
		if err := r.add(p); err != nil {
			return nil, err
		}
	}
	for _, name := range gccPrograms {
		out, err := exec.Command("gcc", "-print-prog-name="+name).Output()
		if err != nil {
			return nil, fmt.Errorf("gcc -print-prog-name=%s: %w", name, err)
		}
		p := strings.TrimSpace(string(out))
		if !filepath.IsAbs(p) {
			// Not in gcc's own directories: the driver finds it in PATH.
			if p, err = exec.LookPath(p); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		if err := r.add(p); err != nil {
			return nil, err
		}
	}
	for _, name := range gccFiles {
		out, err := exec.Command("gcc", "-print-file-name="+name).Output()
		if err != nil {
			return nil, fmt.Errorf("gcc -print-file-name=%s: %w", name, err)
		}
		p := strings.TrimSpace(string(out))
		if !filepath.IsAbs(p) {
			continue // gcc echoes the bare name when it has none
		}
		if err := r.add(p); err != nil {
			return nil, err
		}
		if name == "libc.so" {
			if err := r.addLinkerScript(p); err != nil {
				return nil, err
			}
		}
	}
	out, err := exec.Command("gcc", "-xc", "-E", "-v", "/dev/null").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("gcc -E -v: %w: %s", err, out)
	}
	for _, d := range parseIncludeDirs(string(out)) {
		if _, err := os.Stat(d); err == nil {
			if err := r.add(d); err != nil {
				return nil, err
			}
		}
	}
	// Shared libraries of every program found, and their loader.
	for _, f := range r.elfFiles() {
		out, err := exec.Command("ldd", f).Output()
		if err != nil {
			continue // static, or not a dynamic executable
		}
		for _, lib := range parseLdd(string(out)) {
			if err := r.add(lib); err != nil {
				return nil, err
			}
		}
	}
	return r.mounts(), nil
}

// parseIncludeDirs returns the directories of gcc -v's
// `#include <...> search starts here:` list.
func parseIncludeDirs(out string) []string {
	var dirs []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#include <...> search starts here:"):
			in = true
		case strings.HasPrefix(line, "End of search list."):
			in = false
		case in && strings.HasPrefix(line, " "):
			d := strings.TrimSpace(line)
			d = strings.TrimSuffix(d, " (framework directory)")
			if filepath.IsAbs(d) {
				dirs = append(dirs, filepath.Clean(d))
			}
		}
	}
	return dirs
}

var lddPathRE = regexp.MustCompile(`(?:=>\s*|^\s*)(/\S+)\s+\(0x`)

// parseLdd returns the absolute library paths in ldd output, including the
// loader ("/lib64/ld-linux-x86-64.so.2 (0x...)").
func parseLdd(out string) []string {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		if m := lddPathRE.FindStringSubmatch(line); m != nil {
			libs = append(libs, m[1])
		}
	}
	return libs
}

var linkerScriptPathRE = regexp.MustCompile(`/[^\s()]+`)

// parseLinkerScript returns the absolute paths named by the GROUP and
// INPUT commands of a linker script such as glibc's libc.so.
func parseLinkerScript(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "GROUP") && !strings.HasPrefix(line, "INPUT") {
			continue
		}
		out = append(out, linkerScriptPathRE.FindAllString(line, -1)...)
	}
	return out
}

// resolver collects host paths, the symlinks on the way to them, and the
// real files and directories they end at. root prefixes every lookup, so
// tests can run it on a fake tree.
type resolver struct {
	root  string
	files map[string]bool   // real regular files
	dirs  map[string]bool   // real directories
	links map[string]string // link path -> target, as on the host
}

func newResolver(root string) *resolver {
	return &resolver{root: root, files: map[string]bool{}, dirs: map[string]bool{}, links: map[string]string{}}
}

// add resolves p component by component, recording each symlink met.
func (r *resolver) add(p string) error { return r.walk(p, 0) }

func (r *resolver) walk(p string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	if !path.IsAbs(p) {
		return fmt.Errorf("%s: not absolute", p)
	}
	parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	cur := "/"
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := path.Join(cur, part)
		fi, err := os.Lstat(r.root + next)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			tgt, err := os.Readlink(r.root + next)
			if err != nil {
				return err
			}
			r.links[next] = tgt
			abs := tgt
			if !path.IsAbs(abs) {
				abs = path.Join(cur, tgt)
			}
			return r.walk(path.Join(append([]string{abs}, parts[i+1:]...)...), depth+1)
		}
		cur = next
	}
	fi, err := os.Stat(r.root + cur)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		r.dirs[cur] = true
	} else {
		r.files[cur] = true
	}
	return nil
}

// addLinkerScript adds the paths a linker script names, when p is one.
func (r *resolver) addLinkerScript(p string) error {
	b, err := os.ReadFile(r.root + p)
	if err != nil {
		return err
	}
	if len(b) >= 4 && string(b[:4]) == "\x7fELF" {
		return nil
	}
	for _, q := range parseLinkerScript(string(b)) {
		if err := r.add(q); err != nil {
			return err
		}
	}
	return nil
}

// elfFiles returns the collected files that are programs or shared objects
// in bin or gcc program directories, the ones whose libraries ldd lists.
func (r *resolver) elfFiles() []string {
	var out []string
	for f := range r.files {
		if strings.HasSuffix(f, ".o") || strings.HasSuffix(f, ".a") {
			continue
		}
		b := make([]byte, 4)
		fh, err := os.Open(r.root + f)
		if err != nil {
			continue
		}
		_, err = fh.Read(b)
		_ = fh.Close()
		if err == nil && string(b) == "\x7fELF" {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// isBinDir reports whether programs in d are mounted one by one. Mounting a
// whole bin directory would bring every host tool into the container.
func isBinDir(d string) bool {
	b := path.Base(d)
	return b == "bin" || b == "sbin"
}

// mounts turns what was collected into Mounts: a file in a bin directory is
// bound alone, any other file brings its directory, directories nested in
// another bound directory are dropped, and so are links that a bound
// directory already provides. Symlinks come first, then mounts, each
// sorted, so the result is stable.
func (r *resolver) mounts() []Mount {
	bind := map[string]bool{}
	for f := range r.files {
		if isBinDir(path.Dir(f)) {
			bind[f] = true
		} else {
			bind[path.Dir(f)] = true
		}
	}
	for d := range r.dirs {
		bind[d] = true
	}
	covered := func(p string) bool {
		for d := path.Dir(p); ; d = path.Dir(d) {
			if bind[d] && r.isDir(d) {
				return true
			}
			if d == "/" {
				return false
			}
		}
	}
	var out []Mount
	var links []string
	for l := range r.links {
		if !covered(l) {
			links = append(links, l)
		}
	}
	slices.Sort(links)
	for _, l := range links {
		out = append(out, Mount{Destination: l, Symlink: r.links[l]})
	}
	var binds []string
	for b := range bind {
		if !covered(b) {
			binds = append(binds, b)
		}
	}
	slices.Sort(binds)
	for _, b := range binds {
		out = append(out, Mount{Destination: b, Source: b})
	}
	return out
}

func (r *resolver) isDir(p string) bool {
	fi, err := os.Stat(r.root + p)
	return err == nil && fi.IsDir()
}
