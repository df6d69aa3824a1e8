package registryclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/berthrt/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's manifest media types. The OCI ones are ocispec.MediaTypeImageManifest
// and ocispec.MediaTypeImageIndex.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// DefaultMaxManifestSize is the largest manifest accepted when
// Client.MaxManifestSize is zero.
const DefaultMaxManifestSize = 4 << 20

// maxIndexDepth bounds nested indexes (index -> index -> manifest).
const maxIndexDepth = 4

var manifestAccept = []string{
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	MediaTypeDockerManifest,
	MediaTypeDockerManifestList,
}

// IsIndex reports whether mediaType is an OCI index or a Docker manifest list.
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// IsManifest reports whether mediaType is an OCI or Docker schema2 image manifest.
func IsManifest(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageManifest || mediaType == MediaTypeDockerManifest
}

func (c *Client) maxManifest() int64 {
	if c.MaxManifestSize > 0 {
		return c.MaxManifestSize
	}
	return DefaultMaxManifestSize
}

func pullScope(ref Reference) []string {
	return []string{"repository:" + ref.Repository + ":pull"}
}

func pushScope(ref Reference) []string {
	return []string{"repository:" + ref.Repository + ":pull,push"}
}

// onEndpoints runs a read fn on each endpoint for ref's registry (mirrors
// first) until one succeeds; the error is the registry's own.
func (c *Client) onEndpoints(ctx context.Context, ref Reference, fn func(ep *endpoint) error) error {
	eps, err := c.endpoints(ctx, ref.Registry)
	if err != nil {
		return err
	}
	for i, ep := range eps {
		err = fn(ep)
		if err == nil || ctx.Err() != nil || i == len(eps)-1 {
			return err
		}
		c.log().Debug("registry mirror failed; trying next", "mirror", ep.host, "ref", ref.String(), "err", err)
	}
	return err
}

// Resolve returns the descriptor (media type, digest, size) of the manifest
// or index ref names, without its body where the registry allows: a HEAD
// request, falling back to GET when the registry does not give the digest.
// Errors wrap errdefs.ErrNotFound when the registry has no such manifest.
func (c *Client) Resolve(ctx context.Context, ref Reference) (ocispec.Descriptor, error) {
	var desc ocispec.Descriptor
	err := c.onEndpoints(ctx, ref, func(ep *endpoint) error {
		resp, err := c.send(ctx, ep, &request{
			method: http.MethodHead, path: "/v2/" + ref.Repository + "/manifests/" + ref.object(),
			header: http.Header{"Accept": manifestAccept}, scopes: pullScope(ref),
		})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			e := newError(resp)
			if e.StatusCode == http.StatusMethodNotAllowed {
				return errFallbackGet
			}
			return e
		}
		resp.Body.Close()
		dg, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
		if err != nil || resp.ContentLength < 0 {
			return errFallbackGet
		}
		if ref.Digest != "" && dg != ref.Digest {
			return fmt.Errorf("registry says %s has digest %s: %w", ref, dg, errdefs.ErrDigestMismatch)
		}
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == MediaTypeDockerSchema1 || mt == MediaTypeDockerSchema1JWS {
			return fmt.Errorf("%s is a Docker schema1 manifest: %w", ref, errdefs.ErrUnsupported)
		}
		if !IsIndex(mt) && !IsManifest(mt) {
			return errFallbackGet // text/plain from some servers: read the body
		}
		desc = ocispec.Descriptor{MediaType: mt, Digest: dg, Size: resp.ContentLength}
		return nil
	})
	if errors.Is(err, errFallbackGet) {
		d, _, err := c.FetchManifest(ctx, ref)
		return d, err
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return desc, nil
}

var errFallbackGet = errors.New("fall back to GET")

