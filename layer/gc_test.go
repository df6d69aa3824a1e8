//go:build linux

package layer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/mount"
)

func putBlob(t *testing.T, s *Store, b []byte) digest.Digest {
	t.Helper()
	ctx := context.Background()
	d := digest.FromBytes(b)
	w, err := s.Writer(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(b))})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGC(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t, Options{IngestExpiry: time.Hour})
	keepBlob := putBlob(t, s, []byte("manifest of kept image"))
	dropBlob := putBlob(t, s, []byte("manifest of dropped image"))
	sharedBlob := putBlob(t, s, []byte("config used by both"))
	base := unpack(t, s, "", mkTar(t, ent{Name: "base", Body: "b"}))
	top := unpack(t, s, base.ChainID, mkTar(t, ent{Name: "top", Body: "t"}))
	other := unpack(t, s, base.ChainID, mkTar(t, ent{Name: "other", Body: "o"}))
	lonely := unpack(t, s, "", mkTar(t, ent{Name: "lonely", Body: "l"}))

	must(t, s.Ref(ctx, "image/keep", keepBlob, sharedBlob, top.ChainID))
	must(t, s.Ref(ctx, "image/drop", dropBlob, sharedBlob, other.ChainID, lonely.ChainID))
	must(t, s.Ref(ctx, "image/keep", keepBlob)) // idempotent

	// A stale and a fresh partial download.
	_, staleDesc := blob(1000)
	w, _ := s.Writer(ctx, staleDesc)
	w.Write(make([]byte, 10))
	w.Close()
	old := time.Now().Add(-2 * time.Hour)
	name := "sha256-" + staleDesc.Digest.Encoded()
	os.Chtimes(s.path("ingest", name), old, old)
	_, freshDesc := blob(1000)
	w, _ = s.Writer(ctx, freshDesc)
	w.Write(make([]byte, 10))
	w.Close()
	// Leftovers of a crash.
	os.MkdirAll(s.path("tmp", "unpack-crashed", "diff"), 0o755)
	os.WriteFile(s.path("refs", ".abc.json.tmp-1"), []byte("{"), 0o600)

	rm, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Blobs) != 0 || len(rm.Layers) != 0 || rm.Ingests != 1 || rm.Temp != 2 {
		t.Fatalf("first gc removed %+v", rm)
	}

	must(t, s.Unref(ctx, "image/drop"))
	rm, err = s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rm.Layers)
	wantLayers := []digest.Digest{other.ChainID, lonely.ChainID}
	slices.Sort(wantLayers)
	if !reflect.DeepEqual(rm.Blobs, []digest.Digest{dropBlob}) || !reflect.DeepEqual(rm.Layers, wantLayers) {
		t.Fatalf("second gc removed %+v", rm)
	}
	for _, d := range []digest.Digest{keepBlob, sharedBlob} {
		if !s.Has(d) {
			t.Errorf("blob %s removed", d)
		}
	}
	for _, d := range []digest.Digest{base.ChainID, top.ChainID} {
		if !s.HasLayer(d) {
			t.Errorf("layer %s removed", d)
		}
	}
	if _, err := os.Stat(s.path("ingest", "sha256-"+freshDesc.Digest.Encoded())); err != nil {
		t.Errorf("fresh ingest removed: %v", err)
	}
	if probs, err := s.Check(ctx); err != nil || len(probs) != 0 {
		t.Errorf("check: %v %v", probs, err)
	}

	must(t, s.Unref(ctx, "image/keep"))
	rm, _ = s.GC(ctx)
	if len(rm.Blobs) != 2 || len(rm.Layers) != 2 {
		t.Fatalf("third gc removed %+v", rm)
	}
	assertClean(t, s)
}

// GC waits for a lease: a download between commit and Ref is safe.
func TestGCWaitsForLease(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t)
	lease, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := putBlob(t, s, []byte("just downloaded"))
	done := make(chan Removed)
	go func() {
		s2, _ := Open(s.Root())
		rm, err := s2.GC(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- rm
	}()
	select {
	case <-done:
		t.Fatal("GC ran during a lease")
	case <-time.After(200 * time.Millisecond):
	}
	must(t, s.Ref(ctx, "image/x", d))
	lease.Release()
	rm := <-done
	if len(rm.Blobs) != 0 || !s.Has(d) {
		t.Fatalf("gc removed %+v", rm)
	}
}

