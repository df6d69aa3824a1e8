package registryclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		e    Error
		kind error
	}{
		{Error{StatusCode: 404}, errdefs.ErrNotFound},
		{Error{StatusCode: 400, Code: "MANIFEST_UNKNOWN"}, errdefs.ErrNotFound},
		{Error{StatusCode: 401}, errdefs.ErrUnauthorized},
		{Error{StatusCode: 403, Code: "DENIED"}, errdefs.ErrUnauthorized},
		{Error{StatusCode: 400, Code: "DIGEST_INVALID"}, errdefs.ErrInvalid},
		{Error{StatusCode: 405, Code: "UNSUPPORTED"}, errdefs.ErrUnsupported},
		{Error{StatusCode: 503}, errdefs.ErrUnavailable},
		{Error{StatusCode: 429}, errdefs.ErrUnavailable},
		{Error{StatusCode: 408}, errdefs.ErrUnavailable},
	}
	for _, c := range cases {
		err := fmt.Errorf("wrapped: %w", &c.e)
		if !errors.Is(err, c.kind) {
			t.Errorf("%v is not %v", &c.e, c.kind)
		}
	}
	if (&Error{StatusCode: 501}).Temporary() || (&Error{StatusCode: 404}).Temporary() || !(&Error{StatusCode: 502}).Temporary() {
		t.Error("Temporary")
	}
	if errors.Is(&Error{StatusCode: 404}, errdefs.ErrUnavailable) {
		t.Error("404 is not unavailable")
	}
}

func TestRetryAfter(t *testing.T) {
	if d := retryAfter("3", time.Minute); d != 3*time.Second {
		t.Errorf("seconds: %v", d)
	}
	if d := retryAfter("3600", time.Minute); d != time.Minute {
		t.Errorf("cap: %v", d)
	}
	if d := retryAfter(time.Now().Add(10*time.Second).UTC().Format(http.TimeFormat), time.Minute); d < 8*time.Second || d > 10*time.Second {
		t.Errorf("date: %v", d)
	}
	if d := retryAfter("soon", time.Minute); d != 0 {
		t.Errorf("junk: %v", d)
	}
	p := RetryPolicy{MinDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for n := 1; n < 10; n++ {
		d := p.delay(n)
		if d < 50*time.Millisecond || d > time.Second {
			t.Errorf("delay(%d) = %v", n, d)
		}
	}
}

func TestManifestMediaType(t *testing.T) {
	for body, want := range map[string]string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`:                       ocispec.MediaTypeImageIndex,
		`{"schemaVersion":2,"config":{},"layers":[]}`:                                                                    ocispec.MediaTypeImageManifest,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[]}`: MediaTypeDockerManifest,
	} {
		got, err := manifestMediaType([]byte(body), "")
		if err != nil || got != want {
			t.Errorf("%s: %q, %v", body, got, err)
		}
	}
	if _, err := manifestMediaType([]byte(`{"schemaVersion":1,"fsLayers":[]}`), MediaTypeDockerSchema1JWS); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("schema1: %v", err)
	}
	if _, err := manifestMediaType([]byte(`nope`), ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("junk: %v", err)
	}
	if _, err := manifestMediaType([]byte(`{"schemaVersion":2,"mediaType":"application/x-other"}`), ""); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("unknown type: %v", err)
	}
}

