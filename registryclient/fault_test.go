package registryclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/faultproxy"
	"github.com/berthrt/berth/internal/registrytest"
	rc "github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// faultFixture is a registry holding an image with a 50 MB layer, shared by
// the subtests of TestFaults (pushing 50 MB once is enough).
type faultFixture struct {
	reg   *registrytest.Registry
	src   memSource
	root  ocispec.Descriptor
	big   ocispec.Descriptor // 50 MB layer
	small ocispec.Descriptor // 200 kB layer
	repo  string
}

const bigSize = 50 << 20

func getFixture(t *testing.T) *faultFixture {
	t.Helper()
	f := &faultFixture{reg: registrytest.Start(t, registrytest.Options{}), src: memSource{}, repo: "faults/img"}
	f.root = image(f.src, 50, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 200<<10, bigSize)
	var m ocispec.Manifest
	json.Unmarshal(f.src[f.root.Digest], &m)
	f.small, f.big = m.Layers[0], m.Layers[1]
	ctx := ctxT(t, time.Minute)
	if err := (&rc.Client{}).Push(ctx, mustRef(t, f.reg.Ref(f.repo+":1")), f.root, f.src); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *faultFixture) proxyRef(t *testing.T, p *faultproxy.Proxy) rc.Reference {
	return mustRef(t, p.Host+"/"+f.repo+":1")
}

// sha reads r to the end and returns the sha256 digest and the error.
func sha(r io.Reader) (digest.Digest, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)), n, err
}

