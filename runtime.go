//go:build linux

package berth

import (
	"context"
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

// Close releases the runtime's handles. Containers it started keep running
// until their owner (this program) exits, unless they were created Detached.
func (rt *Runtime) Close() error {
	return rt.net.Close()
}

// GC removes blobs and layers that no image or container references.
func (rt *Runtime) GC(ctx context.Context) (layer.Removed, error) {
	return rt.store.GC(ctx)
}

// Check verifies every blob digest, layer and reference of the store and
// reports what is wrong; nothing is changed.
func (rt *Runtime) Check(ctx context.Context) ([]layer.Problem, error) {
	return rt.store.Check(ctx)
}