func TestPlatforms(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "x86_64": "linux/amd64", "linux/aarch64": "linux/arm64/v8",
		"linux/arm64/v8": "linux/arm64/v8", "linux/armhf": "linux/arm/v7", "linux/arm": "linux/arm/v7",
		"linux/arm/7": "linux/arm/v7", "linux/amd64/v1": "linux/amd64", "LINUX/AMD64/V3": "linux/amd64/v3",
		"windows/amd64": "windows/amd64", "linux/i386": "linux/386",
	} {
		p, err := ParsePlatform(in)
		if err != nil || PlatformString(p) != want {
			t.Errorf("ParsePlatform(%q) = %q, %v; want %q", in, PlatformString(p), err, want)
		}
	}
	for _, bad := range []string{"", "linux/", "a/b/c/d"} {
		if _, err := ParsePlatform(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParsePlatform(%q): %v", bad, err)
		}
	}
	if d := DefaultPlatform(); d.OS != "linux" || d.Architecture == "" {
		t.Errorf("DefaultPlatform = %+v", d)
	}
	plat := func(s string) *ocispec.Platform { p, _ := ParsePlatform(s); return &p }
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		{Digest: "sha256:1", Platform: plat("linux/arm/v5")},
		{Digest: "sha256:2", Platform: plat("linux/arm/v7")},
		{Digest: "sha256:3", Platform: plat("linux/arm/v6")},
		{Digest: "sha256:4", Platform: plat("linux/amd64/v2")},
		{Digest: "sha256:5"},
	}}
	for want, digest := range map[string]digest.Digest{
		"linux/arm/v7": "sha256:2", "linux/arm/v6": "sha256:3", "linux/arm/v8": "sha256:2",
		"linux/arm64": "sha256:2", "linux/amd64/v3": "sha256:4",
	} {
		d, err := SelectManifest(idx, *plat(want))
		if err != nil || d.Digest != digest {
			t.Errorf("SelectManifest(%s) = %s, %v; want %s", want, d.Digest, err, digest)
		}
	}
	if _, err := SelectManifest(idx, *plat("linux/amd64")); err == nil || !strings.Contains(err.Error(), "offers linux/arm/v5, linux/arm/v7, linux/arm/v6, linux/amd64/v2") {
		t.Errorf("amd64 v1 cannot run v2: %v", err)
	}
}

func TestContentRangeStart(t *testing.T) {
	for in, want := range map[string]int64{"bytes 100-199/200": 100, "bytes 0-0/*": 0} {
		if n, ok := contentRangeStart(in); !ok || n != want {
			t.Errorf("%q: %d %v", in, n, ok)
		}
	}
	for _, in := range []string{"", "items 1-2/3", "bytes x-1/2", "bytes -5-1/2"} {
		if _, ok := contentRangeStart(in); ok {
			t.Errorf("%q accepted", in)
		}
	}
}

// fakeRegistry serves fixed manifests, for what the real registry will not store.
func fakeRegistry(t *testing.T, contentType, body string) (string, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &n
}

func TestSchema1AndSizeLimits(t *testing.T) {
	ctx := context.Background()
	host, _ := fakeRegistry(t, MediaTypeDockerSchema1JWS, `{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}`)
	ref, _ := ParseReference(host + "/x:1")
	c := &Client{}
	if _, _, err := c.FetchManifest(ctx, ref); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("schema1: %v", err)
	}
	big := `{"schemaVersion":2,"config":{},"layers":[],"annotations":{"x":"` + strings.Repeat("a", 5<<20) + `"}}`
	host, _ = fakeRegistry(t, ocispec.MediaTypeImageManifest, big)
	ref, _ = ParseReference(host + "/x:1")
	if _, _, err := c.FetchManifest(ctx, ref); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("5 MiB manifest: %v", err)
	}
	c = &Client{MaxManifestSize: 6 << 20}
	if _, _, err := c.FetchManifest(ctx, ref); err != nil {
		t.Errorf("5 MiB manifest with a 6 MiB limit: %v", err)
	}
}

func TestTagsPagination(t *testing.T) {
	pages := map[string]string{
		"":  `{"name":"x","tags":["a","b"]}`,
		"b": `{"name":"x","tags":["c","d"]}`,
		"d": `{"name":"x","tags":["e"]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		last := r.URL.Query().Get("last")
		switch last {
		case "":
			w.Header().Set("Link", `</v2/x/tags/list?n=2&last=b>; rel="next"`)
		case "b":
			w.Header().Set("Link", `</v2/x/tags/list?n=2&last=d>; rel="next"`)
		}
		w.Write([]byte(pages[last]))
	}))
	defer srv.Close()
	ref, _ := ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/x")
	tags, err := (&Client{}).Tags(context.Background(), ref)
	if err != nil || strings.Join(tags, ",") != "a,b,c,d,e" {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
}

func TestNormalizeKey(t *testing.T) {
	for in, want := range map[string]string{
		"https://index.docker.io/v1/": "docker.io", "registry-1.docker.io": "docker.io",
		"http://h:5000/v1/": "h:5000", "h:5000": "h:5000", "https://ghcr.io": "ghcr.io",
	} {
		if got := normalizeKey(in); got != want {
			t.Errorf("normalizeKey(%q) = %q, want %q", in, got, want)
		}
	}
}
