//go:build linux

package berth

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ArchiveFormat names an image archive layout.
type ArchiveFormat string

// Archive formats of Save. Both are readable by Load, `docker load` and
// `skopeo copy docker-archive:`/`oci-archive:`.
const (
	// FormatDocker is `docker save`'s: manifest.json and repositories, with
	// the blobs in an OCI layout beside them (as Docker 25 writes it).
	FormatDocker ArchiveFormat = "docker"
	// FormatOCI is an OCI image layout as a tar (oci-layout, index.json,
	// blobs/).
	FormatOCI ArchiveFormat = "oci"
)

// SaveOptions configure Save.
type SaveOptions struct {
	// Format of the archive. Zero: FormatDocker.
	Format ArchiveFormat
}

// maxArchiveManifest bounds manifest.json and index.json in an archive.
const maxArchiveManifest = 16 << 20

type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Save writes the images refs name to w as one archive.
func (rt *Runtime) Save(ctx context.Context, w io.Writer, refs []string, opts SaveOptions) error {
	format := opts.Format
	if format == "" {
		format = FormatDocker
	}
	if format != FormatDocker && format != FormatOCI {
		return fmt.Errorf("save: format %q: %w", format, ErrInvalid)
	}
	imgs, err := rt.imagesToSave(ctx, refs)
	if err != nil {
		return err
	}
	return rt.save(ctx, &tarSink{tw: tar.NewWriter(w)}, imgs, format)
}

// SaveLayout writes the images refs name into dir as an OCI image layout
// (created when missing; blobs already there are kept, index.json lists
// exactly the images saved), readable by
// LoadLayout, `skopeo copy oci:DIR:TAG` and `umoci`.
func (rt *Runtime) SaveLayout(ctx context.Context, dir string, refs []string) error {
	imgs, err := rt.imagesToSave(ctx, refs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("save layout: %w", err)
	}
	return rt.save(ctx, dirSink(dir), imgs, FormatOCI)
}

// archiveSink receives the files of an archive: a tar or a directory.
type archiveSink interface {
	put(name string, size int64, r io.Reader) error
	close() error
}

type tarSink struct{ tw *tar.Writer }

func (t *tarSink) put(name string, size int64, r io.Reader) error {
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := io.Copy(t.tw, r)
	return err
}

func (t *tarSink) close() error { return t.tw.Close() }

type dirSink string

