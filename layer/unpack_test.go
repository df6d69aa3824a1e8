//go:build linux

package layer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/testutil"
)

func TestMain(m *testing.M) {
	switch os.Getenv("BERTH_LAYER_TEST_CHILD") {
	case "unpack":
		childUnpack()
		return
	case "crash":
		childCrash()
		return
	case "stress":
		childStress()
		return
	}
	os.Exit(m.Run())
}

func sampleTar(t testing.TB) []byte {
	return mkTar(t,
		ent{Name: "etc/"},
		ent{Name: "etc/os-release", Body: "ID=berth\n"},
		ent{Name: "bin/"},
		ent{Name: "bin/busybox", Body: strings.Repeat("elf", 1000), Mode: 0o755},
		ent{Name: "bin/sh", Type: '1', Link: "bin/busybox"},
		ent{Name: "bin/ls", Type: '2', Link: "busybox"},
	)
}

func TestUnpackCompressions(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	tb := sampleTar(t)
	diffID := digest.FromBytes(tb)
	for _, c := range []struct {
		name, mediaType string
		data            []byte
	}{
		{"plain", MediaTypeLayer, tb},
		{"gzip", MediaTypeLayerGzip, gz(t, tb)},
		{"docker-gzip", MediaTypeDockerLayer, gz(t, tb)},
		{"zstd", MediaTypeLayerZstd, zst(t, tb)},
		{"detect-gzip", "", gz(t, tb)},
		{"detect-zstd", "", zst(t, tb)},
		{"detect-plain", "", tb},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			for _, want := range []digest.Digest{diffID, ""} {
				l, err := s.Unpack(ctx, bytes.NewReader(c.data), c.mediaType, "", want)
				if err != nil {
					t.Fatal(err)
				}
				if l.DiffID != diffID || l.ChainID != diffID || l.Size != 9+3000 {
					t.Fatalf("layer %+v", l)
				}
			}
			got := tree(t, s.LayerDir(diffID))
			if got["bin/sh"].Body != strings.Repeat("elf", 1000) || got["bin/ls"].Link != "busybox" {
				t.Fatalf("tree %v", got)
			}
			if inode(t, filepath.Join(s.LayerDir(diffID), "bin/sh")) != inode(t, filepath.Join(s.LayerDir(diffID), "bin/busybox")) {
				t.Error("hard link lost")
			}
			fi, _ := os.Stat(s.LayerDir(diffID))
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("layer root mode %v", fi.Mode())
			}
		})
	}
}

func TestUnpackErrors(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t)
	tb := sampleTar(t)
	if _, err := s.Unpack(ctx, bytes.NewReader(tb), "application/vnd.oci.image.layer.v1.tar+lz4", "", ""); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("unknown media type: %v", err)
	}
	if _, err := s.Unpack(ctx, bytes.NewReader(tb), MediaTypeLayer, "sha256:nope", ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("invalid parent: %v", err)
	}
	if _, err := s.Unpack(ctx, bytes.NewReader(tb), MediaTypeLayer, "", digest.FromString("other")); !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Errorf("wrong diffID: %v", err)
	}
	bad := gz(t, tb)
	bad[len(bad)/2] ^= 0xff
	if _, err := s.Unpack(ctx, bytes.NewReader(bad), MediaTypeLayerGzip, "", ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("corrupt gzip: %v", err)
	}
	if _, err := s.Unpack(ctx, bytes.NewReader([]byte("not gzip at all")), MediaTypeLayerGzip, "", ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("not gzip: %v", err)
	}
	// A network error is passed through, not called invalid.
	netErr := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(gz(t, tb)[:100]), errReader{netErr})
	if _, err := s.Unpack(ctx, r, MediaTypeLayerGzip, "", ""); !errors.Is(err, netErr) || errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("network error: %v", err)
	}
	// Also when the network error is io.ErrUnexpectedEOF (a cut body),
	// and for a plain tar.
	for _, mt := range []string{MediaTypeLayerGzip, MediaTypeLayer} {
		blob := tb
		if mt == MediaTypeLayerGzip {
			blob = gz(t, tb)
		}
		r = io.MultiReader(bytes.NewReader(blob[:len(blob)/2]), errReader{io.ErrUnexpectedEOF})
		if _, err := s.Unpack(ctx, r, mt, "", ""); !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: cut body: %v", mt, err)
		}
		// A stream that just ends early is a truncated, invalid layer.
		if _, err := s.Unpack(ctx, bytes.NewReader(blob[:len(blob)/2]), mt, "", ""); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: truncated: %v", mt, err)
		}
	}
	assertClean(t, s)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// assertClean checks that no layer and no temporary file is left.
