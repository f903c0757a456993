// Package imagebuild builds the otelcol-compilerwatch OCI image without a container engine, and is the single
// definition of what that image holds: its files, entrypoint, user and labels. deploy/Dockerfile is checked
// against the same definition.
//
// The image is FROM scratch: the static collector binary, a default config and the /etc files Go's user and
// host lookups read. It holds no shell, no package manager and no compiler, so the collector never flags its
// own container. CA roots are compiled into the binary (golang.org/x/crypto/x509roots/fallback, imported by
// the ebpf_exec receiver): Go uses them only when the system has none, so a bundle mounted at
// /etc/ssl/certs/ca-certificates.crt still takes precedence.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Names and places. The repository is a placeholder under the reserved .invalid top-level domain: an image
// loaded into a node's runtime under this name runs, and nothing can ever pull someone else's image by it.
const (
	Repository = "registry.invalid/compilerwatch/otelcol-compilerwatch"
	Version    = "0.1.0" // builder-config.yaml dist.version
	BinaryName = "otelcol-compilerwatch"
	BinaryPath = "/" + BinaryName
	ConfigPath = "/etc/otelcol-compilerwatch/config.yaml"
	// User is uid:gid 0:0. The collector needs BPF and PERFMON (and SYS_PTRACE for the presence scan) in its
	// effective set. Kubernetes adds capabilities to the bounding, permitted and effective sets only for uid
	// 0; a non-root uid gets them in the bounding set alone (no ambient capabilities), and file capabilities
	// are ignored under allowPrivilegeEscalation: false (no_new_privs). So the image says what the DaemonSet
	// runs as: runAsUser 0, every other capability dropped, read-only root filesystem.
	User = "0:0"
)

// Ref is the image's reference: Repository:Version.
func Ref() string { return Repository + ":" + Version }

// Entrypoint and Cmd of the image config. The DaemonSet mounts its ConfigMap over ConfigPath's directory.
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"--config=" + ConfigPath}
)

// Labels are the org.opencontainers.image.* annotations of the image config.
var Labels = map[string]string{
	"org.opencontainers.image.title":       BinaryName,
	"org.opencontainers.image.description": "OpenTelemetry Collector that flags compiler executions inside containers (eBPF)",
	"org.opencontainers.image.version":     Version,
	"org.opencontainers.image.source":      "https://github.com/compilerwatch/compilerwatch",
}

// Platforms the image index holds, in index order.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// File is one regular file of the image.
type File struct {
	Path string      // absolute path in the image
	Mode fs.FileMode // permission bits
	// Source is the file's origin relative to the repository root, "" for Content. "{arch}" stands for the
	// platform's architecture.
	Source  string
	Content string
}

// Files are every regular file of the image. Their parent directories are added with mode 0755.
var Files = []File{
	{Path: BinaryPath, Mode: 0o755, Source: "build/linux-{arch}/" + BinaryName},
	// The config `make run` uses: compiler findings printed by the debug exporter. Kubernetes mounts its own.
	{Path: ConfigPath, Mode: 0o644, Source: "testdata/config.yaml"},
	// The image user's name (logs, os/user) and group. No login shell: the image has none.
	{Path: "/etc/passwd", Mode: 0o644, Content: "root:x:0:0:root:/:/nonexistent\n"},
	{Path: "/etc/group", Mode: 0o644, Content: "root:x:0:\n"},
	// Go's resolver reads this: /etc/hosts (written by the kubelet) before DNS, like glibc.
	{Path: "/etc/nsswitch.conf", Mode: 0o644, Content: "hosts: files dns\n"},
}

// SourcePath is f's source for arch, relative to the repository root.
func (f File) SourcePath(arch string) string { return strings.ReplaceAll(f.Source, "{arch}", arch) }