func TestCheckFindsProblems(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t)
	l := unpack(t, s, "", mkTar(t, ent{Name: "f", Body: "1"}))
	must(t, s.Ref(ctx, "image/x", digest.FromString("gone"), l.ChainID))
	sn := NewCopySnapshotter(s)
	if _, err := sn.Prepare(ctx, "broken", l.ChainID); err != nil {
		t.Fatal(err)
	}
	must(t, os.RemoveAll(filepath.Join(s.snapDir("broken"), "rootfs")))
	must(t, os.RemoveAll(s.LayerDir(l.ChainID)))
	probs, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, p := range probs {
		kinds[p.Kind]++
		t.Log(p)
	}
	if kinds["layer"] != 1 || kinds["ref"] != 1 || kinds["snapshot"] != 1 {
		t.Fatalf("problems %v", probs)
	}
}

// 128 layers: overlay with short links under a short root; a long root
// falls back to a copy; both show the same content.
func TestOverlayManyLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	short, err := os.MkdirTemp("/tmp", "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	for _, root := range []string{short, filepath.Join(t.TempDir(), "a-rather-long-root-directory-name-for-berth")} {
		s, err := OpenWith(root, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		o, err := NewOverlaySnapshotter(s)
		if err != nil {
			t.Fatal(err)
		}
		var parent digest.Digest
		want := map[string]string{}
		for i := 0; i < 128; i++ {
			n := fmt.Sprintf("f%03d", i)
			parent = unpack(t, s, parent, mkTar(t, ent{Name: n, Body: n}, ent{Name: "top", Body: n})).ChainID
			want[n] = n
		}
		want["top"] = "f127"
		ms, err := o.Prepare(ctx, "many", parent)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("root %s (%d bytes): %s, options %d bytes", root, len(root), ms[0].Type, len(fmt.Sprint(ms[0].Options)))
		if wantType := map[bool]string{true: "overlay", false: "bind"}[root == short]; ms[0].Type != wantType {
			t.Errorf("mount type %s, want %s", ms[0].Type, wantType)
		}
		target := mountAt(t, ms)
		checkView(t, tree(t, target), want)
		must(t, mount.UnmountAll(target, 0))
		must(t, o.Remove(ctx, "many"))
	}
}

func TestStoreSnapshotterChoice(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	sn, err := s.Snapshotter()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sn.(*OverlaySnapshotter); !ok {
		t.Errorf("on ext4 as root: %T", sn)
	}
	s = newStore(t, Options{Snapshotter: "copy"})
	if sn, _ := s.Snapshotter(); fmt.Sprintf("%T", sn) != "*layer.CopySnapshotter" {
		t.Errorf("forced copy: %T", sn)
	}
	if _, err := OpenWith(t.TempDir(), Options{Snapshotter: "zfs"}); err == nil {
		t.Error("unknown snapshotter accepted")
	}
}

// Open removes what crashed processes left in tmp/, unless another
// process is at work (holds a lease).
func TestOpenCleansTemp(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	junk := s.path("tmp", "unpack-123", "diff", "f")
	must(t, os.MkdirAll(junk, 0o755))
	lease, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s.Root()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(junk); err != nil {
		t.Fatalf("temp removed under a lease: %v", err)
	}
	lease.Release()
	if _, err := Open(s.Root()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path("tmp", "unpack-123")); !os.IsNotExist(err) {
		t.Fatalf("temp left: %v", err)
	}
}

// Pulls (lease, unpack, ref) and GC running at once never lose a
// referenced layer nor leave the store inconsistent.
func TestGCConcurrentWithPulls(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t, Options{NoSync: true})
	stop := make(chan struct{})
	gcDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				gcDone <- n
				return
			default:
			}
			if _, err := s.GC(ctx); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	errc := make(chan error, 16)
	for g := 0; g < 16; g++ {
		go func() {
			errc <- func() error {
				lease, err := s.Lease(ctx)
				if err != nil {
					return err
				}
				defer lease.Release()
				tb := mkTar(t, ent{Name: fmt.Sprintf("g%d", g), Body: "x"})
				b := putBlob(t, s, gz(t, tb))
				l := unpack(t, s, "", tb)
				return s.Ref(ctx, fmt.Sprintf("image/%d", g), b, l.ChainID)
			}()
		}()
	}
	for g := 0; g < 16; g++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	t.Logf("%d GC runs meanwhile", <-gcDone)
	ls, _ := s.Layers(ctx)
	if len(ls) != 16 {
		t.Fatalf("%d layers", len(ls))
	}
	if probs, err := s.Check(ctx); err != nil || len(probs) != 0 {
		t.Fatalf("check: %v %v", probs, err)
	}
}
