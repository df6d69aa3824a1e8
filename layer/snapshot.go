//go:build linux

package layer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/fsutil"
	"github.com/berthrt/berth/mount"
)

// Snapshotter makes writable root file systems from layer chains.
//
// A snapshot is named by a key (1-128 of [A-Za-z0-9_.-], e.g. a container
// id) and lives in <root>/snapshots/<key>. Its life cycle:
//
//   - Prepare creates it on top of a layer chain (or empty) and returns the
//     mounts that make its root file system, with Target "" for the caller
//     to fill in (or to pass as the root to mount.All). The chain is
//     referenced (owner "snapshot/<key>" in Refs) so GC keeps it. Nothing
//     is fsynced: a snapshot is scratch space and may be lost with the
//     host, never half-made.
//   - Mounts returns the same mounts again (for a restart). Perform them
//     soon after; do not mount one snapshot twice at once.
//   - Changes lists what differs from the chain, like `docker diff`; Diff
//     writes the same as an OCI layer tar (whiteouts as `.wh.` files), which
//     Store.Unpack turns into a new layer on top of the chain (a commit).
//     Both can run while the snapshot is mounted, but see a consistent
//     picture only while nothing writes to it.
//   - Remove deletes it (unmount first) and drops its reference.
//
// Two implementations exist: OverlaySnapshotter (overlayfs, the default)
// and CopySnapshotter (a full copy, bind-mounted; for file systems overlay
// cannot use). Store.Snapshotter picks one. Both pass the same test suite.
type Snapshotter interface {
	Prepare(ctx context.Context, key string, parent digest.Digest) ([]mount.Mount, error)
	Mounts(ctx context.Context, key string) ([]mount.Mount, error)
	Changes(ctx context.Context, key string) ([]Change, error)
	Diff(ctx context.Context, key string, w io.Writer) error
	Remove(ctx context.Context, key string) error
	// List returns the keys of all snapshots (of any implementation).
	List(ctx context.Context) ([]string, error)
}

// ChangeKind is the kind of a Change: added, changed or deleted.
type ChangeKind int

// The kinds of change, printed as `docker diff` does (A, C, D).
const (
	ChangeAdd ChangeKind = iota + 1
	ChangeModify
	ChangeDelete
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeAdd:
		return "A"
	case ChangeModify:
		return "C"
	case ChangeDelete:
		return "D"
	}
	return "?"
}

// Change is one path that differs between a snapshot and its parent chain.
// A directory counts as changed when its own metadata or anything beneath
// it changed; a deleted directory is reported once, without its content.
type Change struct {
	Kind ChangeKind
	Path string // absolute in the container: "/etc/passwd"
}

func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// Snapshotter returns the store's snapshotter: Options.Snapshotter, or when
// that is "", overlay if a probe mount on the root's file system works
// (probed once per Store), else copy.
func (s *Store) Snapshotter() (Snapshotter, error) {
	s.snaps.once.Do(func() {
		switch s.opts.Snapshotter {
		case "copy":
			s.snaps.snap = NewCopySnapshotter(s)
		case "overlay":
			s.snaps.snap, s.snaps.err = NewOverlaySnapshotter(s)
		default:
			if o, err := NewOverlaySnapshotter(s); err == nil {
				s.snaps.snap = o
			} else {
				s.log.Warn("overlay unusable, copying snapshots", "root", s.root, "err", err)
				s.snaps.snap = NewCopySnapshotter(s)
			}
		}
	})
	return s.snaps.snap, s.snaps.err
}

type snapState struct {
	once sync.Once
	snap Snapshotter
	err  error

	probeOnce sync.Once
	probe     overlayProbe
}

type snapMeta struct {
	Key     string        `json:"key"`
	Kind    string        `json:"kind"` // "overlay" or "copy"
	Parent  digest.Digest `json:"parent,omitempty"`
	Created time.Time     `json:"created"`
}

func (s *Store) snapDir(key string) string { return s.path("snapshots", key) }

