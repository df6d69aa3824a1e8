//go:build linux

package berth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Progress states of a layer during a pull.
const (
	StateWaiting     = "waiting"
	StateDownloading = "downloading"
	StateExtracting  = "extracting"
	StateDone        = "done"
	StateExists      = "exists"
)

// Progress is one event of a pull: the state of one blob.
type Progress struct {
	// ID is the blob's digest.
	ID string
	// State is one of the State* constants.
	State string
	// Done and Total are bytes (Total is the compressed size).
	Done, Total int64
}

// PullOptions configure Pull. The zero value pulls for this host's platform
// and reports no progress.
type PullOptions struct {
	// Platform is "os/arch[/variant]". Zero: this host's.
	Platform string
	// Progress receives events; Pull never blocks on it (events are dropped
	// when the channel is full). Zero: none.
	Progress chan<- Progress
	// ProgressFunc is called with every event, from several goroutines
	// (but never concurrently). Zero: none.
	ProgressFunc func(Progress)
}

type progressSink struct {
	mu sync.Mutex
	o  *PullOptions
}

func (p *progressSink) send(ev Progress) {
	if p == nil || p.o == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.o.ProgressFunc != nil {
		p.o.ProgressFunc(ev)
	}
	if p.o.Progress != nil {
		select {
		case p.o.Progress <- ev:
		default:
		}
	}
}

// maxConfigSize bounds an image config blob.
const maxConfigSize = 8 << 20

// Pull fetches the image ref names from its registry into the store (only
// what is missing), records the name, and returns the image. Layers are
// downloaded in parallel and unpacked as soon as their parent is; a
// download cut short is kept and resumed by the next Pull.
func (rt *Runtime) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	r, err := registryclient.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	// The lease keeps GC from removing what this pull stores before the
	// image records a reference to it.
	lease, err := rt.store.Lease(ctx)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer lease.Release()
	var platform *ocispec.Platform
	if opts.Platform != "" {
		p, err := registryclient.ParsePlatform(opts.Platform)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		platform = &p
	}
	desc, body, err := rt.reg.FetchImageManifest(ctx, r, platform)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("pull %s: manifest %s: %v: %w", ref, desc.Digest, err, ErrInvalid)
	}
	if err := validateManifest(&m, rt.maxLayerBlob()); err != nil {
		return nil, fmt.Errorf("pull %s: manifest %s: %w", ref, desc.Digest, err)
	}
	name := r.String()
	if r.Tag == "" && r.Digest != "" {
		name = r.Name() + "@" + r.Digest.String()
	}
	// Fast path: the image is complete here already.
	if img, err := rt.imageByDigest(desc.Digest); err == nil && rt.complete(img) {
		if err := rt.record(ctx, name, img); err != nil {
			return nil, err
		}
		img.Name = name
		return img, nil
	}
	cfgBytes, err := rt.fetchSmall(ctx, r, m.Config, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("pull %s: config: %w", ref, err)
	}
	cfg, hc, err := parseImageConfig(cfgBytes)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("pull %s: config lists %d layers, manifest %d: %w", ref, len(cfg.RootFS.DiffIDs), len(m.Layers), ErrInvalid)
	}
	if err := rt.pullLayers(ctx, r, m.Layers, cfg.RootFS.DiffIDs, &progressSink{o: &opts}); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := rt.putBlob(ctx, desc, body); err != nil {
		return nil, fmt.Errorf("pull %s: store manifest: %w", ref, err)
	}
	img := &Image{Name: name, Digest: desc.Digest, Manifest: m, Config: cfg, healthcheck: hc}
	for _, l := range m.Layers {
		img.Size += l.Size
	}
	if err := rt.record(ctx, name, img); err != nil {
		return nil, err
	}
	return img, nil
}

// validateManifest checks what an image manifest names before anything
// of it is fetched: digests, sizes and media types. A config that is not
// an image config (an artifact's, or a layer) and a layer berth cannot
// unpack are refused with ErrUnsupported, as Docker refuses them, rather
// than failing halfway through a download, or not at all when an
// identical layer is already stored.
//
// maxLayer bounds the size a layer may declare (see Runtime.maxLayerBlob).
func validateManifest(m *ocispec.Manifest, maxLayer int64) error {
	if m.Config.Digest == "" {
		return fmt.Errorf("no config: %w", ErrInvalid)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return fmt.Errorf("config digest: %v: %w", err, ErrInvalid)
	}
	switch m.Config.MediaType {
	case "", ocispec.MediaTypeImageConfig, registryclient.MediaTypeDockerConfig:
	default:
		return fmt.Errorf("config media type %q is not an image config: %w", m.Config.MediaType, ErrUnsupported)
	}
	if m.Config.Size < 0 {
		return fmt.Errorf("config: negative size: %w", ErrInvalid)
	}
	for i, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return fmt.Errorf("layer %d digest: %v: %w", i, err, ErrInvalid)
		}
		if l.Size < 0 {
			return fmt.Errorf("layer %d: negative size: %w", i, ErrInvalid)
		}
		if l.Size > maxLayer {
			return fmt.Errorf("layer %d declares %d bytes, more than the limit of %d: %w", i, l.Size, maxLayer, ErrInvalid)
		}
		if err := layer.CheckMediaType(l.MediaType); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return nil
}

// maxLayerBlob is the largest compressed layer an image may declare: the
// unpack limit on uncompressed bytes (Config.LayerLimits.MaxBytes), plus
// room for compression that makes data larger (incompressible data grows
// by far less than 1/64).
func (rt *Runtime) maxLayerBlob() int64 {
	lim := rt.cfg.LayerLimits.MaxBytes
	switch {
	case lim < 0:
		return math.MaxInt64
	case lim == 0:
		lim = 256 << 30 // the layer package's default
	}
	return lim + lim/64 + 1<<20
}

