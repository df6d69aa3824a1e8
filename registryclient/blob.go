package registryclient

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthrt/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxFetchBlobSize is the largest blob FetchBlob reads into memory.
const MaxFetchBlobSize = 64 << 20

var errStalled = errors.New("no data received within the stall timeout")

// BlobReader streams a blob from a registry. It resumes a dropped or
// stalled transfer with a Range request from the bytes already delivered
// (skipping bytes when the server ignores Range), and checks the size and,
// for a read from offset 0, the digest at EOF: a mismatch is an error
// wrapping errdefs.ErrDigestMismatch returned instead of io.EOF. Bytes
// already returned cannot be taken back: a caller must not trust what it
// read until Read has returned io.EOF.
//
// It is not safe for concurrent Reads; Close may be called from another
// goroutine to abort a Read.
type BlobReader struct {
	c      *Client
	ctx    context.Context
	ref    Reference
	desc   ocispec.Descriptor
	ep     *endpoint
	offset int64 // where the caller started
	pos    int64 // absolute offset of the next byte to deliver

	hasher hash.Hash // nil when offset > 0

	mu       sync.Mutex // guards body, cancel, closed against Close
	body     io.ReadCloser
	cancel   context.CancelCauseFunc
	closed   bool
	timer    *time.Timer
	failures int // consecutive failures without progress
	resumes  int
	received int64 // bytes read from the network, skipped ones included
	err      error // sticky
	progress func(int64)
}

// OpenBlob opens the blob desc of ref's repository for reading from byte
// offset (0 for the whole blob; a content store passes the size of the
// partial download it kept). desc.Digest is required; desc.Size, when
// positive, is enforced. The returned reader is a *BlobReader: see there for
// resumption and verification. Errors wrap errdefs.ErrNotFound when the
// registry has no such blob, ErrInvalid for an offset past the end.
func (c *Client) OpenBlob(ctx context.Context, ref Reference, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("open blob %q of %s: %v: %w", desc.Digest, ref.Name(), err, errdefs.ErrInvalid)
	}
	if offset < 0 || (desc.Size > 0 && offset > desc.Size) {
		return nil, fmt.Errorf("open blob %s of %s at offset %d of %d: %w", desc.Digest, ref.Name(), offset, desc.Size, errdefs.ErrInvalid)
	}
	r := &BlobReader{c: c, ctx: ctx, ref: ref, desc: desc, offset: offset, pos: offset}
	if offset == 0 {
		r.hasher = desc.Digest.Algorithm().Hash()
	}
	if desc.Size > 0 && offset == desc.Size {
		return r, nil // nothing left to fetch; Read reports EOF
	}
	err := c.onEndpoints(ctx, ref, func(ep *endpoint) error {
		r.ep = ep
		return r.open()
	})
	if err != nil {
		return nil, fmt.Errorf("open blob %s of %s: %w", desc.Digest, ref.Name(), err)
	}
	return r, nil
}

// SetProgress makes the reader call fn with the absolute offset reached
// after each Read that delivered bytes (offset included). Call it before
// the first Read.
func (r *BlobReader) SetProgress(fn func(offset int64)) { r.progress = fn }

// Offset is the absolute offset of the next byte Read will deliver.
func (r *BlobReader) Offset() int64 { return r.pos }

// Received is the number of bytes read from the network, including bytes
// skipped or received again after a resume.
func (r *BlobReader) Received() int64 { return r.received }

// Resumes is how many times the transfer was restarted after a failure.
func (r *BlobReader) Resumes() int { return r.resumes }

