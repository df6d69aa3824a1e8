package registryclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/berthrt/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Source gives the content of an image being pushed: manifests, indexes,
// configs and layers, by descriptor. A content store or an OCI layout
// implements it.
type Source interface {
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// BlobOrigins may be implemented by a Source that knows where its blobs
// came from. Push asks the registry to mount a blob from an origin in the
// same registry (a cross-repository mount, no upload) before uploading it.
type BlobOrigins interface {
	Origins(desc ocispec.Descriptor) []Reference
}

// UploadChunkSize is the chunk size used when Client.ChunkedUploads is on.
const UploadChunkSize = 16 << 20

// PushBlob uploads the blob desc, read from r, to ref's repository, unless
// the repository has it already (a HEAD first). The upload is monolithic
// (POST, then PUT with the body) unless the client's ChunkedUploads is set;
// the registry verifies the digest. If r is an io.Seeker, failed uploads
// are retried from its start; otherwise a failure after the first byte is
// returned.
func (c *Client) PushBlob(ctx context.Context, ref Reference, desc ocispec.Descriptor, r io.Reader) error {
	used := false
	open := func() (io.ReadCloser, error) {
		if s, ok := r.(io.Seeker); ok {
			if _, err := s.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			return io.NopCloser(r), nil
		}
		if used {
			return nil, errNoReopen
		}
		used = true
		return io.NopCloser(r), nil
	}
	if err := c.pushBlob(ctx, ref, desc, open, ""); err != nil {
		return fmt.Errorf("push blob %s to %s: %w", desc.Digest, ref.Name(), err)
	}
	return nil
}

var errNoReopen = errors.New("the blob's reader cannot be read again for a retry")

// MountBlob asks ref's registry to link blob desc from another repository
// of the same registry (fromRepository, like "library/alpine") into ref's
// repository, without uploading it. It reports false when the registry
// declined (it does not have the blob there, or does not allow mounts).
func (c *Client) MountBlob(ctx context.Context, ref Reference, fromRepository string, desc ocispec.Descriptor) (bool, error) {
	ep, err := c.registryEndpoint(ctx, ref.Registry)
	if err != nil {
		return false, fmt.Errorf("mount blob %s into %s: %w", desc.Digest, ref.Name(), err)
	}
	loc, mounted, err := c.startUpload(ctx, ep, ref, desc.Digest, fromRepository)
	if err != nil {
		return false, fmt.Errorf("mount blob %s from %s into %s: %w", desc.Digest, fromRepository, ref.Name(), err)
	}
	if !mounted && loc != "" {
		c.cancelUpload(ctx, ep, ref, loc)
	}
	return mounted, nil
}

// pushBlob uploads with whole-upload retries when open can reopen.
func (c *Client) pushBlob(ctx context.Context, ref Reference, desc ocispec.Descriptor, open func() (io.ReadCloser, error), mountFrom string) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalid)
	}
	ep, err := c.registryEndpoint(ctx, ref.Registry)
	if err != nil {
		return err
	}
	if _, err := c.statBlob(ctx, ep, ref, desc.Digest, pushScope(ref)); err == nil {
		return nil
	} else if !isNotFound(err) {
		var re *Error
		if !errors.As(err, &re) {
			return err
		}
		// Some registries refuse HEAD for push-only tokens; upload anyway.
	}
	var lastErr error
	for attempt := 1; attempt <= c.Retry.attempts(); attempt++ {
		err := c.uploadOnce(ctx, ep, ref, desc, open, mountFrom)
		if err == nil {
			return nil
		}
		lastErr = err
		if ctx.Err() != nil || errors.Is(err, errNoReopen) || !errors.Is(err, errdefs.ErrUnavailable) {
			break
		}
		c.log().Debug("blob upload failed; starting again", "digest", desc.Digest, "attempt", attempt, "err", err)
		if err := sleepCtx(ctx, c.Retry.delay(attempt)); err != nil {
			return err
		}
	}
	if errors.Is(lastErr, errNoReopen) {
		return fmt.Errorf("%w (%w)", lastErr, errdefs.ErrUnavailable)
	}
	return lastErr
}

