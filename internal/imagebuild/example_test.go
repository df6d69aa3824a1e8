package imagebuild_test

import (
	"fmt"
	"log"
	"os"

	"github.com/berthrt/berth/internal/imagebuild"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Build a one-layer image and write it as an OCI layout that skopeo, umoci
// or berth can read as oci:DIR:v1.
func Example() {
	layer := imagebuild.LayerTar([]imagebuild.File{
		imagebuild.Dir("etc", 0o755),
		imagebuild.Reg("etc/motd", 0o644, "hello\n"),
		imagebuild.Symlink("motd", "etc/motd"),
	})
	built, err := imagebuild.Build(imagebuild.Image{
		Layers:   []imagebuild.Layer{{Tar: layer}},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/cat", "/motd"}},
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
	})
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "layout-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := imagebuild.WriteOCILayout(dir, "v1", built); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(built.Blobs), "blobs, manifest", built.Desc.MediaType)
	// Output: 3 blobs, manifest application/vnd.oci.image.manifest.v1+json
}
