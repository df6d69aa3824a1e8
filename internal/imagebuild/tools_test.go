package imagebuild_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeBinary stands in for the toolbox where a test only inspects images.
var fakeBinary = []byte("#!/bin/toolbox\n")

func toolboxImage(t *testing.T, f imagebuild.Format, c imagebuild.Compression, arch string) imagebuild.Built {
	t.Helper()
	b, err := imagebuild.Build(imagebuild.Image{
		Layers:   []imagebuild.Layer{{Tar: imagebuild.LayerTar(imagebuild.Toolbox(fakeBinary)), Compression: c}},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/toolbox", "true"}, Env: []string{"PATH=/bin"}},
		Platform: ocispec.Platform{Architecture: arch},
		Format:   f,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// skopeoInspect runs `skopeo inspect [args] ref` and decodes its JSON.
func skopeoInspect(t *testing.T, ref string, args ...string) map[string]any {
	t.Helper()
	skopeo := testutil.RequiresCommand(t, "skopeo")
	cmd := exec.Command(skopeo, append(append([]string{"inspect"}, args...), ref)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	return m
}

func TestOCILayoutWithSkopeoAndUmoci(t *testing.T) {
	for _, c := range []imagebuild.Compression{imagebuild.Gzip, imagebuild.Zstd, imagebuild.Uncompressed} {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			b := toolboxImage(t, imagebuild.OCI, c, "")
			if err := imagebuild.WriteOCILayout(dir, "v1", b); err != nil {
				t.Fatal(err)
			}
			m := skopeoInspect(t, "oci:"+dir+":v1")
			if m["Digest"] != b.Digest().String() || m["Architecture"] != runtime.GOARCH || m["Os"] != "linux" {
				t.Errorf("skopeo inspect: %v", m)
			}
			if layers, _ := m["Layers"].([]any); len(layers) != 1 {
				t.Errorf("skopeo sees layers %v", m["Layers"])
			}

			umoci := testutil.RequiresCommand(t, "umoci")
			out, err := exec.Command(umoci, "ls", "--layout", dir).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "v1" {
				t.Errorf("umoci ls: %q %v", out, err)
			}
			if c == imagebuild.Zstd {
				return // umoci 0.4 does not unpack zstd layers
			}
			// umoci unpacks the layer: every applet is a symlink to toolbox.
			bundle := filepath.Join(t.TempDir(), "bundle")
			out, err = exec.Command(umoci, "unpack", "--rootless", "--image", dir+":v1", bundle).CombinedOutput()
			if err != nil {
				t.Fatalf("umoci unpack: %v\n%s", err, out)
			}
			got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "bin", "toolbox"))
			if err != nil || !bytes.Equal(got, fakeBinary) {
				t.Errorf("unpacked toolbox: %q %v", got, err)
			}
			for _, a := range toolbox.Applets() {
				if l, err := os.Readlink(filepath.Join(bundle, "rootfs", "bin", a)); err != nil || l != "toolbox" {
					t.Errorf("unpacked /bin/%s -> %q %v", a, l, err)
				}
			}
			st, err := os.Stat(filepath.Join(bundle, "rootfs", "tmp"))
			if err != nil || st.Mode().Perm() != 0o777 || st.Mode()&os.ModeSticky == 0 {
				t.Errorf("unpacked /tmp: %v %v", st.Mode(), err)
			}
		})
	}
}

func TestDockerArchiveWithSkopeo(t *testing.T) {
	for _, f := range []imagebuild.Format{imagebuild.DockerSchema2, imagebuild.OCI} {
		t.Run(f.String(), func(t *testing.T) {
			b := toolboxImage(t, f, imagebuild.Gzip, "")
			file := filepath.Join(t.TempDir(), "image.tar")
			var buf bytes.Buffer
			if err := imagebuild.WriteDockerArchive(&buf, "example.com:5000/toolbox:v2", b); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			m := skopeoInspect(t, "docker-archive:"+file)
			if m["Architecture"] != runtime.GOARCH || m["Os"] != "linux" {
				t.Errorf("skopeo inspect: %v", m)
			}
			cfg := skopeoInspect(t, "docker-archive:"+file, "--config")
			if c, _ := cfg["config"].(map[string]any); c == nil || c["Cmd"] == nil {
				t.Errorf("config %v", cfg)
			}
			// Copy it into an OCI layout: skopeo reads every layer.
			skopeo := testutil.RequiresCommand(t, "skopeo")
			dst := t.TempDir()
			out, err := exec.Command(skopeo, "copy", "docker-archive:"+file, "oci:"+dst+":copied").CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo copy: %v\n%s", err, out)
			}
		})
	}
}

func TestOCIArchiveWithSkopeo(t *testing.T) {
	b := toolboxImage(t, imagebuild.OCI, imagebuild.Gzip, "")
	var buf bytes.Buffer
	if err := imagebuild.WriteOCIArchive(&buf, "latest", b); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "oci.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m := skopeoInspect(t, "oci-archive:"+file+":latest")
	if m["Digest"] != b.Digest().String() {
		t.Errorf("skopeo inspect: %v", m)
	}
	var again bytes.Buffer
	imagebuild.WriteOCIArchive(&again, "latest", b)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("WriteOCIArchive is not deterministic")
	}
}

func TestMultiArchIndex(t *testing.T) {
	for _, f := range []imagebuild.Format{imagebuild.OCI, imagebuild.DockerSchema2} {
		t.Run(f.String(), func(t *testing.T) {
			amd := toolboxImage(t, f, imagebuild.Gzip, "amd64")
			arm := toolboxImage(t, f, imagebuild.Zstd, "arm64")
			idx, err := imagebuild.Index(amd, arm)
			if err != nil {
				t.Fatal(err)
			}
			if !idx.IsIndex() || idx.Config != nil {
				t.Fatalf("index desc %+v", idx.Desc)
			}
			imgs, err := idx.Images()
			if err != nil || len(imgs) != 2 || imgs[1].Digest() != arm.Digest() || len(imgs[1].Blobs) != 3 {
				t.Fatalf("Images: %v %v", len(imgs), err)
			}
			if f == imagebuild.DockerSchema2 {
				// skopeo reads OCI layouts only when index.json lists OCI
				// media types; check the manifest list's JSON instead.
				var list ocispec.Index
				if err := json.Unmarshal(idx.Manifest, &list); err != nil {
					t.Fatal(err)
				}
				if list.MediaType != imagebuild.MediaTypeDockerManifestList || len(list.Manifests) != 2 ||
					list.Manifests[0].MediaType != imagebuild.MediaTypeDockerManifest ||
					list.Manifests[1].Platform.Architecture != "arm64" {
					t.Errorf("manifest list %s", idx.Manifest)
				}
				return
			}
			dir := t.TempDir()
			if err := imagebuild.WriteOCILayout(dir, "multi", idx); err != nil {
				t.Fatal(err)
			}
			for _, arch := range []string{"amd64", "arm64"} {
				m := skopeoInspect(t, "oci:"+dir+":multi", "--override-arch", arch)
				if m["Architecture"] != arch {
					t.Errorf("override-arch %s: %v", arch, m)
				}
			}
			skopeo := testutil.RequiresCommand(t, "skopeo")
			raw, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir+":multi").Output()
			if err != nil || !bytes.Equal(raw, idx.Manifest) {
				t.Errorf("skopeo inspect --raw: %s %v", raw, err)
			}
		})
	}
}
