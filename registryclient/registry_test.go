package registryclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/registrytest"
	rc "github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fastRetry keeps retry waits short in tests.
var fastRetry = rc.RetryPolicy{MinDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	r.Read(b)
	return b
}

// memSource is a Source (and a blob map) for tests.
type memSource map[digest.Digest][]byte

func (m memSource) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := m[d.Digest]
	if !ok {
		return nil, fmt.Errorf("%s: %w", d.Digest, errdefs.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m memSource) add(mediaType string, b []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	m[d.Digest] = b
	return d
}

// image builds an image manifest with layers of the given sizes into src.
func image(src memSource, seed uint64, platform ocispec.Platform, sizes ...int) ocispec.Descriptor {
	cfg, _ := json.Marshal(ocispec.Image{Platform: platform, RootFS: ocispec.RootFS{Type: "layers"}, Config: ocispec.ImageConfig{Env: []string{fmt.Sprintf("SEED=%d", seed)}}})
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: src.add(ocispec.MediaTypeImageConfig, cfg)}
	m.SchemaVersion = 2
	for i, n := range sizes {
		m.Layers = append(m.Layers, src.add(ocispec.MediaTypeImageLayerGzip, randomBytes(seed*100+uint64(i), n)))
	}
	mb, _ := json.Marshal(m)
	return src.add(ocispec.MediaTypeImageManifest, mb)
}

func index(src memSource, mediaType string, entries ...ocispec.Descriptor) ocispec.Descriptor {
	idx := ocispec.Index{MediaType: mediaType, Manifests: entries}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	return src.add(mediaType, b)
}

func withPlatform(d ocispec.Descriptor, p string) ocispec.Descriptor {
	pl, err := rc.ParsePlatform(p)
	if err != nil {
		panic(err)
	}
	if p == "unknown/unknown" {
		pl = ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	}
	d.Platform = &pl
	return d
}