func assertClean(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{"layers", "tmp"} {
		if ents, _ := os.ReadDir(s.path(d)); len(ents) != 0 {
			t.Errorf("%s holds %v", d, ents)
		}
	}
}

// Decompression bombs and huge entry counts fail cleanly.
func TestUnpackBombs(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t, Options{Limits: ApplyOptions{MaxBytes: 10 << 20, MaxEntries: 1000}})

	// 1 GiB of zeros in one file, ~1 MB compressed: stops at the header.
	pr, pw := io.Pipe()
	go func() {
		zw := gzipWriter(pw)
		tw := tarWriter(zw)
		tw.header("zeros", 1<<30)
		zero := make([]byte, 1<<20)
		for i := 0; i < 1024; i++ {
			if _, err := zw.Write(zero); err != nil {
				break
			}
		}
		zw.Close()
		pw.Close()
	}()
	start := time.Now()
	_, err := s.Unpack(ctx, pr, MediaTypeLayerGzip, "", "")
	pr.CloseWithError(io.ErrClosedPipe)
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("bomb: %v", err)
	}
	t.Logf("bomb stopped after %v: %v", time.Since(start), err)

	// Many small files, each under the limit, together over it.
	var ents []ent
	for i := 0; i < 20; i++ {
		ents = append(ents, ent{Name: fmt.Sprintf("f%d", i), Body: strings.Repeat("x", 1<<20)})
	}
	if _, err := s.Unpack(ctx, bytes.NewReader(gz(t, mkTar(t, ents...))), MediaTypeLayerGzip, "", ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("many files: %v", err)
	}
	// A billion entries, in effect: 100k empty files.
	pr, pw = io.Pipe()
	go func() {
		tw := tarWriter(pw)
		for i := 0; i < 100000; i++ {
			if err := tw.header(fmt.Sprintf("d/%d", i), 0); err != nil {
				break
			}
		}
		pw.Close()
	}()
	_, err = s.Unpack(ctx, pr, MediaTypeLayer, "", "")
	pr.CloseWithError(io.ErrClosedPipe)
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("entries: %v", err)
	}
	// Trailing garbage after the end of the tar counts too.
	tb := append(mkTar(t, ent{Name: "f", Body: "x"}), make([]byte, 11<<20)...)
	if _, err := s.Unpack(ctx, bytes.NewReader(tb), MediaTypeLayer, "", ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("trailing zeros: %v", err)
	}
	assertClean(t, s)
}

