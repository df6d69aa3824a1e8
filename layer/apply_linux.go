//go:build linux

package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// Apply extracts the uncompressed tar stream r into dir, which must exist
// and must not be modified by anyone else meanwhile. It reads r to its end
// (trailing data included) and returns the bytes of file content written.
//
// No entry can create or change anything outside dir: names are cleaned
// and those that climb out (`../x`) are rejected; absolute names are taken
// relative to dir; every parent directory is resolved with openat2(2)
// RESOLVE_IN_ROOT (or, where the kernel or a seccomp filter lacks openat2,
// an equivalent walk one component at a time), so a symlink in the tar is
// followed as if dir were `/`; hard links are made with linkat(2) without
// following symlinks; entries replace what is there instead of writing
// through it. Ownership, modes
// (setuid, setgid, sticky included), mtimes, xattrs, hard links, symlinks,
// devices and fifos are kept; xattrs the filesystem refuses are skipped in
// the trusted.* and security.* namespaces and are errors in user.*;
// trusted.overlay.* xattrs in the tar are dropped (only `.wh..wh..opq`
// makes a directory opaque). Errors about the tar wrap errdefs.ErrInvalid.
// On error dir holds a partial result: extract into a fresh directory and
// remove it on failure, as Store.Unpack does.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (int64, error) {
	return applyTar(ctx, dir, r, opts, false)
}

// applyTar is Apply; with writeback it starts writing each file to disk as
// soon as it is extracted, so that a final syncfs finds little left to do.
func applyTar(ctx context.Context, dir string, r io.Reader, opts ApplyOptions, writeback bool) (int64, error) {
	rootfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "apply: open", Path: dir, Err: err}
	}
	a := &applier{ctx: ctx, dir: dir, rootfd: rootfd, cacheFd: -1, opts: opts, writeback: writeback}
	a.maxEntries, a.maxBytes, a.maxName = opts.limits()
	defer a.close()
	if err := a.run(r); err != nil {
		return a.size, fmt.Errorf("apply layer into %s: %w", dir, err)
	}
	return a.size, nil
}

type applier struct {
	ctx    context.Context
	dir    string
	rootfd int
	opts   ApplyOptions

	maxEntries, maxBytes int64
	maxName              int

	cachePath string
	cacheFd   int

	writeback bool
	noOpenat2 bool // resolve with walk

	dirs    []dirTimes
	written map[string]bool // ApplyWhiteouts: paths this tar made
	size    int64
	entries int64
	count   countReader
}

type dirTimes struct {
	path string
	ts   []unix.Timespec
}

type countReader struct {
	r   io.Reader
	n   int64
	max int64
}

var errTooBig = errors.New("tar stream larger than the limit")

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.max > 0 && c.n > c.max {
		return n, errTooBig
	}
	return n, err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func invalid(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalid)...)
}

func (a *applier) close() {
	a.invalidate()
	unix.Close(a.rootfd)
}

func (a *applier) invalidate() {
	if a.cacheFd >= 0 {
		unix.Close(a.cacheFd)
	}
	a.cacheFd, a.cachePath = -1, ""
}

func (a *applier) run(r io.Reader) error {
	a.count = countReader{r: r, max: a.maxBytes}
	if a.maxBytes < 0 {
		a.count.max = 0
	}
	if a.opts.ApplyWhiteouts {
		a.written = map[string]bool{}
	}
	tr := tar.NewReader(&a.count)
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.readErr(err)
		}
		a.entries++
		if a.maxEntries > 0 && a.entries > a.maxEntries {
			return invalid("more than %d entries", a.maxEntries)
		}
		if a.count.max > 0 && a.count.n+hdr.Size > a.count.max {
			return invalid("entry %q: %d bytes would exceed the limit of %d bytes", hdr.Name, hdr.Size, a.count.max)
		}
		if err := a.entry(tr, hdr); err != nil {
			return err
		}
	}
	// The rest of the stream (end blocks, padding) belongs to the diffID.
	bp := bufPool.Get().(*[]byte)
	_, err := io.CopyBuffer(io.Discard, &a.count, *bp)
	bufPool.Put(bp)
	if err != nil {
		return a.readErr(err)
	}
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		if d.path == "" {
			unix.UtimesNanoAt(a.rootfd, ".", d.ts, 0)
			continue
		}
		pfd, err := a.parent(path.Dir(d.path), false)
		if err != nil {
			continue // replaced by a later entry
		}
		unix.UtimesNanoAt(pfd, path.Base(d.path), d.ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

func (a *applier) readErr(err error) error {
	switch {
	case errors.Is(err, errTooBig):
		return invalid("tar stream larger than %d bytes", a.count.max)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong),
		errors.Is(err, tar.ErrInsecurePath), strings.HasPrefix(err.Error(), "archive/tar:"):
		return fmt.Errorf("read tar: %w: %w", err, errdefs.ErrInvalid)
	}
	return fmt.Errorf("read tar: %w", err)
}

