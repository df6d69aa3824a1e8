//go:build linux

package layer

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/mount"
)

// CopySnapshotter makes snapshots as full copies of the chain's merged
// content in <root>/snapshots/<key>/rootfs, returned as a bind mount. It
// works on any file system and without CAP_SYS_ADMIN for the copy itself,
// at the price of time and space proportional to the image. Changes
// compares the copy with the layers (type, mode, owner, size, mtime, link
// target).
type CopySnapshotter struct{ s *Store }

// NewCopySnapshotter returns the copy snapshotter of s.
func NewCopySnapshotter(s *Store) *CopySnapshotter { return &CopySnapshotter{s: s} }

// Prepare creates the snapshot key on top of the chain parent.
func (c *CopySnapshotter) Prepare(ctx context.Context, key string, parent digest.Digest) ([]mount.Mount, error) {
	err := c.s.createSnapshot(ctx, key, parent, "copy", func(tmp string, chain []Layer) (string, error) {
		return "copy", fillCopy(ctx, c.s, tmp, chain)
	})
	if err != nil {
		return nil, err
	}
	return c.Mounts(ctx, key)
}

// Mounts returns the mounts of snapshot key.
func (c *CopySnapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	return snapshotMounts(ctx, c.s, key, nil)
}

// Changes lists what differs in snapshot key from its parent chain.
func (c *CopySnapshotter) Changes(ctx context.Context, key string) ([]Change, error) {
	es, _, err := snapshotChanges(ctx, c.s, key)
	return toChanges(es), err
}

// Diff writes the changes of snapshot key as an uncompressed OCI layer tar.
func (c *CopySnapshotter) Diff(ctx context.Context, key string, w io.Writer) error {
	return snapshotDiff(ctx, c.s, key, w)
}

// Remove deletes snapshot key; unmount it first.
func (c *CopySnapshotter) Remove(ctx context.Context, key string) error {
	return c.s.removeSnapshot(ctx, key)
}

// List returns the keys of all snapshots.
func (c *CopySnapshotter) List(ctx context.Context) ([]string, error) {
	return c.s.listSnapshots()
}

func fillCopy(ctx context.Context, s *Store, tmp string, chain []Layer) error {
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	for _, l := range chain {
		if err := mergeLayer(ctx, s.LayerDir(l.ChainID), rootfs); err != nil {
			return err
		}
	}
	return nil
}

// mergeLayer copies the layer directory src (overlay form) onto dst,
// applying its whiteouts and opaque directories. dst and every directory
// it descends into are real directories made here, so nothing is written
// through a symlink.
func mergeLayer(ctx context.Context, src, dst string) error {
	links := map[[2]uint64]string{}
	buf := make([]byte, 256<<10)
	var walk func(s, d string) error
	walk = func(s, d string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := sortedNames(s)
		if err != nil {
			return err
		}
		for _, n := range names {
			sp, dp := filepath.Join(s, n), filepath.Join(d, n)
			fi, err := os.Lstat(sp)
			if err != nil {
				return err
			}
			if isWhiteout(fi) {
				if err := removeAll(dp); err != nil {
					return err
				}
				continue
			}
			dfi, derr := os.Lstat(dp)
			if fi.IsDir() {
				if derr == nil && !dfi.IsDir() {
					if err := os.Remove(dp); err != nil {
						return err
					}
					derr = os.ErrNotExist
				}
				if derr != nil {
					if err := os.Mkdir(dp, 0o700); err != nil {
						return err
					}
				} else if isOpaque(sp) {
					kids, err := sortedNames(dp)
					if err != nil {
						return err
					}
					for _, k := range kids {
						if err := removeAll(filepath.Join(dp, k)); err != nil {
							return err
						}
					}
				}
				if err := walk(sp, dp); err != nil {
					return err
				}
				if err := copyMeta(sp, dp, fi); err != nil {
					return err
				}
				continue
			}
			if derr == nil {
				if err := removeAll(dp); err != nil {
					return err
				}
			}
			st := fi.Sys().(*syscall.Stat_t)
			id := [2]uint64{st.Dev, st.Ino}
			if st.Nlink > 1 {
				if first, ok := links[id]; ok {
					if err := os.Link(first, dp); err != nil {
						return err
					}
					continue
				}
				links[id] = dp
			}
			switch {
			case fi.Mode().IsRegular():
				if err := copyFile(sp, dp, buf); err != nil {
					return err
				}
			case fi.Mode()&fs.ModeSymlink != 0:
				t, err := os.Readlink(sp)
				if err != nil {
					return err
				}
				if err := os.Symlink(t, dp); err != nil {
					return err
				}
			default:
				if err := unix.Mknod(dp, st.Mode, int(st.Rdev)); err != nil {
					return &os.PathError{Op: "mknod", Path: dp, Err: err}
				}
			}
			if err := copyMeta(sp, dp, fi); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(src, dst)
}

func copyFile(src, dst string, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // copy_file_range where the kernel can
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyMeta copies owner, mode, xattrs and times from src to dst, never
// following a symlink.
func copyMeta(src, dst string, fi fs.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	symlink := fi.Mode()&fs.ModeSymlink != 0
	if !symlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	for k, v := range readXattrs(src) {
		if err := unix.Lsetxattr(dst, k, []byte(v), 0); err != nil && err != unix.EPERM && err != unix.ENOTSUP {
			return &os.PathError{Op: "setxattr " + k, Path: dst, Err: err}
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(syscall.TimespecToNsec(st.Atim)), unix.NsecToTimespec(syscall.TimespecToNsec(st.Mtim))}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}
