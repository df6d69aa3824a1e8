//go:build linux

package berth_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/testutil"
)

func TestSaveLoadInteropWithSkopeo(t *testing.T) {
	skopeo := testutil.RequiresCommand(t, "skopeo")
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	dir := t.TempDir()

	dockerTar := filepath.Join(dir, "docker.tar")
	f, err := os.Create(dockerTar)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Save(ctx, f, []string{img.Name}, berth.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ociTar := filepath.Join(dir, "oci.tar")
	f, _ = os.Create(ociTar)
	if err := rt.Save(ctx, f, []string{img.Name}, berth.SaveOptions{Format: berth.FormatOCI}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	layoutDir := filepath.Join(dir, "berth-layout")
	if err := rt.SaveLayout(ctx, layoutDir, []string{img.Name}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+layoutDir+":latest").CombinedOutput(); err != nil {
		t.Fatalf("skopeo inspect of berth's layout: %v\n%s", err, out)
	}
	// skopeo reads both archives berth wrote.
	for _, src := range []string{"docker-archive:" + dockerTar, "oci-archive:" + ociTar} {
		out, err := exec.Command(skopeo, "inspect", "--raw", src).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", src, err, out)
		}
	}
	// skopeo writes an OCI layout and a docker archive that berth loads.
	layout := filepath.Join(dir, "layout")
	if out, err := exec.Command(skopeo, "copy", "docker-archive:"+dockerTar, "oci:"+layout+":copied").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to oci: %v\n%s", err, out)
	}
	skopeoArchive := filepath.Join(dir, "skopeo-docker.tar")
	if out, err := exec.Command(skopeo, "copy", "oci:"+layout+":copied", "docker-archive:"+skopeoArchive+":skopeo/made:v2").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to docker-archive: %v\n%s", err, out)
	}

	rt2 := newRuntime(t)
	imgs, err := rt2.LoadLayout(ctx, layout)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("load layout: %v %v", imgs, err)
	}
	out, _, err := run(t, rt2, berth.ContainerConfig{Image: imgs[0], Cmd: []string{"echo", "from layout"}})
	if err != nil || out != "from layout\n" {
		t.Fatalf("run loaded layout: %q %v", out, err)
	}
	sf, err := os.Open(skopeoArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	imgs, err = rt2.Load(ctx, sf)
	if err != nil || len(imgs) != 1 || imgs[0].Name != "docker.io/skopeo/made:v2" {
		t.Fatalf("load skopeo docker-archive: %v %v", imgs, err)
	}
	out, _, err = run(t, rt2, berth.ContainerConfig{Image: imgs[0], Cmd: []string{"echo", "from archive"}})
	if err != nil || out != "from archive\n" {
		t.Fatalf("run loaded archive: %q %v", out, err)
	}
	// berth's own docker archive round-trips too.
	bf, _ := os.Open(dockerTar)
	defer bf.Close()
	imgs, err = rt2.Load(ctx, bf)
	if err != nil || len(imgs) != 1 || imgs[0].ID() != img.ID() {
		t.Fatalf("load berth archive: %v %v", imgs, err)
	}
}

func TestLoadRejectsBadArchives(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	for name, data := range map[string][]byte{
		"not a tar":         []byte("garbage that is not a tar archive at all, not even close......"),
		"empty index":       tarOf(t, map[string]string{"index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":2}]}`}),
		"bad manifest.json": tarOf(t, map[string]string{"manifest.json": `{"not":"a list"}`}),
		"escaping config":   tarOf(t, map[string]string{"manifest.json": `[{"Config":"../../etc/passwd","Layers":[]}]`}),
	} {
		_, err := rt.Load(ctx, bytes.NewReader(data))
		if !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", name, err)
		}
	}
	imgs, _ := rt.Images(ctx)
	if len(imgs) != 0 {
		t.Errorf("a bad archive stored images: %v", imgs)
	}
}

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}
