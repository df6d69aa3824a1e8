//go:build linux

package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lowerView answers questions about the merged view of a chain of layer
// directories (top first) as overlayfs would show it, without mounting.
type lowerView struct {
	dirs  []string
	cache map[string][]int // merged dir -> layers contributing, top first
}

func newLowerView(dirs []string) *lowerView {
	all := make([]int, len(dirs))
	for i := range all {
		all[i] = i
	}
	return &lowerView{dirs: dirs, cache: map[string][]int{"": all}}
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func isOpaque(p string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(p, opaqueXattr, b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

// dirLayers returns the layers that contribute entries to the merged
// directory p ("" is the root), top first; nil if p is not a directory.
func (v *lowerView) dirLayers(p string) []int {
	if ls, ok := v.cache[p]; ok {
		return ls
	}
	parent := path.Dir(p)
	if parent == "." {
		parent = ""
	}
	var out []int
	for _, i := range v.dirLayers(parent) {
		fi, err := os.Lstat(filepath.Join(v.dirs[i], p))
		if err != nil {
			continue
		}
		if !fi.IsDir() {
			break // a file or whiteout hides everything below
		}
		out = append(out, i)
		if isOpaque(filepath.Join(v.dirs[i], p)) {
			break
		}
	}
	v.cache[p] = out
	return out
}

// lookup returns the merged entry p and the layer holding it.
func (v *lowerView) lookup(p string) (fs.FileInfo, int, bool) {
	parent := path.Dir(p)
	if parent == "." {
		parent = ""
	}
	for _, i := range v.dirLayers(parent) {
		fi, err := os.Lstat(filepath.Join(v.dirs[i], p))
		if err != nil {
			continue
		}
		if isWhiteout(fi) {
			return nil, -1, false
		}
		return fi, i, true
	}
	return nil, -1, false
}

// readdir returns the names in the merged directory p.
func (v *lowerView) readdir(p string) map[string]bool {
	seen := map[string]bool{} // name -> present (false: whited out)
	for _, i := range v.dirLayers(p) {
		ents, err := os.ReadDir(filepath.Join(v.dirs[i], p))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if _, ok := seen[e.Name()]; ok {
				continue
			}
			present := true
			if e.Type()&fs.ModeCharDevice != 0 {
				if fi, err := e.Info(); err == nil && isWhiteout(fi) {
					present = false
				}
			}
			seen[e.Name()] = present
		}
	}
	for n, ok := range seen {
		if !ok {
			delete(seen, n)
		}
	}
	return seen
}

// diffEntry is a Change plus where its new content lives.
type diffEntry struct {
	Change
	rel    string // path relative to the root, no leading slash
	src    string // file in the upper dir or rootfs; "" for deletions
	opaque bool   // overlay: a directory hiding everything below it
	under  bool   // a deletion beneath an opaque directory (no tar entry)
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func sortedNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	slices.Sort(names)
	return names, err
}

// overlayChanges walks an overlay upper directory.
func overlayChanges(ctx context.Context, upper string, lower *lowerView) ([]diffEntry, error) {
	var out []diffEntry
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := sortedNames(filepath.Join(upper, rel))
		if err != nil {
			return err
		}
		for _, n := range names {
			p := join(rel, n)
			src := filepath.Join(upper, p)
			fi, err := os.Lstat(src)
			if err != nil {
				return err
			}
			lfi, _, inLower := lower.lookup(p)
			if isWhiteout(fi) {
				if inLower {
					out = append(out, diffEntry{Change: Change{ChangeDelete, "/" + p}, rel: p})
				}
				continue
			}
			kind := ChangeAdd
			if inLower {
				kind = ChangeModify
			}
			e := diffEntry{Change: Change{kind, "/" + p}, rel: p, src: src}
			if fi.IsDir() && inLower && isOpaque(src) {
				e.opaque = true
			}
			out = append(out, e)
			if !fi.IsDir() {
				continue
			}
			if e.opaque && lfi.IsDir() {
				have, _ := sortedNames(src)
				for _, ln := range sortedKeys(lower.readdir(p)) {
					if !slices.Contains(have, ln) {
						out = append(out, diffEntry{Change: Change{ChangeDelete, "/" + join(p, ln)}, rel: join(p, ln), under: true})
					}
				}
			}
			if err := walk(p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// copyChanges compares a full root file system with the merged chain.
func copyChanges(ctx context.Context, rootfs string, lower *lowerView) ([]diffEntry, error) {
	var addAll func(rel string, out *[]diffEntry) error
	addAll = func(rel string, out *[]diffEntry) error {
		names, err := sortedNames(filepath.Join(rootfs, rel))
		if err != nil {
			return err
		}
		for _, n := range names {
			p := join(rel, n)
			src := filepath.Join(rootfs, p)
			*out = append(*out, diffEntry{Change: Change{ChangeAdd, "/" + p}, rel: p, src: src})
			if fi, err := os.Lstat(src); err == nil && fi.IsDir() {
				if err := addAll(p, out); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var cmp func(rel string) ([]diffEntry, error)
	cmp = func(rel string) ([]diffEntry, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var out []diffEntry
		upperNames, err := sortedNames(filepath.Join(rootfs, rel))
		if err != nil {
			return nil, err
		}
		lowerNames := lower.readdir(rel)
		all := slices.Clone(upperNames)
		for n := range lowerNames {
			if !slices.Contains(upperNames, n) {
				all = append(all, n)
			}
		}
		slices.Sort(all)
		for _, n := range all {
			p := join(rel, n)
			src := filepath.Join(rootfs, p)
			ufi, uerr := os.Lstat(src)
			if uerr != nil {
				out = append(out, diffEntry{Change: Change{ChangeDelete, "/" + p}, rel: p})
				continue
			}
			lfi, li, inLower := lower.lookup(p)
			if !inLower {
				out = append(out, diffEntry{Change: Change{ChangeAdd, "/" + p}, rel: p, src: src})
				if ufi.IsDir() {
					if err := addAll(p, &out); err != nil {
						return nil, err
					}
				}
				continue
			}
			lsrc := filepath.Join(lower.dirs[li], p)
			if ufi.IsDir() && lfi.IsDir() {
				sub, err := cmp(p)
				if err != nil {
					return nil, err
				}
				if len(sub) > 0 || metaDiffers(src, ufi, lsrc, lfi) {
					out = append(out, diffEntry{Change: Change{ChangeModify, "/" + p}, rel: p, src: src})
					out = append(out, sub...)
				}
				continue
			}
			if ufi.Mode().Type() != lfi.Mode().Type() || metaDiffers(src, ufi, lsrc, lfi) {
				out = append(out, diffEntry{Change: Change{ChangeModify, "/" + p}, rel: p, src: src})
				if ufi.IsDir() {
					if err := addAll(p, &out); err != nil {
						return nil, err
					}
				}
			}
		}
		return out, nil
	}
	return cmp("")
}

func metaDiffers(a string, afi fs.FileInfo, b string, bfi fs.FileInfo) bool {
	as, _ := afi.Sys().(*syscall.Stat_t)
	bs, _ := bfi.Sys().(*syscall.Stat_t)
	if as == nil || bs == nil {
		return true
	}
	if as.Mode != bs.Mode || as.Uid != bs.Uid || as.Gid != bs.Gid || as.Rdev != bs.Rdev {
		return true
	}
	if !afi.IsDir() && (as.Size != bs.Size || as.Mtim != bs.Mtim) {
		return true
	}
	if afi.IsDir() && as.Mtim != bs.Mtim {
		return true
	}
	if afi.Mode()&fs.ModeSymlink != 0 {
		at, _ := os.Readlink(a)
		bt, _ := os.Readlink(b)
		return at != bt
	}
	return false
}

func toChanges(es []diffEntry) []Change {
	out := make([]Change, len(es))
	for i, e := range es {
		out[i] = e.Change
	}
	return out
}

// writeDiff writes entries as an OCI layer tar. Entries are read from
// root (the upper directory or the copy) through descriptors resolved
// inside it, never by path: a running container that swaps a directory
// for a symlink meanwhile cannot make the diff read a host file.
func writeDiff(ctx context.Context, w io.Writer, root string, es []diffEntry) error {
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	res := &applier{rootfd: rootfd, cacheFd: -1}
	defer res.close()
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	buf := make([]byte, 256<<10)
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Kind == ChangeDelete {
			if e.under {
				continue
			}
			dir, base := path.Split(e.rel)
			hdr := &tar.Header{Name: dir + whiteoutPrefix + base, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		if err := diffEntryTo(tw, res, e, links, buf); err != nil {
			return fmt.Errorf("diff %s: %w", e.Path, err)
		}
		if e.opaque {
			hdr := &tar.Header{Name: e.rel + "/" + opaqueMarker, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func diffEntryTo(tw *tar.Writer, res *applier, e diffEntry, links map[[2]uint64]string, buf []byte) error {
	dir := path.Dir(e.rel)
	if dir == "." {
		dir = ""
	}
	pfd, err := res.parent(dir, false)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, path.Base(e.rel), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	pf := os.NewFile(uintptr(fd), e.rel)
	defer pf.Close()
	fi, err := pf.Stat()
	if err != nil {
		return err
	}
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return err
		}
		link = string(buf[:n])
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = e.rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().IsRegular() && st.Nlink > 1 {
		id := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[id]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			links[id] = e.rel
		}
	}
	// Contents and xattrs of files and directories through a real
	// descriptor of the same inode (reopened via /proc, never by path).
	var content *os.File
	if fi.Mode().IsRegular() || fi.IsDir() {
		if content, err = os.Open(proc); err != nil {
			return err
		}
		defer content.Close()
		if x := fdXattrs(int(content.Fd())); len(x) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range x {
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		n, err := io.CopyBuffer(tw, io.LimitReader(content, hdr.Size), buf)
		if err != nil {
			return err
		}
		// The file shrank while we read it (a running container): pad,
		// as the header is written already.
		for ; n < hdr.Size; n++ {
			if _, err := tw.Write([]byte{0}); err != nil {
				return err
			}
		}
	}
	return nil
}

// fdXattrs returns the xattrs of an open file worth carrying in a layer
// (not trusted.overlay.*).
func fdXattrs(fd int) map[string]string {
	sz, err := unix.Flistxattr(fd, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	if sz, err = unix.Flistxattr(fd, buf); err != nil {
		return nil
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		vs, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vs)
		if vs, err = unix.Fgetxattr(fd, name, v); err != nil {
			continue
		}
		out[name] = string(v[:vs])
	}
	return out
}

// readXattrs returns the xattrs of p worth carrying in a layer (not
// trusted.overlay.*).
func readXattrs(p string) map[string]string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		vs, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vs)
		vs, err = unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		out[name] = string(v[:vs])
	}
	return out
}
