//go:build unix

package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/fsutil"
)

type refFile struct {
	Owner string          `json:"owner"`
	Refs  []digest.Digest `json:"refs"`
}

func (s *Store) refPath(owner string) string {
	h := sha256.Sum256([]byte(owner))
	return s.path("refs", hex.EncodeToString(h[:])+".json")
}

// Ref records that owner (an image name, a container id, any string)
// uses the given blobs and layers (blob digests and layer ChainIDs, mixed).
// A referenced ChainID keeps its whole chain. The set is added to what
// owner references already; the record is written atomically under a lock.
// GC removes only what no owner references.
func (s *Store) Ref(ctx context.Context, owner string, digests ...digest.Digest) error {
	return s.ref(ctx, owner, true, digests)
}

// RefVolatile is Ref without the fsyncs: the record is atomic against a
// crashed process but may be lost with the host. It is for owners that do
// not outlive the host either, such as a container whose own record is
// written the same way (two fsyncs cost 4-6 ms on ext4 here, more than the
// rest of a container's create).
func (s *Store) RefVolatile(ctx context.Context, owner string, digests ...digest.Digest) error {
	return s.ref(ctx, owner, false, digests)
}

func (s *Store) ref(ctx context.Context, owner string, durable bool, digests []digest.Digest) error {
	if owner == "" {
		return fmt.Errorf("ref: empty owner: %w", errdefs.ErrInvalid)
	}
	for _, d := range digests {
		if err := validDigest(d); err != nil {
			return fmt.Errorf("ref %s: %w", owner, err)
		}
	}
	l, err := s.lockOwner(ctx, owner)
	if err != nil {
		return err
	}
	defer l.unlock()
	rf := refFile{Owner: owner}
	if b, err := os.ReadFile(s.refPath(owner)); err == nil {
		if err := json.Unmarshal(b, &rf); err != nil {
			return fmt.Errorf("ref %s: %v: %w", owner, err, errdefs.ErrInvalid)
		}
	}
	for _, d := range digests {
		if !slices.Contains(rf.Refs, d) {
			rf.Refs = append(rf.Refs, d)
		}
	}
	b, _ := json.Marshal(rf)
	write := fsutil.WriteFileVolatile
	if durable {
		write = fsutil.WriteFile
	}
	if err := write(s.refPath(owner), b, 0o600); err != nil {
		return fmt.Errorf("ref %s: %w", owner, err)
	}
	return nil
}

// Unref drops every reference of owner. An owner without references is
// not an error.
func (s *Store) Unref(ctx context.Context, owner string) error {
	l, err := s.lockOwner(ctx, owner)
	if err != nil {
		return err
	}
	defer l.unlock()
	if err := os.Remove(s.refPath(owner)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unref %s: %w", owner, err)
	}
	// No fsync of the directory: a removal lost in a host crash brings the
	// references back, which only keeps data longer than needed (the next
	// GC after the owner is gone again removes it). A sync cost 2-3 ms on
	// ext4 here, twice per container delete.
	return nil
}

// ownerLock is held while one owner's record changes: refs.lock shared
// (GC's clean-up of crashed writers' temporary files takes it exclusive)
// and the owner's own lock file exclusive. Owners do not wait for each
// other: with one exclusive refs.lock, and an fsync under it, 100
// containers created at once queued on it for seconds.
type ownerLock struct{ all, one *fsutil.Lock }

func (s *Store) lockOwner(ctx context.Context, owner string) (*ownerLock, error) {
	all, err := lockFile(ctx, s.path("locks", "refs.lock"), false)
	if err != nil {
		return nil, err
	}
	one, err := lockFile(ctx, s.path("locks", "ref-"+strings.TrimSuffix(filepath.Base(s.refPath(owner)), ".json")+".lock"), true)
	if err != nil {
		all.Unlock()
		return nil, err
	}
	return &ownerLock{all: all, one: one}, nil
}

func (l *ownerLock) unlock() {
	l.one.UnlockRemove()
	l.all.Unlock()
}

