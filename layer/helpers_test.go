//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// ent is one tar entry for tests. Type defaults to a regular file (or a
// directory when Name ends in "/").
type ent struct {
	Name     string
	Type     byte
	Body     string
	Link     string
	Mode     int64
	Uid, Gid int
	Major    int64
	Minor    int64
	Xattrs   map[string]string
	Size     int64 // overrides len(Body) in the header (for lying headers)
	ModTime  time.Time
}

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.Name, Linkname: e.Link, Mode: e.Mode, Uid: e.Uid, Gid: e.Gid,
			Devmajor: e.Major, Devminor: e.Minor, ModTime: e.ModTime, Format: tar.FormatPAX}
		if h.ModTime.IsZero() {
			h.ModTime = testTime
		}
		h.Typeflag = e.Type
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(e.Name, "/") {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.Name, err)
		}
		if e.Body != "" {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func newStore(t testing.TB, opts ...Options) *Store {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := OpenWith(filepath.Join(t.TempDir(), "root"), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unpack unpacks plain tar bytes on top of parent.
func unpack(t testing.TB, s *Store, parent digest.Digest, tarball []byte) Layer {
	t.Helper()
	l, err := s.Unpack(context.Background(), bytes.NewReader(tarball), MediaTypeLayer, parent, digest.FromBytes(tarball))
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	return l
}

// fileDesc describes a file for tree comparisons.
type fileDesc struct {
	Type     string
	Mode     fs.FileMode
	Uid, Gid uint32
	Body     string
	Link     string
	Rdev     uint64
}

// tree lists everything under dir (relative names, no root), without
// following symlinks.
func tree(t testing.TB, dir string) map[string]fileDesc {
	t.Helper()
	out := map[string]fileDesc{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fd := fileDesc{Mode: fi.Mode(), Uid: st.Uid, Gid: st.Gid}
		switch {
		case fi.IsDir():
			fd.Type = "dir"
		case fi.Mode().IsRegular():
			fd.Type = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fd.Body = string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			fd.Type = "symlink"
			fd.Link, _ = os.Readlink(p)
		case fi.Mode()&fs.ModeNamedPipe != 0:
			fd.Type = "fifo"
		default:
			fd.Type = "dev"
			fd.Rdev = uint64(st.Rdev)
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fd
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(m map[string]fileDesc) []string {
	var ns []string
	for n := range m {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

func inode(t testing.TB, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
