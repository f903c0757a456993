package imagebuild

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// LayoutIndex reads the multi-arch index that Build wrote under outDir: the one index the layout's
// index.json names.
func LayoutIndex(outDir string) (v1.ImageIndex, error) {
	top, err := layout.ImageIndexFromPath(filepath.Join(outDir, LayoutDir))
	if err != nil {
		return nil, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("index.json lists %d descriptors, want 1", len(m.Manifests))
	}
	return top.ImageIndex(m.Manifests[0].Digest)
}

// PlatformImage is the image of arch in idx.
func PlatformImage(idx v1.ImageIndex, arch string) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == arch {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no linux/%s image in the index", arch)
}

// Unpack writes img's single layer under dst (regular files and directories only; anything else, or a path
// leaving dst, is an error).
func Unpack(img v1.Image, dst string) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if len(layers) != 1 {
		return fmt.Errorf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	return untar(rc, dst)
}

// WriteRootfs writes the image's files for arch under dst, as the layer holds them: the Dockerfile's final
// stage copies this directory, so both builds hold exactly Files.
func WriteRootfs(repoRoot, arch, dst string) error {
	layer, err := LayerTar(repoRoot, arch, time.Unix(0, 0).UTC())
	if err != nil {
		return err
	}
	return untar(bytes.NewReader(layer), dst)
}

// untar writes the regular files and directories of the tar stream r under dst.
func untar(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(hdr.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("layer path %q leaves the root", hdr.Name)
		}
		p := filepath.Join(dst, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(hdr.Mode)&0o777)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("layer entry %q has type %q", hdr.Name, hdr.Typeflag)
		}
	}
}