func mustRef(t testing.TB, s string) rc.Reference {
	t.Helper()
	r, err := rc.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func readBlob(t testing.TB, c *rc.Client, ref rc.Reference, d ocispec.Descriptor, off int64) ([]byte, error) {
	t.Helper()
	r, err := c.OpenBlob(ctxT(t, time.Minute), ref, d, off)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestPushPullRoundTrip(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			ctx := ctxT(t, time.Minute)
			c := &rc.Client{Retry: fastRetry, ChunkedUploads: chunked}
			src := memSource{}
			root := image(src, 1, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 1000, 1<<20, rc.UploadChunkSize+12345)
			ref := mustRef(t, reg.Ref(fmt.Sprintf("round/trip%v:v1", chunked)))

			// Blobs one by one, then the manifest by tag.
			var m ocispec.Manifest
			json.Unmarshal(src[root.Digest], &m)
			for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				if err := c.PushBlob(ctx, ref, d, bytes.NewReader(src[d.Digest])); err != nil {
					t.Fatal(err)
				}
				st, err := c.StatBlob(ctx, ref, d.Digest)
				if err != nil || st.Size != d.Size {
					t.Fatalf("StatBlob %s = %+v, %v", d.Digest, st, err)
				}
			}
			// Pushing again is a no-op (HEAD finds it).
			if err := c.PushBlob(ctx, ref, m.Layers[0], strings.NewReader("not read")); err != nil {
				t.Fatal(err)
			}
			pushed, err := c.PushManifest(ctx, ref, root.MediaType, src[root.Digest])
			if err != nil || pushed.Digest != root.Digest {
				t.Fatalf("PushManifest = %+v, %v", pushed, err)
			}

			got, err := c.Resolve(ctx, ref)
			if err != nil || got.Digest != root.Digest || got.Size != root.Size || got.MediaType != root.MediaType {
				t.Fatalf("Resolve = %+v, %v; want %+v", got, err, root)
			}
			for _, r := range []rc.Reference{ref, ref.WithDigest(root.Digest)} {
				d, body, err := c.FetchManifest(ctx, r)
				if err != nil || d.Digest != root.Digest || !bytes.Equal(body, src[root.Digest]) {
					t.Fatalf("FetchManifest(%s) = %+v, %v", r, d, err)
				}
			}
			d, _, err := c.FetchImageManifest(ctx, ref, nil)
			if err != nil || d.Digest != root.Digest {
				t.Fatalf("FetchImageManifest = %+v, %v", d, err)
			}
			cfg, err := c.FetchBlob(ctx, ref, m.Config)
			if err != nil || !bytes.Equal(cfg, src[m.Config.Digest]) {
				t.Fatalf("FetchBlob config: %v", err)
			}
			for _, l := range m.Layers {
				b, err := readBlob(t, c, ref, l, 0)
				if err != nil || !bytes.Equal(b, src[l.Digest]) {
					t.Fatalf("blob %s: %d bytes, %v", l.Digest, len(b), err)
				}
				off := l.Size / 3
				b, err = readBlob(t, c, ref, l, off)
				if err != nil || !bytes.Equal(b, src[l.Digest][off:]) {
					t.Fatalf("blob %s from %d: %d bytes, %v", l.Digest, off, len(b), err)
				}
				b, err = readBlob(t, c, ref, l, l.Size)
				if err != nil || len(b) != 0 {
					t.Fatalf("blob at its end: %d bytes, %v", len(b), err)
				}
			}
			if _, err := readBlob(t, c, ref, m.Layers[0], m.Layers[0].Size+1); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("offset past the end: %v", err)
			}

			// Missing things are ErrNotFound.
			missing := ocispec.Descriptor{Digest: digest.FromString("missing"), Size: 7}
			if _, err := c.OpenBlob(ctx, ref, missing, 0); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("missing blob: %v", err)
			}
			if _, _, err := c.FetchManifest(ctx, ref.WithTag("nope")); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("missing tag: %v", err)
			}
			var re *rc.Error
			if _, err := c.Resolve(ctx, mustRef(t, reg.Ref("no/such:repo"))); !errors.As(err, &re) || re.StatusCode != 404 || re.Temporary() {
				t.Errorf("missing repo: %v", err)
			}

			// More tags, then list them.
			for _, tag := range []string{"v2", "v3"} {
				if _, err := c.PushManifest(ctx, ref.WithTag(tag), root.MediaType, src[root.Digest]); err != nil {
					t.Fatal(err)
				}
			}
			tags, err := c.Tags(ctx, ref)
			slices.Sort(tags)
			if err != nil || !slices.Equal(tags, []string{"v1", "v2", "v3"}) {
				t.Fatalf("Tags = %v, %v", tags, err)
			}

			// Cross-repository mount, then Push of the whole image elsewhere.
			other := mustRef(t, reg.Ref(fmt.Sprintf("other/repo%v:x", chunked)))
			ok, err := c.MountBlob(ctx, other, ref.Repository, m.Layers[1])
			if err != nil || !ok {
				t.Fatalf("MountBlob = %v, %v", ok, err)
			}
			if _, err := c.StatBlob(ctx, other, m.Layers[1].Digest); err != nil {
				t.Fatalf("mounted blob: %v", err)
			}
			ok, err = c.MountBlob(ctx, other, "no/where", ocispec.Descriptor{Digest: digest.FromString("x")})
			if err != nil || ok {
				t.Fatalf("MountBlob of a missing blob = %v, %v", ok, err)
			}
			if err := c.Push(ctx, other, root, src); err != nil {
				t.Fatal(err)
			}
			if d, err := c.Resolve(ctx, other); err != nil || d.Digest != root.Digest {
				t.Fatalf("Resolve after Push = %+v, %v", d, err)
			}
			repos, err := c.Catalog(ctx, reg.Host)
			if err != nil || !slices.Contains(repos, other.Repository) || !slices.Contains(repos, ref.Repository) {
				t.Fatalf("Catalog = %v, %v", repos, err)
			}
		})
	}
}

