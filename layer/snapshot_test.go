//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/mount"
)

// The conformance suite: every Snapshotter passes the same tests.
func TestSnapshotterOverlay(t *testing.T) {
	testutil.RequiresRoot(t)
	snapshotterSuite(t, func(t *testing.T, s *Store) Snapshotter {
		o, err := NewOverlaySnapshotter(s)
		if err != nil {
			t.Fatalf("overlay: %v", err)
		}
		return o
	})
}

func TestSnapshotterCopy(t *testing.T) {
	testutil.RequiresRoot(t)
	snapshotterSuite(t, func(t *testing.T, s *Store) Snapshotter { return NewCopySnapshotter(s) })
}

func snapshotterSuite(t *testing.T, newSnap func(*testing.T, *Store) Snapshotter) {
	t.Run("LayersAndChanges", func(t *testing.T) { suiteLayers(t, newSnap) })
	t.Run("Empty", func(t *testing.T) { suiteEmpty(t, newSnap) })
	t.Run("Lifecycle", func(t *testing.T) { suiteLifecycle(t, newSnap) })
}

// mountAt performs mounts at a fresh directory, unmounted in Cleanup.
func mountAt(t *testing.T, ms []mount.Mount) string {
	t.Helper()
	target := t.TempDir()
	if err := mount.All(ms, target); err != nil {
		t.Fatalf("mount %+v: %v", ms, err)
	}
	t.Cleanup(func() { mount.UnmountAll(target, unix.MNT_DETACH) })
	return target
}

func unmount(t *testing.T, target string) {
	t.Helper()
	if err := mount.UnmountAll(target, 0); err != nil {
		t.Fatal(err)
	}
}

func threeLayers(t *testing.T, s *Store) (l1, l2, l3 Layer) {
	l1 = unpack(t, s, "", mkTar(t,
		ent{Name: "etc/"},
		ent{Name: "etc/passwd", Body: "root"},
		ent{Name: "etc/shadow", Body: "s", Mode: 0o600},
		ent{Name: "etc/group", Body: "g"},
		ent{Name: "var/lib/old/a", Body: "a"},
		ent{Name: "var/lib/old/b", Body: "b"},
		ent{Name: "usr/bin/tool", Body: "tool", Mode: 0o755},
		ent{Name: "usr/bin/tool-link", Type: '1', Link: "usr/bin/tool"},
		ent{Name: "usr/lib/libc.so", Body: "libc"},
		ent{Name: "lib", Type: '2', Link: "usr/lib"},
		ent{Name: "data/keep", Body: "k"},
		ent{Name: "dev/", Mode: 0o755},
		ent{Name: "dev/null", Type: '3', Major: 1, Minor: 3, Mode: 0o666},
	))
	l2 = unpack(t, s, l1.ChainID, mkTar(t,
		ent{Name: "etc/.wh.shadow"},
		ent{Name: "var/lib/old/"},
		ent{Name: "var/lib/old/.wh..wh..opq"},
		ent{Name: "var/lib/old/c", Body: "c"},
		ent{Name: "usr/bin/tool", Body: "tool v2", Mode: 0o755},
		ent{Name: "usr/bin/x", Body: "xy"},
		ent{Name: "usr/bin/y", Type: '1', Link: "usr/bin/x"},
		ent{Name: "home/user/", Uid: 1000, Gid: 1000, Mode: 0o700},
		ent{Name: "home/user/.profile", Body: "p", Uid: 1000, Gid: 1000, Mode: 0o4755},
	))
	l3 = unpack(t, s, l2.ChainID, mkTar(t,
		ent{Name: ".wh.data"},
		ent{Name: "etc/passwd", Body: "root2"},
		ent{Name: "newdir/f", Body: "f"},
	))
	return
}

