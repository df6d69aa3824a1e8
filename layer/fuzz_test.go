//go:build linux

package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func fuzzSeeds(t testing.TB) [][]byte {
	return [][]byte{
		sampleTar(t),
		mkTar(t, ent{Name: "evil", Type: '2', Link: "../../.."}, ent{Name: "evil/x", Body: "x"}),
		mkTar(t, ent{Name: "s", Type: '2', Link: "/etc/passwd"}, ent{Name: "h", Type: '1', Link: "s"}, ent{Name: "h", Body: "y"}),
		mkTar(t, ent{Name: "d/"}, ent{Name: "d/.wh..wh..opq"}, ent{Name: "d/.wh.f"}, ent{Name: ".wh.."}),
		mkTar(t, ent{Name: "a/b/c", Body: "c"}, ent{Name: "a", Type: '2', Link: "/"}, ent{Name: "a/b/d", Body: "d"}),
	}
}

// FuzzApply: whatever the tar, nothing outside the target changes.
// Each input costs a few milliseconds of file system work, so run it with
// a short -fuzzminimizetime (e.g. 2s); the seeds are in testdata/fuzz.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	f.Fuzz(func(t *testing.T, data []byte) {
		box := t.TempDir()
		layer, outside := filepath.Join(box, "layer"), filepath.Join(box, "outside")
		os.Mkdir(layer, 0o755)
		os.Mkdir(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644)
		before := tree(t, outside)
		Apply(context.Background(), layer, bytes.NewReader(data), ApplyOptions{MaxBytes: 1 << 20, MaxEntries: 1000})
		if after := tree(t, outside); !reflect.DeepEqual(before, after) {
			t.Fatalf("outside changed: %v", names(after))
		}
		if ents, _ := os.ReadDir(box); len(ents) != 2 {
			t.Fatalf("box holds %v", ents)
		}
		if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwd) {
			t.Fatal("/etc/passwd changed")
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzApply (BERTH_WRITE_SEEDS=1).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("BERTH_WRITE_SEEDS") == "" {
		t.Skip("set BERTH_WRITE_SEEDS=1 to regenerate the fuzz seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	must(t, os.MkdirAll(dir, 0o755))
	for i, s := range fuzzSeeds(t) {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644))
	}
}
