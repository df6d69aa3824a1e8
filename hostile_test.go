//go:build linux

package berth_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/registrytest"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/registryclient"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The hostile-image corpus: crafted manifests, indexes, configs and layers
// served through a real registry (or, where the real registry refuses to
// store them, through a lying one on loopback) and through Runtime.Load.
// Every case ends in a typed error or is neutralised; afterwards nothing
// outside the root has changed, the store passes Check, and no image is
// recorded for a failed pull.

// hostileLimits are the layer limits of the runtimes under test: low
// enough that the entry and byte bombs stop early, high enough for the
// toolbox image.
var hostileLimits = layer.ApplyOptions{MaxEntries: 20000, MaxBytes: 256 << 20}

// newHostileRuntime is newRuntime with hostileLimits.
func newHostileRuntime(t testing.TB) *berth.Runtime {
	t.Helper()
	return newRuntimeWith(t, berth.Config{LayerLimits: hostileLimits})
}

// rawManifest is a manifest or index as bytes, with its media type.
type rawManifest struct {
	mediaType string
	body      []byte
}

func (m rawManifest) digest() digest.Digest { return digest.FromBytes(m.body) }

// rawImage is what a hostile registry serves for one reference: the
// manifest (or index) under the tag, manifests it names (by digest), and
// blobs.
type rawImage struct {
	top      rawManifest
	children []rawManifest
	blobs    [][]byte
	// lies are manifests the lying registry serves under a digest that
	// is not theirs.
	lies map[digest.Digest]rawManifest
	// lieBlobs are blobs served under a digest that is not theirs.
	lieBlobs map[digest.Digest][]byte
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func descOf(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func configJSON(t testing.TB, ic ocispec.ImageConfig, diffIDs ...digest.Digest) []byte {
	t.Helper()
	if diffIDs == nil {
		diffIDs = []digest.Digest{}
	}
	return mustJSON(t, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ic,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
}

func manifestJSON(t testing.TB, cfg ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	t.Helper()
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	return mustJSON(t, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers})
}

func indexJSON(t testing.TB, ms ...ocispec.Descriptor) []byte {
	t.Helper()
	return mustJSON(t, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: ms})
}

// oneLayer is an image of one gzip layer made of tarBytes; edit lets a
// case tamper with the layer and config descriptors before the manifest
// is written.
func oneLayer(t testing.TB, tarBytes []byte, ic ocispec.ImageConfig, edit func(cfg, l *ocispec.Descriptor)) rawImage {
	t.Helper()
	lb := gz(t, tarBytes)
	cb := configJSON(t, ic, digest.FromBytes(tarBytes))
	cd, ld := descOf(ocispec.MediaTypeImageConfig, cb), descOf(ocispec.MediaTypeImageLayerGzip, lb)
	if edit != nil {
		edit(&cd, &ld)
	}
	return rawImage{top: rawManifest{ocispec.MediaTypeImageManifest, manifestJSON(t, cd, ld)}, blobs: [][]byte{cb, lb}}
}

// fromBuilt turns an imagebuild image into a rawImage.
func fromBuilt(t testing.TB, img imagebuild.Image) rawImage {
	t.Helper()
	b, err := imagebuild.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	r := rawImage{top: rawManifest{b.Desc.MediaType, b.Manifest}}
	for d, blob := range b.Blobs {
		if d != b.Desc.Digest {
			r.blobs = append(r.blobs, blob)
		}
	}
	return r
}

// withToolbox is the toolbox image with hostile files added as a second
// layer.
func withToolbox(t testing.TB, files ...imagebuild.File) rawImage {
	t.Helper()
	img := toolboxtest.Image(t)
	img.Layers = append(img.Layers, imagebuild.Layer{Tar: imagebuild.LayerTar(files)})
	return fromBuilt(t, img)
}

// withToolboxTar is the toolbox image with tarBytes as a second layer.
func withToolboxTar(t testing.TB, tarBytes []byte) rawImage {
	t.Helper()
	img := toolboxtest.Image(t)
	img.Layers = append(img.Layers, imagebuild.Layer{Tar: tarBytes})
	return fromBuilt(t, img)
}

// rawTar writes headers and bodies (pairs) as they are, names unchanged.
func rawTar(t testing.TB, pairs ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(pairs); i += 2 {
		h, body := pairs[i].(*tar.Header), pairs[i+1].(string)
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

// toolboxWithConfig is the toolbox image with a changed config.
func toolboxWithConfig(t testing.TB, edit func(*ocispec.ImageConfig)) rawImage {
	t.Helper()
	img := toolboxtest.Image(t)
	edit(&img.Config)
	return fromBuilt(t, img)
}

// pushRaw stores im in the real registry under ref; an error means the
// registry refused it.
func pushRaw(ctx context.Context, ref string, im rawImage) error {
	r, err := registryclient.ParseReference(ref)
	if err != nil {
		return err
	}
	c := &registryclient.Client{}
	for _, b := range im.blobs {
		if err := c.PushBlob(ctx, r, descOf("", b), bytes.NewReader(b)); err != nil {
			return err
		}
	}
	for _, m := range im.children {
		if _, err := c.PushManifest(ctx, r.WithDigest(m.digest()), m.mediaType, m.body); err != nil {
			return err
		}
	}
	_, err = c.PushManifest(ctx, r, im.top.mediaType, im.top.body)
	return err
}

// liar is a registry on loopback that serves whatever it is given, for
// what a real registry refuses to store (a lying or compromised one
// serves it anyway): manifests by tag or by any "digest", blobs by digest.
type liar struct {
	host      string
	manifests map[string]rawManifest // "repo/object"
	blobs     map[string][]byte      // digest
}

func startLiar(t testing.TB) *liar {
	t.Helper()
	l := &liar{manifests: map[string]rawManifest{}, blobs: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(l.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	l.host = ln.Addr().String()
	return l
}

func (l *liar) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if i := strings.LastIndex(p, "/manifests/"); i >= 0 {
		m, ok := l.manifests[p[:i]+"/"+p[i+len("/manifests/"):]]
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", m.mediaType)
		w.Header().Set("Content-Length", strconv.Itoa(len(m.body)))
		if r.Method != http.MethodHead {
			w.Write(m.body)
		}
		return
	}
	if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
		b, ok := l.blobs[p[i+len("/blobs/"):]]
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
		return
	}
	http.NotFound(w, r)
}

// put serves im under repo:tag.
func (l *liar) put(repo string, im rawImage) {
	for _, b := range im.blobs {
		l.blobs[digest.FromBytes(b).String()] = b
	}
	for _, m := range im.children {
		l.manifests[repo+"/"+m.digest().String()] = m
	}
	for d, b := range im.lieBlobs {
		l.blobs[d.String()] = b
	}
	for d, m := range im.lies {
		l.manifests[repo+"/"+d.String()] = m
	}
	l.manifests[repo+"/latest"] = im.top
}

// hostCanary is what the host looks like outside the root: a directory the
// hostile layers aim at, and /etc/passwd.
type hostCanary struct {
	dir    string
	passwd [32]byte
}

func newCanary(t testing.TB) *hostCanary {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	return &hostCanary{dir: dir, passwd: sha256.Sum256(p)}
}

func (c *hostCanary) check(t testing.TB, what string) {
	t.Helper()
	es, _ := os.ReadDir(c.dir)
	if len(es) != 1 || es[0].Name() != "keep" {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("%s: canary dir now holds %v", what, names)
	}
	if b, _ := os.ReadFile(filepath.Join(c.dir, "keep")); string(b) != "keep" {
		t.Errorf("%s: canary file changed: %q", what, b)
	}
	if p, _ := os.ReadFile("/etc/passwd"); sha256.Sum256(p) != c.passwd {
		t.Errorf("%s: /etc/passwd changed", what)
	}
	for _, f := range []string{"/pwned", "/etc/pwned", "/tmp/pwned"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s: %s exists", what, f)
		}
	}
}

// storeClean checks the store after a case.
func storeClean(t testing.TB, rt *berth.Runtime, what string) {
	t.Helper()
	if problems, err := rt.Check(context.Background()); err != nil || len(problems) != 0 {
		t.Errorf("%s: check: %v %v", what, problems, err)
	}
}

// peakRSSGrowth runs fn and returns how far the process's peak resident
// set rose above its resident set before fn (VmHWM, reset first through
// clear_refs).
func peakRSSGrowth(t testing.TB, fn func()) int64 {
	t.Helper()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset peak RSS: %v", err)
	}
	before := procStatusKB(t, "VmRSS")
	fn()
	return (procStatusKB(t, "VmHWM") - before) << 10
}

func procStatusKB(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// maxBombRSS bounds the peak memory growth of one bomb case.
const maxBombRSS = 128 << 20

// runBoundingRSS runs fn; for a bomb case it also fails the test when the
// process's peak resident set grows by more than maxBombRSS.
func runBoundingRSS(t testing.TB, bomb bool, fn func()) {
	t.Helper()
	if !bomb {
		fn()
		return
	}
	grew := peakRSSGrowth(t, fn)
	t.Logf("peak RSS growth %d MiB", grew>>20)
	if grew > maxBombRSS {
		t.Errorf("peak RSS grew by %d MiB", grew>>20)
	}
}

// gzipBomb is a gzip layer whose tar holds one file of 16 GiB of zeros
// (of which 256 MiB are in the stream, 256 KiB compressed); the declared size crosses MaxBytes at once.
func gzipBomb(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	const size = 16 << 30
	if err := tw.WriteHeader(&tar.Header{Name: "bomb", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	// Only the first 256 MiB are written: the limit trips at the header,
	// and the stream then ends early, which is an error too.
	for range 256 {
		zw.Write(zero)
	}
	zw.Close()
	return buf.Bytes()
}

// zeroFilesBomb is a gzip layer of many 32 MiB files of zeros: every
// header fits the limit, their sum does not.
func zeroFilesBomb(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	zero := make([]byte, 1<<20)
	for i := range 16 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("z%d", i), Mode: 0o644, Size: 32 << 20, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		for range 32 {
			tw.Write(zero)
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// manyEntries is a gzip layer of total empty files: the first distinct
// of them with distinct names, the rest all named "same" (so that the
// stream compresses about 1000:1 and is quick to make; the entry limit
// trips within the distinct part anyway).
func manyEntries(t testing.TB, distinct, total int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := kgzip.NewWriterLevel(&buf, kgzip.BestSpeed)
	tw := tar.NewWriter(zw)
	h := &tar.Header{Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
	for i := range distinct {
		h.Name = strconv.FormatInt(int64(i), 36)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Flush()
	var one bytes.Buffer
	ow := tar.NewWriter(&one)
	h.Name = "same"
	ow.WriteHeader(h)
	ow.Flush()
	block := bytes.Repeat(one.Bytes(), 2048)
	for n := distinct; n < total; n += 2048 {
		zw.Write(block[:min(2048, total-n)*one.Len()])
	}
	zw.Write(make([]byte, 1024)) // end of archive
	zw.Close()
	return buf.Bytes()
}

// zstdWindowBomb is a zstd layer whose frame asks for a 2 GiB window, far
// over the decoder's limit.
func zstdWindowBomb(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithWindowSize(1<<20), zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "z", Mode: 0o644, Size: 1 << 20, Typeflag: tar.TypeReg})
	tw.Write(make([]byte, 1<<20))
	tw.Close()
	zw.Close()
	b := buf.Bytes()
	// Frame header: magic (4 bytes), descriptor, then the window
	// descriptor unless the frame is a single segment. Declare a window
	// of 2^(10+21) = 2 GiB: exponent 21, mantissa 0.
	if b[4]&0x20 != 0 {
		t.Fatal("zstd wrote a single-segment frame")
	}
	b[5] = 21 << 3
	return b
}

// rawLayerImage is an image with one layer blob given as it is, of
// mediaType, and a DiffID that does not matter (the limits trip first).
func rawLayerImage(t testing.TB, mediaType string, blob []byte) rawImage {
	t.Helper()
	cb := configJSON(t, ocispec.ImageConfig{}, digest.FromString("never reached"))
	cd, ld := descOf(ocispec.MediaTypeImageConfig, cb), descOf(mediaType, blob)
	return rawImage{top: rawManifest{ocispec.MediaTypeImageManifest, manifestJSON(t, cd, ld)}, blobs: [][]byte{cb, blob}}
}

type pullCase struct {
	name string
	img  func(t testing.TB, canary string) rawImage
	// liar serves the case from the lying registry (a real one refuses
	// to store it).
	liar bool
	// want is the error kind of the pull; nil when the pull succeeds
	// and then must be neutralised (run checks that).
	want error
	// run checks a pulled image: a container from it fails cleanly, or
	// the hostile part has no effect.
	run func(t *testing.T, rt *berth.Runtime, img *berth.Image)
	// bomb measures peak memory growth during the pull.
	bomb bool
}

func hostileUser(user string) func(t testing.TB, _ string) rawImage {
	return func(t testing.TB, _ string) rawImage {
		return toolboxWithConfig(t, func(c *ocispec.ImageConfig) { c.User = user })
	}
}

// startFails checks that a container of img cannot start, with an error
// (not a panic, not a hang) wrapping want (any error when nil), and leaves
// nothing behind.
func startFails(want error) func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
	return func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"/bin/toolbox", "id"}})
		switch {
		case err == nil:
			t.Errorf("a container of a hostile config started")
		case want != nil && !errors.Is(err, want):
			t.Errorf("start: want %v, got %v", want, err)
		case len(err.Error()) > 4096:
			t.Errorf("error of %d bytes", len(err.Error()))
		default:
			t.Logf("start: %v", err)
		}
		cs, _ := rt.Containers(ctx, true)
		for _, c := range cs {
			c.Delete(ctx, berth.DeleteOptions{Force: true})
		}
	}
}

func runOutput(t *testing.T, rt *berth.Runtime, img *berth.Image, cmd ...string) (string, error) {
	t.Helper()
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: append([]string{"/bin/toolbox"}, cmd...)})
	return out, err
}