// clean turns a tar name into a path relative to the root ("" for the root
// itself), rejecting names that climb out.
func (a *applier) clean(name, what string) (string, error) {
	if a.maxName > 0 && len(name) > a.maxName {
		return "", invalid("%s of %d bytes is longer than the limit of %d", what, len(name), a.maxName)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", invalid("%s %q contains NUL", what, name)
	}
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", invalid("%s %q is outside the layer", what, name)
	}
	if p == "." {
		p = ""
	}
	return p, nil
}

func (a *applier) entry(tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	}
	name, err := a.clean(hdr.Name, "name")
	if err != nil {
		return err
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return nil
		}
		return a.rootDir(hdr)
	}
	dir, base := path.Dir(name), path.Base(name)
	if dir == "." {
		dir = ""
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(hdr, dir, base)
	}
	pfd, err := a.parent(dir, true)
	if err != nil {
		return err
	}
	if a.written != nil {
		a.written[name] = true
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.mkdir(pfd, name, base, hdr)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return a.file(tr, pfd, name, base, hdr)
	case tar.TypeSymlink:
		if a.maxName > 0 && len(hdr.Linkname) > a.maxName {
			return invalid("link target of %q: %d bytes is longer than the limit of %d", hdr.Name, len(hdr.Linkname), a.maxName)
		}
		if err := a.replace(pfd, base, false); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return pathErr("symlink", name, err)
		}
		return a.meta(pfd, name, base, hdr, true)
	case tar.TypeLink:
		return a.hardlink(pfd, name, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		if err := a.replace(pfd, base, false); err != nil {
			return err
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, mode|0o600, dev); err != nil {
			return pathErr("mknod", name, err)
		}
		return a.meta(pfd, name, base, hdr, false)
	default:
		return nil // unknown or archive-only types carry nothing to extract
	}
}

func pathErr(op, name string, err error) error {
	if errors.Is(err, unix.ENAMETOOLONG) {
		return invalid("%s %s: %v", op, name, err)
	}
	return &os.PathError{Op: op, Path: name, Err: err}
}

func timespecs(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{toTimespec(at), toTimespec(hdr.ModTime)}
}

func toTimespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// parent returns an O_PATH descriptor of the directory dir (relative to
// the root, "" for the root), creating missing directories when create.
// The descriptor is cached; do not close it.
func (a *applier) parent(dir string, create bool) (int, error) {
	if dir == "" {
		return a.rootfd, nil
	}
	if dir == a.cachePath && a.cacheFd >= 0 {
		return a.cacheFd, nil
	}
	fd, err := a.resolve(dir)
	if err == unix.ENOENT && create {
		if err = a.mkdirAll(dir); err == nil {
			fd, err = a.resolve(dir)
		}
	}
	if err != nil {
		if errors.Is(err, errdefs.ErrInvalid) {
			return -1, err
		}
		if err == unix.ENOTDIR || err == unix.ENOENT || err == unix.ELOOP || err == unix.EXDEV || err == unix.ENAMETOOLONG {
			return -1, invalid("parent directory %q: %v", dir, err)
		}
		return -1, pathErr("resolve", dir, err)
	}
	a.invalidate()
	a.cachePath, a.cacheFd = dir, fd
	return fd, nil
}