func TestFaults(t *testing.T) {
	t.Parallel()
	f := getFixture(t)

	t.Run("ResetEveryMiB", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Method: http.MethodGet, Path: "/blobs/", ResetEvery: 1 << 20})
		c := &rc.Client{Retry: fastRetry}
		ref := f.proxyRef(t, p)
		r, err := c.OpenBlob(ctxT(t, time.Minute), ref, f.big, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		d, n, err := sha(r)
		if err != nil || d != f.big.Digest || n != bigSize {
			t.Fatalf("read %d bytes, %s, %v", n, d, err)
		}
		br := r.(*rc.BlobReader)
		sent := p.BytesSent()
		t.Logf("50 MB blob with a reset every MiB: %d resumes, %d bytes sent (%.3fx), %d received", br.Resumes(), sent, float64(sent)/bigSize, br.Received())
		if sent >= bigSize*12/10 {
			t.Errorf("proxy sent %d bytes for a %d-byte blob: resumption restarts from zero?", sent, bigSize)
		}
		if br.Resumes() < 40 {
			t.Errorf("only %d resumes; were resets injected?", br.Resumes())
		}
	})

	t.Run("ServerErrorsThenSuccess", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL,
			faultproxy.Rule{Path: "/manifests/", Status: 500, Times: 2},
			faultproxy.Rule{Path: "/blobs/", Status: 503, Times: 1},
			faultproxy.Rule{Path: "/blobs/", Status: 502, Times: 1})
		c := &rc.Client{Retry: fastRetry}
		ref := f.proxyRef(t, p)
		d, _, err := c.FetchManifest(ctxT(t, time.Minute), ref)
		if err != nil || d.Digest != f.root.Digest {
			t.Fatalf("FetchManifest through 500s: %v", err)
		}
		b, err := readBlob(t, c, ref, f.small, 0)
		if err != nil || !bytes.Equal(b, f.src[f.small.Digest]) {
			t.Fatalf("blob through 503, 502: %v", err)
		}
		if p.Faults() != 4 {
			t.Errorf("%d faults injected, want 4", p.Faults())
		}
	})

	t.Run("ServerErrorsExhaustRetries", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Path: "/manifests/", Status: 503})
		c := &rc.Client{Retry: rc.RetryPolicy{Attempts: 3, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}}
		_, _, err := c.FetchManifest(ctxT(t, time.Minute), f.proxyRef(t, p))
		var re *rc.Error
		if !errors.Is(err, errdefs.ErrUnavailable) || !errors.As(err, &re) || re.StatusCode != 503 || !re.Temporary() {
			t.Fatalf("want ErrUnavailable with a 503 *Error, got %v", err)
		}
		if n := p.Requests(); n != 3+1 { // 3 attempts after the scheme probe
			t.Errorf("%d requests, want 4 (probe + 3 attempts)", n)
		}
	})

	t.Run("ConnectionDropped", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL,
			faultproxy.Rule{Path: "/manifests/", Drop: true, Times: 2},
			faultproxy.Rule{Path: "/blobs/sha256", Drop: true, Times: 1})
		c := &rc.Client{Retry: fastRetry}
		ref := f.proxyRef(t, p)
		if d, _, err := c.FetchManifest(ctxT(t, time.Minute), ref); err != nil || d.Digest != f.root.Digest {
			t.Fatalf("manifest through dropped connections: %v", err)
		}
		if b, err := readBlob(t, c, ref, f.small, 0); err != nil || !bytes.Equal(b, f.src[f.small.Digest]) {
			t.Fatalf("blob through a dropped connection: %v", err)
		}
		// Uploads: a seekable body is sent again; a one-shot reader cannot be.
		data := randomBytes(77, 100<<10)
		d := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
		p.SetRules(faultproxy.Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Drop: true, Times: 1})
		if err := c.PushBlob(ctxT(t, time.Minute), ref, d, io.MultiReader(bytes.NewReader(data))); !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("one-shot reader through a dropped PUT: %v", err)
		}
		p.SetRules(faultproxy.Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Drop: true, Times: 1})
		if err := c.PushBlob(ctxT(t, time.Minute), ref, d, bytes.NewReader(data)); err != nil {
			t.Fatalf("seekable reader through a dropped PUT: %v", err)
		}
		if b, err := readBlob(t, c, ref, d, 0); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("pushed blob: %v", err)
		}
	})

	t.Run("ManifestBodyBroken", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL,
			faultproxy.Rule{Method: http.MethodGet, Path: "/manifests/", ResetEvery: 100, Times: 1},
			faultproxy.Rule{Method: http.MethodGet, Path: "/manifests/", TruncateAt: 100, Times: 1},
			faultproxy.Rule{Method: http.MethodGet, Path: "/tags/", ResetEvery: 10, Times: 1})
		c := &rc.Client{Retry: fastRetry}
		ref := f.proxyRef(t, p)
		d, _, err := c.FetchManifest(ctxT(t, time.Minute), ref)
		if err != nil || d.Digest != f.root.Digest {
			t.Fatalf("manifest through a reset and a truncation: %v", err)
		}
		if tags, err := c.Tags(ctxT(t, time.Minute), ref); err != nil || len(tags) != 1 {
			t.Fatalf("tags through a reset: %v, %v", tags, err)
		}
		if p.Faults() != 3 {
			t.Errorf("%d faults, want 3", p.Faults())
		}
	})

	t.Run("TooManyRequestsRetryAfter", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Path: "/blobs/", Status: 429, RetryAfter: "1", Times: 1})
		c := &rc.Client{Retry: fastRetry}
		start := time.Now()
		b, err := readBlob(t, c, f.proxyRef(t, p), f.small, 0)
		if err != nil || !bytes.Equal(b, f.src[f.small.Digest]) {
			t.Fatal(err)
		}
		if el := time.Since(start); el < time.Second {
			t.Errorf("finished after %v: Retry-After: 1 not honoured", el)
		}
	})

	t.Run("WrongDigest", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Path: "/blobs/", CorruptAt: 1000})
		c := &rc.Client{Retry: fastRetry}
		_, err := readBlob(t, c, f.proxyRef(t, p), f.small, 0)
		if !errors.Is(err, errdefs.ErrDigestMismatch) {
			t.Fatalf("corrupted blob: %v", err)
		}
		p.SetRules(faultproxy.Rule{Path: "/manifests/", CorruptAt: 10})
		ref := f.proxyRef(t, p)
		if _, _, err := c.FetchManifest(ctxT(t, time.Minute), ref.WithDigest(f.root.Digest)); !errors.Is(err, errdefs.ErrDigestMismatch) {
			t.Fatalf("corrupted manifest by digest: %v", err)
		}
		if _, _, err := c.FetchManifest(ctxT(t, time.Minute), ref); !errors.Is(err, errdefs.ErrDigestMismatch) {
			t.Fatalf("corrupted manifest by tag (Docker-Content-Digest): %v", err)
		}
	})

	t.Run("StallHitsDeadline", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Path: "/blobs/", StallAfter: 64 << 10, Stall: time.Minute})
		c := &rc.Client{Retry: fastRetry}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		r, err := c.OpenBlob(ctx, f.proxyRef(t, p), f.small, 0)
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stalled read: %v", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("took %v to notice the deadline", el)
		}
	})

	t.Run("StallTimeoutResumes", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Path: "/blobs/", Method: http.MethodGet, StallAfter: 64 << 10, Stall: time.Minute, Times: 1})
		c := &rc.Client{Retry: fastRetry, StallTimeout: 200 * time.Millisecond}
		b, err := readBlob(t, c, f.proxyRef(t, p), f.small, 0)
		if err != nil || !bytes.Equal(b, f.src[f.small.Digest]) {
			t.Fatalf("read across a stall: %v", err)
		}
	})

	t.Run("TruncatedBodies", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Path: "/blobs/", Method: http.MethodGet, TruncateAt: 50000, Times: 3})
		c := &rc.Client{Retry: fastRetry}
		r, err := c.OpenBlob(ctxT(t, time.Minute), f.proxyRef(t, p), f.small, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(b, f.src[f.small.Digest]) {
			t.Fatalf("read across truncations: %v", err)
		}
		if n := r.(*rc.BlobReader).Resumes(); n != 3 {
			t.Errorf("%d resumes, want 3", n)
		}
	})

	t.Run("RangeIgnored", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL,
			faultproxy.Rule{Path: "/blobs/", Method: http.MethodGet, ResetEvery: 100 << 10, IgnoreRange: true, Times: 2},
			faultproxy.Rule{Path: "/blobs/", IgnoreRange: true})
		c := &rc.Client{Retry: fastRetry}
		r, err := c.OpenBlob(ctxT(t, time.Minute), f.proxyRef(t, p), f.small, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(b, f.src[f.small.Digest]) {
			t.Fatalf("read with Range ignored: %v", err)
		}
		if got := r.(*rc.BlobReader).Received(); got <= f.small.Size {
			t.Errorf("received %d bytes: the skip path was not taken", got)
		}
		// Resuming at an offset (as a content store does) works without Range too.
		b, err = readBlob(t, c, f.proxyRef(t, p), f.small, 12345)
		if err != nil || !bytes.Equal(b, f.src[f.small.Digest][12345:]) {
			t.Fatalf("offset read with Range ignored: %v", err)
		}
	})

	t.Run("ResumeFailsAfterAttempts", func(t *testing.T) {
		// A reset mid-blob, then the server fails every resume.
		p := faultproxy.Start(t, f.reg.URL,
			faultproxy.Rule{Path: "/blobs/", Method: http.MethodGet, ResetEvery: 64 << 10, Times: 1},
			faultproxy.Rule{Path: "/blobs/", Status: 503})
		c := &rc.Client{Retry: rc.RetryPolicy{Attempts: 3, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}}
		b, err := readBlob(t, c, f.proxyRef(t, p), f.small, 0)
		var re *rc.Error
		if !errors.Is(err, errdefs.ErrUnavailable) || !errors.As(err, &re) || re.StatusCode != 503 {
			t.Fatalf("want ErrUnavailable from a 503, got %v", err)
		}
		if len(b) != 64<<10 {
			t.Errorf("delivered %d bytes before failing, want %d", len(b), 64<<10)
		}
	})

	t.Run("Mirror", func(t *testing.T) {
		// The "mirror" is the fixture registry (through a counting proxy);
		// the origin is an empty registry behind a proxy that fails
		// everything, so success means the mirror served it.
		origin := registrytest.Start(t, registrytest.Options{})
		op := faultproxy.Start(t, origin.URL)
		mp := faultproxy.Start(t, f.reg.URL)
		c := &rc.Client{Retry: fastRetry, Mirrors: map[string][]string{op.Host: {"http://" + mp.Host}}}
		ref := mustRef(t, op.Host+"/"+f.repo+":1")
		d, _, err := c.FetchImageManifest(ctxT(t, time.Minute), ref, &ocispec.Platform{OS: "linux", Architecture: "amd64"})
		if err != nil || d.Digest != f.root.Digest {
			t.Fatalf("pull through the mirror: %v", err)
		}
		if b, err := readBlob(t, c, ref, f.small, 0); err != nil || !bytes.Equal(b, f.src[f.small.Digest]) {
			t.Fatalf("blob through the mirror: %v", err)
		}
		// Something only the origin has: the mirror's 404 falls through.
		src := memSource{}
		only := image(src, 60, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 10)
		oref := mustRef(t, op.Host+"/only/origin:1")
		if err := c.Push(ctxT(t, time.Minute), oref, only, src); err != nil {
			t.Fatal(err)
		}
		if d, err := c.Resolve(ctxT(t, time.Minute), oref); err != nil || d.Digest != only.Digest {
			t.Fatalf("fallback to the origin: %v", err)
		}
		if mp.Requests() == 0 {
			t.Error("the mirror saw no requests")
		}
		// A mirror that is down, and one that fails everything, are skipped.
		bad := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Status: 500})
		c2 := &rc.Client{Retry: fastRetry, Mirrors: map[string][]string{op.Host: {"http://127.0.0.1:1", bad.Host}}}
		if d, err := c2.Resolve(ctxT(t, time.Minute), oref); err != nil || d.Digest != only.Digest {
			t.Fatalf("past broken mirrors: %v", err)
		}
	})

	t.Run("PushThroughFaults", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL,
			faultproxy.Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Status: 503, Times: 1},
			faultproxy.Rule{Method: http.MethodPost, Status: 500, Times: 1},
			faultproxy.Rule{Method: http.MethodPut, Path: "/manifests/", Status: 502, Times: 1})
		c := &rc.Client{Retry: fastRetry}
		src := memSource{}
		root := image(src, 70, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 300<<10)
		ref := mustRef(t, p.Host+"/pushed/through:faults")
		if err := c.Push(ctxT(t, time.Minute), ref, root, src); err != nil {
			t.Fatalf("push through faults: %v", err)
		}
		if d, err := c.Resolve(ctxT(t, time.Minute), ref); err != nil || d.Digest != root.Digest {
			t.Fatalf("resolve: %v", err)
		}
		if p.Faults() != 3 {
			t.Errorf("%d faults, want 3", p.Faults())
		}
	})

	t.Run("PushMountsFromOrigin", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL)
		c := &rc.Client{Retry: fastRetry}
		from := f.proxyRef(t, p)
		to := mustRef(t, p.Host+"/mounted/copy:1")
		if err := c.Push(ctxT(t, time.Minute), to, f.root, originSource{f.src, from}); err != nil {
			t.Fatal(err)
		}
		// Nothing but the manifest went up the wire.
		if up := p.BytesReceived(); up > 10<<10 {
			t.Errorf("%d bytes uploaded: blobs were uploaded, not mounted", up)
		}
		// Without origins, the same push uploads everything.
		to2 := mustRef(t, p.Host+"/uploaded/copy:1")
		if err := c.Push(ctxT(t, time.Minute), to2, f.root, f.src); err != nil {
			t.Fatal(err)
		}
		if up := p.BytesReceived(); up < bigSize {
			t.Errorf("%d bytes uploaded without origins, want > %d", up, bigSize)
		}
		b, err := readBlob(t, c, to, f.big, 0)
		if err != nil || int64(len(b)) != f.big.Size {
			t.Fatalf("mounted blob: %v", err)
		}
	})

	t.Run("RetryAfterPastDeadline", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Path: "/manifests/", Status: 429, RetryAfter: "30"})
		c := &rc.Client{Retry: fastRetry}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Resolve(ctx, f.proxyRef(t, p))
		if !errors.Is(err, errdefs.ErrUnavailable) || time.Since(start) > time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		p := faultproxy.Start(t, f.reg.URL, faultproxy.Rule{Status: 503})
		c := &rc.Client{Retry: rc.RetryPolicy{Attempts: 100, MinDelay: 200 * time.Millisecond, MaxDelay: time.Second}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Resolve(ctx, f.proxyRef(t, p))
		if el := time.Since(start); el > time.Second {
			t.Errorf("cancellation noticed after %v", el)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want the context's error, got %v", err)
		}
		if strings.Contains(err.Error(), "giving up") {
			t.Errorf("retries should stop at the deadline: %v", err)
		}
	})
}

// originSource says every blob can be found in one repository.
type originSource struct {
	memSource
	from rc.Reference
}

func (o originSource) Origins(ocispec.Descriptor) []rc.Reference { return []rc.Reference{o.from} }
