//go:build linux

package berth

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/berthrt/berth/internal/ids"
	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/mount"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Change is one path that differs between a container and its image.
type Change = layer.Change

// Diff lists what changed in the container's file system, like `docker diff`.
func (c *Container) Diff(ctx context.Context) ([]Change, error) {
	snap, err := c.rt.store.Snapshotter()
	if err != nil {
		return nil, err
	}
	return snap.Changes(ctx, c.id)
}

// CommitOptions configure Commit.
type CommitOptions struct {
	// Ref names the new image. Zero: it has only its id.
	Ref string
	// Config replaces the new image's run configuration when non-nil.
	// Zero: the image's, with the container's command and environment.
	Config *ocispec.ImageConfig
	// Comment is recorded in the image's history.
	Comment string
}

// Commit makes a new image from the container: its image plus one layer
// holding what changed in the container.
func (c *Container) Commit(ctx context.Context, opts CommitOptions) (*Image, error) {
	name := ""
	if opts.Ref != "" {
		n, err := normalizeName(opts.Ref)
		if err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		name = n
	}
	rt := c.rt
	base, err := rt.imageByDigest(c.rec.ImageDigest)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", ids.Short(c.id), err)
	}
	snap, err := rt.store.Snapshotter()
	if err != nil {
		return nil, err
	}
	lease, err := rt.store.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	tmp, err := os.CreateTemp(rt.cfg.Root, ".commit-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	diffDigester := digest.Canonical.Digester()
	blobDigester := digest.Canonical.Digester()
	counter := &countWriter{w: io.MultiWriter(tmp, blobDigester.Hash())}
	zw := gzip.NewWriter(counter)
	err = c.owners().writeTar(ctx, io.MultiWriter(zw, diffDigester.Hash()), func(w io.Writer) error {
		return snap.Diff(ctx, c.id, w)
	})
	if err != nil {
		return nil, fmt.Errorf("commit %s: diff: %w", ids.Short(c.id), err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	diffID := diffDigester.Digest()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: blobDigester.Digest(), Size: counter.n}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := rt.storeFile(ctx, desc, tmp); err != nil {
		return nil, fmt.Errorf("commit %s: %w", ids.Short(c.id), err)
	}
	if !rt.store.HasLayer(layer.ChainID(c.rec.Chain, diffID)) {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if _, err := rt.store.Unpack(ctx, tmp, desc.MediaType, c.rec.Chain, diffID); err != nil {
			return nil, fmt.Errorf("commit %s: %w", ids.Short(c.id), err)
		}
	}
	cfg := base.Config.Config
	if opts.Config != nil {
		cfg = *opts.Config
	} else {
		cfg.Env = c.rec.Env
		if c.rec.Config.Entrypoint != nil {
			cfg.Entrypoint = c.rec.Config.Entrypoint
			cfg.Cmd = nil
		}
		if c.rec.Config.Cmd != nil {
			cfg.Cmd = c.rec.Config.Cmd
		}
		if c.rec.Config.User != "" {
			cfg.User = c.rec.Config.User
		}
		if c.rec.Config.WorkingDir != "" {
			cfg.WorkingDir = c.rec.Config.WorkingDir
		}
	}
	comment := "commit " + ids.Short(c.id)
	if opts.Comment != "" {
		comment += ": " + opts.Comment
	}
	return rt.writeImage(ctx, name, cfg, base, []ocispec.Descriptor{desc}, []digest.Digest{diffID}, comment)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Export writes the container's file system as one flat tar (volumes,
// /proc, /sys, /dev and the per-container /etc files excluded), like
// `docker export`.
func (c *Container) Export(ctx context.Context, w io.Writer) error {
	return c.owners().writeTar(ctx, w, func(w io.Writer) error { return c.export(ctx, w) })
}

func (c *Container) export(ctx context.Context, w io.Writer) error {
	st := c.State()
	if st.Running && st.Pid > 0 {
		root := "/proc/" + strconv.Itoa(st.Pid) + "/root"
		return writeTree(ctx, w, root, c.excluded())
	}
	snap, err := c.rt.store.Snapshotter()
	if err != nil {
		return err
	}
	mounts, err := snap.Mounts(ctx, c.id)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(c.rt.cfg.Root, ".export-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	for i := range mounts {
		if mounts[i].Target == "" {
			mounts[i].Target = dir
		}
	}
	if err := mount.All(mounts, dir); err != nil {
		return fmt.Errorf("export %s: %w", ids.Short(c.id), err)
	}
	defer mount.UnmountAll(dir, unix.MNT_DETACH)
	return writeTree(ctx, w, dir, nil)
}

func (c *Container) excluded() map[string]bool {
	ex := map[string]bool{"/proc": true, "/sys": true, "/dev": true,
		"/etc/hosts": true, "/etc/hostname": true, "/etc/resolv.conf": true}
	for _, m := range c.rec.Config.Mounts {
		ex[filepath.Clean(m.Target)] = true
	}
	return ex
}

// writeTree writes the tree under root as a tar, keeping owners, modes,
// links, devices and mtimes; paths in skip (absolute in the tree) are left
// out with everything beneath them.
func writeTree(ctx context.Context, w io.Writer, root string, skip map[string]bool) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if skip["/"+rel] {
			if d.IsDir() {
				// Keep the mount point itself, empty.
				fi, err := d.Info()
				if err == nil {
					hdr, _ := tar.FileInfoHeader(fi, "")
					hdr.Name = rel + "/"
					_ = tw.WriteHeader(hdr)
				}
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Format = tar.FormatPAX
		hdr.Uname, hdr.Gname = "", ""
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(sys.Uid), int(sys.Gid)
			if fi.Mode().IsRegular() && sys.Nlink > 1 {
				key := [2]uint64{sys.Dev, sys.Ino}
				if first, ok := links[key]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					links[key] = rel
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if err != nil {
		return err
	}
	return tw.Close()
}