func (a *applier) resolve(dir string) (int, error) {
	if a.opts.walk || a.noOpenat2 {
		return a.walk(dir)
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for {
		fd, err := unix.Openat2(a.rootfd, dir, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ENOSYS || err == unix.EPERM {
			// Before Linux 5.6, or a seccomp filter that hides openat2.
			a.noOpenat2 = true
			return a.walk(dir)
		}
		return fd, err
	}
}

// walk resolves dir below the root as openat2 RESOLVE_IN_ROOT does, one
// component at a time: symlinks are read and followed as if the root
// were "/", and ".." never climbs above it.
func (a *applier) walk(dir string) (int, error) {
	var stack []int // open directories below the root; the last is current
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	cur := func() int {
		if len(stack) == 0 {
			return a.rootfd
		}
		return stack[len(stack)-1]
	}
	rest := strings.Split(dir, "/")
	links := 0
	buf := make([]byte, unix.PathMax)
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		fd, err := unix.Openat(cur(), c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			stack = append(stack, fd)
		case unix.S_IFLNK:
			n, err := unix.Readlinkat(fd, "", buf)
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links++; links > 40 {
				return -1, unix.ELOOP
			}
			target := string(buf[:n])
			if strings.HasPrefix(target, "/") {
				for _, fd := range stack {
					unix.Close(fd)
				}
				stack = nil
			}
			rest = append(strings.Split(target, "/"), rest...)
		default:
			unix.Close(fd)
			return -1, unix.ENOTDIR
		}
	}
	if len(stack) == 0 {
		return unix.FcntlInt(uintptr(a.rootfd), unix.F_DUPFD_CLOEXEC, 0)
	}
	fd := stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	return fd, nil
}

func (a *applier) mkdirAll(dir string) error {
	parts := strings.Split(dir, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fd, err := a.resolve(prefix)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if err != unix.ENOENT {
			return err
		}
		pfd := a.rootfd
		if i > 0 {
			if pfd, err = a.resolve(strings.Join(parts[:i], "/")); err != nil {
				return err
			}
		}
		err = unix.Mkdirat(pfd, parts[i], 0o755)
		if pfd != a.rootfd {
			unix.Close(pfd)
		}
		if err == unix.EEXIST {
			return invalid("parent %q is a dangling symlink", prefix)
		}
		if err != nil {
			return pathErr("mkdir", prefix, err)
		}
	}
	return nil
}

// replace removes what is at base in pfd, unless it is a directory and
// keepDir is set. It reports nothing about what was there.
func (a *applier) replace(pfd int, base string, keepDir bool) error {
	_, err := a.replaceIsDir(pfd, base, keepDir)
	return err
}

func (a *applier) replaceIsDir(pfd int, base string, keepDir bool) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, pathErr("stat", base, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if keepDir {
			return true, nil
		}
		p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
		a.invalidateUnless(pfd)
		if err := os.RemoveAll(p); err != nil {
			return false, err
		}
		return false, nil
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil && err != unix.ENOENT {
		return false, pathErr("unlink", base, err)
	}
	return false, nil
}

// invalidateUnless drops the parent cache unless it holds pfd (which the
// caller still uses; it stays valid as its directory is not removed).
func (a *applier) invalidateUnless(pfd int) {
	if a.cacheFd != pfd {
		a.invalidate()
	}
}

func (a *applier) rootDir(hdr *tar.Header) error {
	fd, err := unix.Openat(a.rootfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("open", a.dir, err)
	}
	defer unix.Close(fd)
	if err := a.fdMeta(fd, "/", hdr); err != nil {
		return err
	}
	a.dirs = append(a.dirs, dirTimes{path: "", ts: timespecs(hdr)})
	return nil
}

func (a *applier) mkdir(pfd int, name, base string, hdr *tar.Header) error {
	isDir, err := a.replaceIsDir(pfd, base, true)
	if err != nil {
		return err
	}
	if !isDir {
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return pathErr("mkdir", name, err)
		}
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("open", name, err)
	}
	defer unix.Close(fd)
	if err := a.fdMeta(fd, name, hdr); err != nil {
		return err
	}
	a.dirs = append(a.dirs, dirTimes{path: name, ts: timespecs(hdr)})
	return nil
}

func (a *applier) file(tr *tar.Reader, pfd int, name, base string, hdr *tar.Header) error {
	if err := a.replace(pfd, base, false); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return pathErr("create", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if hdr.Size > 0 {
		bp := bufPool.Get().(*[]byte)
		n, err := io.CopyBuffer(fileWriter{f}, tr, *bp)
		bufPool.Put(bp)
		a.size += n
		if err != nil {
			if errors.Is(err, errTooBig) || errors.Is(err, io.ErrUnexpectedEOF) || strings.HasPrefix(err.Error(), "archive/tar") {
				return a.readErr(err)
			}
			return fmt.Errorf("write %s: %w", name, err)
		}
		if a.writeback {
			unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		}
	}
	if err := a.fdMeta(fd, name, hdr); err != nil {
		return err
	}
	if err := unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("utimes", name, err)
	}
	return nil
}