// open sends the GET (with Range from r.pos) and positions the body at r.pos.
func (r *BlobReader) open() error {
	actx, cancel := context.WithCancelCause(r.ctx)
	req := &request{
		method: http.MethodGet,
		path:   "/v2/" + r.ref.Repository + "/blobs/" + r.desc.Digest.String(),
		scopes: pullScope(r.ref),
	}
	if r.pos > 0 {
		req.header = http.Header{"Range": {"bytes=" + strconv.FormatInt(r.pos, 10) + "-"}}
	}
	resp, err := r.c.send(actx, r.ep, req)
	if err != nil {
		cancel(nil)
		return err
	}
	skip := int64(0)
	switch resp.StatusCode {
	case http.StatusOK:
		skip = r.pos // the server ignored Range: skip what we have
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start > r.pos {
			drain(resp)
			cancel(nil)
			return fmt.Errorf("registry answered Range %d- with Content-Range %q: %w", r.pos, resp.Header.Get("Content-Range"), errdefs.ErrUnavailable)
		}
		skip = r.pos - start
	default:
		cancel(nil)
		return newError(resp)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		resp.Body.Close()
		cancel(nil)
		return errors.New("read of closed blob reader")
	}
	r.body, r.cancel = resp.Body, cancel
	r.mu.Unlock()
	if skip > 0 {
		n, err := io.CopyN(io.Discard, r.countingBody(), skip)
		if err != nil {
			r.dropBody()
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			return fmt.Errorf("skipping %d bytes the server resent (got %d): %w: %w", skip, n, err, errdefs.ErrUnavailable)
		}
	}
	return nil
}

type countingReader struct{ r *BlobReader }

func (c countingReader) Read(p []byte) (int, error) { return c.r.readBody(p) }

func (r *BlobReader) countingBody() io.Reader { return countingReader{r} }

// readBody reads from the current body under the stall timer.
func (r *BlobReader) readBody(p []byte) (int, error) {
	st := r.c.stallTimeout()
	r.mu.Lock()
	body := r.body
	r.mu.Unlock()
	if body == nil {
		return 0, errors.New("read of closed blob reader")
	}
	if st > 0 {
		if r.timer == nil {
			r.timer = time.AfterFunc(st, func() {
				r.mu.Lock()
				if r.cancel != nil {
					r.cancel(errStalled)
				}
				r.mu.Unlock()
			})
		} else {
			r.timer.Reset(st)
		}
	}
	n, err := body.Read(p)
	if st > 0 {
		r.timer.Stop()
	}
	r.received += int64(n)
	return n, err
}

func (r *BlobReader) dropBody() {
	r.mu.Lock()
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	if r.cancel != nil {
		r.cancel(nil)
		r.cancel = nil
	}
	r.mu.Unlock()
}