func (s *Store) snapMeta(key string) (snapMeta, error) {
	var m snapMeta
	if err := validKey(key); err != nil {
		return m, err
	}
	b, err := os.ReadFile(filepath.Join(s.snapDir(key), "snapshot.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return m, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
		}
		return m, fmt.Errorf("snapshot %s: %w", key, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("snapshot %s: %v: %w", key, err, errdefs.ErrInvalid)
	}
	return m, nil
}

func snapOwner(key string) string { return "snapshot/" + key }

// createSnapshot makes <root>/snapshots/<key> atomically: fill is called
// on a temporary directory that is then renamed into place.
func (s *Store) createSnapshot(ctx context.Context, key string, parent digest.Digest, kind string, fill func(dir string, chain []Layer) (string, error)) error {
	lease, lk, err := s.lockSnapshot(ctx, key)
	if err != nil {
		return err
	}
	defer lease.Release()
	defer lk.Unlock()
	if _, err := os.Lstat(s.snapDir(key)); err == nil {
		return fmt.Errorf("prepare snapshot %s: %w", key, errdefs.ErrAlreadyExists)
	}
	var chain []Layer
	if parent != "" {
		if chain, err = s.Chain(parent); err != nil {
			return fmt.Errorf("prepare snapshot %s: %w", key, err)
		}
	}
	tmp, err := s.mkTemp("snap")
	if err != nil {
		return err
	}
	defer removeAll(tmp)
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	kind, err = fill(tmp, chain)
	if err != nil {
		return fmt.Errorf("prepare snapshot %s: %w", key, err)
	}
	b, _ := json.Marshal(snapMeta{Key: key, Kind: kind, Parent: parent, Created: time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(tmp, "snapshot.json"), b, 0o600); err != nil {
		return err
	}
	// No ref file and no fsync: the snapshot's metadata is what keeps its
	// parent from GC, and a snapshot is a container's scratch space, which
	// does not outlive the host's crash in any useful way (its record is not
	// synced either). Three fsyncs cost more than the rest of a container's
	// create here.
	if err := os.Rename(tmp, s.snapDir(key)); err != nil {
		return fmt.Errorf("prepare snapshot %s: %w", key, err)
	}
	return nil
}

// lockSnapshot checks key, then takes a lease (GC stays away) and key's
// exclusive lock.
func (s *Store) lockSnapshot(ctx context.Context, key string) (*Lease, *fsutil.Lock, error) {
	if err := validKey(key); err != nil {
		return nil, nil, err
	}
	lease, err := s.Lease(ctx)
	if err != nil {
		return nil, nil, err
	}
	lk, err := lockFile(ctx, s.path("locks", "snap-"+key+".lock"), true)
	if err != nil {
		lease.Release()
		return nil, nil, err
	}
	return lease, lk, nil
}

func (s *Store) removeSnapshot(ctx context.Context, key string) error {
	lease, lk, err := s.lockSnapshot(ctx, key)
	if err != nil {
		return err
	}
	defer lease.Release()
	defer lk.UnlockRemove()
	if _, err := os.Lstat(s.snapDir(key)); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	if err := s.removeDir(s.snapDir(key)); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	return nil
}

// addSnapshotRefs adds to refs what each snapshot references, its parent
// chain, as owner "snapshot/<key>": the snapshot's metadata is the record
// (Prepare writes no ref file, and the lease it holds keeps GC away until
// the snapshot is in place).
func (s *Store) addSnapshotRefs(refs map[string][]digest.Digest) {
	keys, err := s.listSnapshots()
	if err != nil {
		return
	}
	for _, k := range keys {
		if m, err := s.snapMeta(k); err == nil && m.Parent != "" {
			refs[snapOwner(k)] = []digest.Digest{m.Parent}
		}
	}
}

func (s *Store) listSnapshots() ([]string, error) {
	ents, err := os.ReadDir(s.path("snapshots"))
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range ents {
		if validKey(e.Name()) == nil && e.IsDir() {
			keys = append(keys, e.Name())
		}
	}
	return keys, nil
}

func (s *Store) checkSnapshots() []Problem {
	keys, _ := s.listSnapshots()
	var probs []Problem
	for _, k := range keys {
		m, err := s.snapMeta(k)
		if err != nil {
			probs = append(probs, Problem{Kind: "snapshot", Name: k, Err: err})
			continue
		}
		if m.Parent != "" && !s.HasLayer(m.Parent) {
			probs = append(probs, Problem{Kind: "snapshot", Name: k, Digest: m.Parent, Err: fmt.Errorf("parent layer: %w", errdefs.ErrNotFound)})
		}
		dirs := []string{"upper", "work"}
		if m.Kind == "copy" {
			dirs = []string{"rootfs"}
		}
		for _, d := range dirs {
			if fi, err := os.Stat(filepath.Join(s.snapDir(k), d)); err != nil || !fi.IsDir() {
				probs = append(probs, Problem{Kind: "snapshot", Name: k, Err: fmt.Errorf("%s directory: %w", d, errdefs.ErrNotFound)})
			}
		}
	}
	return probs
}

// chainDirs returns the diff directories of a chain, top first.
func (s *Store) chainDirs(chain []Layer) []string {
	dirs := make([]string, len(chain))
	for i, l := range chain {
		dirs[len(chain)-1-i] = s.LayerDir(l.ChainID)
	}
	return dirs
}
