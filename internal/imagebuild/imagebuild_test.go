package imagebuild

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func sampleFiles() []File {
	return []File{
		Dir("etc", 0),
		Reg("etc/hello", 0o600, "hello\n"),
		{Name: "/etc/setuid", Mode: 0o4755, Uid: 1000, Gid: 2000, Data: []byte("x")},
		Symlink("etc/link", "hello"),
		{Name: "etc/hard", Type: tar.TypeLink, Linkname: "etc/hello"},
		{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "dev/loop0", Type: tar.TypeBlock, Devmajor: 7},
		{Name: "fifo", Type: tar.TypeFifo},
		{Name: "opaque", Type: tar.TypeDir, Xattrs: map[string]string{"trusted.overlay.opaque": "y", "user.b": "2"}},
		Reg("opaque/.wh..wh..opq", 0, ""),
		Reg(".wh.gone", 0, ""),
		{Name: "dated", Data: []byte("d"), ModTime: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
}

func TestLayerTar(t *testing.T) {
	data := LayerTar(sampleFiles())
	if !bytes.Equal(data, LayerTar(sampleFiles())) {
		t.Fatal("LayerTar is not deterministic")
	}
	tr := tar.NewReader(bytes.NewReader(data))
	var got []*tar.Header
	contents := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		contents[h.Name] = string(b)
		got = append(got, h)
	}
	if len(got) != len(sampleFiles()) {
		t.Fatalf("%d entries, want %d", len(got), len(sampleFiles()))
	}
	check := func(i int, name string, typ byte, mode int64) *tar.Header {
		t.Helper()
		h := got[i]
		if h.Name != name || h.Typeflag != typ || h.Mode != mode {
			t.Errorf("entry %d: %q type %q mode %o, want %q %q %o", i, h.Name, h.Typeflag, h.Mode, name, typ, mode)
		}
		return h
	}
	check(0, "etc/", tar.TypeDir, 0o755)
	check(1, "etc/hello", tar.TypeReg, 0o600)
	if h := check(2, "etc/setuid", tar.TypeReg, 0o4755); h.Uid != 1000 || h.Gid != 2000 || h.Uname != "" {
		t.Errorf("owner %d:%d %q", h.Uid, h.Gid, h.Uname)
	}
	if h := check(3, "etc/link", tar.TypeSymlink, 0o777); h.Linkname != "hello" {
		t.Errorf("symlink target %q", h.Linkname)
	}
	check(4, "etc/hard", tar.TypeLink, 0o644)
	if h := check(5, "dev/null", tar.TypeChar, 0o666); h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("dev/null %d:%d", h.Devmajor, h.Devminor)
	}
	check(6, "dev/loop0", tar.TypeBlock, 0o600)
	check(7, "fifo", tar.TypeFifo, 0o600)
	h := check(8, "opaque/", tar.TypeDir, 0o755)
	if h.PAXRecords["SCHILY.xattr.trusted.overlay.opaque"] != "y" || h.PAXRecords["SCHILY.xattr.user.b"] != "2" {
		t.Errorf("xattrs %v", h.PAXRecords)
	}
	check(9, "opaque/.wh..wh..opq", tar.TypeReg, 0o644)
	check(10, ".wh.gone", tar.TypeReg, 0o644)
	if h := check(11, "dated", tar.TypeReg, 0o644); !h.ModTime.Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("mtime %v", h.ModTime)
	}
	if !got[0].ModTime.Equal(time.Unix(0, 0)) {
		t.Errorf("default mtime %v", got[0].ModTime)
	}
	if contents["etc/hello"] != "hello\n" {
		t.Errorf("content %q", contents["etc/hello"])
	}
}

func TestCompressRoundTrip(t *testing.T) {
	data := LayerTar(sampleFiles())
	for _, c := range []Compression{Gzip, Uncompressed, Zstd} {
		z, err := Compress(data, c)
		if err != nil {
			t.Fatal(c, err)
		}
		z2, _ := Compress(data, c)
		if !bytes.Equal(z, z2) {
			t.Errorf("%v is not deterministic", c)
		}
		back, err := Decompress(z, c)
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("%v round trip: %v", c, err)
		}
		got, err := CompressionOf(LayerMediaType(OCI, c))
		if err != nil || got != c {
			t.Errorf("CompressionOf(%v) = %v, %v", LayerMediaType(OCI, c), got, err)
		}
		if got, _ := CompressionOf(LayerMediaType(DockerSchema2, c)); got != c {
			t.Errorf("docker %v", c)
		}
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	img := Image{
		Layers: []Layer{{Tar: LayerTar(sampleFiles())}, {Tar: LayerTar([]File{Reg("b", 0, "b")}), Compression: Zstd}},
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/true"}, Env: []string{"PATH=/bin"}},
	}
	a, err := Build(img)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(img)
	if a.Digest() != b.Digest() || !reflect.DeepEqual(a.Blobs, b.Blobs) {
		t.Fatal("Build is not deterministic")
	}
	if len(a.Blobs) != 4 { // 2 layers, config, manifest
		t.Errorf("%d blobs", len(a.Blobs))
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip || m.Layers[1].MediaType != ocispec.MediaTypeImageLayerZstd {
		t.Errorf("layer media types %s, %s", m.Layers[0].MediaType, m.Layers[1].MediaType)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(a.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture == "" || len(cfg.RootFS.DiffIDs) != 2 || len(cfg.History) != 2 {
		t.Errorf("config %+v", cfg)
	}
	if a.Desc.Platform == nil || a.Desc.Platform.OS != "linux" {
		t.Errorf("descriptor platform %+v", a.Desc.Platform)
	}
}

func TestLayoutKeepsOtherRefs(t *testing.T) {
	dir := t.TempDir()
	one, _ := Build(Image{Config: ocispec.ImageConfig{Cmd: []string{"one"}}})
	two, _ := Build(Image{Config: ocispec.ImageConfig{Cmd: []string{"two"}}})
	for _, w := range []struct {
		ref string
		b   Built
	}{{"a", one}, {"b", one}, {"a", two}} {
		if err := WriteOCILayout(dir, w.ref, w.b); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	for _, m := range idx.Manifests {
		refs[m.Annotations[ocispec.AnnotationRefName]] = m.Digest.String()
	}
	want := map[string]string{"a": two.Digest().String(), "b": one.Digest().String()}
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("refs %v, want %v", refs, want)
	}
	for d, data := range two.Blobs {
		got, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("blob %s: %v", d, err)
		}
	}
}

func TestIndexRejectsMixedFormats(t *testing.T) {
	a, _ := Build(Image{})
	b, _ := Build(Image{Format: DockerSchema2})
	if _, err := Index(a, b); err == nil {
		t.Error("Index mixed OCI and Docker images")
	}
	if _, err := Index(); err == nil {
		t.Error("Index of nothing")
	}
}