func pullCases() []pullCase {
	var self = func(t testing.TB, _ string) rawImage {
		// An index whose only entry is "itself": no body can hash to a
		// digest it contains, so the lying registry serves the index
		// under a digest that is not its own.
		fake := digest.FromString("the index itself")
		idx := indexJSON(t, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: fake, Size: 300, Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}})
		top := rawManifest{ocispec.MediaTypeImageIndex, idx}
		return rawImage{top: top, lies: map[digest.Digest]rawManifest{fake: top}}
	}
	return []pullCase{
		{name: "layer-size-2^62", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return oneLayer(t, imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("f", 0o644, "x")}), ocispec.ImageConfig{}, func(_, l *ocispec.Descriptor) { l.Size = 1 << 62 })
		}},
		{name: "config-over-limit", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, func(c, _ *ocispec.Descriptor) { c.Size = 64 << 20 })
		}},
		{name: "config-really-over-limit", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			tb := imagebuild.LayerTar(nil)
			cb := configJSON(t, ocispec.ImageConfig{Labels: map[string]string{"pad": strings.Repeat("p", 9<<20)}}, digest.FromBytes(tb))
			lb := gz(t, tb)
			return rawImage{top: rawManifest{ocispec.MediaTypeImageManifest, manifestJSON(t, descOf(ocispec.MediaTypeImageConfig, cb), descOf(ocispec.MediaTypeImageLayerGzip, lb))}, blobs: [][]byte{cb, lb}}
		}},
		{name: "layer-typed-as-index", want: berth.ErrUnsupported, img: func(t testing.TB, _ string) rawImage {
			return oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, func(_, l *ocispec.Descriptor) { l.MediaType = ocispec.MediaTypeImageIndex })
		}},
		{name: "config-typed-as-layer", want: berth.ErrUnsupported, img: func(t testing.TB, _ string) rawImage {
			return oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, func(c, _ *ocispec.Descriptor) { c.MediaType = ocispec.MediaTypeImageLayerGzip })
		}},
		{name: "layer-unknown-media-type", want: berth.ErrUnsupported, img: func(t testing.TB, _ string) rawImage {
			return oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, func(_, l *ocispec.Descriptor) { l.MediaType = "application/x-hostile" })
		}},
		{name: "manifest-unknown-media-type", liar: true, want: berth.ErrUnsupported, img: func(t testing.TB, _ string) rawImage {
			im := oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, nil)
			im.top.body = bytes.Replace(im.top.body, []byte(ocispec.MediaTypeImageManifest), []byte("application/vnd.hostile.manifest+json"), 1)
			im.top.mediaType = "application/vnd.hostile.manifest+json"
			return im
		}},
		{name: "index-refers-to-itself", liar: true, want: berth.ErrDigestMismatch, img: self},
		{name: "index-loop-via-two", liar: true, want: berth.ErrDigestMismatch, img: func(t testing.TB, _ string) rawImage {
			p := &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
			fakeA := digest.FromString("a")
			b := indexJSON(t, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: fakeA, Size: 10, Platform: p})
			a := rawManifest{ocispec.MediaTypeImageIndex, indexJSON(t, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b)), Platform: p})}
			return rawImage{top: a, children: []rawManifest{{ocispec.MediaTypeImageIndex, b}}, lies: map[digest.Digest]rawManifest{fakeA: a}}
		}},
		{name: "indexes-nested-too-deep", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			im := oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, nil)
			cur := im.top
			for range 8 {
				im.children = append(im.children, cur)
				cur = rawManifest{ocispec.MediaTypeImageIndex, indexJSON(t, ocispec.Descriptor{MediaType: cur.mediaType, Digest: cur.digest(), Size: int64(len(cur.body)), Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}})}
			}
			im.top = cur
			return im
		}},
		{name: "layer-digest-sha512-wrong", liar: true, want: berth.ErrDigestMismatch, img: func(t testing.TB, _ string) rawImage {
			fake := digest.Digest("sha512:" + strings.Repeat("ab", 64))
			im := oneLayer(t, imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("sha512", 0o644, "x")}), ocispec.ImageConfig{}, func(_, l *ocispec.Descriptor) { l.Digest = fake })
			im.lieBlobs = map[digest.Digest][]byte{fake: im.blobs[1]}
			return im
		}},
		{name: "layer-digest-malformed", liar: true, want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, func(_, l *ocispec.Descriptor) { l.Digest = "sha256:../../../../etc/passwd" })
		}},
		{name: "config-digest-md5", liar: true, want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, func(c, _ *ocispec.Descriptor) { c.Digest = "md5:d41d8cd98f00b204e9800998ecf8427e" })
		}},
		{name: "diff-ids-count-mismatch", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			tb := imagebuild.LayerTar(nil)
			cb := configJSON(t, ocispec.ImageConfig{}, digest.FromBytes(tb), digest.FromBytes(tb))
			lb := gz(t, tb)
			return rawImage{top: rawManifest{ocispec.MediaTypeImageManifest, manifestJSON(t, descOf(ocispec.MediaTypeImageConfig, cb), descOf(ocispec.MediaTypeImageLayerGzip, lb))}, blobs: [][]byte{cb, lb}}
		}},
		{name: "diff-id-malformed", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			tb := imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("diffid", 0o644, "x")})
			cb := configJSON(t, ocispec.ImageConfig{}, "sha256:../../../../layers")
			lb := gz(t, tb)
			return rawImage{top: rawManifest{ocispec.MediaTypeImageManifest, manifestJSON(t, descOf(ocispec.MediaTypeImageConfig, cb), descOf(ocispec.MediaTypeImageLayerGzip, lb))}, blobs: [][]byte{cb, lb}}
		}},
		{name: "user-dotdot-etc", img: hostileUser("../../etc"), run: startFails(nil)},
		{name: "user-passwd-line", img: hostileUser("root:x:0:0"), run: startFails(nil)},
		{name: "user-1MB", img: hostileUser(strings.Repeat("u", 1<<20)), run: startFails(berth.ErrInvalid)},
		{name: "user-NUL", img: hostileUser("root\x00evil"), run: startFails(berth.ErrInvalid)},
		{name: "env-without-equals", img: func(t testing.TB, _ string) rawImage {
			return toolboxWithConfig(t, func(c *ocispec.ImageConfig) { c.Env = append(c.Env, "NOEQUALS", "=novalue", "==") })
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			if out, err := runOutput(t, rt, img, "echo", "ok"); err != nil || out != "ok\n" {
				t.Errorf("run: %q %v", out, err)
			}
		}},
		{name: "env-NUL", img: func(t testing.TB, _ string) rawImage {
			return toolboxWithConfig(t, func(c *ocispec.ImageConfig) { c.Env = append(c.Env, "A=\x00b") })
		}, run: startFails(berth.ErrInvalid)},
		{name: "env-1MB", img: func(t testing.TB, _ string) rawImage {
			return toolboxWithConfig(t, func(c *ocispec.ImageConfig) { c.Env = append(c.Env, "BIG="+strings.Repeat("e", 1<<20)) })
		}, run: startFails(nil)},
		{name: "workdir-dotdot", img: func(t testing.TB, _ string) rawImage {
			return toolboxWithConfig(t, func(c *ocispec.ImageConfig) { c.WorkingDir = "../../../" })
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			out, err := runOutput(t, rt, img, "pwd")
			if err == nil && out != "/\n" {
				t.Errorf("working dir ../../../ became %q", out)
			}
			t.Logf("pwd: %q %v", out, err)
		}},
		{name: "workdir-outside-canary", img: func(t testing.TB, c string) rawImage {
			return toolboxWithConfig(t, func(ic *ocispec.ImageConfig) { ic.WorkingDir = "../../../../../../../../" + c + "/newdir" })
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			out, err := runOutput(t, rt, img, "touch", "pwned")
			t.Logf("touch in hostile workdir: %q %v", out, err)
		}},
		{name: "layer-dotdot", want: berth.ErrInvalid, img: func(t testing.TB, c string) rawImage {
			return withToolbox(t, imagebuild.Reg("../../../../../../../.."+c+"/pwned", 0o644, "pwned"))
		}},
		{name: "layer-absolute-paths", img: func(t testing.TB, c string) rawImage {
			return withToolboxTar(t, rawTar(t,
				&tar.Header{Name: c + "/pwned", Typeflag: tar.TypeReg, Mode: 0o644}, "pwned",
				&tar.Header{Name: "/etc/pwned", Typeflag: tar.TypeReg, Mode: 0o644}, "inside",
			))
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			if out, err := runOutput(t, rt, img, "cat", "/etc/pwned"); err != nil || out != "inside" {
				t.Errorf("absolute path not kept inside the image: %q %v", out, err)
			}
		}},
		{name: "layer-symlink-dir-then-write-through", want: berth.ErrInvalid, img: func(t testing.TB, c string) rawImage {
			return withToolbox(t, imagebuild.Symlink("evil", c), imagebuild.Reg("evil/pwned", 0o644, "pwned"))
		}},
		{name: "layer-symlink-relative-then-write-through", want: berth.ErrInvalid, img: func(t testing.TB, c string) rawImage {
			return withToolbox(t, imagebuild.Symlink("evil", "../../../../../../../../.."+c), imagebuild.Reg("evil/pwned", 0o644, "pwned"))
		}},
		{name: "layer-symlink-file-then-overwrite", img: func(t testing.TB, c string) rawImage {
			return withToolbox(t, imagebuild.Symlink("pw", "/etc/passwd"), imagebuild.Reg("pw", 0o644, "pwned"))
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			out, err := runOutput(t, rt, img, "cat", "/pw")
			if err != nil || out != "pwned" {
				t.Errorf("/pw: %q %v", out, err)
			}
		}},
		{name: "layer-hardlink-etc-passwd", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return withToolbox(t, imagebuild.File{Name: "h", Type: tar.TypeLink, Linkname: "/etc/passwd"}, imagebuild.Reg("h", 0o644, "pwned"))
		}},
		{name: "layer-hardlink-dotdot", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return withToolbox(t, imagebuild.File{Name: "h", Type: tar.TypeLink, Linkname: "../../../../../../etc/passwd"})
		}},
		{name: "layer-whiteout-dotdot", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return withToolbox(t, imagebuild.Reg(".wh..", 0o644, ""))
		}},
		{name: "layer-device-nodes", img: func(t testing.TB, _ string) rawImage {
			return withToolbox(t, imagebuild.File{Name: "kmem", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 2},
				imagebuild.File{Name: "sda", Type: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0})
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			// Kept as nodes, but the container may not open them.
			for _, n := range []string{"/kmem", "/sda"} {
				out, err := runOutput(t, rt, img, "stat", n)
				if err != nil || !strings.Contains(out, "type=char") && !strings.Contains(out, "type=block") {
					t.Errorf("stat %s: %q %v", n, out, err)
				}
				out, err = runOutput(t, rt, img, "cat", n)
				var ee *berth.ExitError
				if !errors.As(err, &ee) {
					t.Errorf("cat %s: want a failure, got %q %v", n, out, err)
				}
			}
		}},
		{name: "layer-setuid", img: func(t testing.TB, _ string) rawImage {
			return withToolbox(t, imagebuild.Reg("suid", 0o4755, "#!/bin/sh\n"), imagebuild.Reg("sgid", 0o2755, "x"))
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			out, err := runOutput(t, rt, img, "stat", "/suid", "/sgid")
			if err != nil || !strings.Contains(out, "4755") || !strings.Contains(out, "2755") {
				t.Errorf("setuid/setgid bits not kept: %q %v", out, err)
			}
		}},
		{name: "layer-overlong-name", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return withToolbox(t, imagebuild.Reg(strings.Repeat("d/", 2100)+"f", 0o644, "x"))
		}},
		{name: "layer-overlong-link", want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			return withToolbox(t, imagebuild.Symlink("l", strings.Repeat("x", 5000)))
		}},
		{name: "layer-gzip-bomb-16GiB", want: berth.ErrInvalid, bomb: true, img: func(t testing.TB, _ string) rawImage {
			return rawLayerImage(t, ocispec.MediaTypeImageLayerGzip, gzipBomb(t))
		}},
		{name: "layer-gzip-bomb-many-files", want: berth.ErrInvalid, bomb: true, img: func(t testing.TB, _ string) rawImage {
			return rawLayerImage(t, ocispec.MediaTypeImageLayerGzip, zeroFilesBomb(t))
		}},
		{name: "layer-zstd-window-bomb", want: berth.ErrInvalid, bomb: true, img: func(t testing.TB, _ string) rawImage {
			return rawLayerImage(t, ocispec.MediaTypeImageLayerZstd, zstdWindowBomb(t))
		}},
		{name: "layer-2M-entries", want: berth.ErrInvalid, bomb: true, img: func(t testing.TB, _ string) rawImage {
			return rawLayerImage(t, ocispec.MediaTypeImageLayerGzip, manyEntries(t, 30_000, 2_000_000))
		}},
		{name: "index-10000-platforms", img: func(t testing.TB, _ string) rawImage {
			im := fromBuilt(t, toolboxtest.Image(t))
			child := im.top
			var ms []ocispec.Descriptor
			for i := range 10000 {
				ms = append(ms, ocispec.Descriptor{MediaType: child.mediaType, Digest: child.digest(), Size: int64(len(child.body)),
					Platform: &ocispec.Platform{OS: "linux", Architecture: fmt.Sprintf("hostile%d", i)}})
			}
			ms = append(ms, ocispec.Descriptor{MediaType: child.mediaType, Digest: child.digest(), Size: int64(len(child.body)),
				Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}})
			im.children = []rawManifest{child}
			im.top = rawManifest{ocispec.MediaTypeImageIndex, indexJSON(t, ms...)}
			return im
		}, run: func(t *testing.T, rt *berth.Runtime, img *berth.Image) {
			if out, err := runOutput(t, rt, img, "echo", "ok"); err != nil || out != "ok\n" {
				t.Errorf("run: %q %v", out, err)
			}
		}},
		{name: "manifest-10MB", liar: true, want: berth.ErrInvalid, img: func(t testing.TB, _ string) rawImage {
			im := oneLayer(t, imagebuild.LayerTar(nil), ocispec.ImageConfig{}, nil)
			var m map[string]any
			json.Unmarshal(im.top.body, &m)
			m["annotations"] = map[string]string{"pad": strings.Repeat("p", 10<<20)}
			im.top.body = mustJSON(t, m)
			return im
		}},
	}
}