func TestIndexPlatformSelection(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := ctxT(t, time.Minute)
	c := &rc.Client{Retry: fastRetry}
	src := memSource{}
	amd := image(src, 10, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 100)
	arm := image(src, 11, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, 100)
	armv6 := image(src, 12, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, 100)
	att := image(src, 13, ocispec.Platform{}, 10)
	entries := []ocispec.Descriptor{withPlatform(att, "unknown/unknown"), withPlatform(amd, "linux/amd64"), withPlatform(arm, "linux/arm64/v8"), withPlatform(armv6, "linux/arm/v6")}
	for _, mt := range []string{ocispec.MediaTypeImageIndex, rc.MediaTypeDockerManifestList} {
		root := index(src, mt, entries...)
		ref := mustRef(t, reg.Ref("multi/arch:"+strings.NewReplacer(".", "-", "/", "-", "+", "-").Replace(mt)))
		if err := c.Push(ctx, ref, root, src); err != nil {
			t.Fatal(err)
		}
		d, _, err := c.FetchManifest(ctx, ref)
		if err != nil || d.MediaType != mt || d.Digest != root.Digest {
			t.Fatalf("FetchManifest of index = %+v, %v", d, err)
		}
		for p, want := range map[string]digest.Digest{
			"linux/arm64": arm.Digest, "linux/aarch64": arm.Digest, "linux/amd64": amd.Digest, "x86_64": amd.Digest,
			"linux/arm/v7": armv6.Digest, "linux/arm/v6": armv6.Digest, "linux/amd64/v3": amd.Digest,
		} {
			pl, err := rc.ParsePlatform(p)
			if err != nil {
				t.Fatal(err)
			}
			d, body, err := c.FetchImageManifest(ctx, ref, &pl)
			if err != nil || d.Digest != want || !bytes.Equal(body, src[want]) || d.Platform == nil {
				t.Errorf("%s: FetchImageManifest(%s) = %+v, %v; want %s", mt, p, d, err, want)
			}
		}
		// Any platform: the first real one, never the attestation.
		d, _, err = c.FetchImageManifest(ctx, ref, &ocispec.Platform{})
		if err != nil || d.Digest != amd.Digest {
			t.Errorf("any platform = %+v, %v", d, err)
		}
		// The host's default.
		d, _, err = c.FetchImageManifest(ctx, ref, nil)
		if def := rc.DefaultPlatform(); err != nil && (def.Architecture == "amd64" || def.Architecture == "arm64") {
			t.Errorf("default platform %v: %v", def, err)
		}
		_, _, err = c.FetchImageManifest(ctx, ref, &ocispec.Platform{OS: "linux", Architecture: "s390x"})
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "linux/s390x") ||
			!strings.Contains(err.Error(), "offers linux/amd64, linux/arm64/v8, linux/arm/v6") {
			t.Errorf("no match: %v", err)
		}
	}

	// Nested indexes are followed, up to a limit.
	nref := mustRef(t, reg.Ref("nested/idx:base"))
	if err := c.Push(ctx, nref, arm, src); err != nil {
		t.Fatal(err)
	}
	cur := withPlatform(arm, "linux/arm64")
	for depth := 1; depth <= 6; depth++ {
		cur = withPlatform(index(src, ocispec.MediaTypeImageIndex, cur), "linux/arm64")
		byDigest := nref.WithDigest(cur.Digest)
		byDigest.Tag = ""
		if _, err := c.PushManifest(ctx, byDigest, cur.MediaType, src[cur.Digest]); err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		pl := ocispec.Platform{OS: "linux", Architecture: "arm64"}
		d, _, err := c.FetchImageManifest(ctx, byDigest, &pl)
		if depth <= 4 && (err != nil || d.Digest != arm.Digest) {
			t.Errorf("depth %d: %+v, %v", depth, d, err)
		}
		if depth > 4 && (!errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "nested")) {
			t.Errorf("depth %d: want ErrInvalid, got %v", depth, err)
		}
	}
}

func TestTLSBasicAuth(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Htpasswd: map[string]string{"alice": "s3cret"}})
	ctx := ctxT(t, time.Minute)
	ref := mustRef(t, reg.Ref("private/img:1"))
	src := memSource{}
	root := image(src, 20, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 5000)

	anon := &rc.Client{Retry: fastRetry, CertsDir: reg.CertsDir}
	if err := anon.Push(ctx, ref, root, src); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("anonymous push: %v", err)
	}
	wrong := &rc.Client{Retry: fastRetry, CertsDir: reg.CertsDir, Credentials: rc.StaticCredentials{reg.Host: {Username: "alice", Password: "nope"}}}
	if _, err := wrong.Resolve(ctx, ref); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	c := &rc.Client{Retry: fastRetry, CertsDir: reg.CertsDir, Credentials: rc.StaticCredentials{reg.Host: {Username: "alice", Password: "s3cret"}}}
	if err := c.Push(ctx, ref, root, src); err != nil {
		t.Fatal(err)
	}
	d, _, err := c.FetchImageManifest(ctx, ref, &ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil || d.Digest != root.Digest {
		t.Fatalf("pull: %+v, %v", d, err)
	}
	if err := c.Login(ctx, reg.Host, rc.Credential{Username: "alice", Password: "s3cret"}); err != nil {
		t.Errorf("Login: %v", err)
	}
	if err := c.Login(ctx, reg.Host, rc.Credential{Username: "alice", Password: "bad"}); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("Login with a bad password: %v", err)
	}

	// The certs.d CA verifies the server; without it, verification fails.
	for _, withCA := range []bool{true, false} {
		cl := &rc.Client{CertsDir: reg.CertsDir}
		if !withCA {
			cl.CertsDir = t.TempDir()
		}
		cfg, err := cl.TLSConfig(reg.Host)
		if err != nil {
			t.Fatal(err)
		}
		cfg.InsecureSkipVerify = false // loopback is insecure by default; check the CA itself
		cfg.ServerName = "127.0.0.1"
		conn, err := tls.Dial("tcp", reg.Host, cfg)
		if withCA && err != nil {
			t.Errorf("TLS with the certs.d CA: %v", err)
		}
		if !withCA && err == nil {
			t.Errorf("TLS without the CA verified")
		}
		if conn != nil {
			conn.Close()
		}
	}
}