// Dirs are the directories the image holds: every parent of Files, sorted.
func Dirs() []string {
	set := map[string]bool{}
	for _, f := range Files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			set[d] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Output file names under the output directory.
const (
	LayoutDir = "oci"     // OCI image layout holding the multi-arch index
	LayoutTar = "oci.tar" // the same layout as one tar stream, for `ctr images import`
)

// DockerArchive is the `docker load` tarball of one architecture.
func DockerArchive(arch string) string { return BinaryName + "-linux-" + arch + ".docker.tar" }

// Options of Build.
type Options struct {
	RepoRoot string    // where Files' sources are read from
	OutDir   string    // replaced: every output is written here
	Created  time.Time // image creation time and file mtimes, for reproducible digests
}

// Result is what Build wrote.
type Result struct {
	Index  v1.Hash            // digest of the multi-arch index
	Images map[string]v1.Hash // architecture -> image manifest digest
	Sizes  map[string]int64   // architecture -> compressed layer + config bytes
}

// Build writes the OCI layout (with its tar) and one docker archive per platform into opts.OutDir.
func Build(opts Options) (Result, error) {
	res := Result{Images: map[string]v1.Hash{}, Sizes: map[string]int64{}}
	// OutDir is removed first: refuse anything that is not a directory of its own.
	if out := filepath.Clean(opts.OutDir); out == "." || out == "/" || out == filepath.Clean(opts.RepoRoot) {
		return res, fmt.Errorf("output directory %q: want a directory of its own, such as build/image", opts.OutDir)
	}
	if err := os.RemoveAll(opts.OutDir); err != nil {
		return res, err
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return res, err
	}
	tag, err := name.NewTag(Ref(), name.StrictValidation)
	if err != nil {
		return res, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms {
		img, err := Image(opts, p)
		if err != nil {
			return res, fmt.Errorf("%s/%s: %w", p.OS, p.Architecture, err)
		}
		if err := tarball.WriteToFile(filepath.Join(opts.OutDir, DockerArchive(p.Architecture)), tag, img); err != nil {
			return res, err
		}
		if res.Images[p.Architecture], err = img.Digest(); err != nil {
			return res, err
		}
		if res.Sizes[p.Architecture], err = imageSize(img); err != nil {
			return res, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture}},
		})
	}
	if res.Index, err = idx.Digest(); err != nil {
		return res, err
	}
	lp, err := layout.Write(filepath.Join(opts.OutDir, LayoutDir), empty.Index)
	if err != nil {
		return res, err
	}
	// containerd's importer names the image from io.containerd.image.name; the OCI ref.name is the tag.
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          Ref(),
		"org.opencontainers.image.ref.name": Version,
	})); err != nil {
		return res, err
	}
	return res, tarDir(filepath.Join(opts.OutDir, LayoutDir), filepath.Join(opts.OutDir, LayoutTar), opts.Created)
}

// Image builds the image of one platform.
func Image(opts Options, p v1.Platform) (v1.Image, error) {
	layerTar, err := LayerTar(opts.RepoRoot, p.Architecture, opts.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	cf.Created = v1.Time{Time: opts.Created.UTC()}
	cf.Author = ""
	cf.Config = v1.Config{
		Entrypoint: Entrypoint,
		Cmd:        Cmd,
		User:       User,
		Labels:     Labels,
	}
	cf.History = []v1.History{{Created: cf.Created, CreatedBy: "make image (internal/imagebuild)", Comment: "static collector binary, default config, /etc files"}}
	return mutate.ConfigFile(img, cf)
}

// LayerTar is the uncompressed tar of the image's only layer for arch: Dirs, then Files, owned by 0:0, with
// mtime created.
func LayerTar(repoRoot, arch string, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range Dirs() {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: created, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range Files {
		data := []byte(f.Content)
		if f.Source != "" {
			var err error
			if data, err = os.ReadFile(filepath.Join(repoRoot, f.SourcePath(arch))); err != nil {
				return nil, err
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"), Mode: int64(f.Mode), Size: int64(len(data)), ModTime: created, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// imageSize is what a pull transfers: compressed layers plus the config.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// tarDir writes the regular files and directories under dir into the tar file out, paths relative to dir, in
// lexical order.
func tarDir(dir, out string, mtime time.Time) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: mtime})
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	closeErr := tw.Close()
	if err := f.Close(); err != nil && closeErr == nil {
		closeErr = err
	}
	if walkErr != nil {
		return walkErr
	}
	return closeErr
}
