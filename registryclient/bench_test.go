package registryclient_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/berthrt/berth/internal/registrytest"
	rc "github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkOpenBlob reads a 64 MiB blob from a loopback docker-registry
// through OpenBlob (verified) and, for comparison, with a bare http.Get.
func BenchmarkOpenBlob(b *testing.B) {
	reg := registrytest.Start(b, registrytest.Options{})
	data := randomBytes(99, 64<<20)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	ref := mustRef(b, reg.Ref("bench/blob:1"))
	ctx := context.Background()
	c := &rc.Client{}
	if err := c.PushBlob(ctx, ref, desc, bytesReader(data)); err != nil {
		b.Fatal(err)
	}
	b.Run("OpenBlob", func(b *testing.B) {
		b.SetBytes(desc.Size)
		for b.Loop() {
			r, err := c.OpenBlob(ctx, ref, desc, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
	})
	b.Run("http.Get", func(b *testing.B) {
		b.SetBytes(desc.Size)
		for b.Loop() {
			resp, err := http.Get(reg.URL + "/v2/" + ref.Repository + "/blobs/" + desc.Digest.String())
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}