// repoName is a case name as a repository path component.
func repoName(s string) string {
	return strings.ToLower(strings.NewReplacer("^", "-").Replace(s))
}

// TestHostileImagesPull pulls every case of the corpus through a real
// registry (or the lying one) into one runtime.
func TestHostileImagesPull(t *testing.T) {
	testutil.RequiresCommand(t, "docker-registry")
	rt := newHostileRuntime(t)
	reg := registrytest.Start(t, registrytest.Options{})
	lie := startLiar(t)
	canary := newCanary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cases := pullCases()
	ran := map[string]bool{} // with -run, only some cases run
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ran[c.name] = true
			im := c.img(t, canary.dir)
			repo := "hostile/" + repoName(c.name)
			var ref string
			if c.liar {
				lie.put(repo, im)
				ref = lie.host + "/" + repo + ":latest"
			} else {
				ref = reg.Host + "/" + repo + ":latest"
				if err := pushRaw(ctx, ref, im); err != nil {
					t.Fatalf("the registry refused the case: %v", err)
				}
			}
			im = rawImage{} // let the bytes go before a bomb is measured
			var img *berth.Image
			var err error
			start := time.Now()
			pull := func() { img, err = rt.Pull(ctx, ref, berth.PullOptions{}) }
			runBoundingRSS(t, c.bomb, pull)
			t.Logf("pull: %v after %v", err, time.Since(start).Round(time.Millisecond))
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Errorf("pull: want %v, got %v", c.want, err)
				}
				if _, err := rt.Image(ctx, ref); !errors.Is(err, berth.ErrNotFound) {
					t.Errorf("an image was recorded for a failed pull: %v", err)
				}
			} else if err != nil {
				t.Errorf("pull: %v", err)
			} else if c.run != nil {
				c.run(t, rt, img)
			}
			canary.check(t, c.name)
			storeClean(t, rt, c.name)
		})
	}
	if n := len(cases); n < 25 {
		t.Errorf("only %d pull cases", n)
	}
	// Only the neutralised cases left images.
	imgs, _ := rt.Images(ctx)
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	sort.Strings(names)
	var want []string
	for _, c := range cases {
		if c.want == nil && ran[c.name] {
			host := reg.Host
			if c.liar {
				host = lie.host
			}
			want = append(want, host+"/hostile/"+repoName(c.name)+":latest")
		}
	}
	sort.Strings(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("images after the corpus:\n got %v\nwant %v", names, want)
	}
}

