//go:build linux

package berth

import (
	"archive/tar"
	"context"
	"errors"
	"io"

	"github.com/berthrt/berth/namespace"
)

// mappedOwners is what a container with UIDMappings writes to disk: its
// files carry host ids, which Commit and Export turn back into the ids the
// container saw, so that the new layer or the tar runs the same without
// the maps (as Docker does under userns-remap).
type mappedOwners struct{ uids, gids []IDMap }

func (c *Container) owners() *mappedOwners {
	cfg := &c.rec.Config
	if len(cfg.UIDMappings) == 0 {
		return nil
	}
	return &mappedOwners{uids: cfg.UIDMappings, gids: cfg.GIDMappings}
}

// writeTar runs write with a writer whose tar stream reaches w with every
// entry's owner mapped back to the container's ids. A nil o is w itself.
func (o *mappedOwners) writeTar(ctx context.Context, w io.Writer, write func(io.Writer) error) error {
	if o == nil {
		return write(w)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	err := o.copyTar(ctx, w, pr)
	pr.CloseWithError(errors.Join(err, io.ErrClosedPipe)) // unblock the writer if we stopped early
	if werr := <-done; werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		return werr
	}
	return err
}

func (o *mappedOwners) copyTar(ctx context.Context, w io.Writer, r io.Reader) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		hdr.Uid, hdr.Gid = toContainer(o.uids, hdr.Uid), toContainer(o.gids, hdr.Gid)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// toContainer is namespace.MapToContainer, keeping an id the maps do not
// cover (a file the container did not write, such as one the copy
// snapshotter stores with the image's own ids).
func toContainer(maps []IDMap, id int) int {
	if c := namespace.MapToContainer(maps, id); c >= 0 {
		return c
	}
	return id
}
