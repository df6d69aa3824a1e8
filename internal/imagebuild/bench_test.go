package imagebuild_test

import (
	"testing"

	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
)

// BenchmarkBuildToolbox measures LayerTar plus Build of the toolbox image,
// for each compression.
func BenchmarkBuildToolbox(b *testing.B) {
	bin := toolboxtest.Bytes(b)
	for _, c := range []imagebuild.Compression{imagebuild.Gzip, imagebuild.Zstd, imagebuild.Uncompressed} {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(bin)))
			var size int
			for b.Loop() {
				built, err := imagebuild.Build(imagebuild.Image{
					Layers: []imagebuild.Layer{{Tar: imagebuild.LayerTar(imagebuild.Toolbox(bin)), Compression: c}},
				})
				if err != nil {
					b.Fatal(err)
				}
				size = 0
				for _, blob := range built.Blobs {
					size += len(blob)
				}
			}
			b.ReportMetric(float64(size), "image-bytes")
		})
	}
}