// Unpack straight from a download stream while the same bytes go into
// the content store (what berth's pull does).
func TestUnpackWhileDownloading(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newStore(t)
	tb := sampleTar(t)
	blob := gz(t, tb)
	desc := ocispec.Descriptor{MediaType: MediaTypeLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	// A first download breaks off half way.
	w, err := s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Unpack(ctx, io.TeeReader(io.MultiReader(bytes.NewReader(blob[:len(blob)/2]), errReader{io.ErrUnexpectedEOF}), w), desc.MediaType, "", digest.FromBytes(tb))
	if err == nil {
		t.Fatal("unpack of half a layer worked")
	}
	w.Close()
	// The second resumes: the partial blob plus the rest from the network.
	w, err = s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != int64(len(blob)/2) {
		t.Fatalf("offset %d", w.Offset())
	}
	pr, pw := io.Pipe()
	go func() { // a slow network, from the offset on
		for i := int(w.Offset()); i < len(blob); i += 97 {
			pw.Write(blob[i:min(i+97, len(blob))])
		}
		pw.Close()
	}()
	l, err := s.Unpack(ctx, io.MultiReader(w.Partial(), io.TeeReader(pr, w)), desc.MediaType, "", digest.FromBytes(tb))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(w, pr) // whatever the decompressor did not need
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.HasLayer(l.ChainID) || !s.Has(desc.Digest) {
		t.Fatal("layer or blob missing")
	}
}

func TestUnpackChain(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	t1, t2 := mkTar(t, ent{Name: "a", Body: "1"}), mkTar(t, ent{Name: "b", Body: "2"})
	// The top layer first: layers of one image unpack in any order.
	l2 := unpack(t, s, digest.FromBytes(t1), t2)
	if _, err := s.Chain(l2.ChainID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("chain with its base missing: %v", err)
	}
	l1 := unpack(t, s, "", t1)
	if l2.ChainID != digest.FromString(l1.ChainID.String()+" "+l2.DiffID.String()) || l2.Parent != l1.ChainID {
		t.Fatalf("chain %+v", l2)
	}
	chain, err := s.Chain(l2.ChainID)
	if err != nil || len(chain) != 2 || chain[0] != l1 || chain[1] != l2 {
		t.Fatalf("Chain: %v %v", chain, err)
	}
	ls, _ := s.Layers(context.Background())
	if len(ls) != 2 {
		t.Fatalf("Layers %v", ls)
	}
}

// Two processes unpack the same layer at once: it is extracted once.
func TestUnpackTwoProcesses(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	var ents []ent
	for i := 0; i < 300; i++ {
		ents = append(ents, ent{Name: fmt.Sprintf("d%d/f%d", i%10, i), Body: strings.Repeat("y", 3000)})
	}
	tb := gz(t, mkTar(t, ents...))
	tarPath := filepath.Join(t.TempDir(), "layer.tar.gz")
	os.WriteFile(tarPath, tb, 0o644)
	diffID := digest.FromBytes(mkTar(t, ents...))
	for _, known := range []digest.Digest{diffID, ""} {
		t.Run(fmt.Sprintf("diffID=%v", known != ""), func(t *testing.T) {
			go1 := filepath.Join(t.TempDir(), "go")
			type result struct {
				Read    int64
				ChainID digest.Digest
				Err     string
			}
			var wg sync.WaitGroup
			res := make([]result, 2)
			for i := range res {
				wg.Add(1)
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "BERTH_LAYER_TEST_CHILD=unpack", "ROOT="+s.Root(), "TAR="+tarPath, "GO="+go1, "DIFFID="+string(known))
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go func() {
					defer wg.Done()
					if err := cmd.Wait(); err != nil {
						t.Errorf("child: %v", err)
					}
					json.Unmarshal(out.Bytes(), &res[i])
				}()
			}
			time.Sleep(200 * time.Millisecond)
			os.WriteFile(go1, nil, 0o644)
			wg.Wait()
			t.Logf("results %+v", res)
			for _, r := range res {
				if r.Err != "" || r.ChainID != diffID {
					t.Fatalf("child result %+v", r)
				}
			}
			if known != "" && (res[0].Read == 0) == (res[1].Read == 0) {
				t.Errorf("want exactly one child to read the layer: %+v", res)
			}
			ls, _ := s.Layers(context.Background())
			if len(ls) != 1 {
				t.Errorf("layers %v", ls)
			}
			if ents, _ := os.ReadDir(s.path("tmp")); len(ents) != 0 {
				t.Errorf("tmp holds %v", ents)
			}
			if len(tree(t, s.LayerDir(diffID))) != 310 {
				t.Errorf("layer has %d entries", len(tree(t, s.LayerDir(diffID))))
			}
			os.RemoveAll(s.layerPath(diffID))
		})
	}
}