func (c *Client) uploadOnce(ctx context.Context, ep *endpoint, ref Reference, desc ocispec.Descriptor, open func() (io.ReadCloser, error), mountFrom string) error {
	loc, mounted, err := c.startUpload(ctx, ep, ref, desc.Digest, mountFrom)
	if err != nil || mounted {
		return err
	}
	body, err := open()
	if err != nil {
		return err
	}
	defer body.Close()
	if c.ChunkedUploads {
		return c.uploadChunks(ctx, ep, ref, desc, loc, body)
	}
	once := false
	resp, err := c.send(ctx, ep, &request{
		method: http.MethodPut, rawURL: loc, query: url.Values{"digest": {desc.Digest.String()}},
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body: func() (io.ReadCloser, error) {
			if once {
				return nil, errNoReopen
			}
			once = true
			return io.NopCloser(body), nil
		},
		contentLength: desc.Size, scopes: pushScope(ref), noRetry: true, noAuth: !sameHost(loc, ep.host),
	})
	if err != nil {
		return markUnavailable(err)
	}
	if resp.StatusCode != http.StatusCreated {
		return newError(resp)
	}
	drain(resp)
	return checkDigestHeader(resp, desc.Digest)
}

// uploadChunks sends body in PATCH requests of UploadChunkSize bytes, each
// retried on its own, then closes the upload with an empty PUT.
func (c *Client) uploadChunks(ctx context.Context, ep *endpoint, ref Reference, desc ocispec.Descriptor, loc string, body io.Reader) error {
	buf := make([]byte, UploadChunkSize)
	var off int64
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			chunk := buf[:n]
			resp, err := c.send(ctx, ep, &request{
				method: http.MethodPatch, rawURL: loc,
				header: http.Header{
					"Content-Type":  {"application/octet-stream"},
					"Content-Range": {strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+int64(n)-1, 10)},
				},
				body:          func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(chunk)), nil },
				contentLength: int64(n), scopes: pushScope(ref), noAuth: !sameHost(loc, ep.host),
			})
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusAccepted {
				return newError(resp)
			}
			drain(resp)
			next, err := location(resp)
			if err != nil {
				return err
			}
			loc = next
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	resp, err := c.send(ctx, ep, &request{
		method: http.MethodPut, rawURL: loc, query: url.Values{"digest": {desc.Digest.String()}},
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body:   func() (io.ReadCloser, error) { return http.NoBody, nil }, scopes: pushScope(ref),
		noAuth: !sameHost(loc, ep.host),
	})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return newError(resp)
	}
	drain(resp)
	return checkDigestHeader(resp, desc.Digest)
}

// startUpload POSTs to the uploads endpoint (with a mount request when from
// is set) and returns the upload location, or mounted=true.
func (c *Client) startUpload(ctx context.Context, ep *endpoint, ref Reference, dg digest.Digest, from string) (string, bool, error) {
	req := &request{method: http.MethodPost, path: "/v2/" + ref.Repository + "/blobs/uploads/", scopes: pushScope(ref),
		body: func() (io.ReadCloser, error) { return http.NoBody, nil }}
	if from != "" && from != ref.Repository {
		req.query = url.Values{"mount": {dg.String()}, "from": {from}}
		req.scopes = append(req.scopes, "repository:"+from+":pull")
	}
	resp, err := c.send(ctx, ep, req)
	if err != nil {
		return "", false, err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		drain(resp)
		return "", true, nil
	case http.StatusAccepted:
		drain(resp)
		loc, err := location(resp)
		return loc, false, err
	}
	return "", false, newError(resp)
}

func (c *Client) cancelUpload(ctx context.Context, ep *endpoint, ref Reference, loc string) {
	resp, err := c.send(ctx, ep, &request{method: http.MethodDelete, rawURL: loc, scopes: pushScope(ref), noRetry: true, noAuth: !sameHost(loc, ep.host)})
	if err == nil {
		drain(resp)
	}
}

// location resolves a response's Location against its request URL.
func location(resp *http.Response) (string, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return "", fmt.Errorf("registry sent no upload Location: %w", errdefs.ErrInvalid)
	}
	u, err := resp.Request.URL.Parse(l)
	if err != nil {
		return "", fmt.Errorf("registry sent a bad upload Location %q: %w", l, errdefs.ErrInvalid)
	}
	return u.String(), nil
}

