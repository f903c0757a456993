package nodetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is one file of a test image's single layer. Data is the content of a regular file; Link, when set, makes
// the entry a symlink to Link instead.
type Entry struct {
	Data []byte
	Mode int64
	Link string
}

// ImageSpec is a single-layer test image, written as a docker archive for `ctr images import`.
type ImageSpec struct {
	Ref        string
	Files      map[string]Entry // path inside the image, without the leading slash
	Entrypoint []string
}

// layerTar returns the files as a tar stream, sorted, with their parent directories.
func layerTar(files map[string]Entry) ([]byte, error) {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mtime := time.Unix(0, 0)
	for _, p := range paths {
		for i := range len(p) {
			if p[i] != '/' || dirs[p[:i]] {
				continue
			}
			dirs[p[:i]] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p[:i] + "/", Mode: 0o755, ModTime: mtime}); err != nil {
				return nil, err
			}
		}
		e := files[p]
		h := &tar.Header{Name: p, Mode: e.Mode, ModTime: mtime}
		if e.Link != "" {
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.Link, 0o777
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.Link == "" {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteDockerArchive writes spec as a docker archive (manifest.json, config, one layer) for this machine's
// architecture.
func WriteDockerArchive(path string, spec ImageSpec) error {
	data, err := layerTar(spec.Files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{Entrypoint: spec.Entrypoint, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.NewTag(spec.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", spec.Ref, err)
	}
	return tarball.WriteToFile(path, ref, img)
}

// busyboxPath is the host's static busybox, the only program in the test images.
const busyboxPath = "/bin/busybox"

// BusyboxFiles returns /bin/busybox with /bin/sh linked to it, plus links[name] = target entries.
func BusyboxFiles(links map[string]string) (map[string]Entry, error) {
	data, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("static busybox: %w", err)
	}
	files := map[string]Entry{"bin/busybox": {Data: data, Mode: 0o755}, "bin/sh": {Link: "busybox"}}
	for name, target := range links {
		files[name] = Entry{Link: target}
	}
	return files, nil
}

// pauseImage is the sandbox image: busybox sleeping forever. containerd stops sandboxes with SIGKILL, so it needs
// no signal handling.
func pauseImage() (ImageSpec, error) {
	files, err := BusyboxFiles(nil)
	return ImageSpec{Ref: PauseImage, Files: files, Entrypoint: []string{"/bin/busybox", "sleep", "2147483647"}}, err
}

func busyboxImage() (ImageSpec, error) {
	files, err := BusyboxFiles(nil)
	return ImageSpec{Ref: BusyboxImage, Files: files}, err
}