// FetchManifest fetches the manifest or index ref names, verified: against
// ref.Digest when set, else against the registry's Docker-Content-Digest
// header when it sends one. It refuses bodies over MaxManifestSize
// (ErrInvalid) and Docker schema1 manifests (ErrUnsupported). The
// descriptor's digest is the sha256 of the bytes returned (or ref.Digest's
// algorithm), its media type the body's own mediaType field, else the
// Content-Type. A body that breaks off or does not match its digest is
// fetched again, per the retry policy, before the error is returned.
func (c *Client) FetchManifest(ctx context.Context, ref Reference) (ocispec.Descriptor, []byte, error) {
	var desc ocispec.Descriptor
	var body []byte
	err := c.onEndpoints(ctx, ref, func(ep *endpoint) error {
		return c.retryTransfer(ctx, func() error {
			var err error
			desc, body, err = c.fetchManifest(ctx, ep, ref)
			return err
		})
	})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s: %w", ref, err)
	}
	return desc, body, nil
}

func (c *Client) fetchManifest(ctx context.Context, ep *endpoint, ref Reference) (ocispec.Descriptor, []byte, error) {
	resp, err := c.send(ctx, ep, &request{
		method: http.MethodGet, path: "/v2/" + ref.Repository + "/manifests/" + ref.object(),
		header: http.Header{"Accept": manifestAccept}, scopes: pullScope(ref),
	})
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, nil, newError(resp)
	}
	defer resp.Body.Close()
	limit := c.maxManifest()
	if resp.ContentLength > limit {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest is %d bytes, more than the limit of %d: %w", resp.ContentLength, limit, errdefs.ErrInvalid)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, nil, ctx.Err()
		}
		return ocispec.Descriptor{}, nil, fmt.Errorf("read manifest: %w: %w: %w", err, errTransfer, errdefs.ErrUnavailable)
	}
	if int64(len(body)) > limit {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest is more than the limit of %d bytes: %w", limit, errdefs.ErrInvalid)
	}
	if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest body is %d bytes, Content-Length said %d: %w: %w", len(body), resp.ContentLength, errTransfer, errdefs.ErrUnavailable)
	}
	want := ref.Digest
	if want == "" {
		if h, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
			want = h
		}
	}
	alg := digest.Canonical
	if want != "" && want.Algorithm().Available() {
		alg = want.Algorithm()
	}
	got := alg.FromBytes(body)
	if want != "" && got != want {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest hashes to %s, expected %s: %w: %w", got, want, errTransfer, errdefs.ErrDigestMismatch)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mt, err := manifestMediaType(body, ct)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: got, Size: int64(len(body))}, body, nil
}

