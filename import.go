//go:build linux

package berth

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Ref names the new image. Zero: the image has no name but its id.
	Ref string
	// Config is the new image's run configuration (Cmd, Entrypoint, Env,
	// WorkingDir, User, ExposedPorts, ...).
	Config ocispec.ImageConfig
}

// Import makes a single-layer image from a flat root file system tarball
// (plain or gzip-compressed), like `docker import`.
func (rt *Runtime) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	name := ""
	if opts.Ref != "" {
		n, err := normalizeName(opts.Ref)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		name = n
	}
	lease, err := rt.store.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	br := bufio.NewReader(r)
	src := io.Reader(br)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("import: %v: %w", err, ErrInvalid)
		}
		defer zr.Close()
		src = zr
	}
	tmp, err := os.CreateTemp(rt.cfg.Root, ".import-*")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	dg := digest.Canonical.Digester()
	n, err := io.Copy(io.MultiWriter(tmp, dg.Hash()), src)
	if err != nil {
		return nil, fmt.Errorf("import: read: %w", err)
	}
	diffID := dg.Digest()
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: diffID, Size: n}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := rt.storeFile(ctx, layerDesc, tmp); err != nil {
		return nil, fmt.Errorf("import: store layer: %w", err)
	}
	if !rt.store.HasLayer(diffID) {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if _, err := rt.store.Unpack(ctx, tmp, ocispec.MediaTypeImageLayer, "", diffID); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
	}
	return rt.writeImage(ctx, name, opts.Config, nil, []ocispec.Descriptor{layerDesc}, []digest.Digest{diffID}, "import")
}

// storeFile stores the content of f as desc (verified by Commit).
func (rt *Runtime) storeFile(ctx context.Context, desc ocispec.Descriptor, f io.Reader) error {
	w, err := rt.store.Writer(ctx, desc)
	if err != nil {
		if errors.Is(err, ErrAlreadyExists) {
			return nil
		}
		return err
	}
	defer w.Close()
	if off := w.Offset(); off > 0 {
		if _, err := io.CopyN(io.Discard, f, off); err != nil {
			return err
		}
	}
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	return w.Commit(ctx)
}

// writeImage stores a config and manifest for layers on top of base (nil
// for none) and records name (when not empty).
func (rt *Runtime) writeImage(ctx context.Context, name string, cfg ocispec.ImageConfig, base *Image, layers []ocispec.Descriptor, diffIDs []digest.Digest, comment string) (*Image, error) {
	now := time.Now().UTC()
	img := ocispec.Image{
		Created:  &now,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	var allLayers []ocispec.Descriptor
	if base != nil {
		img.Platform = base.Config.Platform
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, base.Config.RootFS.DiffIDs...)
		img.History = append(img.History, base.Config.History...)
		allLayers = append(allLayers, base.Manifest.Layers...)
	}
	img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffIDs...)
	allLayers = append(allLayers, layers...)
	img.History = append(img.History, ocispec.History{Created: &now, CreatedBy: "berth " + comment})
	cb, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	if err := rt.putBlob(ctx, cdesc, cb); err != nil {
		return nil, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cdesc,
		Layers:    allLayers,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := rt.putBlob(ctx, mdesc, mb); err != nil {
		return nil, err
	}
	out := &Image{Name: name, Digest: mdesc.Digest, Manifest: m, Config: img, Created: now}
	for _, l := range allLayers {
		out.Size += l.Size
	}
	if name == "" {
		name = "sha256:" + cdesc.Digest.Encoded()
	}
	if err := rt.record(ctx, name, out); err != nil {
		return nil, err
	}
	out.Name = name
	return out, nil
}