type slowCounter struct {
	r io.Reader
	n int64
}

func (c *slowCounter) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	if len(p) > 64 {
		p = p[:64]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func childUnpack() {
	s, err := Open(os.Getenv("ROOT"))
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(os.Getenv("GO")); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	f, err := os.Open(os.Getenv("TAR"))
	if err != nil {
		panic(err)
	}
	r := &slowCounter{r: f}
	l, err := s.Unpack(context.Background(), r, MediaTypeLayerGzip, "", digest.Digest(os.Getenv("DIFFID")))
	res := map[string]any{"Read": r.n, "ChainID": l.ChainID}
	if err != nil {
		res["Err"] = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// childCrash downloads and unpacks slowly until it is killed.
func childCrash() {
	s, err := Open(os.Getenv("ROOT"))
	if err != nil {
		panic(err)
	}
	blob, _ := os.ReadFile(os.Getenv("TAR"))
	desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	w, err := s.Writer(context.Background(), desc)
	if err != nil {
		panic(err)
	}
	r := &slowCounter{r: bytes.NewReader(blob)}
	s.Unpack(context.Background(), io.TeeReader(r, w), MediaTypeLayerGzip, "", "")
	fmt.Println("finished: the test should have killed me")
}

// A process killed in the middle of a download and unpack leaves a
// partial download (resumable) and nothing else; the next Open cleans up.
func TestCrashMidUnpack(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	var ents []ent
	for i := 0; i < 200; i++ {
		ents = append(ents, ent{Name: fmt.Sprintf("f%d", i), Body: strings.Repeat(fmt.Sprint(i), 5000)})
	}
	tb := mkTar(t, ents...)
	blob := gz(t, tb)
	tarPath := filepath.Join(t.TempDir(), "layer.tar.gz")
	os.WriteFile(tarPath, blob, 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BERTH_LAYER_TEST_CHILD=crash", "ROOT="+s.Root(), "TAR="+tarPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once it is under way: some bytes ingested, a temp dir present.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(s.path("tmp"))
		fi, err := os.Stat(s.path("ingest", "sha256-"+digest.FromBytes(blob).Encoded()))
		if len(ents) > 0 && err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()

	s2, err := Open(s.Root()) // cleans tmp/
	if err != nil {
		t.Fatal(err)
	}
	assertClean(t, s2)
	ctx := context.Background()
	w, err := s2.Writer(ctx, ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))})
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() == 0 || w.Offset() >= int64(len(blob)) {
		t.Fatalf("offset %d of %d", w.Offset(), len(blob))
	}
	t.Logf("resuming at %d of %d bytes", w.Offset(), len(blob))
	w.Write(blob[w.Offset():])
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc, _ := s2.Open(digest.FromBytes(blob))
	defer rc.Close()
	if _, err := s2.Unpack(ctx, rc, MediaTypeLayerGzip, "", digest.FromBytes(tb)); err != nil {
		t.Fatal(err)
	}
	if probs, err := s2.Check(ctx); err != nil || len(probs) != 0 {
		t.Fatalf("check: %v %v", probs, err)
	}
}

// A blob whose media type says gzip but which is a plain tar (or the
// other way round) unpacks, as with Docker.
func TestUnpackMislabelled(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	tb := sampleTar(t)
	for _, c := range []struct {
		mt   string
		data []byte
	}{{MediaTypeLayerGzip, tb}, {MediaTypeLayer, gz(t, tb)}, {MediaTypeDockerLayer, zst(t, tb)}} {
		l, err := s.Unpack(context.Background(), bytes.NewReader(c.data), c.mt, "", "")
		if err != nil || l.DiffID != digest.FromBytes(tb) {
			t.Errorf("%s: %v %v", c.mt, l, err)
		}
	}
}