// Refs returns every owner and what it references.
func (s *Store) Refs(ctx context.Context) (map[string][]digest.Digest, error) {
	l, err := lockFile(ctx, s.path("locks", "refs.lock"), false)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	refs, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	s.addSnapshotRefs(refs)
	return refs, nil
}

func (s *Store) readRefs() (map[string][]digest.Digest, error) {
	ents, err := os.ReadDir(s.path("refs"))
	if err != nil {
		return nil, err
	}
	out := map[string][]digest.Digest{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(s.path("refs", e.Name()))
		if err != nil {
			continue
		}
		var rf refFile
		if err := json.Unmarshal(b, &rf); err != nil {
			return nil, fmt.Errorf("refs file %s: %v: %w", e.Name(), err, errdefs.ErrInvalid)
		}
		out[rf.Owner] = rf.Refs
	}
	return out, nil
}

// Removed is what GC removed.
type Removed struct {
	Blobs   []digest.Digest // unreferenced blobs
	Layers  []digest.Digest // ChainIDs of unreferenced layers
	Ingests int             // stale partial downloads
	Temp    int             // leftovers of crashed operations
	Bytes   int64           // blob and ingest bytes freed (layers not counted)
}

// GC removes every blob and layer no owner references (a referenced
// ChainID keeps its ancestors), partial downloads untouched for longer than
// Options.IngestExpiry, and leftovers of crashed operations. It holds the
// store's gc lock, so it waits for every Lease (in any process) to end:
// work between a download and its Ref is safe when done under a Lease.
func (s *Store) GC(ctx context.Context) (Removed, error) {
	var rm Removed
	l, err := lockFile(ctx, s.path("locks", "gc.lock"), true)
	if err != nil {
		return rm, fmt.Errorf("gc: %w", err)
	}
	defer l.Unlock()
	refs, err := s.Refs(ctx)
	if err != nil {
		return rm, fmt.Errorf("gc: %w", err)
	}
	live := map[digest.Digest]bool{}
	for _, ds := range refs {
		for _, d := range ds {
			for n := 0; d != "" && !live[d] && n < 1000; n++ {
				live[d] = true
				lay, err := s.Layer(d)
				if err != nil {
					break
				}
				d = lay.Parent
			}
		}
	}
	rm.Temp = s.removeTempLocked()

	var blobs []Info
	if err := s.Walk(ctx, func(i Info) error { blobs = append(blobs, i); return nil }); err != nil {
		return rm, fmt.Errorf("gc: %w", err)
	}
	for _, b := range blobs {
		if live[b.Digest] {
			continue
		}
		p, _ := s.blobPath(b.Digest)
		if err := os.Remove(p); err == nil {
			rm.Blobs = append(rm.Blobs, b.Digest)
			rm.Bytes += b.Size
		}
	}

	ents, err := os.ReadDir(s.path("layers"))
	if err != nil {
		return rm, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return rm, err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil || live[d] {
			continue
		}
		if err := s.removeDir(s.layerPath(d)); err != nil {
			return rm, fmt.Errorf("gc: remove layer %s: %w", d, err)
		}
		rm.Layers = append(rm.Layers, d)
	}

	expiry := s.opts.IngestExpiry
	if expiry == 0 {
		expiry = 24 * time.Hour
	}
	ents, _ = os.ReadDir(s.path("ingest"))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < expiry {
			continue
		}
		il, ok, err := fsutil.TryLockFile(s.path("locks", "ingest-"+e.Name()+".lock"))
		if err != nil || !ok {
			continue // a writer is at it
		}
		if os.Remove(s.path("ingest", e.Name())) == nil {
			rm.Ingests++
			rm.Bytes += fi.Size()
		}
		il.UnlockRemove()
	}

	// Temporary files of reference records whose writer crashed.
	if rl, err := lockFile(ctx, s.path("locks", "refs.lock"), true); err == nil {
		ents, _ = os.ReadDir(s.path("refs"))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				os.Remove(s.path("refs", e.Name()))
				rm.Temp++
			}
		}
		rl.Unlock()
	}
	// Short links whose layer is gone.
	ents, _ = os.ReadDir(s.path("l"))
	for _, e := range ents {
		p := s.path("l", e.Name())
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			os.Remove(p)
		}
	}
	// Per-item lock files nobody holds.
	ents, _ = os.ReadDir(s.path("locks"))
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "layer-") || strings.HasPrefix(n, "ingest-") || strings.HasPrefix(n, "snap-") || strings.HasPrefix(n, "ref-") {
			if il, ok, err := fsutil.TryLockFile(s.path("locks", n)); err == nil && ok {
				il.UnlockRemove()
			}
		}
	}
	s.log.Debug("gc", "blobs", len(rm.Blobs), "layers", len(rm.Layers), "ingests", rm.Ingests, "bytes", rm.Bytes)
	return rm, nil
}