func suiteLayers(t *testing.T, newSnap func(*testing.T, *Store) Snapshotter) {
	ctx := context.Background()
	s := newStore(t)
	sn := newSnap(t, s)
	_, _, l3 := threeLayers(t, s)
	ms, err := sn.Prepare(ctx, "c1", l3.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mounts: %+v", ms)
	root := mountAt(t, ms)
	got := tree(t, root)
	want := map[string]string{
		"etc": "", "etc/passwd": "root2", "etc/group": "g",
		"var": "", "var/lib": "", "var/lib/old": "", "var/lib/old/c": "c",
		"usr": "", "usr/bin": "", "usr/bin/tool": "tool v2", "usr/bin/tool-link": "tool", "usr/bin/x": "xy", "usr/bin/y": "xy",
		"usr/lib": "", "usr/lib/libc.so": "libc", "lib": "->usr/lib",
		"dev": "", "dev/null": "dev",
		"home": "", "home/user": "", "home/user/.profile": "p",
		"newdir": "", "newdir/f": "f",
	}
	checkView(t, got, want)
	if got["home/user/.profile"].Mode != os.ModeSetuid|0o755 || got["home/user/.profile"].Uid != 1000 {
		t.Errorf("profile: %+v", got["home/user/.profile"])
	}
	if inode(t, filepath.Join(root, "usr/bin/x")) != inode(t, filepath.Join(root, "usr/bin/y")) {
		t.Error("hard link not kept in the merged view")
	}
	if c, err := sn.Changes(ctx, "c1"); err != nil || len(c) != 0 {
		t.Errorf("changes of a fresh snapshot: %v %v", c, err)
	}

	// Write.
	must(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte("g2"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/new"), []byte("new"), 0o644))
	must(t, os.Remove(filepath.Join(root, "etc/passwd")))
	must(t, os.RemoveAll(filepath.Join(root, "var/lib/old")))
	must(t, os.MkdirAll(filepath.Join(root, "newdir2"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "newdir2/h1"), []byte("hh"), 0o644))
	must(t, os.Link(filepath.Join(root, "newdir2/h1"), filepath.Join(root, "newdir2/h2")))
	must(t, os.RemoveAll(filepath.Join(root, "usr/lib")))
	must(t, os.Mkdir(filepath.Join(root, "usr/lib"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/other"), []byte("o"), 0o644))
	must(t, os.Chmod(filepath.Join(root, "usr/bin/tool"), 0o700))
	must(t, unix.Setxattr(filepath.Join(root, "etc/new"), "user.k", []byte("v"), 0))

	changes, err := sn.Changes(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	var cs []string
	for _, c := range changes {
		cs = append(cs, c.String())
	}
	slices.Sort(cs)
	wantCs := []string{
		"A /etc/new", "A /newdir2", "A /newdir2/h1", "A /newdir2/h2", "A /usr/lib/other",
		"C /etc", "C /etc/group", "C /usr", "C /usr/bin", "C /usr/bin/tool", "C /usr/lib", "C /var", "C /var/lib",
		"D /etc/passwd", "D /usr/lib/libc.so", "D /var/lib/old",
	}
	if !reflect.DeepEqual(cs, wantCs) {
		t.Errorf("changes:\n got %q\nwant %q", cs, wantCs)
	}

	// Diff, then commit the diff as a layer: a snapshot of it shows the
	// same tree.
	var buf bytes.Buffer
	if err := sn.Diff(ctx, "c1", &buf); err != nil {
		t.Fatal(err)
	}
	entries := tarNames(t, buf.Bytes())
	for _, n := range []string{"etc/.wh.passwd", "var/lib/.wh.old", "newdir2/h2 -> newdir2/h1", "etc/new"} {
		if !slices.Contains(entries, n) {
			t.Errorf("diff lacks %q: %q", n, entries)
		}
	}
	after := tree(t, root)
	l4, err := s.Unpack(ctx, bytes.NewReader(buf.Bytes()), MediaTypeLayer, l3.ChainID, "")
	if err != nil {
		t.Fatal(err)
	}
	ms2, err := sn.Prepare(ctx, "c2", l4.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	root2 := mountAt(t, ms2)
	committed := tree(t, root2)
	if !reflect.DeepEqual(after, committed) {
		for _, n := range names(after) {
			if after[n] != committed[n] {
				t.Errorf("committed %s: %+v, want %+v", n, committed[n], after[n])
			}
		}
		for _, n := range names(committed) {
			if _, ok := after[n]; !ok {
				t.Errorf("committed has extra %s", n)
			}
		}
	}
	if inode(t, filepath.Join(root2, "newdir2/h1")) != inode(t, filepath.Join(root2, "newdir2/h2")) {
		t.Error("hard link lost in commit")
	}
	b := make([]byte, 8)
	if n, err := unix.Getxattr(filepath.Join(root2, "etc/new"), "user.k", b); err != nil || string(b[:n]) != "v" {
		t.Errorf("xattr lost in commit: %v", err)
	}
}

func checkView(t *testing.T, got map[string]fileDesc, want map[string]string) {
	t.Helper()
	for n, w := range want {
		g, ok := got[n]
		switch {
		case !ok:
			t.Errorf("%s missing", n)
		case w == "" && g.Type != "dir":
			t.Errorf("%s: %s, want dir", n, g.Type)
		case strings.HasPrefix(w, "->") && g.Link != w[2:]:
			t.Errorf("%s: link %q, want %q", n, g.Link, w[2:])
		case w == "dev" && g.Type != "dev":
			t.Errorf("%s: %s, want dev", n, g.Type)
		case w != "" && w != "dev" && !strings.HasPrefix(w, "->") && g.Body != w:
			t.Errorf("%s: %q, want %q", n, g.Body, w)
		}
	}
	for _, n := range names(got) {
		if _, ok := want[n]; !ok {
			t.Errorf("unexpected %s (%s)", n, got[n].Type)
		}
	}
}

func tarNames(t *testing.T, b []byte) []string {
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		n := strings.TrimSuffix(h.Name, "/")
		if h.Typeflag == tar.TypeLink {
			n += " -> " + h.Linkname
		}
		out = append(out, n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func suiteEmpty(t *testing.T, newSnap func(*testing.T, *Store) Snapshotter) {
	ctx := context.Background()
	s := newStore(t)
	sn := newSnap(t, s)
	ms, err := sn.Prepare(ctx, "empty", "")
	if err != nil {
		t.Fatal(err)
	}
	root := mountAt(t, ms)
	if len(tree(t, root)) != 0 {
		t.Fatalf("not empty: %v", names(tree(t, root)))
	}
	must(t, os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644))
	cs, err := sn.Changes(ctx, "empty")
	if err != nil || len(cs) != 1 || cs[0].String() != "A /f" {
		t.Fatalf("changes %v %v", cs, err)
	}
	// A single layer with nothing to write still mounts.
	l := unpack(t, s, "", mkTar(t, ent{Name: "only", Body: "1"}))
	ms, err = sn.Prepare(ctx, "one", l.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	root = mountAt(t, ms)
	checkView(t, tree(t, root), map[string]string{"only": "1"})
	fi, _ := os.Stat(root)
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("root mode %v", fi.Mode())
	}
}

func suiteLifecycle(t *testing.T, newSnap func(*testing.T, *Store) Snapshotter) {
	ctx := context.Background()
	s := newStore(t)
	sn := newSnap(t, s)
	l := unpack(t, s, "", mkTar(t, ent{Name: "f", Body: "1"}))
	if _, err := sn.Prepare(ctx, "../evil", l.ChainID); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad key: %v", err)
	}
	if _, err := sn.Prepare(ctx, "k", digest.FromString("missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing parent: %v", err)
	}
	ms, err := sn.Prepare(ctx, "k", l.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "k", l.ChainID); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("prepare twice: %v", err)
	}
	root := mountAt(t, ms)
	must(t, os.WriteFile(filepath.Join(root, "g"), []byte("2"), 0o644))
	unmount(t, root)
	// Mount again (a restart): the write is still there.
	ms, err = sn.Mounts(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	root = mountAt(t, ms)
	checkView(t, tree(t, root), map[string]string{"f": "1", "g": "2"})
	unmount(t, root)
	keys, err := sn.List(ctx)
	if err != nil || !reflect.DeepEqual(keys, []string{"k"}) {
		t.Errorf("list %v %v", keys, err)
	}
	refs, _ := s.Refs(ctx)
	if !reflect.DeepEqual(refs["snapshot/k"], []digest.Digest{l.ChainID}) {
		t.Errorf("refs %v", refs)
	}
	// GC keeps the layer a snapshot uses.
	if rm, err := s.GC(ctx); err != nil || len(rm.Layers) != 0 {
		t.Errorf("gc: %+v %v", rm, err)
	}
	if err := sn.Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "k"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("remove twice: %v", err)
	}
	if _, err := sn.Mounts(ctx, "k"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("mounts after remove: %v", err)
	}
	if rm, err := s.GC(ctx); err != nil || len(rm.Layers) != 1 {
		t.Errorf("gc after remove: %+v %v", rm, err)
	}
	if ents, _ := os.ReadDir(s.path("snapshots")); len(ents) != 0 {
		t.Errorf("snapshots left: %v", ents)
	}
	if probs, err := s.Check(ctx); err != nil || len(probs) != 0 {
		t.Errorf("check: %v %v", probs, err)
	}
}

// A container that swaps a directory for a symlink while its diff is
// taken cannot make the diff read host files.
func TestDiffSymlinkSwap(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t)
	o, err := NewOverlaySnapshotter(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Prepare(ctx, "swap", ""); err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(s.snapDir("swap"), "upper")
	must(t, os.MkdirAll(filepath.Join(upper, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(upper, "d", "passwd"), []byte("mine"), 0o644))
	es, root, err := snapshotChanges(ctx, s, "swap")
	if err != nil {
		t.Fatal(err)
	}
	// The swap, between listing and reading.
	must(t, os.Rename(filepath.Join(upper, "d"), filepath.Join(upper, "d.old")))
	must(t, os.Symlink("/etc", filepath.Join(upper, "d")))
	var buf bytes.Buffer
	err = writeDiff(ctx, &buf, root, es)
	passwd, _ := os.ReadFile("/etc/passwd")
	if bytes.Contains(buf.Bytes(), passwd[:min(len(passwd), 40)]) {
		t.Fatal("diff contains the host's /etc/passwd")
	}
	t.Logf("diff after swap: %v", err)
}
