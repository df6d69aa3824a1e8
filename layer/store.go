//go:build unix

package layer

import (
	"context"
	_ "crypto/sha256" // digest.SHA256 needs it registered
	_ "crypto/sha512" // digest.SHA512 too
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/fsutil"
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Limits bound every Unpack (entries, bytes, name length). Zero fields
	// take the defaults documented on ApplyOptions.
	Limits ApplyOptions
	// IngestExpiry is how long a partial download may sit untouched before
	// GC removes it. Zero means 24 hours.
	IngestExpiry time.Duration
	// NoSync skips the syncfs(2) that makes an unpacked layer durable
	// before it is published. Faster; after a host crash a published layer
	// may then hold truncated files. Zero value: sync.
	NoSync bool
	// Snapshotter picks the snapshot implementation returned by
	// Store.Snapshotter: "" probes once and chooses "overlay" when the
	// root's filesystem and the kernel support it, else "copy".
	Snapshotter string
	// Logger receives debug and warning messages. Nil: silent.
	Logger *slog.Logger
}

// Store is a content store, a layer store and a snapshot store under one
// root directory. It is safe for concurrent use by goroutines and by
// processes sharing the root.
type Store struct {
	root string
	opts Options
	log  *slog.Logger

	snaps snapState // the snapshotters (Linux)
}

// Open opens (creating if needed) the store at root with default Options.
func Open(root string) (*Store, error) { return OpenWith(root, Options{}) }

// OpenWith opens (creating if needed) the store at root. Temporary files
// left by a crashed process are removed when no other process is using the
// store at that moment (otherwise by a later Open or GC).
func OpenWith(root string, opts Options) (*Store, error) {
	if root == "" {
		return nil, fmt.Errorf("open layer store: empty root: %w", errdefs.ErrInvalid)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open layer store %s: %w", root, err)
	}
	switch opts.Snapshotter {
	case "", "overlay", "copy":
	default:
		return nil, fmt.Errorf("open layer store %s: unknown snapshotter %q: %w", root, opts.Snapshotter, errdefs.ErrInvalid)
	}
	s := &Store{root: abs, opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, d := range []string{"blobs/sha256", "ingest", "layers", "l", "snapshots", "refs", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("open layer store %s: %w", root, err)
		}
	}
	s.cleanTemp()
	return s, nil
}

// Root returns the store's root directory (absolute).
func (s *Store) Root() string { return s.root }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// cleanTemp removes <root>/tmp/* when no other user holds a lease.
func (s *Store) cleanTemp() {
	l, ok, err := fsutil.TryLockFile(s.path("locks", "gc.lock"))
	if err != nil || !ok {
		return
	}
	defer l.Unlock()
	s.removeTempLocked()
}

func (s *Store) removeTempLocked() int {
	ents, _ := os.ReadDir(s.path("tmp"))
	for _, e := range ents {
		removeAll(s.path("tmp", e.Name()))
	}
	return len(ents)
}

// mkTemp makes a fresh directory under <root>/tmp. The caller must hold a
// lease (shared gc lock) until the directory is renamed away or removed.
func (s *Store) mkTemp(prefix string) (string, error) {
	return os.MkdirTemp(s.path("tmp"), prefix+"-")
}

// removeDir renames dir into <root>/tmp (so it vanishes atomically) and
// removes it there. The caller holds a lease or the gc lock.
func (s *Store) removeDir(dir string) error {
	tmp, err := os.MkdirTemp(s.path("tmp"), "del-")
	if err != nil {
		return err
	}
	dst := filepath.Join(tmp, "x")
	if err := os.Rename(dir, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return removeAll(tmp)
}

// A Lease keeps GC away: while any lease is held, GC waits. Hold one from
// before a download or unpack until the result is protected by Ref, so a
// concurrent GC (in this process or another) cannot remove what was just
// written. Unpack, Writer.Commit and Snapshotter.Prepare take a short lease
// of their own; a caller that does not Ref at once needs its own.
//
// Do not call GC while holding a lease in the same goroutine: it would wait
// for itself until its context ends.
type Lease struct{ l *fsutil.Lock }

// Lease takes a lease (a shared lock on <root>/locks/gc.lock).
func (s *Store) Lease(ctx context.Context) (*Lease, error) {
	l, err := lockFile(ctx, s.path("locks", "gc.lock"), false)
	if err != nil {
		return nil, err
	}
	return &Lease{l: l}, nil
}

// Release ends the lease. It is safe to call more than once.
func (l *Lease) Release() {
	if l != nil {
		l.l.Unlock()
	}
}

// blobPath validates d and returns where its blob lives.
func (s *Store) blobPath(d digest.Digest) (string, error) {
	if err := validDigest(d); err != nil {
		return "", err
	}
	return s.path("blobs", d.Algorithm().String(), d.Encoded()), nil
}

func validDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", string(d), err, errdefs.ErrInvalid)
	}
	return nil
}

// validKey checks a snapshot key: 1-128 of [A-Za-z0-9_.-], starting with
// a letter or digit, without "..". It is a loop rather than a regexp: a
// package-level regexp with {0,127} cost about 1 ms of compiling in the
// init of every program that links this package, including each
// container's re-executed init.
func validKey(key string) error {
	ok := len(key) >= 1 && len(key) <= 128
	for i := 0; ok && i < len(key); i++ {
		c := key[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok || strings.Contains(key, "..") {
		return fmt.Errorf("snapshot key %q: want 1-128 of [A-Za-z0-9_.-]: %w", key, errdefs.ErrInvalid)
	}
	return nil
}

// removeAll is os.RemoveAll that also copes with directories whose mode
// forbids writing (overlay's work/work is 000).
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil || os.IsNotExist(err) {
		return nil
	}
	_ = filepath.Walk(p, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}