// manifestMediaType decides what a manifest body is: its mediaType field,
// else the Content-Type, else by shape (manifests vs layers).
func manifestMediaType(body []byte, contentType string) (string, error) {
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     json.RawMessage   `json:"manifests"`
		Layers        json.RawMessage   `json:"layers"`
		Config        json.RawMessage   `json:"config"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return "", fmt.Errorf("manifest is not JSON: %v: %w", err, errdefs.ErrInvalid)
	}
	if probe.SchemaVersion == 1 || probe.FSLayers != nil || contentType == MediaTypeDockerSchema1 || contentType == MediaTypeDockerSchema1JWS {
		return "", fmt.Errorf("docker schema1 manifests are not supported: %w", errdefs.ErrUnsupported)
	}
	if probe.SchemaVersion != 2 {
		return "", fmt.Errorf("manifest has schemaVersion %d, want 2: %w", probe.SchemaVersion, errdefs.ErrInvalid)
	}
	mt := probe.MediaType
	if mt == "" && (IsIndex(contentType) || IsManifest(contentType)) {
		mt = contentType
	}
	if mt == "" {
		switch {
		case probe.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case probe.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}
	if !IsIndex(mt) && !IsManifest(mt) {
		return "", fmt.Errorf("unknown manifest media type %q: %w", mt, errdefs.ErrUnsupported)
	}
	return mt, nil
}

// FetchImageManifest resolves ref to one image manifest: when ref names an
// index (or manifest list), it selects the entry for platform (nil: the
// DefaultPlatform; a zero Platform: any) with SelectManifest and fetches it,
// following nested indexes up to a small depth and refusing loops. It
// returns the image manifest's descriptor and body; the descriptor carries
// the index entry's platform when one was selected.
func (c *Client) FetchImageManifest(ctx context.Context, ref Reference, platform *ocispec.Platform) (ocispec.Descriptor, []byte, error) {
	want := DefaultPlatform()
	if platform != nil {
		want = *platform
	}
	desc, body, err := c.FetchManifest(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	seen := map[digest.Digest]bool{}
	for depth := 0; IsIndex(desc.MediaType); depth++ {
		seen[desc.Digest] = true
		if depth >= maxIndexDepth {
			return ocispec.Descriptor{}, nil, fmt.Errorf("resolve %s: indexes nested more than %d deep: %w", ref, maxIndexDepth, errdefs.ErrInvalid)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("resolve %s: index %s: %v: %w", ref, desc.Digest, err, errdefs.ErrInvalid)
		}
		sel, err := SelectManifest(idx, want)
		if err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("resolve %s: index %s: %w", ref, desc.Digest, err)
		}
		if err := sel.Digest.Validate(); err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("resolve %s: index entry digest %q: %v: %w", ref, sel.Digest, err, errdefs.ErrInvalid)
		}
		if seen[sel.Digest] {
			return ocispec.Descriptor{}, nil, fmt.Errorf("resolve %s: index %s refers back to %s: %w", ref, desc.Digest, sel.Digest, errdefs.ErrInvalid)
		}
		child, cbody, err := c.FetchManifest(ctx, ref.WithDigest(sel.Digest))
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		if sel.Size > 0 && sel.Size != child.Size {
			return ocispec.Descriptor{}, nil, fmt.Errorf("resolve %s: index says %s is %d bytes, it is %d: %w", ref, sel.Digest, sel.Size, child.Size, errdefs.ErrDigestMismatch)
		}
		child.Platform = sel.Platform
		desc, body = child, cbody
	}
	return desc, body, nil
}

// PushManifest uploads a manifest or index under ref's tag, or under its
// digest when ref has no tag, and returns its descriptor. mediaType is the
// Content-Type; when ref has a digest the body must hash to it.
func (c *Client) PushManifest(ctx context.Context, ref Reference, mediaType string, body []byte) (ocispec.Descriptor, error) {
	alg := digest.Canonical
	if ref.Digest != "" && ref.Digest.Algorithm().Available() {
		alg = ref.Digest.Algorithm()
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: alg.FromBytes(body), Size: int64(len(body))}
	if ref.Digest != "" && ref.Digest != desc.Digest {
		return desc, fmt.Errorf("push manifest %s: body hashes to %s: %w", ref, desc.Digest, errdefs.ErrDigestMismatch)
	}
	object := ref.Tag
	if object == "" {
		object = desc.Digest.String()
	}
	ep, err := c.registryEndpoint(ctx, ref.Registry)
	if err != nil {
		return desc, fmt.Errorf("push manifest %s: %w", ref, err)
	}
	resp, err := c.send(ctx, ep, &request{
		method: http.MethodPut, path: "/v2/" + ref.Repository + "/manifests/" + object,
		header: http.Header{"Content-Type": {mediaType}},
		body: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(body)), nil
		},
		contentLength: int64(len(body)),
		scopes:        pushScope(ref),
	})
	if err != nil {
		return desc, fmt.Errorf("push manifest %s: %w", ref, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return desc, fmt.Errorf("push manifest %s: %w", ref, newError(resp))
	}
	drain(resp)
	if err := checkDigestHeader(resp, desc.Digest); err != nil {
		return desc, fmt.Errorf("push manifest %s: %w", ref, err)
	}
	return desc, nil
}
