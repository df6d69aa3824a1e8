//go:build linux

package layer

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthrt/berth/internal/testutil"
)

// writeLayout writes an OCI image layout with the given uncompressed layer
// tars (gzipped) and returns the layer descriptors and diffIDs.
func writeLayout(t *testing.T, dir string, tars [][]byte) ([]ocispec.Descriptor, []digest.Digest) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
	put := func(mt string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		must(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644))
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, tb := range tars {
		layers = append(layers, put(ocispec.MediaTypeImageLayerGzip, gz(t, tb)))
		diffIDs = append(diffIDs, digest.FromBytes(tb))
	}
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	man, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: put(ocispec.MediaTypeImageConfig, cfg), Layers: layers,
	})
	md := put(ocispec.MediaTypeImageManifest, man)
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "latest"}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}})
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return layers, diffIDs
}

// berth's merged rootfs equals `umoci unpack` of the same image, file by
// file: names, types, modes, owners, content, link targets, devices.
func TestInteropUmoci(t *testing.T) {
	testutil.RequiresRoot(t)
	umoci := testutil.RequiresCommand(t, "umoci")
	ctx := context.Background()

	// Build the layers once in a scratch store, to reuse threeLayers' tars.
	tars := [][]byte{
		mkTar(t,
			ent{Name: "etc/"}, ent{Name: "etc/passwd", Body: "root"}, ent{Name: "etc/shadow", Body: "s", Mode: 0o600},
			ent{Name: "var/lib/old/a", Body: "a"}, ent{Name: "var/lib/old/b", Body: "b"},
			ent{Name: "usr/bin/tool", Body: "tool", Mode: 0o755}, ent{Name: "usr/bin/tool-link", Type: '1', Link: "usr/bin/tool"},
			ent{Name: "usr/lib/libc.so", Body: "libc"}, ent{Name: "lib", Type: '2', Link: "usr/lib"},
			ent{Name: "data/keep", Body: "k"}, ent{Name: "dev/"}, ent{Name: "dev/null", Type: '3', Major: 1, Minor: 3, Mode: 0o666},
			ent{Name: "dev/fifo", Type: '6', Mode: 0o620}, ent{Name: "tmp/", Mode: 0o1777},
		),
		mkTar(t,
			ent{Name: "etc/.wh.shadow"}, ent{Name: "var/lib/old/"}, ent{Name: "var/lib/old/.wh..wh..opq"}, ent{Name: "var/lib/old/c", Body: "c"},
			ent{Name: "usr/bin/tool", Body: "tool v2", Mode: 0o755}, ent{Name: "usr/bin/x", Body: "xy"}, ent{Name: "usr/bin/y", Type: '1', Link: "usr/bin/x"},
			ent{Name: "home/user/", Uid: 1000, Gid: 1000, Mode: 0o700}, ent{Name: "home/user/.profile", Body: "p", Uid: 1000, Gid: 1001, Mode: 0o4755},
			ent{Name: "usr/sbin/sg", Body: "g", Mode: 0o2711, Gid: 42},
		),
		mkTar(t, ent{Name: ".wh.data"}, ent{Name: "etc/passwd", Body: "root2"}, ent{Name: "newdir/f", Body: "f"},
			ent{Name: "lib64", Type: '2', Link: "/usr/lib"}),
	}
	img := filepath.Join(t.TempDir(), "image")
	layers, diffIDs := writeLayout(t, img, tars)

	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command(umoci, "unpack", "--image", img+":latest", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}

	// berth: blobs through the content store, then unpacked from it.
	s := newStore(t)
	var parent digest.Digest
	for i, l := range layers {
		b, _ := os.ReadFile(filepath.Join(img, "blobs", "sha256", l.Digest.Encoded()))
		putBlob(t, s, b)
		rc, err := s.Open(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		lay, err := s.Unpack(ctx, rc, l.MediaType, parent, diffIDs[i])
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		parent = lay.ChainID
	}
	for _, name := range []string{"overlay", "copy"} {
		t.Run(name, func(t *testing.T) {
			var sn Snapshotter = NewCopySnapshotter(s)
			if name == "overlay" {
				o, err := NewOverlaySnapshotter(s)
				if err != nil {
					t.Fatal(err)
				}
				sn = o
			}
			ms, err := sn.Prepare(ctx, "interop-"+name, parent)
			if err != nil {
				t.Fatal(err)
			}
			root := mountAt(t, ms)
			got, want := tree(t, root), tree(t, filepath.Join(bundle, "rootfs"))
			for _, n := range names(want) {
				if !reflect.DeepEqual(got[n], want[n]) {
					t.Errorf("%s: berth %+v, umoci %+v", n, got[n], want[n])
				}
			}
			for _, n := range names(got) {
				if _, ok := want[n]; !ok {
					t.Errorf("%s: only in berth", n)
				}
			}
			if len(want) < 20 {
				t.Errorf("umoci rootfs has only %v", names(want))
			}
			if inode(t, filepath.Join(root, "usr/bin/x")) != inode(t, filepath.Join(root, "usr/bin/y")) {
				t.Error("hard link")
			}
		})
	}
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// Layers written by umoci (its tar writer, its whiteouts) unpack in
// berth to the same tree umoci unpacks.
func TestInteropUmociLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	umoci := testutil.RequiresCommand(t, "umoci")
	ctx := context.Background()
	work := t.TempDir()
	run(t, work, umoci, "init", "--layout", "img")
	run(t, work, umoci, "new", "--image", "img:t")

	run(t, work, umoci, "unpack", "--image", "img:t", "b1")
	r := filepath.Join(work, "b1", "rootfs")
	for _, d := range []string{"etc", "usr/bin", "usr/lib/x", "var/cache/apt", "tmp"} {
		must(t, os.MkdirAll(filepath.Join(r, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(r, "tmp"), 0o1777))
	must(t, os.WriteFile(filepath.Join(r, "etc/passwd"), []byte("root:x:0:0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(r, "etc/shadow"), []byte("root:*\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(r, "usr/bin/busybox"), []byte("ELF"), 0o755))
	must(t, os.Chmod(filepath.Join(r, "usr/bin/busybox"), 0o4755))
	must(t, os.Link(filepath.Join(r, "usr/bin/busybox"), filepath.Join(r, "usr/bin/sh")))
	must(t, os.Symlink("busybox", filepath.Join(r, "usr/bin/ls")))
	must(t, os.Symlink("usr/lib", filepath.Join(r, "lib")))
	must(t, os.WriteFile(filepath.Join(r, "usr/lib/x/a"), []byte("a"), 0o644))
	must(t, os.WriteFile(filepath.Join(r, "var/cache/apt/pkg"), []byte("p"), 0o644))
	must(t, os.Lchown(filepath.Join(r, "var/cache/apt/pkg"), 100, 101))
	run(t, work, umoci, "repack", "--image", "img:t", "b1")

	run(t, work, umoci, "unpack", "--image", "img:t", "b2")
	r = filepath.Join(work, "b2", "rootfs")
	must(t, os.Remove(filepath.Join(r, "etc/shadow")))
	must(t, os.RemoveAll(filepath.Join(r, "var/cache/apt")))
	must(t, os.RemoveAll(filepath.Join(r, "usr/lib/x")))
	must(t, os.Mkdir(filepath.Join(r, "usr/lib/x"), 0o700))
	must(t, os.WriteFile(filepath.Join(r, "usr/lib/x/b"), []byte("b"), 0o644))
	must(t, os.WriteFile(filepath.Join(r, "etc/passwd"), []byte("root:x:0:0\nuser:x:1000:1000\n"), 0o644))
	run(t, work, umoci, "repack", "--image", "img:t", "b2")

	run(t, work, umoci, "unpack", "--image", "img:t", "final")

	// berth reads the layout.
	img := filepath.Join(work, "img")
	var idx ocispec.Index
	readJSON(t, filepath.Join(img, "index.json"), &idx)
	var man ocispec.Manifest
	readJSON(t, filepath.Join(img, "blobs/sha256", idx.Manifests[0].Digest.Encoded()), &man)
	var cfg ocispec.Image
	readJSON(t, filepath.Join(img, "blobs/sha256", man.Config.Digest.Encoded()), &cfg)
	s := newStore(t)
	var parent digest.Digest
	for i, l := range man.Layers {
		f, err := os.Open(filepath.Join(img, "blobs/sha256", l.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		lay, err := s.Unpack(ctx, f, l.MediaType, parent, cfg.RootFS.DiffIDs[i])
		f.Close()
		if err != nil {
			t.Fatalf("layer %d (%s): %v", i, l.MediaType, err)
		}
		parent = lay.ChainID
	}
	o, err := NewOverlaySnapshotter(s)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := o.Prepare(ctx, "umoci", parent)
	if err != nil {
		t.Fatal(err)
	}
	root := mountAt(t, ms)
	got, want := tree(t, root), tree(t, filepath.Join(work, "final", "rootfs"))
	if !reflect.DeepEqual(got, want) {
		for _, n := range names(want) {
			if !reflect.DeepEqual(got[n], want[n]) {
				t.Errorf("%s: berth %+v, umoci %+v", n, got[n], want[n])
			}
		}
		for _, n := range names(got) {
			if _, ok := want[n]; !ok {
				t.Errorf("%s: only in berth", n)
			}
		}
	}
	if _, ok := want["usr/lib/x/b"]; !ok || len(want) < 10 {
		t.Fatalf("umoci's tree: %v", names(want))
	}
	t.Logf("%d layers, %d entries agree", len(man.Layers), len(want))
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