func (d dirSink) put(name string, size int64, r io.Reader) error {
	p := filepath.Join(string(d), filepath.FromSlash(name))
	if strings.HasPrefix(name, "blobs/") {
		if fi, err := os.Stat(p); err == nil && fi.Size() == size {
			return nil // content-addressed: already there
		}
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

func (d dirSink) close() error { return nil }

// imagesToSave looks up refs and checks every layer blob is stored.
func (rt *Runtime) imagesToSave(ctx context.Context, refs []string) ([]*Image, error) {
	var imgs []*Image
	for _, r := range refs {
		img, err := rt.Image(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("save: %w", err)
		}
		for _, l := range img.Manifest.Layers {
			if !rt.store.Has(l.Digest) {
				return nil, fmt.Errorf("save %s: layer blob %s is not stored here: %w", r, l.Digest, ErrNotFound)
			}
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

func (rt *Runtime) save(ctx context.Context, sink archiveSink, imgs []*Image, format ArchiveFormat) error {
	written := map[digest.Digest]bool{}
	writeFile := func(name string, data []byte) error {
		return sink.put(name, int64(len(data)), bytes.NewReader(data))
	}
	writeBlob := func(d digest.Digest) error {
		if written[d] {
			return nil
		}
		written[d] = true
		info, err := rt.store.Info(d)
		if err != nil {
			return err
		}
		rc, err := rt.store.Open(d)
		if err != nil {
			return err
		}
		defer rc.Close()
		return sink.put("blobs/"+d.Algorithm().String()+"/"+d.Encoded(), info.Size, rc)
	}
	if err := writeFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	var index ocispec.Index
	index.SchemaVersion = 2
	index.MediaType = ocispec.MediaTypeImageIndex
	var dm []dockerManifestEntry
	repos := map[string]map[string]string{}
	for _, img := range imgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		blobs := []digest.Digest{img.Digest, img.Manifest.Config.Digest}
		for _, l := range img.Manifest.Layers {
			blobs = append(blobs, l.Digest)
		}
		for _, d := range blobs {
			if err := writeBlob(d); err != nil {
				return fmt.Errorf("save %s: %w", img.Name, err)
			}
		}
		info, _ := rt.store.Info(img.Digest)
		mt := img.Manifest.MediaType
		if mt == "" {
			mt = ocispec.MediaTypeImageManifest
		}
		desc := ocispec.Descriptor{MediaType: mt, Digest: img.Digest, Size: info.Size}
		e := dockerManifestEntry{Config: "blobs/sha256/" + img.Manifest.Config.Digest.Encoded()}
		if r, err := registryclient.ParseReference(img.Name); err == nil && r.Tag != "" {
			desc.Annotations = map[string]string{
				"io.containerd.image.name": r.String(),
				ocispec.AnnotationRefName:  r.Tag,
			}
			e.RepoTags = []string{r.Familiar()}
			name := r.FamiliarName()
			if repos[name] == nil {
				repos[name] = map[string]string{}
			}
			repos[name][r.Tag] = img.ID().Encoded()
		}
		for _, l := range img.Manifest.Layers {
			e.Layers = append(e.Layers, "blobs/sha256/"+l.Digest.Encoded())
		}
		index.Manifests = append(index.Manifests, desc)
		dm = append(dm, e)
	}
	ib, _ := json.Marshal(index)
	if err := writeFile("index.json", ib); err != nil {
		return err
	}
	if format == FormatDocker {
		mb, _ := json.Marshal(dm)
		if err := writeFile("manifest.json", mb); err != nil {
			return err
		}
		rb, _ := json.Marshal(repos)
		if err := writeFile("repositories", rb); err != nil {
			return err
		}
	}
	return sink.close()
}

// Load reads a `docker save` archive or an OCI archive (a tar of an OCI
// image layout) and stores its images, returning them. A malformed archive
// gives an error wrapping ErrInvalid and stores no image.
func (rt *Runtime) Load(ctx context.Context, r io.Reader) ([]*Image, error) {
	dir, err := os.MkdirTemp(rt.cfg.Root, ".load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := extractArchive(ctx, r, dir); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return rt.loadDocker(ctx, dir)
	}
	return rt.LoadLayout(ctx, dir)
}

// extractArchive writes the regular files of an image archive under dir;
// links, devices and names that leave dir are refused.
func extractArchive(ctx context.Context, r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %v: %w", err, ErrInvalid)
		}
		name := path.Clean("/" + h.Name)
		if name == "/" || strings.Contains(h.Name, "..") {
			if name == "/" {
				continue
			}
			return fmt.Errorf("archive entry %q leaves the archive: %w", h.Name, ErrInvalid)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("archive entry %q: %v: %w", h.Name, err, ErrInvalid)
			}
			_, err = io.Copy(f, tr)
			cerr := f.Close()
			if err != nil {
				return fmt.Errorf("archive entry %q: %v: %w", h.Name, err, ErrInvalid)
			}
			if cerr != nil {
				return cerr
			}
		case tar.TypeSymlink, tar.TypeLink:
			// Old docker save archives link identical layers; resolve the
			// link inside the archive by copying the file it names.
			src := path.Clean("/" + path.Join(path.Dir(name), h.Linkname))
			if h.Typeflag == tar.TypeLink {
				src = path.Clean("/" + h.Linkname)
			}
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(src)))
			if err != nil {
				return fmt.Errorf("archive link %q -> %q: %w", h.Name, h.Linkname, ErrInvalid)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(target, b, 0o600); err != nil {
				return err
			}
		default:
			return fmt.Errorf("archive entry %q: type %c not allowed in an image archive: %w", h.Name, h.Typeflag, ErrInvalid)
		}
	}
}

// openArchiveFile opens the regular file at the cleaned archive path clean
// under dir; a missing file, or a name that is the archive's directory or
// one of its subdirectories ("", ".", "blobs"), wraps ErrInvalid.
func openArchiveFile(dir, clean string) (*os.File, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(clean)))
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%q is not a file of the archive: %w", clean, ErrInvalid)
	}
	return f, nil
}

