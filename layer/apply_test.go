//go:build linux

package layer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/testutil"
)

func apply(t *testing.T, dir string, tb []byte, opts ApplyOptions) (int64, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(tb), opts)
}

func TestApplyKeepsEverything(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	tb := mkTar(t,
		ent{Name: "./", Mode: 0o755},
		ent{Name: "bin/", Mode: 0o755},
		ent{Name: "bin/su", Body: "su", Mode: 0o4755},
		ent{Name: "bin/wall", Body: "w", Mode: 0o2755, Gid: 5},
		ent{Name: "tmp/", Mode: 0o1777},
		ent{Name: "srv/", Mode: 0o2770, Uid: 1000, Gid: 1001},
		ent{Name: "srv/data", Body: "hello", Mode: 0o640, Uid: 1000, Gid: 1001, Xattrs: map[string]string{"user.color": "blue", "trusted.x": "t", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		ent{Name: "srv/link", Type: '2', Link: "data", Uid: 1000, Gid: 1001},
		ent{Name: "srv/hard", Type: '1', Link: "srv/data"},
		ent{Name: "dev/", Mode: 0o755},
		ent{Name: "dev/null", Type: '3', Major: 1, Minor: 3, Mode: 0o666},
		ent{Name: "dev/loop0", Type: '4', Major: 7, Minor: 0, Mode: 0o660, Gid: 6},
		ent{Name: "dev/fifo", Type: '6', Mode: 0o600},
		ent{Name: "implicit/parent/file", Body: "p"},
		ent{Name: "old/", ModTime: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)},
		ent{Name: "old/f", Body: "x", ModTime: time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC)},
		ent{Name: "overlay/", Xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}},
	)
	n, err := apply(t, dir, tb, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The same through the fallback resolver (no openat2).
	if _, err := apply(t, t.TempDir(), tb, ApplyOptions{walk: true}); err != nil {
		t.Fatal(err)
	}
	if n != int64(len("su")+len("w")+len("hello")+len("p")+len("x")) {
		t.Errorf("size %d", n)
	}
	got := tree(t, dir)
	want := map[string]fileDesc{
		"bin":                  {Type: "dir", Mode: os.ModeDir | 0o755},
		"bin/su":               {Type: "file", Mode: os.ModeSetuid | 0o755, Body: "su"},
		"bin/wall":             {Type: "file", Mode: os.ModeSetgid | 0o755, Gid: 5, Body: "w"},
		"tmp":                  {Type: "dir", Mode: os.ModeDir | os.ModeSticky | 0o777},
		"srv":                  {Type: "dir", Mode: os.ModeDir | os.ModeSetgid | 0o770, Uid: 1000, Gid: 1001},
		"srv/data":             {Type: "file", Mode: 0o640, Uid: 1000, Gid: 1001, Body: "hello"},
		"srv/hard":             {Type: "file", Mode: 0o640, Uid: 1000, Gid: 1001, Body: "hello"},
		"srv/link":             {Type: "symlink", Mode: os.ModeSymlink | 0o777, Uid: 1000, Gid: 1001, Link: "data"},
		"dev":                  {Type: "dir", Mode: os.ModeDir | 0o755},
		"dev/null":             {Type: "dev", Mode: os.ModeDevice | os.ModeCharDevice | 0o666, Rdev: unix.Mkdev(1, 3)},
		"dev/loop0":            {Type: "dev", Mode: os.ModeDevice | 0o660, Gid: 6, Rdev: unix.Mkdev(7, 0)},
		"dev/fifo":             {Type: "fifo", Mode: os.ModeNamedPipe | 0o600},
		"implicit":             {Type: "dir", Mode: os.ModeDir | 0o755},
		"implicit/parent":      {Type: "dir", Mode: os.ModeDir | 0o755},
		"implicit/parent/file": {Type: "file", Mode: 0o644, Body: "p"},
		"old":                  {Type: "dir", Mode: os.ModeDir | 0o755},
		"old/f":                {Type: "file", Mode: 0o644, Body: "x"},
		"overlay":              {Type: "dir", Mode: os.ModeDir | 0o755},
	}
	for _, n := range names(want) {
		if !reflect.DeepEqual(got[n], want[n]) {
			t.Errorf("%s: got %+v, want %+v", n, got[n], want[n])
		}
	}
	if len(got) != len(want) {
		t.Errorf("entries %v", names(got))
	}
	if inode(t, filepath.Join(dir, "srv/data")) != inode(t, filepath.Join(dir, "srv/hard")) {
		t.Error("hard link not kept")
	}
	for _, x := range []struct{ name, val string }{{"user.color", "blue"}, {"trusted.x", "t"}} {
		b := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dir, "srv/data"), x.name, b)
		if err != nil || string(b[:n]) != x.val {
			t.Errorf("xattr %s: %q %v", x.name, b[:max(n, 0)], err)
		}
	}
	if n, _ := unix.Lgetxattr(filepath.Join(dir, "srv/data"), "security.capability", make([]byte, 64)); n <= 0 {
		t.Error("security.capability lost (chown after setxattr?)")
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "overlay"), "trusted.overlay.redirect", make([]byte, 64)); err == nil {
		t.Error("trusted.overlay.redirect from the tar was applied")
	}
	for p, want := range map[string]time.Time{"old": time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), "old/f": time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC), "srv/link": testTime, "bin": testTime} {
		fi, _ := os.Lstat(filepath.Join(dir, p))
		if !fi.ModTime().Equal(want) {
			t.Errorf("mtime %s: %v, want %v", p, fi.ModTime(), want)
		}
	}
}