// Problem is one inconsistency found by Check.
type Problem struct {
	// Kind is "blob", "layer", "ref" or "snapshot".
	Kind string
	// Digest is the blob digest or ChainID concerned ("" for a snapshot).
	Digest digest.Digest
	// Name is the ref owner or snapshot key, when Kind is "ref" or "snapshot".
	Name string
	Err  error
}

func (p Problem) String() string {
	what := string(p.Digest)
	if p.Name != "" {
		what = strings.TrimSpace(p.Name + " " + what)
	}
	return fmt.Sprintf("%s %s: %v", p.Kind, what, p.Err)
}

// Check verifies the store: every blob hashes to its name, every layer has
// its metadata, directory and parent, every reference names something
// stored, every snapshot's parent exists. It reads every blob, so it takes
// time proportional to the store's size. The error is for failures to run
// the check; what is wrong is in the Problems.
func (s *Store) Check(ctx context.Context) ([]Problem, error) {
	var probs []Problem
	err := s.Walk(ctx, func(i Info) error {
		rc, err := s.Open(i.Digest)
		if err != nil {
			probs = append(probs, Problem{Kind: "blob", Digest: i.Digest, Err: err})
			return nil
		}
		defer rc.Close()
		dg := i.Digest.Algorithm().Digester()
		if _, err := io.Copy(dg.Hash(), rc); err != nil {
			probs = append(probs, Problem{Kind: "blob", Digest: i.Digest, Err: err})
		} else if got := dg.Digest(); got != i.Digest {
			probs = append(probs, Problem{Kind: "blob", Digest: i.Digest,
				Err: fmt.Errorf("content hashes to %s: %w", got, errdefs.ErrDigestMismatch)})
		}
		return nil
	})
	if err != nil {
		return probs, err
	}
	ents, err := os.ReadDir(s.path("layers"))
	if err != nil {
		return probs, err
	}
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		l, err := s.Layer(d)
		if err != nil {
			probs = append(probs, Problem{Kind: "layer", Digest: d, Err: err})
			continue
		}
		if fi, err := os.Stat(s.LayerDir(d)); err != nil || !fi.IsDir() {
			probs = append(probs, Problem{Kind: "layer", Digest: d, Err: fmt.Errorf("diff directory missing: %w", errdefs.ErrNotFound)})
		}
		if l.Parent != "" && !s.HasLayer(l.Parent) {
			probs = append(probs, Problem{Kind: "layer", Digest: d, Err: fmt.Errorf("parent %s: %w", l.Parent, errdefs.ErrNotFound)})
		}
		if ChainID(l.Parent, l.DiffID) != d {
			probs = append(probs, Problem{Kind: "layer", Digest: d, Err: fmt.Errorf("metadata names chain %s: %w", ChainID(l.Parent, l.DiffID), errdefs.ErrInvalid)})
		}
	}
	refs, err := s.Refs(ctx)
	if err != nil {
		return probs, err
	}
	for owner, ds := range refs {
		for _, d := range ds {
			if !s.Has(d) && !s.HasLayer(d) {
				probs = append(probs, Problem{Kind: "ref", Name: owner, Digest: d, Err: fmt.Errorf("references a missing blob or layer: %w", errdefs.ErrNotFound)})
			}
		}
	}
	probs = append(probs, s.checkSnapshots()...)
	return probs, nil
}
