//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	benchOnce         sync.Once
	benchTar, benchGz []byte
	benchDiffID       digest.Digest
)

// benchLayer is a ~100 MB tar of 1000 files, half random and half text,
// which gzips to ~50 MB: like a layer of binaries and libraries.
func benchLayer(b *testing.B) {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewSource(42))
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789\n"), 4000)
		for i := 0; i < 1000; i++ {
			if i%50 == 0 {
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("dir%02d/", i/50), Typeflag: tar.TypeDir, Mode: 0o755})
			}
			size := 1000 + rng.Intn(200000)
			body := make([]byte, size)
			rng.Read(body[:size/2])
			copy(body[size/2:], text)
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("dir%02d/file%04d", i/50, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)})
			tw.Write(body)
		}
		tw.Close()
		benchTar = buf.Bytes()
		var gzBuf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gzBuf, gzip.DefaultCompression)
		zw.Write(benchTar)
		zw.Close()
		benchGz = gzBuf.Bytes()
		benchDiffID = digest.FromBytes(benchTar)
	})
}

// BenchmarkUnpack: a ~50 MB gzip layer into the store. MB/s is of the
// compressed blob; tar-MB/s of the uncompressed stream.
func BenchmarkUnpack(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	benchLayer(b)
	b.Logf("layer: %d MB tar, %d MB gzip", len(benchTar)>>20, len(benchGz)>>20)
	for _, c := range []struct {
		name string
		opts Options
		mt   string
		data []byte
	}{
		{"gzip", Options{}, MediaTypeLayerGzip, benchGz},
		{"gzip-nosync", Options{NoSync: true}, MediaTypeLayerGzip, benchGz},
		{"plain-nosync", Options{NoSync: true}, MediaTypeLayer, benchTar},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newStore(b, c.opts)
			ctx := context.Background()
			b.SetBytes(int64(len(c.data)))
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := s.Unpack(ctx, bytes.NewReader(c.data), c.mt, "", benchDiffID)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				removeAll(s.layerPath(l.ChainID))
				b.StartTimer()
			}
			b.ReportMetric(float64(len(benchTar))*float64(b.N)/b.Elapsed().Seconds()/1e6, "tar-MB/s")
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// cpuTime is the user+system CPU time of this process so far (the
// machine is shared, so wall time alone says little).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecompress: gzip alone, for comparison.
func BenchmarkDecompress(b *testing.B) {
	benchLayer(b)
	b.SetBytes(int64(len(benchGz)))
	cpu0 := cpuTime()
	b.ResetTimer()
	defer func() { b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op") }()
	for i := 0; i < b.N; i++ {
		rc, _ := Decompress(bytes.NewReader(benchGz), MediaTypeLayerGzip)
		dg := digest.Canonical.Digester()
		buf := make([]byte, 256<<10)
		for {
			n, err := rc.Read(buf)
			dg.Hash().Write(buf[:n])
			if err != nil {
				break
			}
		}
		rc.Close()
		if dg.Digest() != benchDiffID {
			b.Fatal("digest")
		}
	}
}

// TestCompareTools times berth's Unpack of the benchmark layer against
// GNU tar and umoci on the same machine, interleaved (BERTH_LAYER_COMPARE=1).
func TestCompareTools(t *testing.T) {
	if os.Getenv("BERTH_LAYER_COMPARE") == "" {
		t.Skip("set BERTH_LAYER_COMPARE=1")
	}
	var b testing.B
	benchLayer(&b)
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	writeLayout(t, img, [][]byte{benchTar})
	var layers []ocispec.Descriptor
	var man ocispec.Manifest
	var idx ocispec.Index
	readJSON(t, filepath.Join(img, "index.json"), &idx)
	readJSON(t, filepath.Join(img, "blobs/sha256", idx.Manifests[0].Digest.Encoded()), &man)
	layers = man.Layers
	gzPath := filepath.Join(img, "blobs/sha256", layers[0].Digest.Encoded())
	ctx := context.Background()
	timeIt := func(name string, f func(i int)) {
		var best time.Duration
		for i := 0; i < 3; i++ {
			start := time.Now()
			f(i)
			if d := time.Since(start); best == 0 || d < best {
				best = d
			}
		}
		t.Logf("%-22s best of 3: %v (%.0f MB/s of gzip)", name, best.Round(time.Millisecond), float64(len(benchGz))/best.Seconds()/1e6)
	}
	for _, sync := range []bool{true, false} {
		s := newStore(t, Options{NoSync: !sync})
		timeIt(fmt.Sprintf("berth Unpack sync=%v", sync), func(int) {
			f, _ := os.Open(gzPath)
			l, err := s.Unpack(ctx, f, MediaTypeLayerGzip, "", benchDiffID)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			removeAll(s.layerPath(l.ChainID))
		})
	}
	timeIt("tar -xzf", func(i int) {
		out := filepath.Join(dir, fmt.Sprint("tar", i))
		os.Mkdir(out, 0o755)
		run(t, dir, "tar", "-xzf", gzPath, "-C", out)
		os.RemoveAll(out)
	})
	if _, err := exec.LookPath("umoci"); err == nil {
		timeIt("umoci unpack", func(i int) {
			out := filepath.Join(dir, fmt.Sprint("bundle", i))
			run(t, dir, "umoci", "unpack", "--image", img+":latest", out)
			os.RemoveAll(out)
		})
	}
}
