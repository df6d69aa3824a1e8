//go:build linux

package layer_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/mount"
)

// Download a layer blob into the content store and unpack it while it
// arrives, resuming a download an earlier process left half done.
func ExampleStore_Unpack() {
	ctx := context.Background()
	s, err := layer.Open("/var/lib/example")
	if err != nil {
		log.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: layer.MediaTypeLayerGzip, Digest: "sha256:...", Size: 1234}
	diffID := digest.Digest("sha256:...") // from the image config
	lease, err := s.Lease(ctx)            // keep GC away until Ref
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release()

	w, err := s.Writer(ctx, desc)
	if err != nil {
		log.Fatal(err) // errdefs.ErrAlreadyExists if another process got it first
	}
	defer w.Close()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://registry.example/v2/x/blobs/"+desc.Digest.String(), nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", w.Offset()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	src := io.MultiReader(w.Partial(), io.TeeReader(resp.Body, w))
	l, err := s.Unpack(ctx, src, desc.MediaType, "", diffID)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, src) // the rest of the blob, if Unpack did not need it
	if err := w.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	if err := s.Ref(ctx, "image/example", desc.Digest, l.ChainID); err != nil {
		log.Fatal(err)
	}
}

// Make a writable root file system from a layer chain, change it, and
// commit the changes as a new layer.
func ExampleSnapshotter() {
	ctx := context.Background()
	s, err := layer.Open("/var/lib/example")
	if err != nil {
		log.Fatal(err)
	}
	sn, err := s.Snapshotter() // overlay, or copy where overlay cannot work
	if err != nil {
		log.Fatal(err)
	}
	top := digest.Digest("sha256:...") // ChainID of the image's top layer
	mounts, err := sn.Prepare(ctx, "container-1", top)
	if err != nil {
		log.Fatal(err)
	}
	rootfs, _ := os.MkdirTemp("", "rootfs")
	if err := mount.All(mounts, rootfs); err != nil {
		log.Fatal(err)
	}
	os.WriteFile(rootfs+"/hello", []byte("hi\n"), 0o644)
	mount.UnmountAll(rootfs, 0)

	changes, _ := sn.Changes(ctx, "container-1")
	fmt.Println(changes) // [A /hello]
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(sn.Diff(ctx, "container-1", pw)) }()
	committed, err := s.Unpack(ctx, pr, layer.MediaTypeLayer, top, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(committed.ChainID)
	sn.Remove(ctx, "container-1")
}