// readArchiveFile reads a small file of an extracted archive by its
// archive path, refusing names that leave dir.
func readArchiveFile(dir, name string, max int64) ([]byte, error) {
	clean := path.Clean("/" + name)
	if strings.Contains(name, "..") {
		return nil, fmt.Errorf("archive path %q: %w", name, ErrInvalid)
	}
	f, err := openArchiveFile(dir, clean)
	if err != nil {
		return nil, fmt.Errorf("archive file %q: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("archive file %q larger than %d bytes: %w", name, max, ErrInvalid)
	}
	return b, nil
}

func (rt *Runtime) loadDocker(ctx context.Context, dir string) ([]*Image, error) {
	b, err := readArchiveFile(dir, "manifest.json", maxArchiveManifest)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("load: manifest.json: %v: %w", err, ErrInvalid)
	}
	lease, err := rt.store.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	var out []*Image
	for _, e := range entries {
		cb, err := readArchiveFile(dir, e.Config, maxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		cfg, _, err := parseImageConfig(cb)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
			return nil, fmt.Errorf("load: config lists %d layers, manifest.json %d: %w", len(cfg.RootFS.DiffIDs), len(e.Layers), ErrInvalid)
		}
		var layers []ocispec.Descriptor
		var parent digest.Digest
		for i, lp := range e.Layers {
			desc, err := rt.loadLayerFile(ctx, dir, lp, parent, cfg.RootFS.DiffIDs[i])
			if err != nil {
				return nil, fmt.Errorf("load: layer %s: %w", lp, err)
			}
			layers = append(layers, desc)
			parent = chainIDs(cfg.RootFS.DiffIDs[:i+1])[i]
		}
		cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
		if err := rt.putBlob(ctx, cdesc, cb); err != nil {
			return nil, err
		}
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: layers}
		mb, _ := json.Marshal(m)
		mdesc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
		if err := rt.putBlob(ctx, mdesc, mb); err != nil {
			return nil, err
		}
		names := e.RepoTags
		if len(names) == 0 {
			names = []string{""}
		}
		for _, n := range names {
			img, err := rt.imageByDigest(mdesc.Digest)
			if err != nil {
				return nil, err
			}
			name := n
			if n != "" {
				if name, err = normalizeName(n); err != nil {
					return nil, fmt.Errorf("load: repo tag %q: %w", n, err)
				}
			} else {
				name = "sha256:" + cdesc.Digest.Encoded()
			}
			if err := rt.record(ctx, name, img); err != nil {
				return nil, err
			}
			img.Name = name
			out = append(out, img)
		}
	}
	return out, nil
}

// loadLayerFile stores a layer file of an archive (plain or compressed) as
// a blob and unpacks it.
func (rt *Runtime) loadLayerFile(ctx context.Context, dir, name string, parent, diffID digest.Digest) (ocispec.Descriptor, error) {
	if strings.Contains(name, "..") {
		return ocispec.Descriptor{}, fmt.Errorf("path %q: %w", name, ErrInvalid)
	}
	f, err := openArchiveFile(dir, path.Clean("/"+name))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer f.Close()
	mt, err := sniffLayerType(f)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	dg := digest.Canonical.Digester()
	n, err := io.Copy(dg.Hash(), f)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: dg.Digest(), Size: n}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return desc, err
	}
	if err := rt.storeFile(ctx, desc, f); err != nil {
		return desc, err
	}
	if rt.store.HasLayer(layer.ChainID(parent, diffID)) {
		return desc, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return desc, err
	}
	if _, err := rt.store.Unpack(ctx, f, mt, parent, diffID); err != nil {
		return desc, err
	}
	return desc, nil
}

// sniffLayerType tells a layer file's compression by its magic bytes.
func sniffLayerType(f *os.File) (string, error) {
	br := bufio.NewReader(f)
	magic, _ := br.Peek(4)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return ocispec.MediaTypeImageLayerGzip, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return ocispec.MediaTypeImageLayer, nil
}

