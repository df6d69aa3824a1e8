//go:build unix

package layer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"

	"github.com/berthrt/berth/errdefs"
)

// Layer is an unpacked layer: <root>/layers/<ChainID>/diff.
type Layer struct {
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest `json:"diffID"`
	// ChainID names the layer together with all below it (OCI image
	// spec: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))).
	ChainID digest.Digest `json:"chainID"`
	// Parent is the ChainID of the layer below; "" for a base layer.
	Parent digest.Digest `json:"parent,omitempty"`
	// Size is the number of bytes of file content in the layer.
	Size int64 `json:"size"`
}

// ChainID returns the ChainID of a layer with the given DiffID on top of
// the chain parent ("" for a base layer).
func ChainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

// Media types of layers (OCI and Docker) that Unpack understands.
const (
	MediaTypeLayer         = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeLayerGzip     = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeLayerZstd     = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaTypeDockerLayer   = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

type compression int

const (
	compNone compression = iota
	compGzip
	compZstd
	compDetect
)

func compressionOf(mediaType string) (compression, error) {
	switch mediaType {
	case "":
		return compDetect, nil
	case MediaTypeLayer, "application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.docker.image.rootfs.diff.tar", "application/x-tar":
		return compNone, nil
	case MediaTypeLayerGzip, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		MediaTypeDockerLayer, MediaTypeDockerForeign, "application/gzip", "application/x-gzip":
		return compGzip, nil
	case MediaTypeLayerZstd, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.diff.tar.zstd", "application/zstd":
		return compZstd, nil
	}
	return 0, fmt.Errorf("layer media type %q: %w", mediaType, errdefs.ErrUnsupported)
}

// CheckMediaType reports whether Unpack and Decompress read layers of
// mediaType: nil, or an error wrapping errdefs.ErrUnsupported. Callers use
// it to refuse an image before downloading any of it.
func CheckMediaType(mediaType string) error {
	_, err := compressionOf(mediaType)
	return err
}

// srcReader marks errors of the caller's reader, so that they are not
// mistaken for corrupt compressed data.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// decReader turns decompression errors into errdefs.ErrInvalid.
type decReader struct {
	r   io.Reader
	src *srcReader
}

func (d decReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF && d.src.err == nil {
		err = fmt.Errorf("decompress: %v: %w", err, errdefs.ErrInvalid)
	}
	return n, err
}

// Decompress returns the uncompressed stream of a layer blob. mediaType
// must be a layer media type Unpack knows (or ""), else the error wraps
// errdefs.ErrUnsupported; the compression actually used (gzip, zstd or
// none) is then detected from the first bytes, as Docker does, so a
// mislabelled blob still unpacks (its DiffID is checked all the same).
// Corrupt data gives read errors wrapping errdefs.ErrInvalid.
func Decompress(r io.Reader, mediaType string) (io.ReadCloser, error) {
	c, err := compressionOf(mediaType)
	if err != nil {
		return nil, err
	}
	src := &srcReader{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		c = compGzip
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		c = compZstd
	default:
		c = compNone
	}
	in := io.Reader(br)
	switch c {
	case compGzip:
		zr, err := pgzip.NewReaderN(in, 1<<20, 4)
		if err != nil {
			if src.err != nil {
				return nil, fmt.Errorf("read layer: %w", err)
			}
			return nil, fmt.Errorf("gzip header: %v: %w", err, errdefs.ErrInvalid)
		}
		return readCloser{decReader{zr, src}, zr.Close}, nil
	case compZstd:
		zr, err := zstd.NewReader(in, zstd.WithDecoderMaxWindow(128<<20), zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("zstd: %v: %w", err, errdefs.ErrInvalid)
		}
		return readCloser{decReader{zr, src}, func() error { zr.Close(); return nil }}, nil
	}
	return io.NopCloser(in), nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

func (s *Store) layerPath(chain digest.Digest) string {
	return s.path("layers", chain.Encoded())
}

// Layer returns the unpacked layer with the given ChainID, or an error
// wrapping errdefs.ErrNotFound.
func (s *Store) Layer(chainID digest.Digest) (Layer, error) {
	if err := validDigest(chainID); err != nil {
		return Layer{}, err
	}
	b, err := os.ReadFile(filepath.Join(s.layerPath(chainID), "layer.json"))
	if err != nil {
		return Layer{}, notFound("layer", chainID, err)
	}
	var l Layer
	if err := json.Unmarshal(b, &l); err != nil {
		return Layer{}, fmt.Errorf("layer %s: metadata: %v: %w", chainID, err, errdefs.ErrInvalid)
	}
	return l, nil
}

// HasLayer reports whether the layer chainID is unpacked.
func (s *Store) HasLayer(chainID digest.Digest) bool {
	_, err := s.Layer(chainID)
	return err == nil
}

// LayerDir returns the directory holding the layer's files in overlay form
// (whiteouts as 0/0 character devices, opaque directories marked with the
// trusted.overlay.opaque xattr). Treat it as read-only.
func (s *Store) LayerDir(chainID digest.Digest) string {
	return filepath.Join(s.layerPath(chainID), "diff")
}

// Layers returns every unpacked layer, in no particular order.
func (s *Store) Layers(ctx context.Context) ([]Layer, error) {
	ents, err := os.ReadDir(s.path("layers"))
	if err != nil {
		return nil, err
	}
	var out []Layer
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		if l, err := s.Layer(d); err == nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// Chain returns the layers of the chain chainID, base first.
func (s *Store) Chain(chainID digest.Digest) ([]Layer, error) {
	var chain []Layer
	for d := chainID; d != ""; {
		l, err := s.Layer(d)
		if err != nil {
			return nil, err
		}
		chain = append(chain, l)
		d = l.Parent
		if len(chain) > 1000 {
			return nil, fmt.Errorf("layer chain %s: longer than 1000: %w", chainID, errdefs.ErrInvalid)
		}
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// ApplyOptions bound and shape Apply. The zero value applies an OCI layer
// in overlay form with the default limits.
type ApplyOptions struct {
	// MaxEntries is the most tar entries accepted. 0 means 4,194,304;
	// negative means no limit.
	MaxEntries int64
	// MaxBytes is the most bytes of uncompressed tar stream accepted
	// (headers, contents and padding). 0 means 256 GiB; negative means no
	// limit. A header whose size would cross it fails before any of its
	// content is written, so a decompression bomb stops early.
	MaxBytes int64
	// MaxNameLen is the longest entry name or link target, in bytes.
	// 0 means 4096 (PATH_MAX); negative means no limit.
	MaxNameLen int
	// ApplyWhiteouts makes whiteouts delete what they name (for a flat
	// root file system) instead of being stored in overlay form: `.wh.x`
	// as a 0/0 character device x, `.wh..wh..opq` as the
	// trusted.overlay.opaque=y xattr on its directory.
	ApplyWhiteouts bool

	walk bool // tests: resolve paths without openat2
}

func (o ApplyOptions) limits() (entries, bytes int64, name int) {
	entries, bytes, name = o.MaxEntries, o.MaxBytes, o.MaxNameLen
	if entries == 0 {
		entries = 1 << 22
	}
	if bytes == 0 {
		bytes = 256 << 30
	}
	if name == 0 {
		name = 4096
	}
	return
}
