package imagebuild

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"time"

	_ "crypto/sha256" // go-digest's sha256

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Format is the manifest format of an image.
type Format int

const (
	// OCI is the zero value: OCI image manifest and index.
	OCI Format = iota
	// DockerSchema2 is Docker's image manifest v2 schema 2 and manifest
	// list.
	DockerSchema2
)

func (f Format) String() string {
	switch f {
	case OCI:
		return "oci"
	case DockerSchema2:
		return "docker-schema2"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Docker media types (OCI ones are in ocispec).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// LayerMediaType returns the media type of a layer blob.
func LayerMediaType(f Format, c Compression) string {
	if f == DockerSchema2 {
		switch c {
		case Uncompressed:
			return MediaTypeDockerLayer
		case Zstd:
			return MediaTypeDockerLayerZstd
		}
		return MediaTypeDockerLayerGzip
	}
	switch c {
	case Uncompressed:
		return ocispec.MediaTypeImageLayer
	case Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayerGzip
}

// CompressionOf returns the compression that a layer media type names.
func CompressionOf(mediaType string) (Compression, error) {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip, MediaTypeDockerLayerGzip:
		return Gzip, nil
	case ocispec.MediaTypeImageLayer, MediaTypeDockerLayer:
		return Uncompressed, nil
	case ocispec.MediaTypeImageLayerZstd, MediaTypeDockerLayerZstd:
		return Zstd, nil
	}
	return 0, fmt.Errorf("imagebuild: unknown layer media type %q", mediaType)
}

// Layer is one layer of an image.
type Layer struct {
	// Tar is the uncompressed layer tar (see LayerTar).
	Tar []byte
	// Compression of the blob; the zero value is Gzip.
	Compression Compression
	// CreatedBy is the history entry's created_by; empty means
	// "imagebuild".
	CreatedBy string
}

// Image describes an image to build.
type Image struct {
	// Layers, bottom first. No layers makes an image with an empty rootfs.
	Layers []Layer
	// Config is the runtime configuration (Cmd, Entrypoint, Env, User,
	// WorkingDir, ...).
	Config ocispec.ImageConfig
	// Platform; an empty OS means "linux", an empty Architecture the
	// GOARCH of this program.
	Platform ocispec.Platform
	// Format; the zero value is OCI.
	Format Format
	// Created goes into the config; zero leaves it out.
	Created time.Time
	// Annotations go into the manifest (OCI only).
	Annotations map[string]string
}

// Built is a built image or index.
type Built struct {
	// Format of the manifest.
	Format Format
	// Desc describes Manifest: media type, digest, size and, for an
	// image, its platform.
	Desc ocispec.Descriptor
	// Manifest is the raw image manifest or index.
	Manifest []byte
	// Config is the raw image config; nil for an index.
	Config []byte
	// Blobs holds every blob reachable from Desc, Manifest itself
	// included, by digest.
	Blobs map[digest.Digest][]byte
}

// Digest returns the manifest's digest.
func (b Built) Digest() digest.Digest { return b.Desc.Digest }

// IsIndex reports whether b is an index (manifest list).
func (b Built) IsIndex() bool {
	return b.Desc.MediaType == ocispec.MediaTypeImageIndex || b.Desc.MediaType == MediaTypeDockerManifestList
}

func descriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// Build builds img: it compresses the layers, writes the config and the
// manifest.
func Build(img Image) (Built, error) {
	plat := img.Platform
	if plat.OS == "" {
		plat.OS = "linux"
	}
	if plat.Architecture == "" {
		plat.Architecture = runtime.GOARCH
	}
	b := Built{Format: img.Format, Blobs: map[digest.Digest][]byte{}}
	cfg := ocispec.Image{
		Platform: plat,
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	}
	if !img.Created.IsZero() {
		t := img.Created.UTC()
		cfg.Created = &t
	}
	var layers []ocispec.Descriptor
	for i, l := range img.Layers {
		blob, err := Compress(l.Tar, l.Compression)
		if err != nil {
			return Built{}, fmt.Errorf("imagebuild: layer %d: %w", i, err)
		}
		d := descriptor(LayerMediaType(img.Format, l.Compression), blob)
		layers = append(layers, d)
		b.Blobs[d.Digest] = blob
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l.Tar))
		by := l.CreatedBy
		if by == "" {
			by = "imagebuild"
		}
		cfg.History = append(cfg.History, ocispec.History{Created: cfg.Created, CreatedBy: by})
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return Built{}, err
	}
	cfgType, manType := ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if img.Format == DockerSchema2 {
		cfgType, manType = MediaTypeDockerConfig, MediaTypeDockerManifest
	}
	cfgDesc := descriptor(cfgType, cfgJSON)
	b.Config = cfgJSON
	b.Blobs[cfgDesc.Digest] = cfgJSON
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manType,
		Config:    cfgDesc,
		Layers:    layers,
	}
	if img.Format == OCI && len(img.Annotations) > 0 {
		m.Annotations = maps.Clone(img.Annotations)
	}
	b.Manifest, err = json.Marshal(m)
	if err != nil {
		return Built{}, err
	}
	b.Desc = descriptor(manType, b.Manifest)
	b.Desc.Platform = &plat
	b.Blobs[b.Desc.Digest] = b.Manifest
	return b, nil
}

// Index builds an OCI index, or a Docker manifest list when the images are
// DockerSchema2, over images (each with its platform). All images must have
// the same format.
func Index(images ...Built) (Built, error) {
	if len(images) == 0 {
		return Built{}, errors.New("imagebuild: index of no images")
	}
	f := images[0].Format
	b := Built{Format: f, Blobs: map[digest.Digest][]byte{}}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{},
	}
	if f == DockerSchema2 {
		idx.MediaType = MediaTypeDockerManifestList
	}
	for _, img := range images {
		if img.Format != f {
			return Built{}, fmt.Errorf("imagebuild: index mixes %v and %v images", f, img.Format)
		}
		idx.Manifests = append(idx.Manifests, img.Desc)
		maps.Copy(b.Blobs, img.Blobs)
	}
	var err error
	b.Manifest, err = json.Marshal(idx)
	if err != nil {
		return Built{}, err
	}
	b.Desc = descriptor(idx.MediaType, b.Manifest)
	b.Blobs[b.Desc.Digest] = b.Manifest
	return b, nil
}

// Images returns the images of b: b itself for an image, the images it
// lists (in order) for an index.
func (b Built) Images() ([]Built, error) {
	if !b.IsIndex() {
		return []Built{b}, nil
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b.Manifest, &idx); err != nil {
		return nil, err
	}
	var out []Built
	for _, d := range idx.Manifests {
		raw, ok := b.Blobs[d.Digest]
		if !ok {
			return nil, fmt.Errorf("imagebuild: index lists missing manifest %s", d.Digest)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		img := Built{Format: b.Format, Desc: d, Manifest: raw, Config: b.Blobs[m.Config.Digest], Blobs: map[digest.Digest][]byte{d.Digest: raw}}
		img.Blobs[m.Config.Digest] = img.Config
		for _, l := range m.Layers {
			img.Blobs[l.Digest] = b.Blobs[l.Digest]
		}
		out = append(out, img)
	}
	return out, nil
}

// manifest parses b's image manifest.
func (b Built) manifest() (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if b.IsIndex() {
		return m, errors.New("imagebuild: an index, not an image")
	}
	err := json.Unmarshal(b.Manifest, &m)
	return m, err
}