// fetchSmall returns a small blob (a config) from the store, or fetches,
// verifies and stores it.
func (rt *Runtime) fetchSmall(ctx context.Context, r registryclient.Reference, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if b, err := rt.store.ReadAll(desc.Digest, max); err == nil {
		return b, nil
	}
	if desc.Size > max {
		return nil, fmt.Errorf("%s is %d bytes, more than %d: %w", desc.Digest, desc.Size, max, ErrInvalid)
	}
	b, err := rt.reg.FetchBlob(ctx, r, desc)
	if err != nil {
		return nil, err
	}
	if err := rt.putBlob(ctx, desc, b); err != nil {
		return nil, err
	}
	return b, nil
}

// putBlob stores b (already verified, or verified by Commit) as desc.
func (rt *Runtime) putBlob(ctx context.Context, desc ocispec.Descriptor, b []byte) error {
	desc = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: int64(len(b))}
	return rt.storeFile(ctx, desc, bytes.NewReader(b))
}

// badData reports whether err says the bytes were wrong (as opposed to the
// transfer failing).
func badData(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrUnsupported)
}

// pullLayers downloads every missing layer blob in parallel and unpacks
// each while it downloads (the layer store does not need a layer's parent
// to be unpacked first).
func (rt *Runtime) pullLayers(ctx context.Context, r registryclient.Reference, layers []ocispec.Descriptor, diffIDs []digest.Digest, ps *progressSink) error {
	chains := chainIDs(diffIDs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(4, min(len(layers), 8)))
	for i := range layers {
		var parent digest.Digest
		if i > 0 {
			parent = chains[i-1]
		}
		g.Go(func() error {
			return rt.pullLayer(gctx, r, layers[i], diffIDs[i], parent, chains[i], ps)
		})
	}
	return g.Wait()
}

func (rt *Runtime) pullLayer(ctx context.Context, r registryclient.Reference, desc ocispec.Descriptor, diffID, parent, chain digest.Digest, ps *progressSink) error {
	id := desc.Digest.String()
	layerHere := rt.store.HasLayer(chain)
	if layerHere && rt.store.Has(desc.Digest) {
		ps.send(Progress{ID: id, State: StateExists, Done: desc.Size, Total: desc.Size})
		return nil
	}
	for attempt := 0; !rt.store.Has(desc.Digest); attempt++ {
		w, err := rt.store.Writer(ctx, desc)
		if errors.Is(err, ErrAlreadyExists) {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", id, err)
		}
		resumed := w.Offset() > 0
		err = rt.download(ctx, r, desc, diffID, parent, w, !layerHere, ps)
		if err == nil {
			ps.send(Progress{ID: id, State: StateDone, Done: desc.Size, Total: desc.Size})
			return nil
		}
		// A kept partial download can hold bad bytes (an earlier pull cut
		// short while receiving corrupt data); the whole blob's digest
		// only tells at the end. Start once more from zero.
		if resumed && attempt == 0 && badData(err) {
			rt.log.Debug("resumed download failed verification, starting again", "layer", id, "err", err)
			continue
		}
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if layerHere {
		return nil
	}
	// Another process stored the blob meanwhile: unpack it from the store.
	ps.send(Progress{ID: id, State: StateExtracting, Done: desc.Size, Total: desc.Size})
	rc, err := rt.store.Open(desc.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	defer rc.Close()
	if _, err := rt.store.Unpack(ctx, rc, desc.MediaType, parent, diffID); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	ps.send(Progress{ID: id, State: StateDone, Done: desc.Size, Total: desc.Size})
	return nil
}

// download streams the blob into w (after what an earlier, interrupted
// download left) and commits it; with unpack it also extracts the whole
// stream, the kept part included, into the layer store as it arrives.
func (rt *Runtime) download(ctx context.Context, r registryclient.Reference, desc ocispec.Descriptor, diffID, parent digest.Digest, w *layer.Writer, unpack bool, ps *progressSink) error {
	defer w.Close()
	id := desc.Digest.String()
	rc, err := rt.reg.OpenBlob(ctx, r, desc, w.Offset())
	if err != nil {
		return err
	}
	defer rc.Close()
	if br, ok := rc.(*registryclient.BlobReader); ok {
		br.SetProgress(func(off int64) {
			ps.send(Progress{ID: id, State: StateDownloading, Done: off, Total: desc.Size})
		})
	}
	body := io.TeeReader(rc, w)
	if unpack {
		src := io.MultiReader(w.Partial(), body)
		if _, err := rt.store.Unpack(ctx, src, desc.MediaType, parent, diffID); err != nil {
			if !badData(err) {
				return err
			}
			// The bytes are bad. Tell corruption in transit (the blob does
			// not match its digest) from a layer that is bad as published:
			// read the rest (bounded by the descriptor's size) and let the
			// digest decide. Either way the partial download goes, since
			// resuming from it can never succeed.
			_, cerr := io.Copy(io.Discard, body) // the blob reader checks the digest at EOF
			if cerr == nil {
				cerr = w.Commit(ctx)
			}
			if errors.Is(cerr, ErrDigestMismatch) {
				return fmt.Errorf("%w (unpacking failed first: %v)", cerr, err)
			}
			_ = w.Abort()
			return err
		}
	}
	// Drain what the unpacker did not read (tar padding, or everything).
	if _, err := io.Copy(io.Discard, body); err != nil {
		return err
	}
	return w.Commit(ctx)
}