// LoadLayout stores the images of an OCI image layout directory (every
// manifest index.json lists; for an index, this host's platform) and
// returns them. Images named by an org.opencontainers.image.ref.name
// annotation are recorded under it.
func (rt *Runtime) LoadLayout(ctx context.Context, dir string) ([]*Image, error) {
	b, err := readArchiveFile(dir, "index.json", maxArchiveManifest)
	if err != nil {
		return nil, fmt.Errorf("load layout: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("load layout: index.json: %v: %w", err, ErrInvalid)
	}
	lease, err := rt.store.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	var out []*Image
	for _, d := range idx.Manifests {
		img, err := rt.loadLayoutManifest(ctx, dir, d, 0)
		if err != nil {
			return nil, fmt.Errorf("load layout: %w", err)
		}
		name := ""
		if n := d.Annotations["io.containerd.image.name"]; n != "" {
			name = n
		} else if n := d.Annotations[ocispec.AnnotationRefName]; n != "" {
			name = n
		}
		if name != "" {
			if nn, err := normalizeName(name); err == nil {
				name = nn
			} else {
				name = ""
			}
		}
		if name == "" {
			name = "sha256:" + img.ID().Encoded()
		}
		if err := rt.record(ctx, name, img); err != nil {
			return nil, err
		}
		img.Name = name
		out = append(out, img)
	}
	return out, nil
}

func (rt *Runtime) layoutBlob(dir string, d ocispec.Descriptor, max int64) ([]byte, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %v: %w", d.Digest, err, ErrInvalid)
	}
	b, err := readArchiveFile(dir, "blobs/"+d.Digest.Algorithm().String()+"/"+d.Digest.Encoded(), max)
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(b) != d.Digest {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, ErrDigestMismatch)
	}
	return b, nil
}

func (rt *Runtime) loadLayoutManifest(ctx context.Context, dir string, d ocispec.Descriptor, depth int) (*Image, error) {
	if depth > 4 {
		return nil, fmt.Errorf("indexes nested too deep: %w", ErrInvalid)
	}
	body, err := rt.layoutBlob(dir, d, maxManifestSize)
	if err != nil {
		return nil, err
	}
	if registryclient.IsIndex(d.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return nil, fmt.Errorf("index %s: %v: %w", d.Digest, err, ErrInvalid)
		}
		sel, err := registryclient.SelectManifest(idx, registryclient.DefaultPlatform())
		if err != nil {
			return nil, err
		}
		return rt.loadLayoutManifest(ctx, dir, sel, depth+1)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %v: %w", d.Digest, err, ErrInvalid)
	}
	if err := validateManifest(&m, rt.maxLayerBlob()); err != nil {
		return nil, err
	}
	cb, err := rt.layoutBlob(dir, m.Config, maxConfigSize)
	if err != nil {
		return nil, err
	}
	cfg, _, err := parseImageConfig(cb)
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config lists %d layers, manifest %d: %w", len(cfg.RootFS.DiffIDs), len(m.Layers), ErrInvalid)
	}
	var parent digest.Digest
	chains := chainIDs(cfg.RootFS.DiffIDs)
	for i, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("layer digest: %w", ErrInvalid)
		}
		p := filepath.Join(dir, "blobs", l.Digest.Algorithm().String(), l.Digest.Encoded())
		if err := rt.loadBlobFile(ctx, p, l); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if !rt.store.HasLayer(chains[i]) {
			rc, err := rt.store.Open(l.Digest)
			if err != nil {
				return nil, err
			}
			_, err = rt.store.Unpack(ctx, rc, l.MediaType, parent, cfg.RootFS.DiffIDs[i])
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
			}
		}
		parent = chains[i]
	}
	if err := rt.putBlob(ctx, m.Config, cb); err != nil {
		return nil, err
	}
	if err := rt.putBlob(ctx, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest}, body); err != nil {
		return nil, err
	}
	return rt.imageByDigest(d.Digest)
}

// loadBlobFile stores the file p as the blob desc; Commit verifies it.
func (rt *Runtime) loadBlobFile(ctx context.Context, p string, desc ocispec.Descriptor) error {
	if rt.store.Has(desc.Digest) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("blob missing from the layout: %w", ErrInvalid)
		}
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("blob %s of the layout is not a file: %w", desc.Digest, ErrInvalid)
	}
	return rt.storeFile(ctx, desc, f)
}
