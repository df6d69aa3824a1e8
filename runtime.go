//go:build linux

package berth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/berthrt/berth/internal/imageindex"
	"github.com/berthrt/berth/layer"
	"github.com/berthrt/berth/namespace"
	"github.com/berthrt/berth/netdev"
	"github.com/berthrt/berth/registryclient"
)

// Defaults for Config's zero values.
const (
	DefaultRoot         = "/var/lib/berth"
	DefaultRunDir       = "/run/berth"
	DefaultCgroupParent = "berth"
)

// Config configures a Runtime. The zero value is usable: every field's
// comment says what its zero value does.
type Config struct {
	// Root holds images, layers, containers and volumes. Zero: DefaultRoot.
	// Several processes may share one root.
	Root string
	// RunDir holds host-wide state (network coordination, control sockets
	// of detached containers). Zero: DefaultRunDir. All runtimes on a host
	// should share it, whatever their roots.
	RunDir string
	// Logger receives debug and warning messages. Zero: silent.
	Logger *slog.Logger
	// InsecureRegistries may be reached over plain HTTP (127.0.0.0/8, ::1
	// and localhost always may).
	InsecureRegistries []string
	// RegistryMirrors are tried, in order, before docker.io for pulls.
	RegistryMirrors []string
	// CertsDir holds per-registry CA certificates (<host>/ca.crt) as
	// Docker's /etc/docker/certs.d. Zero: /etc/docker/certs.d.
	CertsDir string
	// Credentials for registries. Zero: the docker CLI's config
	// ($DOCKER_CONFIG or ~/.docker/config.json, credential helpers too).
	Credentials registryclient.Credentials
	// CgroupParent is the cgroup under which containers' groups are made.
	// Zero: DefaultCgroupParent.
	CgroupParent string
	// Snapshotter is "overlay" or "copy". Zero: overlay where the root's
	// filesystem supports it, else copy.
	Snapshotter string
	// NetworkTable is the nftables table holding berth's rules. Zero:
	// "berth". Tests use their own.
	NetworkTable string
	// LayerLimits bound every layer this runtime unpacks (tar entries,
	// uncompressed bytes, name length), so a hostile image fails with
	// ErrInvalid instead of filling the disk or the inode table. Zero
	// fields take the layer package's defaults (layer.ApplyOptions); its
	// ApplyWhiteouts field is ignored.
	LayerLimits layer.ApplyOptions
	// NoSpareInit turns off spare inits. By default, once a container has
	// started, the runtime keeps one container init of the same kind
	// started ahead of need (booted, in fresh namespaces, waiting for its
	// config), so the next Start skips the exec and start-up of an init:
	// most of a start's time. A spare is an idle process of about 2 MB,
	// the owner's child, until a Start takes it; it ends after 10 s
	// unused, at Close, and with the owner. Starts with a user namespace
	// (id maps) or another container's network never use one. Programs
	// that start one container and exit gain nothing from it.
	NoSpareInit bool
}

// Runtime is a handle on a berth root. It is safe for concurrent use, and
// several Runtimes (in one process or many) may share a root.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	store  *layer.Store
	reg    *registryclient.Client
	images *imageindex.Index
	net    *netdev.Manager

	mu   sync.Mutex
	live map[string]*Container // containers this Runtime started
}

// Init runs berth's container init when the program was re-executed as one
// ("berth-init") and returns at once otherwise. Package initialisation does
// the same; call Init first in main to make it explicit.
func Init() { namespace.Init() }

