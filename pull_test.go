//go:build linux

package berth_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/registrytest"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	"github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushBuilt uploads an imagebuild image to ref.
func pushBuilt(t *testing.T, ref string, b imagebuild.Built) {
	t.Helper()
	pushBuiltSkipping(t, ref, b, map[digest.Digest]bool{})
}

// pushBuiltSkipping is pushBuilt for images that share blobs: it skips
// the blobs in pushed and adds to pushed those it uploads.
func pushBuiltSkipping(t *testing.T, ref string, b imagebuild.Built, pushed map[digest.Digest]bool) {
	t.Helper()
	ctx := context.Background()
	r, err := registryclient.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	c := &registryclient.Client{}
	for d, blob := range b.Blobs {
		if d == b.Desc.Digest || pushed[d] {
			continue
		}
		if err := c.PushBlob(ctx, r, ocispec.Descriptor{Digest: d, Size: int64(len(blob))}, bytes.NewReader(blob)); err != nil {
			t.Fatal(err)
		}
		pushed[d] = true
	}
	if _, err := c.PushManifest(ctx, r, b.Desc.MediaType, b.Manifest); err != nil {
		t.Fatal(err)
	}
}

func TestPullAndRunFromRegistry(t *testing.T) {
	testutil.RequiresCommand(t, "docker-registry")
	rt := newRuntime(t)
	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Host + "/tools/toolbox:v1"
	pushBuilt(t, ref, toolboxtest.Built(t))
	ctx := context.Background()
	var events int
	img, err := rt.Pull(ctx, ref, berth.PullOptions{ProgressFunc: func(berth.Progress) { events++ }})
	if err != nil {
		t.Fatal(err)
	}
	if events == 0 {
		t.Error("no progress events")
	}
	if img.Name != ref || len(img.DiffIDs()) != 1 {
		t.Errorf("pulled image: %+v", img)
	}
	// Pulling again finds everything present.
	again, err := rt.Pull(ctx, ref, berth.PullOptions{})
	if err != nil || again.Digest != img.Digest {
		t.Fatalf("second pull: %v", err)
	}
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"echo", "pulled"}})
	if err != nil || out != "pulled\n" {
		t.Fatalf("run pulled image: %q %v", out, err)
	}
	if problems, err := rt.Check(ctx); err != nil || len(problems) != 0 {
		t.Errorf("check after pull: %v %v", problems, err)
	}
	// A container keeps its image from being removed.
	c, err := rt.Create(ctx, berth.ContainerConfig{Image: img, NetworkMode: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveImage(ctx, ref, berth.RemoveImageOptions{}); !errors.Is(err, berth.ErrInUse) {
		t.Errorf("remove image in use: %v", err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveImage(ctx, ref, berth.RemoveImageOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Image(ctx, ref); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("removed image still found: %v", err)
	}
	if _, err := rt.Pull(ctx, reg.Host+"/tools/missing:v1", berth.PullOptions{}); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("pull of a missing image: %v", err)
	}
	if _, err := rt.Pull(ctx, "Invalid", berth.PullOptions{}); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("pull of a bad reference: %v", err)
	}
}

func TestPushRoundTrip(t *testing.T) {
	testutil.RequiresCommand(t, "docker-registry")
	rt := newRuntime(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := toolboxImage(t, rt)
	ctx := context.Background()
	dst := reg.Host + "/pushed/toolbox:latest"
	if err := rt.Tag(ctx, img.Name, dst); err != nil {
		t.Fatal(err)
	}
	d, err := rt.Push(ctx, dst, berth.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rt2 := newRuntime(t)
	got, err := rt2.Pull(ctx, dst, berth.PullOptions{})
	if err != nil || got.Digest != d {
		t.Fatalf("pull of pushed image: %v (digest %s, want %s)", err, got.Digest, d)
	}
}