func TestApplyWhiteouts(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	tb := mkTar(t,
		ent{Name: "etc/"},
		ent{Name: "etc/.wh.shadow"},
		ent{Name: "var/"},
		ent{Name: "var/.wh..wh..opq"},
		ent{Name: "var/new", Body: "n"},
		ent{Name: ".wh..wh.plnk/"},
		ent{Name: "deep/dir/.wh.x"},
	)
	if _, err := apply(t, dir, tb, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/shadow", "deep/dir/x"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil || !isWhiteout(fi) {
			t.Errorf("%s: not a whiteout: %v", p, err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
	}
	if !isOpaque(filepath.Join(dir, "var")) {
		t.Error("var not opaque")
	}
	if _, err := os.Lstat(filepath.Join(dir, ".wh..wh.plnk")); err == nil {
		t.Error("aufs metadata extracted")
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/.wh.shadow")); err == nil {
		t.Error("whiteout file extracted as is")
	}

	// ApplyWhiteouts: deletes instead.
	flat := t.TempDir()
	base := mkTar(t, ent{Name: "etc/shadow", Body: "s"}, ent{Name: "etc/keep", Body: "k"}, ent{Name: "var/old", Body: "o"}, ent{Name: "var/sub/x", Body: "x"})
	if _, err := apply(t, flat, base, ApplyOptions{ApplyWhiteouts: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, flat, tb, ApplyOptions{ApplyWhiteouts: true}); err != nil {
		t.Fatal(err)
	}
	got := names(tree(t, flat))
	want := []string{"deep", "deep/dir", "etc", "etc/keep", "var", "var/new"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flat apply: %v, want %v", got, want)
	}
}

// hostile runs one malicious tar and checks that nothing outside the
// layer directory changed.
func TestApplyHostile(t *testing.T) {
	testutil.RequiresRoot(t)
	passwd, _ := os.ReadFile("/etc/passwd")
	long := strings.Repeat("a", 300)
	cases := []struct {
		name    string
		tar     []ent
		opts    ApplyOptions
		wantErr bool // must fail with ErrInvalid
		check   func(t *testing.T, layer, outside string)
	}{
		{name: "dotdot", tar: []ent{{Name: "../x", Body: "pwned"}}, wantErr: true},
		{name: "dotdot-deep", tar: []ent{{Name: "a/../../x", Body: "pwned"}}, wantErr: true},
		{name: "dotdot-dir", tar: []ent{{Name: "../outside/", Mode: 0o777}}, wantErr: true},
		{name: "absolute", tar: []ent{{Name: "/abs/file", Body: "in"}}, check: func(t *testing.T, layer, _ string) {
			if b, err := os.ReadFile(filepath.Join(layer, "abs/file")); err != nil || string(b) != "in" {
				t.Errorf("absolute name not taken relative: %v", err)
			}
		}},
		{name: "symlink-parent-relative", tar: []ent{{Name: "evil", Type: '2', Link: "../outside"}, {Name: "evil/pwned", Body: "x"}}},
		{name: "symlink-parent-absolute", tar: []ent{{Name: "evil", Type: '2', Link: "/etc"}, {Name: "evil/passwd", Body: "pwned"}}},
		{name: "symlink-parent-outside-abs", tar: []ent{{Name: "evil", Type: '2', Link: "@OUTSIDE@"}, {Name: "evil/pwned", Body: "x"}}},
		{name: "symlink-parent-inside", tar: []ent{{Name: "d/"}, {Name: "lnk", Type: '2', Link: "/d"}, {Name: "lnk/f", Body: "ok"}}, check: func(t *testing.T, layer, _ string) {
			if b, err := os.ReadFile(filepath.Join(layer, "d/f")); err != nil || string(b) != "ok" {
				t.Errorf("write through an inside symlink: %v", err)
			}
		}},
		{name: "symlink-chain", tar: []ent{{Name: "a", Type: '2', Link: "b/.."}, {Name: "b", Type: '2', Link: "../../../.."}, {Name: "a/x", Body: "x"}}},
		{name: "hardlink-etc-passwd", tar: []ent{{Name: "h", Type: '1', Link: "/etc/passwd"}}, wantErr: true},
		{name: "hardlink-dotdot", tar: []ent{{Name: "h", Type: '1', Link: "../../../../etc/passwd"}}, wantErr: true},
		{name: "hardlink-to-escaping-symlink", tar: []ent{{Name: "s", Type: '2', Link: "/etc/passwd"}, {Name: "h", Type: '1', Link: "s"}, {Name: "h", Body: "pwned"}, {Name: "s2", Type: '2', Link: "../../../../../etc/passwd"}, {Name: "h2", Type: '1', Link: "s2"}},
			check: func(t *testing.T, layer, _ string) {
				fi, err := os.Lstat(filepath.Join(layer, "h2"))
				if err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("hard link to a symlink is not that symlink: %v %v", fi, err)
				}
			}},
		{name: "hardlink-through-symlinked-parent", tar: []ent{{Name: "s", Type: '2', Link: "/etc"}, {Name: "h", Type: '1', Link: "s/passwd"}}, wantErr: true},
		{name: "hardlink-to-dir", tar: []ent{{Name: "d/"}, {Name: "h", Type: '1', Link: "d"}}, wantErr: true},
		{name: "write-through-symlink-file", tar: []ent{{Name: "x", Type: '2', Link: "/etc/passwd"}, {Name: "x", Body: "pwned"}}, check: func(t *testing.T, layer, _ string) {
			if b, _ := os.ReadFile(filepath.Join(layer, "x")); string(b) != "pwned" {
				t.Error("file did not replace the symlink")
			}
		}},
		{name: "dir-replaced-by-symlink", tar: []ent{{Name: "d/"}, {Name: "d/f", Body: "1"}, {Name: "d", Type: '2', Link: "@OUTSIDE@"}, {Name: "d/g", Body: "2"}}},
		{name: "file-as-parent", tar: []ent{{Name: "f", Body: "x"}, {Name: "f/x", Body: "y"}}, wantErr: true},
		{name: "symlink-loop", tar: []ent{{Name: "a", Type: '2', Link: "a"}, {Name: "a/b", Body: "x"}}, wantErr: true},
		{name: "whiteout-dotdot", tar: []ent{{Name: ".wh.."}}, wantErr: true},
		{name: "whiteout-dotdot-deep", tar: []ent{{Name: "a/.wh..."}}, wantErr: true},
		{name: "whiteout-escaping-parent", tar: []ent{{Name: "../.wh.outside"}}, wantErr: true},
		{name: "whiteout-through-symlink", tar: []ent{{Name: "s", Type: '2', Link: "@OUTSIDE@"}, {Name: "s/.wh.keep"}}},
		{name: "opaque-through-symlink", tar: []ent{{Name: "s", Type: '2', Link: "@OUTSIDE@"}, {Name: "s/.wh..wh..opq"}}},
		{name: "overlong-name", tar: []ent{{Name: strings.Repeat("d/", 2100) + "f", Body: "x"}}, wantErr: true},
		{name: "overlong-component", tar: []ent{{Name: long, Body: "x"}}, wantErr: true},
		{name: "name-limit", tar: []ent{{Name: "abcdefghijklmnopqrstuvwxyz", Body: "x"}}, opts: ApplyOptions{MaxNameLen: 10}, wantErr: true},
		{name: "overlong-link", tar: []ent{{Name: "l", Type: '2', Link: strings.Repeat("x", 5000)}}, wantErr: true},
		{name: "device-nodes", tar: []ent{{Name: "kmem", Type: '3', Major: 1, Minor: 2, Mode: 0o666}, {Name: "sda", Type: '4', Major: 8, Minor: 0}}, check: func(t *testing.T, layer, _ string) {
			fi, err := os.Lstat(filepath.Join(layer, "kmem"))
			if err != nil || fi.Mode()&os.ModeCharDevice == 0 || fi.Sys().(*syscall.Stat_t).Rdev != unix.Mkdev(1, 2) {
				t.Errorf("char device: %v %v", fi, err)
			}
		}},
		{name: "setuid-kept", tar: []ent{{Name: "suid", Body: "x", Mode: 0o4755, Uid: 0}, {Name: "sgid", Body: "x", Mode: 0o2755, Uid: 1000, Gid: 1000}}, check: func(t *testing.T, layer, _ string) {
			for p, bit := range map[string]os.FileMode{"suid": os.ModeSetuid, "sgid": os.ModeSetgid} {
				fi, _ := os.Lstat(filepath.Join(layer, p))
				if fi == nil || fi.Mode()&bit == 0 {
					t.Errorf("%s lost its bit: %v", p, fi)
				}
			}
		}},
		{name: "entry-limit", tar: manyEntries(200), opts: ApplyOptions{MaxEntries: 100}, wantErr: true},
		{name: "byte-limit", tar: []ent{{Name: "big", Body: strings.Repeat("z", 100000)}}, opts: ApplyOptions{MaxBytes: 50000}, wantErr: true},
	}
	for _, walk := range []bool{false, true} {
		for _, c := range cases {
			c.opts.walk = walk
			name := c.name
			if walk {
				name += "-walk"
			}
			hostileCase(t, name, c.tar, c.opts, c.wantErr, c.check, passwd)
		}
	}
}

func hostileCase(t *testing.T, name string, tarEnts []ent, opts ApplyOptions, wantErr bool, check func(t *testing.T, layer, outside string), passwd []byte) {
	c := struct {
		tar     []ent
		opts    ApplyOptions
		wantErr bool
		check   func(t *testing.T, layer, outside string)
	}{tarEnts, opts, wantErr, check}
	t.Run(name, func(t *testing.T) {
		box := t.TempDir()
		layer, outside := filepath.Join(box, "layer"), filepath.Join(box, "outside")
		os.Mkdir(layer, 0o755)
		os.MkdirAll(filepath.Join(outside, "sub"), 0o755)
		os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644)
		before := tree(t, outside)
		ents := slices.Clone(c.tar)
		for i := range ents {
			ents[i].Link = strings.ReplaceAll(ents[i].Link, "@OUTSIDE@", outside)
		}
		_, err := apply(t, layer, mkTar(t, ents...), c.opts)
		if c.wantErr {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("got %v, want an error wrapping ErrInvalid", err)
			}
		} else if err != nil && !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("unexpected error kind: %v", err)
		}
		if after := tree(t, outside); !reflect.DeepEqual(before, after) {
			t.Errorf("outside changed: %v -> %v", names(before), names(after))
		}
		if ents, _ := os.ReadDir(box); len(ents) != 2 {
			t.Errorf("box holds %v", ents)
		}
		if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwd) {
			t.Fatal("/etc/passwd changed!")
		}
		if c.check != nil && err == nil {
			c.check(t, layer, outside)
		}
		t.Logf("err: %v", err)
	})
}

func manyEntries(n int) []ent {
	es := make([]ent, n)
	for i := range es {
		es[i] = ent{Name: "f" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + "/" + string(rune('a'+i/26))}
		es[i].Body = ""
	}
	return es
}

func TestApplyTruncated(t *testing.T) {
	tb := mkTar(t, ent{Name: "f", Body: strings.Repeat("x", 10000)})
	_, err := apply(t, t.TempDir(), tb[:3000], ApplyOptions{})
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("truncated: %v", err)
	}
}