func TestClientCertificates(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{ClientCerts: true})
	ctx := ctxT(t, time.Minute)
	ref := mustRef(t, reg.Ref("mtls/img:1"))
	src := memSource{}
	root := image(src, 25, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 100)
	// Without the client certificate the handshake fails (the scheme probe
	// then finds no plain HTTP either).
	noCert := &rc.Client{Retry: fastRetry, CertsDir: t.TempDir()}
	if _, err := noCert.Resolve(ctx, ref); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("no client certificate: want a TLS error, got %v", err)
	}
	c := &rc.Client{Retry: fastRetry, CertsDir: reg.CertsDir}
	if err := c.Push(ctx, ref, root, src); err != nil {
		t.Fatalf("push with a client certificate from certs.d: %v", err)
	}
	if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != root.Digest {
		t.Fatalf("resolve: %v", err)
	}
}

func TestBearerTokenAuth(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{Token: true, Htpasswd: map[string]string{"bob": "hunter2"}})
	ctx := ctxT(t, time.Minute)
	ref := mustRef(t, reg.Ref("team/app:1"))
	src := memSource{}
	root := image(src, 30, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3000, 4000)

	if err := (&rc.Client{Retry: fastRetry}).Push(ctx, ref, root, src); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("anonymous push: %v", err)
	}
	c := &rc.Client{Retry: fastRetry, Credentials: rc.StaticCredentials{reg.Host: {Username: "bob", Password: "hunter2"}}}
	before := reg.TokenRequests()
	if err := c.Push(ctx, ref, root, src); err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	json.Unmarshal(src[root.Digest], &m)
	if _, _, err := c.FetchImageManifest(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if b, err := readBlob(t, c, ref, l, 0); err != nil || !bytes.Equal(b, src[l.Digest]) {
			t.Fatalf("blob: %v", err)
		}
	}
	// One token for push (pull,push), one for pull: cached per scope.
	if n := reg.TokenRequests() - before; n > 3 {
		t.Errorf("%d token requests for one push and one pull; tokens are not cached", n)
	}

	// Concurrent pulls on a fresh client share one token fetch, and
	// progress callbacks see every byte.
	fresh := &rc.Client{Retry: fastRetry, Credentials: rc.StaticCredentials{reg.Host: {Username: "bob", Password: "hunter2"}}}
	before = reg.TokenRequests()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(l ocispec.Descriptor) {
			defer wg.Done()
			r, err := fresh.OpenBlob(ctx, ref, l, 0)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			var last int64
			r.(*rc.BlobReader).SetProgress(func(off int64) { last = off })
			if _, err := io.Copy(io.Discard, r); err != nil {
				errs <- err
			} else if last != l.Size {
				errs <- fmt.Errorf("progress ended at %d of %d", last, l.Size)
			}
		}(m.Layers[i%len(m.Layers)])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := reg.TokenRequests() - before; n != 1 {
		t.Errorf("16 concurrent pulls fetched %d tokens, want 1", n)
	}

	// An identity token (refresh token) is exchanged with POST.
	idc := &rc.Client{Retry: fastRetry, Credentials: rc.StaticCredentials{reg.Host: {IdentityToken: "hunter2"}}}
	if _, err := idc.Resolve(ctx, ref); err != nil {
		t.Errorf("with an identity token: %v", err)
	}
	if err := c.Login(ctx, reg.Host, rc.Credential{Username: "bob", Password: "hunter2"}); err != nil {
		t.Errorf("Login: %v", err)
	}
	if err := c.Login(ctx, reg.Host, rc.Credential{Username: "bob", Password: "x"}); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("Login with a bad password: %v", err)
	}

	// Anonymous bearer tokens (a public registry).
	pub := registrytest.Start(t, registrytest.Options{Token: true})
	pref := mustRef(t, pub.Ref("pub/app:1"))
	ac := &rc.Client{Retry: fastRetry}
	if err := ac.Push(ctx, pref, root, src); err != nil {
		t.Fatal(err)
	}
	if d, err := ac.Resolve(ctx, pref); err != nil || d.Digest != root.Digest {
		t.Fatalf("anonymous token pull: %v", err)
	}
}