// archEnt is one entry of a hand-made image archive.
type archEnt struct {
	h    *tar.Header
	body []byte
}

func file(name string, body []byte) archEnt {
	return archEnt{&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body}
}

func archive(t testing.TB, ents ...archEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		if e.h.Typeflag == tar.TypeReg {
			e.h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(e.h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	return buf.Bytes()
}

// dockerArchive is a `docker save` archive of one image whose layer is
// layerBlob (DiffID diffID), with more entries appended.
func dockerArchive(t testing.TB, layerBlob []byte, diffIDs []digest.Digest, edit func(*[]map[string]any), more ...archEnt) []byte {
	t.Helper()
	cb := configJSON(t, ocispec.ImageConfig{Cmd: []string{"/x"}}, diffIDs...)
	m := []map[string]any{{"Config": "config.json", "RepoTags": []string{"hostile/load:v1"}, "Layers": []string{"layer.tar"}}}
	if edit != nil {
		edit(&m)
	}
	ents := append([]archEnt{file("config.json", cb), file("layer.tar", layerBlob), file("manifest.json", mustJSON(t, m))}, more...)
	return archive(t, ents...)
}

func okLayer(t testing.TB) ([]byte, []digest.Digest) {
	tb := imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("ok", 0o644, "ok")})
	return tb, []digest.Digest{digest.FromBytes(tb)}
}

