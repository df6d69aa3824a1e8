//go:build linux

package berth_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/faultproxy"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/registrytest"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
)

// bigToolbox is the toolbox image with one more layer of incompressible
// data of n bytes.
func bigToolbox(t *testing.T, n int) imagebuild.Built {
	t.Helper()
	img := toolboxtest.Image(t)
	data := make([]byte, n)
	_, _ = rand.Read(data)
	img.Layers = append(img.Layers, imagebuild.Layer{Tar: imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("big", 0o644, string(data))})})
	b, err := imagebuild.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPullThroughFaults pulls through a proxy that resets the connection
// every MiB, answers 503s, and corrupts bytes: the pull completes when it
// can, fails with a typed error when it cannot, and leaves the store
// consistent either way.
func TestPullThroughFaults(t *testing.T) {
	testutil.RequiresCommand(t, "docker-registry")
	rt := newRuntime(t)
	reg := registrytest.Start(t, registrytest.Options{})
	built := bigToolbox(t, 8<<20)
	pushBuilt(t, reg.Host+"/faults/big:v1", built)
	proxy := faultproxy.Start(t, "http://"+reg.Host)
	ref := proxy.Host + "/faults/big:v1"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Corrupt bytes in every blob answer: a digest mismatch, nothing stored.
	proxy.SetRules(faultproxy.Rule{Path: "/blobs/", CorruptAt: 1000})
	if _, err := rt.Pull(ctx, ref, berth.PullOptions{}); !errors.Is(err, berth.ErrDigestMismatch) {
		t.Fatalf("corrupt blobs: want ErrDigestMismatch, got %v", err)
	}
	if _, err := rt.Image(ctx, ref); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("an image was recorded from corrupt blobs: %v", err)
	}
	if problems, err := rt.Check(ctx); err != nil || len(problems) != 0 {
		t.Errorf("store after a failed pull: %v %v", problems, err)
	}

	// Resets every MiB and a few 503s: the pull completes, resuming
	// instead of starting again. A fresh root measures the bytes: the
	// failed pull above may have left partial downloads of corrupt bytes,
	// which the next pull must detect and fetch again (checked below).
	proxy.SetRules(
		faultproxy.Rule{Path: "/manifests/", Status: 503, Times: 2},
		faultproxy.Rule{Path: "/blobs/", ResetEvery: 1 << 20},
	)
	proxy.ResetCounters()
	fresh := newRuntime(t)
	if _, err := fresh.Pull(ctx, ref, berth.PullOptions{}); err != nil {
		t.Fatalf("pull through resets: %v", err)
	}
	var total int64
	for _, d := range built.Blobs {
		total += int64(len(d))
	}
	if sent := proxy.BytesSent(); float64(sent) > 1.2*float64(total) {
		t.Errorf("sent %d bytes for %d of blobs: resumes restarted from zero", sent, total)
	}
	// The root with the corrupt leftovers pulls through the same faults.
	img, err := rt.Pull(ctx, ref, berth.PullOptions{})
	if err != nil {
		t.Fatalf("pull through resets after a corrupt pull: %v", err)
	}
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"echo", "ok"}})
	if err != nil || out != "ok\n" {
		t.Fatalf("run: %q %v", out, err)
	}
	if problems, err := rt.Check(ctx); err != nil || len(problems) != 0 {
		t.Errorf("store after a faulty pull: %v %v", problems, err)
	}

	// A registry that keeps failing: a typed error, within the deadline.
	proxy.SetRules(faultproxy.Rule{Status: 500})
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if _, err := rt.Pull(sctx, proxy.Host+"/faults/other:v1", berth.PullOptions{}); !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("failing registry: want ErrUnavailable, got %v", err)
	}
}
