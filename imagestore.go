//go:build linux

package berth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestSize bounds a stored manifest.
const maxManifestSize = 4 << 20

// imageOwner is the reference owner name of an image in the layer store.
func imageOwner(name string) string { return "image:" + name }

// chainIDs of an image's layers, base first.
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	var parent digest.Digest
	for i, d := range diffIDs {
		out[i] = layer.ChainID(parent, d)
		parent = out[i]
	}
	return out
}

// topChain is the ChainID of the image's top layer ("" for no layers).
func (i *Image) topChain() digest.Digest {
	c := chainIDs(i.Config.RootFS.DiffIDs)
	if len(c) == 0 {
		return ""
	}
	return c[len(c)-1]
}

// record points name at img and references everything img needs.
func (rt *Runtime) record(ctx context.Context, name string, img *Image) error {
	refs := []digest.Digest{img.Digest, img.Manifest.Config.Digest}
	for _, l := range img.Manifest.Layers {
		if rt.store.Has(l.Digest) {
			refs = append(refs, l.Digest)
		}
	}
	if top := img.topChain(); top != "" {
		refs = append(refs, top)
	}
	if err := rt.store.Ref(ctx, imageOwner(name), refs...); err != nil {
		return fmt.Errorf("record image %s: %w", name, err)
	}
	if err := rt.images.Set(ctx, name, img.Digest); err != nil {
		return fmt.Errorf("record image %s: %w", name, err)
	}
	return nil
}

// complete reports whether every layer of img is unpacked here.
func (rt *Runtime) complete(img *Image) bool {
	for _, c := range chainIDs(img.Config.RootFS.DiffIDs) {
		if !rt.store.HasLayer(c) {
			return false
		}
	}
	return rt.store.Has(img.Manifest.Config.Digest)
}

// imageByDigest loads the image whose manifest is dgst from the store.
func (rt *Runtime) imageByDigest(dgst digest.Digest) (*Image, error) {
	body, err := rt.store.ReadAll(dgst, maxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", dgst, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %v: %w", dgst, err, ErrInvalid)
	}
	cb, err := rt.store.ReadAll(m.Config.Digest, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", dgst, err)
	}
	cfg, hc, err := parseImageConfig(cb)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", dgst, err)
	}
	img := &Image{Digest: dgst, Manifest: m, Config: cfg, healthcheck: hc}
	for _, l := range m.Layers {
		img.Size += l.Size
	}
	return img, nil
}

// normalizeName returns the stored form of an image name.
func normalizeName(ref string) (string, error) {
	r, err := registryclient.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if r.Tag == "" && r.Digest != "" {
		return r.Name() + "@" + r.Digest.String(), nil
	}
	return r.String(), nil
}

// Image returns the stored image ref names: a name as Pull, Tag, Load or
// Import recorded it ("alpine" finds docker.io/library/alpine:latest), a
// manifest digest, or an image id (config digest, or a unique prefix of
// its hex of at least 4 digits). A missing image wraps ErrNotFound.
func (rt *Runtime) Image(ctx context.Context, ref string) (*Image, error) {
	if name, err := normalizeName(ref); err == nil {
		if e, err := rt.images.Get(name); err == nil {
			img, err := rt.imageByDigest(e.Digest)
			if err != nil {
				return nil, err
			}
			img.Name, img.Created = e.Name, e.Created
			return img, nil
		}
	}
	entries, err := rt.images.List()
	if err != nil {
		return nil, err
	}
	id := strings.TrimPrefix(ref, "sha256:")
	if len(id) >= 4 && isHex(id) {
		for _, e := range entries {
			img, err := rt.imageByDigest(e.Digest)
			if err != nil {
				continue
			}
			if e.Digest.Encoded() == id || strings.HasPrefix(img.ID().Encoded(), id) {
				img.Name, img.Created = e.Name, e.Created
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("image %s: %w", ref, ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Images lists the stored images, one per name, sorted by name.
func (rt *Runtime) Images(ctx context.Context) ([]*Image, error) {
	entries, err := rt.images.List()
	if err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(entries))
	for _, e := range entries {
		img, err := rt.imageByDigest(e.Digest)
		if err != nil {
			rt.log.Warn("image index entry without its manifest", "name", e.Name, "err", err)
			continue
		}
		img.Name, img.Created = e.Name, e.Created
		out = append(out, img)
	}
	return out, nil
}

// Tag gives the image src another name dst.
func (rt *Runtime) Tag(ctx context.Context, src, dst string) error {
	img, err := rt.Image(ctx, src)
	if err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	name, err := normalizeName(dst)
	if err != nil {
		return fmt.Errorf("tag %s: %w", dst, err)
	}
	return rt.record(ctx, name, img)
}

// RemoveImageOptions configure RemoveImage.
type RemoveImageOptions struct {
	// Force removes the name even while a container uses the image (the
	// container keeps its layers until it is deleted).
	Force bool
}

// RemoveImage removes the name ref; the image's blobs and layers go at the
// next GC when no other name or container references them. Refused with
// ErrInUse while a container was created from it and no other name keeps
// the image (as docker rmi: dropping one of several names only untags),
// unless forced.
func (rt *Runtime) RemoveImage(ctx context.Context, ref string, opts RemoveImageOptions) error {
	img, err := rt.Image(ctx, ref)
	if err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	if !opts.Force && !rt.otherName(img) {
		users, err := rt.containersUsing(img.Digest)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("remove image %s: used by container %s: %w", img.Name, users[0], ErrInUse)
		}
	}
	if err := rt.images.Delete(ctx, img.Name); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove image %s: %w", img.Name, err)
	}
	if err := rt.store.Unref(ctx, imageOwner(img.Name)); err != nil {
		return fmt.Errorf("remove image %s: %w", img.Name, err)
	}
	_, err = rt.store.GC(ctx)
	return err
}

// otherName reports whether a name other than img.Name points at img.
func (rt *Runtime) otherName(img *Image) bool {
	entries, err := rt.images.List()
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name != img.Name && e.Digest == img.Digest {
			return true
		}
	}
	return false
}