func TestDockerConfigCredentials(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Htpasswd: map[string]string{"carol": "pa:ss"}})
	ctx := ctxT(t, time.Minute)
	ref := mustRef(t, reg.Ref("cfg/img:1"))
	src := memSource{}
	root := image(src, 40, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 100)

	dir := t.TempDir()
	writeConfig := func(v any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(map[string]any{"auths": map[string]any{"http://" + reg.Host + "/v1/": map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("carol:pa:ss"))}}})
	t.Setenv("DOCKER_CONFIG", dir)
	c := &rc.Client{Retry: fastRetry, Credentials: rc.DockerConfig{}}
	if err := c.Push(ctx, ref, root, src); err != nil {
		t.Fatalf("push with auths: %v", err)
	}

	// A credential helper, found on PATH.
	bin := t.TempDir()
	script := "#!/bin/sh\nread host\nif [ \"$host\" = \"" + reg.Host + "\" ]; then echo '{\"ServerURL\":\"'$host'\",\"Username\":\"carol\",\"Secret\":\"pa:ss\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-berthtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	writeConfig(map[string]any{"credHelpers": map[string]string{reg.Host: "berthtest"}})
	cred, err := rc.DockerConfig{}.Get(ctx, reg.Host)
	if err != nil || cred.Username != "carol" || cred.Password != "pa:ss" {
		t.Fatalf("credHelpers: %+v, %v", cred, err)
	}
	c2 := &rc.Client{Retry: fastRetry, Credentials: rc.DockerConfig{Dir: dir}}
	if d, err := c2.Resolve(ctx, ref); err != nil || d.Digest != root.Digest {
		t.Fatalf("pull with a helper: %v", err)
	}
	writeConfig(map[string]any{"credsStore": "berthtest"})
	if cred, err := (rc.DockerConfig{}).Get(ctx, "other.example"); err != nil || !cred.IsZero() {
		t.Errorf("credsStore for an unknown host: %+v, %v", cred, err)
	}
	if cred, err := (rc.DockerConfig{}).Get(ctx, reg.Host); err != nil || cred.Username != "carol" {
		t.Errorf("credsStore: %+v, %v", cred, err)
	}
	writeConfig(map[string]any{"auths": map[string]any{"https://index.docker.io/v1/": map[string]string{"identitytoken": "tok"}}})
	if cred, err := (rc.DockerConfig{}).Get(ctx, "docker.io"); err != nil || cred.IdentityToken != "tok" {
		t.Errorf("docker.io identity token: %+v, %v", cred, err)
	}
}

// TestDockerHubNames runs the docker.io code path offline: a Transport
// that sends every connection to a local TLS registry stands in for
// registry-1.docker.io, and the credential comes from config.json under
// Docker Hub's legacy key.
func TestDockerHubNames(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Htpasswd: map[string]string{"hubuser": "hubpass"}})
	ctx := ctxT(t, time.Minute)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(reg.CA)
	var dialed []string
	var mu sync.Mutex
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			return (&net.Dialer{}).DialContext(ctx, network, reg.Host)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	dir := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{rc.DockerHubConfigKey: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("hubuser:hubpass"))}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &rc.Client{Transport: tr, Retry: fastRetry, Credentials: rc.DockerConfig{Dir: dir}}
	src := memSource{}
	root := image(src, 80, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 1000)
	ref := mustRef(t, "alpine:3.20")
	if err := c.Push(ctx, ref, root, src); err != nil {
		t.Fatal(err)
	}
	if d, _, err := c.FetchImageManifest(ctx, mustRef(t, "docker.io/library/alpine:3.20"), nil); err != nil || d.Digest != root.Digest {
		t.Fatalf("pull: %+v, %v", d, err)
	}
	if err := c.Login(ctx, "https://index.docker.io/v1/", rc.Credential{Username: "hubuser", Password: "hubpass"}); err != nil {
		t.Errorf("Login: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range dialed {
		if a != "registry-1.docker.io:443" {
			t.Errorf("dialed %s, want only registry-1.docker.io:443", a)
		}
	}
	// The registry stored it as library/alpine.
	direct := &rc.Client{CertsDir: reg.CertsDir, Credentials: rc.StaticCredentials{reg.Host: {Username: "hubuser", Password: "hubpass"}}}
	if d, err := direct.Resolve(ctx, mustRef(t, reg.Ref("library/alpine:3.20"))); err != nil || d.Digest != root.Digest {
		t.Errorf("stored under library/alpine: %v", err)
	}
}