func sameHost(rawURL, host string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Host == host
}

func checkDigestHeader(resp *http.Response, want digest.Digest) error {
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != want.String() {
		return fmt.Errorf("registry stored digest %s, we sent %s: %w", h, want, errdefs.ErrDigestMismatch)
	}
	return nil
}

// markUnavailable makes transport errors of a non-retried request
// retryable at the level above.
func markUnavailable(err error) error {
	if errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *Error
	if errors.As(err, &re) || errors.Is(err, errNoReopen) {
		return err
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
}

// Push copies the image (manifest) or index root from src to ref: blobs
// first (in parallel, skipping those the repository has, mounting those a
// BlobOrigins source places in another repository of the registry), child
// manifests by digest, and root last, under ref's tag (or its digest when
// ref has no tag). Blobs with URLs (foreign layers) are not uploaded.
func (c *Client) Push(ctx context.Context, ref Reference, root ocispec.Descriptor, src Source) error {
	if err := c.pushTree(ctx, ref, root, src, true, 0); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

func (c *Client) pushTree(ctx context.Context, ref Reference, desc ocispec.Descriptor, src Source, isRoot bool, depth int) error {
	if depth > maxIndexDepth {
		return fmt.Errorf("indexes nested more than %d deep: %w", maxIndexDepth, errdefs.ErrInvalid)
	}
	body, err := readSource(ctx, src, desc, c.maxManifest())
	if err != nil {
		return err
	}
	switch {
	case IsIndex(desc.MediaType):
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return fmt.Errorf("index %s: %v: %w", desc.Digest, err, errdefs.ErrInvalid)
		}
		for _, m := range idx.Manifests {
			if !IsIndex(m.MediaType) && !IsManifest(m.MediaType) {
				if err := c.pushBlobs(ctx, ref, []ocispec.Descriptor{m}, src); err != nil {
					return err
				}
				continue
			}
			if err := c.pushTree(ctx, ref, m, src, false, depth+1); err != nil {
				return err
			}
		}
	case IsManifest(desc.MediaType):
		var m ocispec.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			return fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalid)
		}
		blobs := append([]ocispec.Descriptor{m.Config}, m.Layers...)
		if err := c.pushBlobs(ctx, ref, blobs, src); err != nil {
			return err
		}
	default:
		return fmt.Errorf("cannot push %s of media type %q as a manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrUnsupported)
	}
	target := ref.WithDigest(desc.Digest)
	if isRoot && ref.Tag != "" {
		target = ref.WithTag(ref.Tag)
	} else {
		target.Tag = ""
	}
	_, err = c.PushManifest(ctx, target, desc.MediaType, body)
	return err
}

// pushBlobs uploads blobs, at most four at a time.
func (c *Client) pushBlobs(ctx context.Context, ref Reference, blobs []ocispec.Descriptor, src Source) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	seen := map[digest.Digest]bool{}
	for _, b := range blobs {
		if seen[b.Digest] || len(b.URLs) > 0 {
			continue
		}
		seen[b.Digest] = true
		wg.Add(1)
		sem <- struct{}{}
		go func(b ocispec.Descriptor) {
			defer func() { <-sem; wg.Done() }()
			open := func() (io.ReadCloser, error) { return src.Fetch(ctx, b) }
			from := ""
			if o, ok := src.(BlobOrigins); ok {
				for _, origin := range o.Origins(b) {
					if origin.Registry == ref.Registry && origin.Repository != ref.Repository {
						from = origin.Repository
						break
					}
				}
			}
			if err := c.pushBlob(ctx, ref, b, open, from); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("blob %s: %w", b.Digest, err)
					cancel()
				}
				mu.Unlock()
			}
		}(b)
	}
	wg.Wait()
	return first
}

func readSource(ctx context.Context, src Source, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("manifest %s is %d bytes, more than %d: %w", desc.Digest, desc.Size, limit, errdefs.ErrInvalid)
	}
	rc, err := src.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("read %s from source: %w", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s from source: %w", desc.Digest, err)
	}
	if desc.Digest.Algorithm().Available() && desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("source content of %s does not match its digest: %w", desc.Digest, errdefs.ErrDigestMismatch)
	}
	return b, nil
}
