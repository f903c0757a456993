package imagebuild_test

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/compilerwatch/compilerwatch/internal/imagebuild"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
)

const repoRoot = "../.."

// builtImage is `make image`'s output directory.
var builtImage = filepath.Join(repoRoot, "build", "image")

// TestDefinitionAgreesWithBuilderConfig: the image's name and version are the distribution's.
func TestDefinitionAgreesWithBuilderConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "builder-config.yaml"))
	require.NoError(t, err)
	var cfg struct {
		Dist struct {
			Name       string `yaml:"name"`
			Version    string `yaml:"version"`
			OutputPath string `yaml:"output_path"`
		} `yaml:"dist"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	assert.Equal(t, cfg.Dist.Name, imagebuild.BinaryName)
	assert.Equal(t, cfg.Dist.Version, imagebuild.Version)
	assert.Equal(t, cfg.Dist.Version, imagebuild.Labels["org.opencontainers.image.version"])

	_, err = name.NewTag(imagebuild.Ref(), name.StrictValidation)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(imagebuild.Repository, "registry.invalid/"), "a placeholder nobody can serve")
	for k := range imagebuild.Labels {
		assert.True(t, strings.HasPrefix(k, "org.opencontainers.image."), k)
	}
	assert.Equal(t, []string{"/etc", "/etc/otelcol-compilerwatch"}, imagebuild.Dirs())
	for _, f := range imagebuild.Files {
		assert.True(t, path.IsAbs(f.Path) && path.Clean(f.Path) == f.Path, f.Path)
		assert.True(t, (f.Source == "") != (f.Content == ""), "%s: a source or a content", f.Path)
	}
}

// TestBuildIsReproducible builds the image twice from stand-in binaries: same digests, both platforms in the
// index, and each docker archive holding the same config and layer as the index's image.
func TestBuildIsReproducible(t *testing.T) {
	root := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "config.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "testdata"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "testdata", "config.yaml"), cfg, 0o644))
	for _, p := range imagebuild.Platforms {
		bin := filepath.Join(root, "build", "linux-"+p.Architecture, imagebuild.BinaryName)
		require.NoError(t, os.MkdirAll(filepath.Dir(bin), 0o755))
		require.NoError(t, os.WriteFile(bin, []byte("binary for "+p.Architecture), 0o755))
	}
	created := time.Unix(1700000000, 0).UTC()
	var results []imagebuild.Result
	for _, out := range []string{"a", "b"} {
		res, err := imagebuild.Build(imagebuild.Options{RepoRoot: root, OutDir: filepath.Join(root, out), Created: created})
		require.NoError(t, err)
		results = append(results, res)
	}
	assert.Equal(t, results[0], results[1], "the same inputs give the same digests")
	for _, out := range []string{"", ".", "/", root} {
		_, err := imagebuild.Build(imagebuild.Options{RepoRoot: root, OutDir: out, Created: created})
		assert.ErrorContains(t, err, "a directory of its own", "output %q", out)
	}
	assert.NotEqual(t, results[0].Images["amd64"], results[0].Images["arm64"])

	out := filepath.Join(root, "a")
	checkOutputs(t, out, results[0].Index)
	idx, err := imagebuild.LayoutIndex(out)
	require.NoError(t, err)
	for _, p := range imagebuild.Platforms {
		img, err := imagebuild.PlatformImage(idx, p.Architecture)
		require.NoError(t, err)
		files := layerFiles(t, img)
		assert.Equal(t, "binary for "+p.Architecture, files[imagebuild.BinaryPath].data)
		assert.Equal(t, string(cfg), files[imagebuild.ConfigPath].data)
		assert.Equal(t, created, files[imagebuild.BinaryPath].hdr.ModTime.UTC())

		// The Dockerfile's rootfs holds the same files as the image's layer.
		unpacked, rootfs := t.TempDir(), t.TempDir()
		require.NoError(t, imagebuild.Unpack(img, unpacked))
		require.NoError(t, imagebuild.WriteRootfs(root, p.Architecture, rootfs))
		assert.Equal(t, treeOf(t, unpacked), treeOf(t, rootfs))
		assert.Len(t, treeOf(t, rootfs), len(imagebuild.Files)+len(imagebuild.Dirs()))
	}
}

// treeOf maps every path under dir to its mode and content.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var data []byte
		if !d.IsDir() {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fi.Mode().String() + " " + string(data)
		return nil
	}))
	return out
}

// TestBuiltImage reads back what `make image` wrote: the multi-arch index, the docker archives, each
// platform's config and files, the binary's architecture, and no shell or package manager anywhere.
// The catalog's compilers are checked by the compiler_detector processor's own test of this image.
func TestBuiltImage(t *testing.T) {
	if _, err := os.Stat(filepath.Join(builtImage, imagebuild.LayoutDir, "index.json")); err != nil {
		msg := builtImage + " is not built: run `make image` (make test does)"
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	idx, err := imagebuild.LayoutIndex(builtImage)
	require.NoError(t, err)
	d, err := idx.Digest()
	require.NoError(t, err)
	checkOutputs(t, builtImage, d)

	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, p := range imagebuild.Platforms {
		t.Run(p.Architecture, func(t *testing.T) {
			img, err := imagebuild.PlatformImage(idx, p.Architecture)
			require.NoError(t, err)
			files := layerFiles(t, img)
			for _, f := range imagebuild.Files {
				want := f.Content
				if f.Source != "" {
					b, err := os.ReadFile(filepath.Join(repoRoot, f.SourcePath(p.Architecture)))
					require.NoError(t, err)
					want = string(b)
				}
				assert.True(t, files[f.Path].data == want, "%s differs from %s", f.Path, f.SourcePath(p.Architecture))
			}

			bin := t.TempDir() + "/bin"
			require.NoError(t, os.WriteFile(bin, []byte(files[imagebuild.BinaryPath].data), 0o644))
			ef, err := elf.Open(bin)
			require.NoError(t, err)
			defer func() { _ = ef.Close() }()
			assert.Equal(t, machines[p.Architecture], ef.Machine)
			for _, prog := range ef.Progs {
				assert.NotEqual(t, elf.PT_INTERP, prog.Type, "a static binary: scratch has no dynamic loader")
			}
		})
	}
}

// checkOutputs checks the OCI layout, its tar and the docker archives under out against the definition.
func checkOutputs(t *testing.T, out string, indexDigest v1.Hash) {
	t.Helper()
	idx, err := imagebuild.LayoutIndex(out)
	require.NoError(t, err)
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, types.OCIImageIndex, m.MediaType)
	var platforms []v1.Platform
	for _, d := range m.Manifests {
		require.NotNil(t, d.Platform)
		platforms = append(platforms, *d.Platform)
		assert.Equal(t, types.OCIManifestSchema1, d.MediaType)
	}
	assert.Equal(t, imagebuild.Platforms, platforms, "the index holds linux/amd64 and linux/arm64")

	// index.json names the multi-arch index for ctr images import.
	raw, err := os.ReadFile(filepath.Join(out, imagebuild.LayoutDir, "index.json"))
	require.NoError(t, err)
	top, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
	require.NoError(t, err)
	require.Len(t, top.Manifests, 1)
	assert.Equal(t, indexDigest, top.Manifests[0].Digest)
	assert.Equal(t, imagebuild.Ref(), top.Manifests[0].Annotations["io.containerd.image.name"])

	// The layout tar holds the same files as the layout directory.
	assert.Equal(t, dirFiles(t, filepath.Join(out, imagebuild.LayoutDir)), tarNames(t, filepath.Join(out, imagebuild.LayoutTar)))

	tag, err := name.NewTag(imagebuild.Ref())
	require.NoError(t, err)
	for _, p := range imagebuild.Platforms {
		img, err := imagebuild.PlatformImage(idx, p.Architecture)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, p.OS, cf.OS)
		assert.Equal(t, p.Architecture, cf.Architecture)
		assert.Equal(t, imagebuild.Entrypoint, cf.Config.Entrypoint)
		assert.Equal(t, imagebuild.Cmd, cf.Config.Cmd)
		assert.Equal(t, imagebuild.User, cf.Config.User)
		assert.Equal(t, imagebuild.Labels, cf.Config.Labels)
		assert.Empty(t, cf.Config.Env, "no environment: no PATH for a shell the image does not have")
		assert.Empty(t, cf.Config.WorkingDir, "like FROM scratch in the Dockerfile")

		var want []string
		for _, d := range imagebuild.Dirs() {
			want = append(want, d+"/")
		}
		for _, f := range imagebuild.Files {
			want = append(want, f.Path)
		}
		slices.Sort(want)
		files := layerFiles(t, img)
		var got []string
		for p, f := range files {
			if f.hdr.Typeflag == tar.TypeDir {
				p += "/"
			}
			got = append(got, p)
			assert.Equal(t, 0, f.hdr.Uid, p)
			assert.Equal(t, 0, f.hdr.Gid, p)
		}
		slices.Sort(got)
		assert.Equal(t, want, got, "the image holds exactly the defined files")
		for p := range files {
			assert.NotContains(t, shellsAndPackageManagers, path.Base(p), "%s: a shell or package manager", p)
		}

		// docker load's archive: the same config and layer, tagged with the image's reference.
		archive := filepath.Join(out, imagebuild.DockerArchive(p.Architecture))
		dimg, err := tarball.ImageFromPath(archive, &tag)
		require.NoError(t, err, archive)
		dm, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
		require.NoError(t, err)
		require.Len(t, dm, 1)
		assert.Equal(t, []string{imagebuild.Ref()}, dm[0].RepoTags, "docker load tags the image with its reference")
		for _, get := range []func(v1.Image) (v1.Hash, error){
			func(i v1.Image) (v1.Hash, error) { return i.ConfigName() },
			func(i v1.Image) (v1.Hash, error) {
				ls, err := i.Layers()
				if err != nil || len(ls) != 1 {
					return v1.Hash{}, errors.Join(err, errors.New("want one layer"))
				}
				return ls[0].DiffID()
			},
		} {
			a, err := get(img)
			require.NoError(t, err)
			b, err := get(dimg)
			require.NoError(t, err)
			assert.Equal(t, a, b, archive)
		}
	}
}

var shellsAndPackageManagers = []string{
	"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox", "toybox",
	"apt", "apt-get", "dpkg", "apk", "yum", "dnf", "microdnf", "rpm", "zypper", "pacman", "pip", "pip3", "nix",
}

type layerFile struct {
	hdr  *tar.Header
	data string
}

// layerFiles reads img's single layer: absolute path -> entry.
func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer func() { _ = rc.Close() }()
	out := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		p := "/" + strings.TrimSuffix(hdr.Name, "/")
		require.NotContains(t, out, p, "duplicate entry")
		out[p] = layerFile{hdr: hdr, data: string(data)}
	}
}

func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	}))
	slices.Sort(out)
	return out
}

func tarNames(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	var out []string
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			slices.Sort(out)
			return out
		}
		require.NoError(t, err)
		if hdr.Typeflag == tar.TypeReg {
			out = append(out, hdr.Name)
		}
	}
}
