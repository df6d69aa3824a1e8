package toolboxtest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBinaryIsCached(t *testing.T) {
	a := toolboxtest.Binary(t)
	if b := toolboxtest.Binary(t); a != b {
		t.Errorf("Binary: %s then %s", a, b)
	}
	st, err := os.Stat(a)
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("binary %s: %v", a, err)
	}
}

func TestLayout(t *testing.T) {
	dir := toolboxtest.Layout(t)
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "latest" {
		t.Errorf("index.json %s", raw)
	}
	if idx.Manifests[0].Digest != toolboxtest.Built(t).Digest() {
		t.Error("toolbox image is not deterministic")
	}
}
