package registryclient_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/registrytest"
	"github.com/berthrt/berth/internal/testutil"
	rc "github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// realImage builds an image whose layers are real gzipped tars and whose
// config lists their diff IDs, so other tools accept it.
func realImage(t *testing.T, src memSource, arch string, files map[string]string) (ocispec.Descriptor, ocispec.Descriptor) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tb.Bytes())
	zw.Close()
	layer := src.add(ocispec.MediaTypeImageLayerGzip, gz.Bytes())
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tb.Bytes())}},
	})
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: src.add(ocispec.MediaTypeImageConfig, cfg), Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	return src.add(ocispec.MediaTypeImageManifest, mb), layer
}

// TestSkopeoInterop checks both directions against another client: skopeo
// copies what registryclient pushed (verifying every digest), and
// registryclient pulls what skopeo pushed, converted to Docker schema2.
func TestSkopeoInterop(t *testing.T) {
	t.Parallel()
	skopeo := testutil.RequiresCommand(t, "skopeo")
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := ctxT(t, 2*time.Minute)
	c := &rc.Client{Retry: fastRetry}
	src := memSource{}
	amd, _ := realImage(t, src, "amd64", map[string]string{"hello": "amd64\n"})
	arm, armLayer := realImage(t, src, "arm64", map[string]string{"hello": "arm64\n"})
	root := index(src, ocispec.MediaTypeImageIndex, withPlatform(amd, "linux/amd64"), withPlatform(arm, "linux/arm64"))
	ours := mustRef(t, reg.Ref("interop/ours:1"))
	if err := c.Push(ctx, ours, root, src); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, skopeo, append([]string{"--insecure-policy"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
		return out
	}
	raw := run("inspect", "--raw", "--tls-verify=false", "docker://"+ours.String())
	if !bytes.Equal(raw, src[root.Digest]) {
		t.Errorf("skopeo sees a different index:\n%s", raw)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	run("copy", "-q", "--override-arch", "arm64", "--src-tls-verify=false", "docker://"+ours.String(), "oci:"+layout+":x")
	got, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", armLayer.Digest.Encoded()))
	if err != nil || !bytes.Equal(got, src[armLayer.Digest]) {
		t.Fatalf("skopeo copied the arm64 layer wrong: %v", err)
	}

	theirs := mustRef(t, reg.Ref("interop/theirs:2"))
	run("copy", "-q", "--format", "v2s2", "--dest-tls-verify=false", "oci:"+layout+":x", "docker://"+theirs.String())
	desc, body, err := c.FetchImageManifest(ctx, theirs, nil)
	if err != nil || desc.MediaType != rc.MediaTypeDockerManifest {
		t.Fatalf("pull of skopeo's push: %+v, %v", desc, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil || len(m.Layers) != 1 || m.Layers[0].MediaType != rc.MediaTypeDockerLayer {
		t.Fatalf("manifest: %s", body)
	}
	b, err := readBlob(t, c, theirs, m.Layers[0], 0)
	if err != nil || !bytes.Equal(b, src[armLayer.Digest]) {
		t.Fatalf("layer: %v", err)
	}
	if _, err := c.FetchBlob(ctx, theirs, m.Config); err != nil {
		t.Fatalf("config: %v", err)
	}
}