// New opens (creating if needed) the root the config names, and removes
// what a crashed owner of this root left behind: containers that died with
// it, their cgroups, network links and rules, and half-written files.
func New(cfg Config) (*Runtime, error) {
	if cfg.Root == "" {
		cfg.Root = DefaultRoot
	}
	if cfg.RunDir == "" {
		cfg.RunDir = DefaultRunDir
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = DefaultCgroupParent
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("berth: root %q: %w", cfg.Root, ErrInvalid)
	}
	cfg.Root = root
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.Root, "volumes"), cfg.RunDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("berth: %w", err)
		}
	}
	store, err := layer.OpenWith(cfg.Root, layer.Options{Snapshotter: cfg.Snapshotter, Logger: log, Limits: layerLimits(cfg.LayerLimits)})
	if err != nil {
		return nil, fmt.Errorf("berth: open store: %w", err)
	}
	images, err := imageindex.Open(filepath.Join(cfg.Root, "images"))
	if err != nil {
		return nil, fmt.Errorf("berth: %w", err)
	}
	creds := cfg.Credentials
	if creds == nil {
		creds = registryclient.DockerConfig{}
	}
	reg := &registryclient.Client{
		Credentials: creds,
		Insecure:    cfg.InsecureRegistries,
		CertsDir:    cfg.CertsDir,
		UserAgent:   "berth",
		Logger:      log,
	}
	if len(cfg.RegistryMirrors) > 0 {
		reg.Mirrors = map[string][]string{"docker.io": cfg.RegistryMirrors}
	}
	rt := &Runtime{
		cfg:    cfg,
		log:    log,
		store:  store,
		reg:    reg,
		images: images,
		net: &netdev.Manager{
			Root:   cfg.Root,
			RunDir: filepath.Join(cfg.RunDir, "net"),
			Table:  cfg.NetworkTable,
			Logger: log,
		},
		live: map[string]*Container{},
	}
	if err := rt.recover(context.Background()); err != nil {
		return nil, err
	}
	return rt, nil
}

// layerLimits keeps the limits of l and nothing else: unpacked layers are
// always in overlay form.
func layerLimits(l layer.ApplyOptions) layer.ApplyOptions {
	return layer.ApplyOptions{MaxEntries: l.MaxEntries, MaxBytes: l.MaxBytes, MaxNameLen: l.MaxNameLen}
}

// Root is the runtime's root directory.
func (rt *Runtime) Root() string { return rt.cfg.Root }

// Close releases the runtime's handles and ends the spare inits (see
// Config.NoSpareInit). Containers it started keep running until their
// owner (this program) exits, unless they were created Detached.
func (rt *Runtime) Close() error {
	if !rt.cfg.NoSpareInit {
		namespace.DiscardSpares()
	}
	return rt.net.Close()
}

// GC removes blobs and layers that no image or container references.
func (rt *Runtime) GC(ctx context.Context) (layer.Removed, error) {
	return rt.store.GC(ctx)
}

// Check verifies the root and reports what is wrong; nothing is changed.
// The store's part is layer.Store.Check: every blob hashes to its digest,
// every layer has its metadata, directory and parent, every reference and
// snapshot names something stored. Then berth's own state: every name of
// the image index names a readable manifest and config whose layers are
// all unpacked (Kind "image", Name the image name), and every container
// record is readable and has its writable snapshot (Kind "container", Name
// the container id). A container directory without a record is a Create or
// Delete in progress, or one a crash cut short (New removes those), and is
// not reported. Check holds off GC while it runs (it takes a lease), so it
// can run alongside other processes using the root; it reads every blob,
// so it takes time proportional to the store's size. The error is for
// failures to run the check.
func (rt *Runtime) Check(ctx context.Context) ([]layer.Problem, error) {
	lease, err := rt.store.Lease(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer lease.Release()
	probs, err := rt.store.Check(ctx)
	if err != nil {
		return probs, fmt.Errorf("check: %w", err)
	}
	entries, err := rt.images.List()
	if err != nil {
		return probs, fmt.Errorf("check: %w", err)
	}
	for _, e := range entries {
		img, err := rt.imageByDigest(e.Digest)
		if err != nil {
			probs = append(probs, layer.Problem{Kind: "image", Name: e.Name, Digest: e.Digest, Err: err})
			continue
		}
		for _, c := range chainIDs(img.Config.RootFS.DiffIDs) {
			if !rt.store.HasLayer(c) {
				probs = append(probs, layer.Problem{Kind: "image", Name: e.Name, Digest: c, Err: fmt.Errorf("layer %s is not unpacked: %w", c, ErrNotFound)})
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(rt.cfg.Root, "containers"))
	if err != nil {
		return probs, fmt.Errorf("check: %w", err)
	}
	snap, err := rt.store.Snapshotter()
	if err != nil {
		return probs, fmt.Errorf("check: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return probs, err
		}
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		if _, err := rt.readRecord(id); err != nil {
			if !errors.Is(err, ErrNotFound) {
				probs = append(probs, layer.Problem{Kind: "container", Name: id, Err: err})
			}
			continue
		}
		if _, err := snap.Mounts(ctx, id); err != nil {
			probs = append(probs, layer.Problem{Kind: "container", Name: id, Err: fmt.Errorf("writable layer: %w", err)})
		}
	}
	return probs, nil
}
