//go:build linux

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
	"golang.org/x/sys/unix"

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

// Decompress returns the uncompressed stream of a layer blob of the given
// media type ("" detects gzip, zstd or plain tar from the first bytes).
// Unknown media types are errors wrapping errdefs.ErrUnsupported; corrupt
// data gives read errors wrapping errdefs.ErrInvalid.
func Decompress(r io.Reader, mediaType string) (io.ReadCloser, error) {
	c, err := compressionOf(mediaType)
	if err != nil {
		return nil, err
	}
	src := &srcReader{r: r}
	var in io.Reader = src
	if c == compDetect {
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
		in = br
	}
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
// errdefs.ErrInvalid). The parent must exist (else errdefs.ErrNotFound).
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
		if _, err := s.Layer(parent); err != nil {
			return Layer{}, fmt.Errorf("unpack: parent: %w", err)
		}
	}
	var lock *flock
	defer func() { lock.unlockRemove() }()
	if diffID != "" {
		chain := ChainID(parent, diffID)
		if lock, err = s.lockLayer(ctx, chain); err != nil {
			return Layer{}, err
		}
		if l, err := s.Layer(chain); err == nil {
			return l, nil
		}
	}

	dec, err := Decompress(r, mediaType)
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
	syncDir(filepath.Dir(dst))
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

func (s *Store) lockLayer(ctx context.Context, chain digest.Digest) (*flock, error) {
	l, err := lockFile(ctx, s.path("locks", "layer-"+chain.Encoded()+".lock"), true)
	if err != nil {
		return nil, fmt.Errorf("lock layer %s: %w", chain, err)
	}
	return l, nil
}

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
