//go:build linux

package layer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/fsutil"
)

// Unpack extracts a layer blob read from r into the store, on top of the
// layer chain parent ("" for a base layer), and returns it. mediaType says
// how r is compressed (see Decompress). r can be a network stream: Unpack
// reads it once, start to end, and computes the DiffID while extracting.
//
// diffID is the layer's expected DiffID (from the image config), or "" if
// unknown. When given, Unpack locks the layer's ChainID first, so that among
// processes unpacking the same layer at once one extracts and the others
// wait and return its result, and it returns at once, without reading r, if
// the layer exists already (a caller that tees a download into a Writer then
// drains r itself). A different DiffID is an error wrapping
// errdefs.ErrDigestMismatch. When "", the layer is extracted first and
// published unless another process won the race meanwhile.
//
// The layer is extracted into a temporary directory and renamed into
// place, so it either exists complete or not at all; on any error nothing of
// it remains. Store Options.Limits bound the extraction (errors wrap
// errdefs.ErrInvalid).
//
// The parent need not be unpacked yet: a layer's directory does not depend
// on the layers below it, so the layers of one image can be downloaded and
// unpacked in parallel, in any order. The chain is usable (Chain, Prepare)
// once all of its layers are there; until then those return an error
// wrapping errdefs.ErrNotFound. parent must be a valid digest or "".
func (s *Store) Unpack(ctx context.Context, r io.Reader, mediaType string, parent, diffID digest.Digest) (Layer, error) {
	if _, err := compressionOf(mediaType); err != nil {
		return Layer{}, err
	}
	if diffID != "" {
		if err := validDigest(diffID); err != nil {
			return Layer{}, err
		}
	}
	lease, err := s.Lease(ctx)
	if err != nil {
		return Layer{}, err
	}
	defer lease.Release()
	if parent != "" {
		if err := validDigest(parent); err != nil {
			return Layer{}, fmt.Errorf("unpack: parent: %w", err)
		}
	}
	var lock *fsutil.Lock
	defer func() { lock.UnlockRemove() }()
	if diffID != "" {
		chain := ChainID(parent, diffID)
		if lock, err = s.lockLayer(ctx, chain); err != nil {
			return Layer{}, err
		}
		if l, err := s.Layer(chain); err == nil {
			return l, nil
		}
	}

	src := &srcReader{r: r}
	dec, err := Decompress(src, mediaType)
	if err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	defer dec.Close()
	tmp, err := s.mkTemp("unpack")
	if err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	published := false
	defer func() {
		if !published {
			removeAll(tmp)
		}
	}()
	diff := filepath.Join(tmp, "diff")
	if err := os.Mkdir(diff, 0o755); err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	dg := digest.Canonical.Digester()
	size, err := applyTar(ctx, diff, io.TeeReader(dec, dg.Hash()), s.opts.Limits, !s.opts.NoSync)
	if err != nil {
		if src.err != nil {
			// The caller's stream failed (a dropped download): say so,
			// and do not call the layer invalid.
			return Layer{}, fmt.Errorf("unpack: reading the layer: %w", src.err)
		}
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	got := dg.Digest()
	if diffID != "" && got != diffID {
		return Layer{}, fmt.Errorf("unpack: layer has DiffID %s, want %s: %w", got, diffID, errdefs.ErrDigestMismatch)
	}
	l := Layer{DiffID: got, ChainID: ChainID(parent, got), Parent: parent, Size: size}
	if lock == nil {
		if lock, err = s.lockLayer(ctx, l.ChainID); err != nil {
			return Layer{}, err
		}
		if have, err := s.Layer(l.ChainID); err == nil {
			return have, nil
		}
	}
	meta, _ := json.Marshal(l)
	if err := os.WriteFile(filepath.Join(tmp, "layer.json"), meta, 0o600); err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	if !s.opts.NoSync {
		if err := syncFS(tmp); err != nil {
			return Layer{}, fmt.Errorf("unpack: sync: %w", err)
		}
	}
	dst := s.layerPath(l.ChainID)
	if err := os.Rename(tmp, dst); err != nil {
		return Layer{}, fmt.Errorf("unpack: publish %s: %w", l.ChainID, err)
	}
	published = true
	_ = fsutil.SyncDir(filepath.Dir(dst))
	s.log.Debug("layer unpacked", "chainID", l.ChainID, "diffID", l.DiffID, "size", size)
	return l, nil
}

func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

func (s *Store) lockLayer(ctx context.Context, chain digest.Digest) (*fsutil.Lock, error) {
	l, err := lockFile(ctx, s.path("locks", "layer-"+chain.Encoded()+".lock"), true)
	if err != nil {
		return nil, fmt.Errorf("lock layer %s: %w", chain, err)
	}
	return l, nil
}