// ociArchive is an OCI archive whose index.json is index, with blobs.
func ociArchive(t testing.TB, index []byte, blobs map[digest.Digest][]byte) []byte {
	t.Helper()
	ents := []archEnt{file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)), file("index.json", index)}
	var ds []string
	for d := range blobs {
		ds = append(ds, string(d))
	}
	sort.Strings(ds)
	for _, d := range ds {
		dd := digest.Digest(d)
		ents = append(ents, file("blobs/"+dd.Algorithm().String()+"/"+dd.Encoded(), blobs[dd]))
	}
	return archive(t, ents...)
}

// ociImage is a one-layer OCI image as a layout index.json and blobs;
// edit tampers with the descriptors.
func ociImage(t testing.TB, layerTar []byte, edit func(cfg, l *ocispec.Descriptor)) ([]byte, map[digest.Digest][]byte) {
	t.Helper()
	im := oneLayer(t, layerTar, ocispec.ImageConfig{}, edit)
	blobs := map[digest.Digest][]byte{}
	for _, b := range im.blobs {
		blobs[digest.FromBytes(b)] = b
	}
	blobs[im.top.digest()] = im.top.body
	idx := indexJSON(t, ocispec.Descriptor{MediaType: im.top.mediaType, Digest: im.top.digest(), Size: int64(len(im.top.body))})
	return idx, blobs
}

