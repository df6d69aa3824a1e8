//go:build linux

package layer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthrt/berth/errdefs"
)

func blob(n int) ([]byte, ocispec.Descriptor) {
	b := make([]byte, n)
	rand.Read(b)
	return b, ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(n)}
}

func TestContentWriteCommit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data, desc := blob(100 << 10)
	w, err := s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("offset %d", w.Offset())
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Has(desc.Digest) {
		t.Fatal("blob missing after commit")
	}
	info, err := s.Info(desc.Digest)
	if err != nil || info.Size != desc.Size {
		t.Fatalf("info %+v %v", info, err)
	}
	got, err := s.ReadAll(desc.Digest, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll: %v", err)
	}
	if _, err := s.ReadAll(desc.Digest, 1000); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("ReadAll over cap: %v", err)
	}
	if _, err := s.Writer(ctx, desc); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second writer: %v", err)
	}
	var seen []digest.Digest
	s.Walk(ctx, func(i Info) error { seen = append(seen, i.Digest); return nil })
	if len(seen) != 1 || seen[0] != desc.Digest {
		t.Fatalf("walk: %v", seen)
	}
	// Corrupt the blob on disk: ReadAll notices.
	p, _ := s.blobPath(desc.Digest)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("garbage"), 0o644)
	if _, err := s.ReadAll(desc.Digest, 1<<20); !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("ReadAll corrupt: %v", err)
	}
	probs, err := s.Check(ctx)
	if err != nil || len(probs) != 1 || probs[0].Kind != "blob" {
		t.Fatalf("check: %v %v", probs, err)
	}
	if err := s.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.Open(desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("open missing: %v", err)
	}
	if _, err := s.Info("sha256:nothex"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("bad digest: %v", err)
	}
}

func TestContentResume(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data, desc := blob(300 << 10)
	w, err := s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:123456])
	if err := w.Close(); err != nil { // a dropped download
		t.Fatal(err)
	}
	// A new process (a new Store on the same root) resumes.
	s2, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	w, err = s2.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 123456 {
		t.Fatalf("offset %d, want 123456", w.Offset())
	}
	w.Write(data[w.Offset():])
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("commit after resume: %v", err)
	}
	got, _ := s.ReadAll(desc.Digest, 1<<20)
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	if ents, _ := os.ReadDir(s.path("ingest")); len(ents) != 0 {
		t.Fatalf("ingest left: %v", ents)
	}
}

func TestContentMismatch(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data, desc := blob(4096)

	// Wrong content, right size.
	w, _ := s.Writer(ctx, desc)
	bad := bytes.Clone(data)
	bad[100] ^= 1
	w.Write(bad)
	if err := w.Commit(ctx); !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("commit: %v", err)
	}
	if s.Has(desc.Digest) {
		t.Fatal("bad blob stored")
	}
	// The partial was removed: a new writer starts at 0.
	w, _ = s.Writer(ctx, desc)
	if w.Offset() != 0 {
		t.Fatalf("offset after mismatch %d", w.Offset())
	}
	// Too short.
	w.Write(data[:100])
	if err := w.Commit(ctx); !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("short commit: %v", err)
	}
	// Too long: Write refuses.
	w, _ = s.Writer(ctx, desc)
	if _, err := w.Write(append(bytes.Clone(data), 1)); !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("long write: %v", err)
	}
	w.Abort()
	// A corrupted partial prefix is caught at commit, hashing the prefix.
	w, _ = s.Writer(ctx, desc)
	w.Write(bad[:2000])
	w.Close()
	w, _ = s.Writer(ctx, desc)
	if w.Offset() != 2000 {
		t.Fatalf("offset %d", w.Offset())
	}
	w.Write(data[2000:])
	if err := w.Commit(ctx); !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("commit with bad prefix: %v", err)
	}
	// Unknown size (-1) works.
	w, _ = s.Writer(ctx, ocispec.Descriptor{Digest: desc.Digest, Size: -1})
	w.Write(data)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// Two writers of one digest: the second waits, then sees the blob.
func TestContentConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s2, _ := Open(s.Root())
	data, desc := blob(1 << 20)
	w1, err := s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		w2, err := s2.Writer(ctx, desc)
		if err == nil {
			w2.Abort()
			err = fmt.Errorf("second writer opened while the first holds the digest")
		}
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("second writer did not wait: %v", err)
	default:
	}
	w1.Write(data)
	if err := w1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second writer: %v", err)
	}
	// A waiting writer gives up with its context.
	_, desc2 := blob(10)
	w, _ := s.Writer(ctx, desc2)
	defer w.Abort()
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s2.Writer(cctx, desc2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting writer: %v", err)
	}
}

// Many goroutines race to write the same blob; exactly one commits.
func TestContentRace(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data, desc := blob(256 << 10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	commits, exists := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Writer(ctx, desc)
			if errors.Is(err, errdefs.ErrAlreadyExists) {
				mu.Lock()
				exists++
				mu.Unlock()
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(w, bytes.NewReader(data[w.Offset():]))
			if err := w.Commit(ctx); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			commits++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if commits != 1 || exists != 7 {
		t.Fatalf("commits %d exists %d", commits, exists)
	}
	if ents, _ := os.ReadDir(s.path("locks")); len(ents) > 2 {
		t.Logf("locks: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "blobs", "sha256", desc.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
}