// fileWriter hides os.File's ReadFrom, which would only fall back to a
// generic copy with its own small buffer.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// fdMeta sets owner, mode and xattrs through an open descriptor of a
// regular file or directory.
func (a *applier) fdMeta(fd int, name string, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return pathErr("chown", name, err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return pathErr("chmod", name, err)
	}
	return a.xattrs(hdr, name, false, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) })
}

// meta sets owner, mode, xattrs and times of a symlink, device or fifo
// just created at base in pfd, never following a symlink.
func (a *applier) meta(pfd int, name, base string, hdr *tar.Header, symlink bool) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("lchown", name, err)
	}
	if !symlink {
		// base was created by us an instant ago and is not a symlink.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return pathErr("chmod", name, err)
		}
	}
	p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
	if err := a.xattrs(hdr, name, true, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
		return err
	}
	if err := unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("utimes", name, err)
	}
	return nil
}

func (a *applier) xattrs(hdr *tar.Header, name string, special bool, set func(string, []byte) error) error {
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || attr == "" {
			continue
		}
		if strings.HasPrefix(attr, "trusted.overlay.") || strings.HasPrefix(attr, "user.overlay.") {
			continue // only whiteout entries may steer overlayfs
		}
		err := set(attr, []byte(v))
		if err == nil {
			continue
		}
		refused := err == unix.EPERM || err == unix.ENOTSUP || err == unix.EOPNOTSUPP || err == unix.EACCES
		if refused && !strings.HasPrefix(attr, "user.") {
			continue // trusted.*, security.*, system.*: the filesystem or our privilege says no
		}
		if refused && special && err == unix.EPERM {
			continue // Linux allows user.* only on files and directories
		}
		return fmt.Errorf("set xattr %s on %s: %w", attr, name, err)
	}
	return nil
}

func (a *applier) hardlink(pfd int, name, base string, hdr *tar.Header) error {
	target, err := a.clean(hdr.Linkname, "hard link target")
	if err != nil {
		return err
	}
	if target == "" {
		return invalid("hard link %q to the root", hdr.Name)
	}
	if target == name {
		return nil // a link to itself: nothing to do
	}
	if err := a.replace(pfd, base, false); err != nil {
		return err
	}
	tdir := path.Dir(target)
	if tdir == "." {
		tdir = ""
	}
	var tfd int
	if tdir == "" {
		tfd = a.rootfd
	} else {
		tfd, err = a.resolve(tdir)
		if err != nil {
			return invalid("hard link %q to %q: %v", hdr.Name, hdr.Linkname, err)
		}
		defer unix.Close(tfd)
	}
	// flags 0: a link to a symlink links the symlink itself, never its target.
	if err := unix.Linkat(tfd, path.Base(target), pfd, base, 0); err != nil {
		if err == unix.ENOENT || err == unix.EPERM || err == unix.EXDEV {
			return invalid("hard link %q to %q: %v", hdr.Name, hdr.Linkname, err)
		}
		return pathErr("link", name, err)
	}
	return nil
}

func (a *applier) whiteout(hdr *tar.Header, dir, base string) error {
	if base == opaqueMarker {
		pfd, err := a.parent(dir, true)
		if err != nil {
			return err
		}
		if a.opts.ApplyWhiteouts {
			return a.clearOpaque(pfd, dir)
		}
		p := "/proc/self/fd/" + strconv.Itoa(pfd)
		if err := unix.Setxattr(p, opaqueXattr, []byte("y"), 0); err != nil {
			return pathErr("set opaque xattr", dir, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // aufs metadata (.wh..wh.plnk, ...): nothing for overlay
	}
	victim := base[len(whiteoutPrefix):]
	if victim == "" || victim == "." || victim == ".." {
		return invalid("whiteout %q names no file", hdr.Name)
	}
	pfd, err := a.parent(dir, true)
	if err != nil {
		return err
	}
	if a.opts.ApplyWhiteouts {
		return a.replace(pfd, victim, false)
	}
	if err := a.replace(pfd, victim, false); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, victim, unix.S_IFCHR, 0); err != nil {
		return pathErr("mknod whiteout", path.Join(dir, victim), err)
	}
	if err := unix.Fchownat(pfd, victim, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("lchown", path.Join(dir, victim), err)
	}
	return nil
}

// clearOpaque removes the entries of dir that this tar did not create.
func (a *applier) clearOpaque(pfd int, dir string) error {
	fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("open", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if a.written[path.Join(dir, n)] {
			continue
		}
		if err := a.replace(pfd, n, false); err != nil {
			return err
		}
	}
	return nil
}
