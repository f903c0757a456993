package nodetest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestWriteDockerArchive: the archive loads back as one image for this machine's architecture, with the
// entrypoint, and a layer holding the files, their parent directories and the symlinks.
func TestWriteDockerArchive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img.tar")
	spec := ImageSpec{
		Ref:        "localhost/cw/test:1",
		Entrypoint: []string{"/bin/sh"},
		Files: map[string]Entry{
			"bin/busybox": {Data: []byte("elf"), Mode: 0o755},
			"bin/sh":      {Link: "busybox"},
			"usr/bin/gcc": {Data: []byte("gcc"), Mode: 0o755},
		},
	}
	if err := WriteDockerArchive(p, spec); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/bin/sh" {
		t.Errorf("config: os %q arch %q entrypoint %q", cf.OS, cf.Architecture, cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = io.Copy(&b, tr)
		got[h.Name] = string(h.Typeflag) + ":" + h.Linkname + b.String()
	}
	want := map[string]string{
		"bin/":        "5:",
		"bin/busybox": "0:elf",
		"bin/sh":      "2:busybox",
		"usr/":        "5:",
		"usr/bin/":    "5:",
		"usr/bin/gcc": "0:gcc",
	}
	if len(got) != len(want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}
