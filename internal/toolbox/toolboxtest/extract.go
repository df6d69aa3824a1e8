package toolboxtest

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthrt/berth/internal/imagebuild"
)

// Extract writes files (as for imagebuild.LayerTar) into dir, as a layer
// unpacked onto an empty directory would look: regular files, directories
// (with their exact modes, sticky and setgid bits included), symlinks, hard
// links, fifos and, as root, devices. Ownership is applied only when
// running as root. Xattrs, modification times and whiteouts are not
// interpreted (a whiteout is written as the ordinary file it is in the tar).
func Extract(tb testing.TB, dir string, files []imagebuild.File) {
	tb.Helper()
	if err := extract(dir, files); err != nil {
		tb.Fatalf("extracting into %s: %v", dir, err)
	}
}

func fileMode(f imagebuild.File, def os.FileMode) os.FileMode {
	if f.Mode == 0 {
		return def
	}
	m := os.FileMode(f.Mode & 0o777)
	if f.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if f.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if f.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func extract(dir string, files []imagebuild.File) error {
	root := os.Geteuid() == 0
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var dirs []dirMode
	for _, f := range files {
		name := filepath.Clean("/" + f.Name)
		if name == "/" {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		var err error
		switch f.Type {
		case tar.TypeDir:
			err = os.Mkdir(p, 0o755)
			if os.IsExist(err) {
				err = nil
			}
			dirs = append(dirs, dirMode{p, fileMode(f, 0o755)})
		case tar.TypeReg, 0:
			os.Remove(p)
			if err = os.WriteFile(p, f.Data, 0o600); err == nil {
				err = os.Chmod(p, fileMode(f, 0o644))
			}
		case tar.TypeSymlink:
			os.Remove(p)
			err = os.Symlink(f.Linkname, p)
		case tar.TypeLink:
			os.Remove(p)
			err = os.Link(filepath.Join(dir, filepath.Clean("/"+f.Linkname)), p)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			os.Remove(p)
			err = mknod(p, f.Type, fileMode(f, 0o600), f.Devmajor, f.Devminor)
		default:
			err = fmt.Errorf("unsupported type %q", f.Type)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if root && (f.Uid != 0 || f.Gid != 0) {
			if err := os.Lchown(p, f.Uid, f.Gid); err != nil {
				return err
			}
		}
	}
	// Directory modes last, deepest first, so a read-only directory does
	// not stop its own content from being written.
	slices.SortStableFunc(dirs, func(a, b dirMode) int {
		return strings.Count(b.path, string(filepath.Separator)) - strings.Count(a.path, string(filepath.Separator))
	})
	for _, d := range dirs {
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
	}
	return nil
}
