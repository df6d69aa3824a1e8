//go:build linux

package layer

import (
	"context"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/mount"
)

// OverlaySnapshotter makes snapshots as overlayfs mounts: the chain's
// layer directories are the lower layers (top first), and
// <root>/snapshots/<key>/{upper,work} the writable part.
//
// Lower directories are named by short symlinks, <root>/l/<8 chars> ->
// ../layers/<chainID>/diff (as containers/storage does), so that the mount
// options fit in the page mount(2) accepts: with a root of up to about 20
// characters (e.g. /var/lib/berth) 128 layers fit. A snapshot whose options
// would not fit is made as a copy instead (its Mounts then return a bind
// mount), with a warning in the log. An image without layers gets an empty
// lower directory; a one-layer image still gets an overlay.
//
// Mounts carry overlay's `volatile` option where the kernel has it (the
// upper directory need not survive a host crash), and `redirect_dir=off`,
// `metacopy=off` so that the upper directory always holds complete files
// and Changes/Diff can read them. Mounting needs CAP_SYS_ADMIN.
type OverlaySnapshotter struct {
	s     *Store
	extra []string
}

type overlayProbe struct {
	extra []string
	err   error
}

// NewOverlaySnapshotter returns the overlay snapshotter of s, after
// checking (once per Store) with a probe mount that overlayfs works on the
// root's file system. The error wraps errdefs.ErrUnsupported when it does
// not.
func NewOverlaySnapshotter(s *Store) (*OverlaySnapshotter, error) {
	s.snaps.probeOnce.Do(func() { s.snaps.probe = probeOverlay(s) })
	if s.snaps.probe.err != nil {
		return nil, s.snaps.probe.err
	}
	return &OverlaySnapshotter{s: s, extra: s.snaps.probe.extra}, nil
}

func probeOverlay(s *Store) overlayProbe {
	ctx := context.Background()
	lease, err := s.Lease(ctx)
	if err != nil {
		return overlayProbe{err: err}
	}
	defer lease.Release()
	tmp, err := s.mkTemp("probe")
	if err != nil {
		return overlayProbe{err: err}
	}
	defer removeAll(tmp)
	for _, d := range []string{"l1", "l2", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return overlayProbe{err: err}
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "l1", "f"), []byte("x"), 0o644); err != nil {
		return overlayProbe{err: err}
	}
	// The probe mounts in a mount namespace of its own, on a thread that
	// dies with it: a process killed mid-probe leaves no mount on the host.
	res := make(chan overlayProbe, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			res <- overlayProbe{err: fmt.Errorf("overlay probe on %s: unshare: %v: %w", s.root, err, errdefs.ErrUnsupported)}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			res <- overlayProbe{err: fmt.Errorf("overlay probe on %s: private mounts: %v: %w", s.root, err, errdefs.ErrUnsupported)}
			return
		}
		res <- tryOverlay(s.root, tmp)
	}()
	return <-res
}

// tryOverlay mounts an overlay of the probe directories in tmp with each
// set of extra options in turn and returns the first that works.
func tryOverlay(root, tmp string) overlayProbe {
	var lastErr error
	for _, extra := range [][]string{{"volatile", "redirect_dir=off", "metacopy=off"}, {"redirect_dir=off", "metacopy=off"}, {"volatile"}, nil} {
		data := "lowerdir=" + filepath.Join(tmp, "l2") + ":" + filepath.Join(tmp, "l1") +
			",upperdir=" + filepath.Join(tmp, "u") + ",workdir=" + filepath.Join(tmp, "w")
		if len(extra) > 0 {
			data += "," + strings.Join(extra, ",")
		}
		m := filepath.Join(tmp, "m")
		if err := unix.Mount("overlay", m, "overlay", 0, data); err != nil {
			lastErr = err
			if err == unix.EPERM {
				break
			}
			continue
		}
		// Deleting a lower file must leave a 0/0 whiteout in the upper dir.
		err := os.Remove(filepath.Join(m, "f"))
		mount.Unmount(m, unix.MNT_DETACH)
		if err != nil {
			return overlayProbe{err: fmt.Errorf("overlay probe on %s: %v: %w", root, err, errdefs.ErrUnsupported)}
		}
		fi, err := os.Lstat(filepath.Join(tmp, "u", "f"))
		if err != nil || !isWhiteout(fi) {
			return overlayProbe{err: fmt.Errorf("overlay probe on %s: no whiteout device made: %w", root, errdefs.ErrUnsupported)}
		}
		return overlayProbe{extra: extra}
	}
	return overlayProbe{err: fmt.Errorf("overlay probe on %s: %v: %w", root, lastErr, errdefs.ErrUnsupported)}
}