func ociImageArchive(t testing.TB, layerTar []byte, edit func(cfg, l *ocispec.Descriptor)) []byte {
	t.Helper()
	idx, blobs := ociImage(t, layerTar, edit)
	return ociArchive(t, idx, blobs)
}

type loadCase struct {
	name    string
	archive func(t testing.TB, canary string) []byte
	want    error // nil: the load succeeds (the hostile part is neutralised)
	bomb    bool
}

func loadCases() []loadCase {
	return []loadCase{
		{name: "entry-dotdot", want: berth.ErrInvalid, archive: func(t testing.TB, c string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, nil, file("../../../../../../../.."+c+"/pwned", []byte("pwned")))
		}},
		{name: "entry-absolute", archive: func(t testing.TB, c string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, nil, file(c+"/pwned", []byte("pwned")), file("/etc/pwned", []byte("pwned")))
		}},
		{name: "config-symlink-to-passwd", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			cb := configJSON(t, ocispec.ImageConfig{}, d...)
			_ = cb
			m := []map[string]any{{"Config": "cfg", "Layers": []string{"layer.tar"}}}
			return archive(t, file("layer.tar", l), archEnt{&tar.Header{Name: "cfg", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, nil}, file("manifest.json", mustJSON(t, m)))
		}},
		{name: "hardlink-dotdot", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, nil, archEnt{&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../../../etc/passwd"}, nil})
		}},
		{name: "device-node", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, nil, archEnt{&tar.Header{Name: "kmem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 2, Mode: 0o666}, nil})
		}},
		{name: "fifo-as-layer", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			_, d := okLayer(t)
			cb := configJSON(t, ocispec.ImageConfig{}, d...)
			m := []map[string]any{{"Config": "config.json", "Layers": []string{"fifo"}}}
			return archive(t, file("config.json", cb), archEnt{&tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o644}, nil}, file("manifest.json", mustJSON(t, m)))
		}},
		{name: "layer-path-dotdot", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, func(m *[]map[string]any) { (*m)[0]["Layers"] = []string{"../../../../etc/passwd"} })
		}},
		{name: "layer-path-is-the-archive", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, func(m *[]map[string]any) { (*m)[0]["Layers"] = []string{"."} })
		}},
		{name: "oci-blob-is-a-directory", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			idx, blobs := ociImage(t, imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("d", 0o644, "d")}), nil)
			ents := []archEnt{file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)), file("index.json", idx)}
			for d, b := range blobs {
				if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) { // the layer
					ents = append(ents, archEnt{&tar.Header{Name: "blobs/sha256/" + d.Encoded() + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil})
					continue
				}
				ents = append(ents, file("blobs/sha256/"+d.Encoded(), b))
			}
			return archive(t, ents...)
		}},
		{name: "config-path-absolute", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, func(m *[]map[string]any) { (*m)[0]["Config"] = "/etc/passwd" })
		}},
		{name: "manifest-json-17MB", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, d, func(m *[]map[string]any) { (*m)[0]["Pad"] = strings.Repeat("p", 17<<20) })
		}},
		{name: "diff-ids-mismatch", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			l, d := okLayer(t)
			return dockerArchive(t, l, append(d, d[0]), nil)
		}},
		{name: "wrong-diff-id", want: berth.ErrDigestMismatch, archive: func(t testing.TB, _ string) []byte {
			l, _ := okLayer(t)
			return dockerArchive(t, l, []digest.Digest{digest.FromString("other")}, nil)
		}},
		{name: "layer-dotdot", want: berth.ErrInvalid, archive: func(t testing.TB, c string) []byte {
			tb := imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("../../../../../../.."+c+"/pwned", 0o644, "pwned")})
			return dockerArchive(t, tb, []digest.Digest{digest.FromBytes(tb)}, nil)
		}},
		{name: "layer-symlink-then-write-through", want: berth.ErrInvalid, archive: func(t testing.TB, c string) []byte {
			tb := imagebuild.LayerTar([]imagebuild.File{imagebuild.Symlink("evil", c), imagebuild.Reg("evil/pwned", 0o644, "pwned")})
			return dockerArchive(t, tb, []digest.Digest{digest.FromBytes(tb)}, nil)
		}},
		{name: "layer-gzip-bomb", want: berth.ErrInvalid, bomb: true, archive: func(t testing.TB, _ string) []byte {
			return dockerArchive(t, zeroFilesBomb(t), []digest.Digest{digest.FromString("never reached")}, nil)
		}},
		{name: "oci-indexes-nested-too-deep", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			idx, blobs := ociImage(t, imagebuild.LayerTar(nil), nil)
			var top ocispec.Index
			json.Unmarshal(idx, &top)
			cur := top.Manifests[0]
			for range 8 {
				b := indexJSON(t, ocispec.Descriptor{MediaType: cur.MediaType, Digest: cur.Digest, Size: cur.Size, Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}})
				blobs[digest.FromBytes(b)] = b
				cur = descOf(ocispec.MediaTypeImageIndex, b)
			}
			return ociArchive(t, indexJSON(t, cur), blobs)
		}},
		{name: "oci-index-refers-to-itself", want: berth.ErrDigestMismatch, archive: func(t testing.TB, _ string) []byte {
			fake := digest.FromString("itself")
			b := indexJSON(t, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: fake, Size: 10, Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}})
			return ociArchive(t, indexJSON(t, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: fake, Size: int64(len(b))}), map[digest.Digest][]byte{fake: b})
		}},
		{name: "oci-digest-traversal", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			return ociArchive(t, indexJSON(t, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:../../../../../etc/passwd", Size: 10}), nil)
		}},
		{name: "oci-layer-size-2^62", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			return ociImageArchive(t, imagebuild.LayerTar(nil), func(_, l *ocispec.Descriptor) { l.Size = 1 << 62 })
		}},
		{name: "oci-layer-size-lies", want: berth.ErrDigestMismatch, archive: func(t testing.TB, _ string) []byte {
			return ociImageArchive(t, imagebuild.LayerTar([]imagebuild.File{imagebuild.Reg("lies", 0o644, "x")}), func(_, l *ocispec.Descriptor) { l.Size -= 10 })
		}},
		{name: "oci-config-typed-as-layer", want: berth.ErrUnsupported, archive: func(t testing.TB, _ string) []byte {
			return ociImageArchive(t, imagebuild.LayerTar(nil), func(c, _ *ocispec.Descriptor) { c.MediaType = ocispec.MediaTypeImageLayer })
		}},
		{name: "oci-index-json-17MB", want: berth.ErrInvalid, archive: func(t testing.TB, _ string) []byte {
			idx, blobs := ociImage(t, imagebuild.LayerTar(nil), nil)
			var m map[string]any
			json.Unmarshal(idx, &m)
			m["annotations"] = map[string]string{"pad": strings.Repeat("p", 17<<20)}
			return ociArchive(t, mustJSON(t, m), blobs)
		}},
	}
}

