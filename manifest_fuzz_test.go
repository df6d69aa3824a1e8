//go:build linux

package berth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fuzzRegistry is an in-memory registry transport for FuzzManifestDecode:
// the tag answers top, any digest answers child (so the client's own
// digest check decides), and every other request is a 404.
type fuzzRegistry struct {
	top, child []byte
	ct         string
}

func (f *fuzzRegistry) RoundTrip(r *http.Request) (*http.Response, error) {
	resp := &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{}, Request: r, Body: io.NopCloser(strings.NewReader(""))}
	var body []byte
	switch {
	case r.URL.Path == "/v2/":
		resp.StatusCode = http.StatusOK
		return resp, nil
	case strings.HasSuffix(r.URL.Path, "/manifests/latest"):
		body = f.top
	case strings.Contains(r.URL.Path, "/manifests/sha256:"):
		body = f.child
	default:
		return resp, nil
	}
	resp.StatusCode = http.StatusOK
	resp.Header.Set("Content-Type", f.ct)
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.ContentLength = int64(len(body))
	if r.Method != http.MethodHead {
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, nil
}

// childMark in a fuzzed index is replaced by the hex of the child's
// digest, so that the fuzzer can reach nested manifests.
const childMark = "@CHILD@"

// FuzzManifestDecode runs the manifest half of Pull on fuzzed bytes: the
// registry client's manifest fetch, media type detection and index walk
// (platform selection, nesting, loops), then Pull's manifest validation
// and config decoding. It must never panic, must fail only with the
// documented error kinds, and a manifest it accepts must be safe to act
// on: valid digests, bounded sizes, layers the store can unpack.
func FuzzManifestDecode(f *testing.F) {
	for _, sd := range manifestSeeds() {
		f.Add(sd.top, sd.child, sd.ct)
	}
	limit := int64(1 << 30)
	f.Fuzz(func(t *testing.T, top, child []byte, ct string) {
		top = bytes.ReplaceAll(top, []byte(childMark), []byte(digest.FromBytes(child).Encoded()))
		c := &registryclient.Client{
			Transport: &fuzzRegistry{top: top, child: child, ct: ct},
			Retry:     registryclient.RetryPolicy{Attempts: 1},
		}
		ref, err := registryclient.ParseReference("127.0.0.1:5000/fuzz/image:latest")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*ocispec.Platform{nil, {OS: "linux", Architecture: "arm64"}} {
			desc, body, err := c.FetchImageManifest(context.Background(), ref, p)
			if err != nil {
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrDigestMismatch) {
					t.Fatalf("fetch: error of no documented kind: %v", err)
				}
				continue
			}
			if registryclient.IsIndex(desc.MediaType) || digest.FromBytes(body) != desc.Digest {
				t.Fatalf("fetch returned %+v for a body hashing to %s", desc, digest.FromBytes(body))
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(body, &m); err != nil {
				continue // Pull: ErrInvalid
			}
			if err := validateManifest(&m, limit); err != nil {
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("validate: error of no documented kind: %v", err)
				}
				continue
			}
			if m.Config.Digest.Validate() != nil {
				t.Fatalf("accepted config digest %q", m.Config.Digest)
			}
			for _, l := range m.Layers {
				if l.Digest.Validate() != nil || l.Size < 0 || l.Size > limit || layer.CheckMediaType(l.MediaType) != nil {
					t.Fatalf("accepted layer %+v", l)
				}
			}
			img, _, err := parseImageConfig(child)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("config: error of no documented kind: %v", err)
				}
				continue
			}
			// Pull hands the DiffIDs and ChainIDs to the store, which
			// validates them; computing them must not fail.
			_ = chainIDs(img.RootFS.DiffIDs)
		}
	})
}

type manifestSeed struct {
	top, child []byte
	ct         string
}

// manifestSeeds are the seeds of FuzzManifestDecode: a manifest, an index
// (whose entries name the child manifest), an index naming itself, a huge
// layer, a config typed as a layer, schema1 and a traversing digest.
func manifestSeeds() []manifestSeed {
	var seeds []manifestSeed
	cfg := `{"architecture":"amd64","os":"linux","config":{"User":"../../etc","Env":["NOEQUALS"]},"rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("a", 64) + `"]}}`
	l := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("b", 64) + `","size":10}`
	man := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("c", 64) + `","size":2},"layers":[` + l + `]}`
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + childMark + `","size":` + strconv.Itoa(len(man)) + `,"platform":{"os":"linux","architecture":"amd64"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + childMark + `","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`
	seeds = append(seeds, manifestSeed{[]byte(man), []byte(cfg), ocispec.MediaTypeImageManifest})
	seeds = append(seeds, manifestSeed{[]byte(idx), []byte(man), ocispec.MediaTypeImageIndex})
	seeds = append(seeds, manifestSeed{[]byte(idx), []byte(idx), ""})
	seeds = append(seeds, manifestSeed{[]byte(strings.Replace(man, `"size":10`, `"size":4611686018427387904`, 1)), []byte(cfg), registryclient.MediaTypeDockerManifest})
	seeds = append(seeds, manifestSeed{[]byte(strings.Replace(man, "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar", 1)), []byte(`{}`), ""})
	seeds = append(seeds, manifestSeed{[]byte(`{"schemaVersion":1,"fsLayers":[]}`), []byte(`null`), registryclient.MediaTypeDockerSchema1})
	seeds = append(seeds, manifestSeed{[]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:../../x","platform":{"os":"linux","architecture":"amd64"}}]}`), []byte(``), "text/plain"})
	return seeds
}

// TestWriteManifestFuzzSeeds regenerates testdata/fuzz/FuzzManifestDecode
// from manifestSeeds (BERTH_WRITE_SEEDS=1).
func TestWriteManifestFuzzSeeds(t *testing.T) {
	if os.Getenv("BERTH_WRITE_SEEDS") == "" {
		t.Skip("set BERTH_WRITE_SEEDS=1 to regenerate the fuzz seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzManifestDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, sd := range manifestSeeds() {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(sd.top)) + ")\n[]byte(" + strconv.Quote(string(sd.child)) + ")\nstring(" + strconv.Quote(sd.ct) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