// link returns the short link naming the layer's diff directory, creating
// it if needed.
func (s *Store) link(chain digest.Digest) (string, error) {
	enc := chain.Encoded()
	target := "../layers/" + enc + "/diff"
	for _, n := range []int{10, 20, 40, 64} {
		raw, err := hex.DecodeString(enc[:n])
		if err != nil {
			return "", err
		}
		short := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
		p := s.path("l", short)
		err = os.Symlink(target, p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
		if t, err := os.Readlink(p); err == nil && t == target {
			return p, nil
		}
	}
	return "", fmt.Errorf("no short link name for layer %s: %w", chain, errdefs.ErrAlreadyExists)
}

func (o *OverlaySnapshotter) options(dir string, chain []Layer) ([]string, error) {
	var lowers []string
	for i := len(chain) - 1; i >= 0; i-- {
		l, err := o.s.link(chain[i].ChainID)
		if err != nil {
			return nil, err
		}
		lowers = append(lowers, l)
	}
	if len(chain) == 0 {
		lowers = []string{filepath.Join(dir, "empty")}
	}
	opts := []string{
		"lowerdir=" + strings.Join(lowers, ":"),
		"upperdir=" + filepath.Join(dir, "upper"),
		"workdir=" + filepath.Join(dir, "work"),
	}
	return append(opts, o.extra...), nil
}

func optionsFit(opts []string) bool {
	return len(strings.Join(opts, ","))+1 <= os.Getpagesize()
}

// Prepare creates the snapshot key on top of the chain parent.
func (o *OverlaySnapshotter) Prepare(ctx context.Context, key string, parent digest.Digest) ([]mount.Mount, error) {
	err := o.s.createSnapshot(ctx, key, parent, "overlay", func(tmp string, chain []Layer) (string, error) {
		final := o.s.snapDir(key)
		opts, err := o.options(final, chain)
		if err != nil {
			return "", err
		}
		if !optionsFit(opts) {
			o.s.log.Warn("overlay options exceed a page; copying the snapshot", "key", key, "layers", len(chain))
			return "copy", fillCopy(ctx, o.s, tmp, chain)
		}
		for _, d := range []string{"upper", "work", "empty"} {
			if d == "empty" && len(chain) > 0 {
				continue
			}
			if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
				return "", err
			}
		}
		return "overlay", nil
	})
	if err != nil {
		return nil, err
	}
	return o.Mounts(ctx, key)
}

// Mounts returns the mounts of snapshot key.
func (o *OverlaySnapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	return snapshotMounts(ctx, o.s, key, o.extra)
}

func snapshotMounts(ctx context.Context, s *Store, key string, extra []string) ([]mount.Mount, error) {
	m, err := s.snapMeta(key)
	if err != nil {
		return nil, err
	}
	dir := s.snapDir(key)
	if m.Kind == "copy" {
		return []mount.Mount{{Type: "bind", Source: filepath.Join(dir, "rootfs"), Options: []string{"rbind", "rw"}}}, nil
	}
	var chain []Layer
	if m.Parent != "" {
		if chain, err = s.Chain(m.Parent); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", key, err)
		}
	}
	if extra == nil {
		o, err := NewOverlaySnapshotter(s)
		if err != nil {
			return nil, err
		}
		extra = o.extra
	}
	o := &OverlaySnapshotter{s: s, extra: extra}
	opts, err := o.options(dir, chain)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", key, err)
	}
	// A volatile mount leaves work/work/incompat/volatile behind, and
	// overlayfs refuses to mount again while it is there.
	os.RemoveAll(filepath.Join(dir, "work", "work", "incompat", "volatile"))
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}, nil
}

// Changes lists what differs in snapshot key from its parent chain.
func (o *OverlaySnapshotter) Changes(ctx context.Context, key string) ([]Change, error) {
	es, _, err := snapshotChanges(ctx, o.s, key)
	return toChanges(es), err
}

// Diff writes the changes of snapshot key as an uncompressed OCI layer tar.
func (o *OverlaySnapshotter) Diff(ctx context.Context, key string, w io.Writer) error {
	return snapshotDiff(ctx, o.s, key, w)
}

// Remove deletes snapshot key; unmount it first.
func (o *OverlaySnapshotter) Remove(ctx context.Context, key string) error {
	return o.s.removeSnapshot(ctx, key)
}

// List returns the keys of all snapshots.
func (o *OverlaySnapshotter) List(ctx context.Context) ([]string, error) {
	return o.s.listSnapshots()
}

func snapshotChanges(ctx context.Context, s *Store, key string) ([]diffEntry, string, error) {
	m, err := s.snapMeta(key)
	if err != nil {
		return nil, "", err
	}
	var chain []Layer
	if m.Parent != "" {
		if chain, err = s.Chain(m.Parent); err != nil {
			return nil, "", fmt.Errorf("snapshot %s: %w", key, err)
		}
	}
	lower := newLowerView(s.chainDirs(chain))
	dir := s.snapDir(key)
	var es []diffEntry
	root := filepath.Join(dir, "upper")
	if m.Kind == "copy" {
		root = filepath.Join(dir, "rootfs")
		es, err = copyChanges(ctx, root, lower)
	} else {
		es, err = overlayChanges(ctx, root, lower)
	}
	if err != nil {
		return nil, "", fmt.Errorf("changes of snapshot %s: %w", key, err)
	}
	return es, root, nil
}

func snapshotDiff(ctx context.Context, s *Store, key string, w io.Writer) error {
	es, root, err := snapshotChanges(ctx, s, key)
	if err != nil {
		return err
	}
	if err := writeDiff(ctx, w, root, es); err != nil {
		return fmt.Errorf("diff of snapshot %s: %w", key, err)
	}
	return nil
}