// TestHostileImagesLoad loads every hostile archive of the corpus into
// one runtime.
func TestHostileImagesLoad(t *testing.T) {
	rt := newHostileRuntime(t)
	canary := newCanary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	loaded := 0
	for _, c := range loadCases() {
		t.Run(c.name, func(t *testing.T) {
			data := c.archive(t, canary.dir)
			before, _ := rt.Images(ctx)
			var imgs []*berth.Image
			var err error
			load := func() { imgs, err = rt.Load(ctx, bytes.NewReader(data)) }
			runBoundingRSS(t, c.bomb, load)
			t.Logf("load: %v", err)
			after, _ := rt.Images(ctx)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Errorf("load: want %v, got %v", c.want, err)
				}
				if len(after) != len(before) {
					t.Errorf("a failed load recorded images: %d before, %d after", len(before), len(after))
				}
			} else if err != nil || len(imgs) == 0 {
				t.Errorf("load: %v %v", imgs, err)
			} else {
				loaded++
			}
			canary.check(t, c.name)
			storeClean(t, rt, c.name)
			if es, _ := filepath.Glob(filepath.Join(rt.Root(), ".load-*")); len(es) != 0 {
				t.Errorf("load left %v", es)
			}
		})
	}
}

// FuzzLoadArchive loads fuzzed archives: Load must not panic, must fail
// only with the documented error kinds, must record no image when it
// fails, and must leave nothing outside the root. The seeds are a docker
// and an OCI archive of a small image and some of the hostile corpus.
func FuzzLoadArchive(f *testing.F) {
	rt := newHostileRuntime(f)
	canary := newCanary(f)
	for _, a := range loadSeeds(f, canary.dir) {
		f.Add(a)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		before, err := rt.Images(ctx)
		if err != nil {
			t.Fatal(err)
		}
		imgs, err := rt.Load(ctx, bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, berth.ErrInvalid) && !errors.Is(err, berth.ErrUnsupported) && !errors.Is(err, berth.ErrDigestMismatch) && !errors.Is(err, berth.ErrNotFound) {
				t.Fatalf("load: error of no documented kind: %v", err)
			}
			if after, _ := rt.Images(ctx); len(after) != len(before) {
				t.Fatalf("a failed load recorded images: %d before, %d after", len(before), len(after))
			}
		}
		for _, img := range imgs {
			if err := rt.RemoveImage(ctx, img.Name, berth.RemoveImageOptions{}); err != nil && !errors.Is(err, berth.ErrNotFound) {
				t.Fatalf("remove loaded image %s: %v", img.Name, err)
			}
		}
		canary.check(t, "fuzzed archive")
	})
}

// loadSeeds are the seeds of FuzzLoadArchive: docker archives of a plain
// and a gzip layer, an OCI archive, and the small hostile-load cases.
func loadSeeds(t testing.TB, canary string) [][]byte {
	l, d := okLayer(t)
	out := [][]byte{dockerArchive(t, l, d, nil), dockerArchive(t, gz(t, l), d, nil), ociImageArchive(t, l, nil)}
	for _, c := range loadCases() {
		if c.bomb || strings.Contains(c.name, "17MB") {
			continue
		}
		out = append(out, c.archive(t, canary))
	}
	return out
}

// TestWriteLoadFuzzSeeds regenerates testdata/fuzz/FuzzLoadArchive from
// loadSeeds (BERTH_WRITE_SEEDS=1).
func TestWriteLoadFuzzSeeds(t *testing.T) {
	if os.Getenv("BERTH_WRITE_SEEDS") == "" {
		t.Skip("set BERTH_WRITE_SEEDS=1 to regenerate the fuzz seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLoadArchive")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, a := range loadSeeds(t, "/nonexistent-canary") {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(a)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