// Read implements io.Reader.
func (r *BlobReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r.mu.Lock()
		closed, body := r.closed, r.body
		r.mu.Unlock()
		if closed {
			return 0, errors.New("read of closed blob reader")
		}
		if body == nil {
			if r.desc.Size > 0 && r.pos == r.desc.Size {
				return 0, r.finish()
			}
			if err := r.open(); err != nil {
				if r.ctx.Err() != nil {
					return 0, r.fail(r.ctx.Err())
				}
				if !errors.Is(err, errdefs.ErrUnavailable) || !r.retry(err) {
					return 0, r.fail(err)
				}
				continue
			}
		}
		if r.desc.Size > 0 && int64(len(p)) > r.desc.Size-r.pos+1 {
			p = p[:r.desc.Size-r.pos+1] // room for one byte too many, to detect it
		}
		n, err := r.readBody(p)
		if n > 0 {
			if r.desc.Size > 0 && r.pos+int64(n) > r.desc.Size {
				r.dropBody()
				return 0, r.fail(fmt.Errorf("blob %s is longer than its %d bytes: %w", r.desc.Digest, r.desc.Size, errdefs.ErrDigestMismatch))
			}
			if r.hasher != nil {
				r.hasher.Write(p[:n])
			}
			r.pos += int64(n)
			r.failures = 0
			if r.progress != nil {
				r.progress(r.pos)
			}
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && (r.desc.Size <= 0 || r.pos == r.desc.Size):
			r.dropBody()
			if ferr := r.finish(); ferr != io.EOF || n == 0 {
				return n, ferr
			}
			return n, nil // report EOF on the next call
		}
		// The transfer broke (reset, early EOF, stall): resume.
		r.dropBody()
		if r.ctx.Err() != nil {
			return n, r.fail(r.ctx.Err())
		}
		if err == io.EOF {
			err = fmt.Errorf("body ended at %d of %d bytes: %w", r.pos, r.desc.Size, io.ErrUnexpectedEOF)
		}
		if !r.retry(err) {
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// retry counts a failure and waits before the next attempt; false when
// attempts are exhausted (r.err is then set).
func (r *BlobReader) retry(err error) bool {
	r.failures++
	if r.failures >= r.c.Retry.attempts() {
		r.fail(fmt.Errorf("read blob %s of %s at offset %d: giving up after %d attempts: %w: %w", r.desc.Digest, r.ref.Name(), r.pos, r.failures, err, errdefs.ErrUnavailable))
		return false
	}
	r.resumes++
	r.c.log().Debug("blob transfer broke; resuming", "digest", r.desc.Digest, "offset", r.pos, "err", err)
	if r.failures > 1 {
		if serr := sleepCtx(r.ctx, r.c.Retry.delay(r.failures-1)); serr != nil {
			r.fail(serr)
			return false
		}
	}
	return true
}

func (r *BlobReader) fail(err error) error {
	if r.err == nil {
		if err == context.Canceled || err == context.DeadlineExceeded {
			err = fmt.Errorf("read blob %s of %s at offset %d: %w", r.desc.Digest, r.ref.Name(), r.pos, err)
		}
		r.err = err
	}
	return r.err
}

// finish checks size and digest at the end of the blob and returns io.EOF
// or the mismatch.
func (r *BlobReader) finish() error {
	if r.desc.Size > 0 && r.pos != r.desc.Size {
		return r.fail(fmt.Errorf("blob %s ended at %d bytes, want %d: %w", r.desc.Digest, r.pos, r.desc.Size, errdefs.ErrDigestMismatch))
	}
	if r.hasher != nil {
		got := digest.NewDigestFromBytes(r.desc.Digest.Algorithm(), r.hasher.Sum(nil))
		if got != r.desc.Digest {
			return r.fail(fmt.Errorf("blob of %s hashes to %s, want %s: %w", r.ref.Name(), got, r.desc.Digest, errdefs.ErrDigestMismatch))
		}
	}
	r.err = io.EOF
	return io.EOF
}

// Close releases the connection. It may be called concurrently with Read.
func (r *BlobReader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.dropBody()
	if r.timer != nil {
		r.timer.Stop()
	}
	return nil
}

// contentRangeStart reads the first byte position of "bytes a-b/n".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return 0, false
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(a, 10, 64)
	return n, err == nil && n >= 0
}

// FetchBlob reads a small blob (an image config) into memory, verified.
// Blobs over MaxFetchBlobSize are refused with ErrInvalid.
func (c *Client) FetchBlob(ctx context.Context, ref Reference, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > MaxFetchBlobSize {
		return nil, fmt.Errorf("fetch blob %s of %s: %d bytes is more than %d: %w", desc.Digest, ref.Name(), desc.Size, MaxFetchBlobSize, errdefs.ErrInvalid)
	}
	rc, err := c.OpenBlob(ctx, ref, desc, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxFetchBlobSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s of %s: %w", desc.Digest, ref.Name(), err)
	}
	if len(b) > MaxFetchBlobSize {
		return nil, fmt.Errorf("fetch blob %s of %s: more than %d bytes: %w", desc.Digest, ref.Name(), MaxFetchBlobSize, errdefs.ErrInvalid)
	}
	return b, nil
}

// StatBlob asks the registry whether ref's repository has blob dg, and
// returns its descriptor (size from Content-Length). A missing blob gives
// an error wrapping errdefs.ErrNotFound.
func (c *Client) StatBlob(ctx context.Context, ref Reference, dg digest.Digest) (ocispec.Descriptor, error) {
	var desc ocispec.Descriptor
	err := c.onEndpoints(ctx, ref, func(ep *endpoint) error {
		var err error
		desc, err = c.statBlob(ctx, ep, ref, dg, pullScope(ref))
		return err
	})
	if err != nil {
		return desc, fmt.Errorf("stat blob %s of %s: %w", dg, ref.Name(), err)
	}
	return desc, nil
}

func (c *Client) statBlob(ctx context.Context, ep *endpoint, ref Reference, dg digest.Digest, scopes []string) (ocispec.Descriptor, error) {
	resp, err := c.send(ctx, ep, &request{method: http.MethodHead, path: "/v2/" + ref.Repository + "/blobs/" + dg.String(), scopes: scopes})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, newError(resp)
	}
	drain(resp)
	return ocispec.Descriptor{Digest: dg, Size: resp.ContentLength, MediaType: "application/octet-stream"}, nil
}
