// Command image writes the otelcol-compilerwatch OCI image (`make image`): an OCI layout with the
// linux/amd64 + linux/arm64 index, its tar for `ctr images import`, and one `docker load` archive per
// architecture. It reads build/linux-<arch>/otelcol-compilerwatch, which `make image` cross-builds first.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/compilerwatch/compilerwatch/internal/imagebuild"
)

func main() {
	root := flag.String("root", ".", "repository root")
	out := flag.String("out", "build/image", "output directory (replaced)")
	rootfs := flag.String("rootfs", "", "instead of the image, write the image's files for -arch into this directory (deploy/Dockerfile)")
	arch := flag.String("arch", "", "architecture for -rootfs")
	flag.Parse()
	if *rootfs != "" {
		if err := imagebuild.WriteRootfs(*root, *arch, *rootfs); err != nil {
			fmt.Fprintln(os.Stderr, "imagebuild:", err)
			os.Exit(1)
		}
		return
	}
	// SOURCE_DATE_EPOCH (reproducible-builds.org) sets the image's creation time; unset, the Unix epoch, so
	// the same binaries always give the same digests.
	created := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "imagebuild: SOURCE_DATE_EPOCH %q is not a number of seconds\n", s)
			os.Exit(2)
		}
		created = time.Unix(sec, 0).UTC()
	}
	res, err := imagebuild.Build(imagebuild.Options{RepoRoot: *root, OutDir: *out, Created: created})
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
	fmt.Printf("%s  index %s\n", imagebuild.Ref(), res.Index)
	for _, p := range imagebuild.Platforms {
		fmt.Printf("  %s/%-5s %s  %.1f MiB compressed  %s\n", p.OS, p.Architecture, res.Images[p.Architecture],
			float64(res.Sizes[p.Architecture])/(1<<20), filepath.Join(*out, imagebuild.DockerArchive(p.Architecture)))
	}
	fmt.Printf("  OCI layout %s (ctr images import %s)\n", filepath.Join(*out, imagebuild.LayoutDir), filepath.Join(*out, imagebuild.LayoutTar))
}
