//go:build unix

package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/fsutil"
)

// Info describes a stored blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Has reports whether the blob dgst is stored.
func (s *Store) Has(dgst digest.Digest) bool {
	p, err := s.blobPath(dgst)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Info returns the size and time of a stored blob, or an error wrapping
// errdefs.ErrNotFound.
func (s *Store) Info(dgst digest.Digest) (Info, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, notFound("blob", dgst, err)
	}
	return Info{Digest: dgst, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open opens a stored blob for reading. The result is an *os.File, so it
// is also an io.ReaderAt and io.Seeker. Blobs were verified when committed;
// Check verifies them again.
func (s *Store) Open(dgst digest.Digest) (io.ReadCloser, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound("blob", dgst, err)
	}
	return f, nil
}

// ReadAll reads a whole blob (a manifest or config) of at most max bytes
// and verifies its digest. A bigger blob is an error wrapping
// errdefs.ErrInvalid; a corrupt one wraps errdefs.ErrDigestMismatch.
func (s *Store) ReadAll(dgst digest.Digest, max int64) ([]byte, error) {
	rc, err := s.Open(dgst)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", dgst, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("read blob %s: larger than %d bytes: %w", dgst, max, errdefs.ErrInvalid)
	}
	if got := dgst.Algorithm().FromBytes(b); got != dgst {
		return nil, fmt.Errorf("read blob %s: content hashes to %s: %w", dgst, got, errdefs.ErrDigestMismatch)
	}
	return b, nil
}

// Delete removes a blob. A missing blob is an error wrapping ErrNotFound.
// Delete does not look at references; GC does.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return notFound("blob", dgst, err)
	}
	return nil
}

// Walk calls fn for every stored blob, in no particular order. An error
// from fn stops the walk and is returned.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	algs, err := os.ReadDir(s.path("blobs"))
	if err != nil {
		return err
	}
	for _, a := range algs {
		ents, err := os.ReadDir(s.path("blobs", a.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if err := fn(Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Writer writes one blob into the store. Bytes written go to
// <root>/ingest/<alg>-<hex> and stay there across Close, so a later Writer
// for the same digest resumes at Offset. Only one Writer per digest exists
// at a time across all processes sharing the root; others wait in
// Store.Writer. A Writer is not safe for concurrent use.
type Writer struct {
	s      *Store
	desc   ocispec.Descriptor
	lock   *fsutil.Lock
	f      *os.File
	path   string
	dg     digest.Digester
	offset int64 // bytes present when the writer was opened
	n      int64 // bytes in the file now
	closed bool
}

// Writer opens a writer for the blob desc.Digest of desc.Size bytes
// (desc.Size < 0: size unknown, checked by digest only). It waits while
// another writer (in any process) holds the same digest. If the blob is
// stored already, the error wraps errdefs.ErrAlreadyExists. A partial
// download left by an earlier writer is kept: Offset says how many bytes
// to skip, and Commit hashes them too.
func (s *Store) Writer(ctx context.Context, desc ocispec.Descriptor) (*Writer, error) {
	if err := validDigest(desc.Digest); err != nil {
		return nil, err
	}
	name := desc.Digest.Algorithm().String() + "-" + desc.Digest.Encoded()
	l, err := lockFile(ctx, s.path("locks", "ingest-"+name+".lock"), true)
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	fail := func(err error) (*Writer, error) {
		l.Unlock()
		return nil, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	if s.Has(desc.Digest) {
		return fail(errdefs.ErrAlreadyExists)
	}
	if err := os.MkdirAll(s.path("blobs", desc.Digest.Algorithm().String()), 0o700); err != nil {
		return fail(err)
	}
	p := s.path("ingest", name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fail(err)
	}
	w := &Writer{s: s, desc: desc, lock: l, f: f, path: p, dg: desc.Digest.Algorithm().Digester()}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(err)
	}
	size := fi.Size()
	if desc.Size >= 0 && size > desc.Size {
		size = 0 // longer than the blob: useless
	}
	if size > 0 {
		// Hash the prefix we keep; on a read error start again.
		n, err := io.Copy(w.dg.Hash(), io.NewSectionReader(f, 0, size))
		if err != nil || n != size {
			w.dg = desc.Digest.Algorithm().Digester()
			size = 0
		}
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fail(err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return fail(err)
	}
	w.offset, w.n = size, size
	return w, nil
}

// Offset is the number of bytes already present when the writer was
// opened: the caller continues the download from there (an HTTP Range).
func (w *Writer) Offset() int64 { return w.offset }

// Partial returns a reader of the Offset bytes that were already present
// when the writer was opened. A caller that unpacks while downloading
// feeds Unpack io.MultiReader(w.Partial(), io.TeeReader(body, w)) after
// resuming the download at Offset.
func (w *Writer) Partial() io.Reader { return io.NewSectionReader(w.f, 0, w.offset) }

// Written is the number of bytes in the blob so far, Offset included.
func (w *Writer) Written() int64 { return w.n }

// Write appends p. Writing past desc.Size fails with ErrDigestMismatch.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("ingest %s: writer closed: %w", w.desc.Digest, errdefs.ErrInvalid)
	}
	if w.desc.Size >= 0 && w.n+int64(len(p)) > w.desc.Size {
		return 0, fmt.Errorf("ingest %s: more than the expected %d bytes: %w", w.desc.Digest, w.desc.Size, errdefs.ErrDigestMismatch)
	}
	n, err := w.f.Write(p)
	w.dg.Hash().Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Commit checks size and digest and moves the blob into place atomically.
// On a mismatch the partial data is removed and the error wraps
// errdefs.ErrDigestMismatch. Commit ends the writer either way.
func (w *Writer) Commit(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("ingest %s: writer closed: %w", w.desc.Digest, errdefs.ErrInvalid)
	}
	w.closed = true
	defer w.lock.UnlockRemove()
	mismatch := func(format string, a ...any) error {
		w.f.Close()
		os.Remove(w.path)
		return fmt.Errorf("commit %s: "+format+": %w", append([]any{w.desc.Digest}, append(a, errdefs.ErrDigestMismatch)...)...)
	}
	if w.desc.Size >= 0 && w.n != w.desc.Size {
		return mismatch("got %d bytes, want %d", w.n, w.desc.Size)
	}
	if got := w.dg.Digest(); got != w.desc.Digest {
		return mismatch("content hashes to %s", got)
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return fmt.Errorf("commit %s: %w", w.desc.Digest, err)
	}
	w.f.Close()
	os.Chmod(w.path, 0o444)
	lease, err := w.s.Lease(ctx)
	if err != nil {
		return fmt.Errorf("commit %s: %w", w.desc.Digest, err)
	}
	defer lease.Release()
	dst, _ := w.s.blobPath(w.desc.Digest)
	if err := os.Rename(w.path, dst); err != nil {
		return fmt.Errorf("commit %s: %w", w.desc.Digest, err)
	}
	_ = fsutil.SyncDir(filepath.Dir(dst))
	return nil
}

// Close ends the writer and keeps what was written for a later resume.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.f.Close()
	w.lock.UnlockRemove()
	return err
}

// Abort ends the writer and removes what was written.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.f.Close()
	err := os.Remove(w.path)
	w.lock.UnlockRemove()
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return err
}

func notFound(what string, d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", what, d, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", what, d, err)
}
