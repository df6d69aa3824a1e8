//go:build linux

package berth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/fsutil"
	"github.com/berthrt/berth/internal/ids"
	"github.com/berthrt/berth/namespace"
	"github.com/berthrt/berth/netdev"
	digest "github.com/opencontainers/go-digest"
)

// Resources are a container's cgroup limits, with Docker's semantics; the
// zero value limits nothing. See package cgroup for each field.
type Resources = cgroup.Resources

// PortMapping publishes a container port on the host (-p).
type PortMapping = netdev.PortMapping

// IDMap maps Size ids from ContainerID in the container to HostID on the
// host (a line of /proc/<pid>/uid_map).
type IDMap = namespace.IDMap

// Mount is a bind mount, a named volume or a tmpfs in a container.
type Mount struct {
	// Type is "bind", "volume" or "tmpfs". Zero: "bind" when Source is an
	// absolute path, "volume" when it is a name, "tmpfs" when it is empty.
	Type string `json:"type,omitempty"`
	// Source is the host path (bind) or the volume name (volume, created
	// on first use and kept after the container). A missing bind source is
	// an error wrapping ErrNotFound.
	Source string `json:"source,omitempty"`
	// Target is the path in the container. Required.
	Target string `json:"target"`
	// ReadOnly mounts it read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Options are extra mount options: propagation ("rprivate", "rshared",
	// ...), "nosuid", "noexec", and for tmpfs "size=64m", "mode=1777".
	Options []string `json:"options,omitempty"`
}

// DeviceMapping is a host device given to a container.
type DeviceMapping struct {
	// PathOnHost is the device node, e.g. /dev/fuse. Required.
	PathOnHost string `json:"pathOnHost"`
	// PathInContainer is where it appears. Zero: PathOnHost.
	PathInContainer string `json:"pathInContainer,omitempty"`
	// Permissions are "r", "w", "m" combined. Zero: "rwm".
	Permissions string `json:"permissions,omitempty"`
}

// Ulimit is a resource limit (--ulimit nofile=1024:2048).
type Ulimit struct {
	Name string `json:"name"` // "nofile", "nproc", ...
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// ContainerConfig describes a container for Runtime.Create. Like exec.Cmd,
// the zero value of every field does what Docker does by default.
type ContainerConfig struct {
	// Image the container runs. Required.
	Image *Image `json:"-"`
	// Name is a unique name. Zero: none (the id is the name).
	Name string `json:"name,omitempty"`
	// Entrypoint replaces the image's ENTRYPOINT when non-nil, and then
	// also clears the image's CMD (docker run --entrypoint).
	Entrypoint []string `json:"entrypoint,omitempty"`
	// Cmd replaces the image's CMD when non-nil.
	Cmd []string `json:"cmd,omitempty"`
	// Env is added to the image's environment (KEY=VALUE; later wins).
	Env []string `json:"env,omitempty"`
	// WorkingDir replaces the image's; created when missing. Zero: the
	// image's, or "/".
	WorkingDir string `json:"workingDir,omitempty"`
	// User replaces the image's: "name", "uid", "name:group", "uid:gid".
	User string `json:"user,omitempty"`
	// Hostname of the container. Zero: the first 12 hex digits of its id.
	Hostname string `json:"hostname,omitempty"`

	// Stdin, Stdout and Stderr are the main process's stdio, like exec.Cmd:
	// nil means /dev/null (output still goes to the container's log).
	Stdin  io.Reader `json:"-"`
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`
	// TTY runs the process on a pseudo-terminal (Stdout gets its output).
	TTY bool `json:"tty,omitempty"`

	// Mounts are bind mounts, volumes and tmpfs mounts.
	Mounts []Mount `json:"mounts,omitempty"`
	// ReadOnlyRootfs makes / read-only.
	ReadOnlyRootfs bool `json:"readOnlyRootfs,omitempty"`

	// CapAdd and CapDrop change Docker's default capability set ("NET_ADMIN"
	// or "CAP_NET_ADMIN"; "ALL" for every capability).
	CapAdd  []string `json:"capAdd,omitempty"`
	CapDrop []string `json:"capDrop,omitempty"`
	// UIDMappings and GIDMappings run the container in a user namespace
	// with these id maps (podman --uidmap/--gidmap, runc's
	// linux.uidMappings): container ids ContainerID to ContainerID+Size-1
	// are host ids HostID to HostID+Size-1. Both or neither must be given;
	// each must map container id 0, with positive sizes and ranges that
	// overlap neither in the container nor on the host. The image's layers
	// are shown through idmapped mounts, so a file owned by host uid 0 in
	// the image is owned by the container's root; what the container writes
	// is stored in its writable layer with the mapped host ids. Capabilities
	// then hold only in the container's namespaces, and bind mounts and
	// volumes show host ids outside the maps as nobody (65534). Zero: no
	// user namespace (container root is host root, as with Docker).
	UIDMappings []IDMap `json:"uidMappings,omitempty"`
	GIDMappings []IDMap `json:"gidMappings,omitempty"`
	// Privileged gives all capabilities and devices, no seccomp, no masked
	// paths and a writable /sys.
	Privileged bool `json:"privileged,omitempty"`
	// Seccomp is a seccomp profile in Docker's JSON format. Zero: Docker's
	// default profile. See SeccompUnconfined.
	Seccomp json.RawMessage `json:"seccomp,omitempty"`
	// SeccompUnconfined runs without a seccomp filter.
	SeccompUnconfined bool `json:"seccompUnconfined,omitempty"`
	// NoNewPrivileges sets no_new_privs (Docker leaves it off).
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	// Ulimits set resource limits; they cannot exceed berth's own hard
	// limits.
	Ulimits []Ulimit `json:"ulimits,omitempty"`

	// Resources are the cgroup limits (Memory, NanoCPUs, PidsLimit, ...).
	Resources `json:"resources"`
	// Devices are host devices made available in the container (--device):
	// the node is bound in and the device cgroup allows it.
	Devices []DeviceMapping `json:"devices,omitempty"`
	// CgroupParent replaces the runtime's cgroup parent for this container.
	CgroupParent string `json:"cgroupParent,omitempty"`

	// NetworkMode is "bridge" (the default network), "none", "host",
	// "container:<name|id>", or the name of a user-defined network. Zero:
	// "bridge".
	NetworkMode string `json:"networkMode,omitempty"`
	// Networks are further user-defined networks to join.
	Networks []string `json:"networks,omitempty"`
	// NetworkAliases are extra names of the container on user-defined
	// networks.
	NetworkAliases []string `json:"networkAliases,omitempty"`
	// IP is a fixed address on the first network.
	IP string `json:"ip,omitempty"`
	// Publish publishes ports on the host (-p); HostPort 0 picks a free
	// one, reported by Inspect.
	Publish []PortMapping `json:"publish,omitempty"`
	// PublishAll publishes every port the image exposes on a free host
	// port (-P).
	PublishAll bool `json:"publishAll,omitempty"`
	// DNS, DNSSearch and DNSOptions replace those of the host's
	// resolv.conf; ExtraHosts ("name:ip") are added to /etc/hosts.
	DNS        []string `json:"dns,omitempty"`
	DNSSearch  []string `json:"dnsSearch,omitempty"`
	DNSOptions []string `json:"dnsOptions,omitempty"`
	ExtraHosts []string `json:"extraHosts,omitempty"`

	// StopSignal replaces the image's (SIGTERM by default).
	StopSignal string `json:"stopSignal,omitempty"`
	// StopTimeout is how long Stop waits before SIGKILL. Zero: 10 s.
	StopTimeout time.Duration `json:"stopTimeout,omitempty"`
	// Detached keeps the container running after the program that started
	// it exits; a later process reaches it through Runtime.Container.
	Detached bool `json:"detached,omitempty"`
	// Labels are free-form metadata.
	Labels map[string]string `json:"labels,omitempty"`
	// LogMaxSize rotates the container's log at this size (bytes); LogMaxFiles
	// is how many files are kept. Zero: 10 MB and 3 files. Detached
	// containers write their log directly and are not rotated.
	LogMaxSize  int64 `json:"logMaxSize,omitempty"`
	LogMaxFiles int   `json:"logMaxFiles,omitempty"`
}

// Container statuses, as Docker names them.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusPaused  = "paused"
	StatusExited  = "exited"
)

// State is a container's run state.
type State struct {
	Status     string    `json:"Status"`
	Running    bool      `json:"Running"`
	Paused     bool      `json:"Paused"`
	Pid        int       `json:"Pid"`
	ExitCode   int       `json:"ExitCode"`
	OOMKilled  bool      `json:"OOMKilled"`
	Error      string    `json:"Error,omitempty"`
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
}

// record is what is persisted of a container in <root>/containers/<id>.
type record struct {
	ID          string          `json:"id"`
	Name        string          `json:"name,omitempty"`
	ImageName   string          `json:"imageName"`
	ImageDigest digest.Digest   `json:"imageDigest"`
	ImageID     digest.Digest   `json:"imageID"`
	Chain       digest.Digest   `json:"chain,omitempty"`
	Config      ContainerConfig `json:"config"`
	Args        []string        `json:"args"`
	Env         []string        `json:"env"`
	// Cwd, User, StopSignal and Ports are the config merged with the
	// image's, resolved once at Create so that a start reads no image.
	Cwd        string             `json:"cwd,omitempty"`
	User       string             `json:"user,omitempty"`
	StopSignal string             `json:"stopSignal,omitempty"`
	Ports      []PortMapping      `json:"ports,omitempty"`
	Created    time.Time          `json:"created"`
	State      State              `json:"state"`
	Owner      int                `json:"owner,omitempty"`
	Endpoints  []*netdev.Endpoint `json:"endpoints,omitempty"`
	ControlDir string             `json:"controlDir,omitempty"`
}

// Container is a container of a Runtime. Its methods are safe for
// concurrent use.
type Container struct {
	rt  *Runtime
	id  string
	dir string

	mu   sync.Mutex
	rec  record
	cfg  ContainerConfig // with the caller's stdio; only in the creating process
	ns   *namespace.Container
	cg   *cgroup.Cgroup
	done chan struct{} // closed when the running process has ended and been torn down
	logw io.Closer
}

// ID is the container's 64-hex-digit id.
func (c *Container) ID() string { return c.id }

// Name is the container's name ("" when it has none).
func (c *Container) Name() string { return c.rec.Name }

func (rt *Runtime) containerDir(id string) string {
	return filepath.Join(rt.cfg.Root, "containers", id)
}

func (c *Container) save() error {
	b, err := json.MarshalIndent(&c.rec, "", " ")
	if err != nil {
		return err
	}
	// Container state does not outlive the host (its processes die with
	// it), so no fsync: atomic against a crashed owner is what matters.
	return fsutil.WriteFileVolatile(filepath.Join(c.dir, "config.json"), b, 0o600)
}

// Create makes a container from cfg: a writable snapshot of the image, its
// configuration on disk and a name. Nothing runs until Start.
func (rt *Runtime) Create(ctx context.Context, cfg ContainerConfig) (*Container, error) {
	if cfg.Image == nil {
		return nil, fmt.Errorf("create container: no image: %w", ErrInvalid)
	}
	if err := validateConfig(&cfg); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	id := ids.New()
	c := &Container{rt: rt, id: id, dir: rt.containerDir(id), cfg: cfg}
	c.rec = record{
		ID:          id,
		Name:        cfg.Name,
		ImageName:   cfg.Image.Name,
		ImageDigest: cfg.Image.Digest,
		ImageID:     cfg.Image.ID(),
		Chain:       cfg.Image.topChain(),
		Config:      cfg,
		Args:        mergeArgs(cfg.Image, &cfg),
		Env:         mergeEnv(cfg.Image, &cfg, id),
		Cwd:         cmp.Or(cfg.WorkingDir, cfg.Image.WorkingDir()),
		User:        cmp.Or(cfg.User, cfg.Image.User()),
		StopSignal:  cmp.Or(cfg.StopSignal, cfg.Image.StopSignal(), "SIGTERM"),
		Ports:       publishedPorts(cfg.Image, &cfg),
		Created:     time.Now().UTC(),
		State:       State{Status: StatusCreated},
	}
	if len(c.rec.Args) == 0 {
		return nil, fmt.Errorf("create container: no command given and the image has none: %w", ErrInvalid)
	}
	// names.lock makes a name's check and its record one step, and keeps
	// the recovery at New (which takes it exclusively) away from Creates in
	// progress. A container without a name needs only the latter: it takes
	// the lock shared, so unnamed Creates run in parallel (with an
	// exclusive lock, 100 concurrent Creates queued on it for seconds).
	lockFile := fsutil.RLockFile
	if cfg.Name != "" {
		lockFile = fsutil.LockFile
	}
	lock, err := lockFile(ctx, filepath.Join(rt.cfg.Root, "containers", "names.lock"))
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	defer lock.Unlock()
	if cfg.Name != "" {
		if other, err := rt.findByName(cfg.Name); err == nil {
			return nil, fmt.Errorf("create container: name %q is used by %s: %w", cfg.Name, ids.Short(other), ErrAlreadyExists)
		}
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	undo := func() {
		_ = os.RemoveAll(c.dir)
	}
	snap, err := rt.store.Snapshotter()
	if err != nil {
		undo()
		return nil, fmt.Errorf("create container: %w", err)
	}
	if _, err := snap.Prepare(ctx, id, c.rec.Chain); err != nil {
		undo()
		return nil, fmt.Errorf("create container: snapshot: %w", err)
	}
	if err := rt.store.RefVolatile(ctx, "container:"+id, cfg.Image.Digest, cfg.Image.ID()); err != nil {
		_ = snap.Remove(ctx, id)
		undo()
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := c.save(); err != nil {
		_ = snap.Remove(ctx, id)
		_ = rt.store.Unref(ctx, "container:"+id)
		undo()
		return nil, fmt.Errorf("create container: %w", err)
	}
	return c, nil
}

// findByName returns the id of the container with that name.
func (rt *Runtime) findByName(name string) (string, error) {
	recs, err := rt.records()
	if err != nil {
		return "", err
	}
	for _, r := range recs {
		if r.Name == name {
			return r.ID, nil
		}
	}
	return "", fmt.Errorf("container %s: %w", name, ErrNotFound)
}

// records reads every container record of the root.
func (rt *Runtime) records() ([]record, error) {
	ents, err := os.ReadDir(filepath.Join(rt.cfg.Root, "containers"))
	if err != nil {
		return nil, err
	}
	var out []record
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		r, err := rt.readRecord(e.Name())
		if err != nil {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (rt *Runtime) readRecord(id string) (record, error) {
	var r record
	b, err := os.ReadFile(filepath.Join(rt.containerDir(id), "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("container %s: corrupt record: %v: %w", id, err, ErrInvalid)
	}
	return r, nil
}

func (rt *Runtime) containersUsing(dgst digest.Digest) ([]string, error) {
	recs, err := rt.records()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if r.ImageDigest == dgst {
			out = append(out, ids.Short(r.ID))
		}
	}
	return out, nil
}

// Container returns the container with that id, unique id prefix or name.
// A detached container started by another process is reachable this way.
func (rt *Runtime) Container(ctx context.Context, idOrName string) (*Container, error) {
	rt.mu.Lock()
	for id, c := range rt.live {
		if id == idOrName || c.rec.Name == idOrName {
			rt.mu.Unlock()
			return c, nil
		}
	}
	rt.mu.Unlock()
	recs, err := rt.records()
	if err != nil {
		return nil, err
	}
	var found []record
	for _, r := range recs {
		if r.ID == idOrName || r.Name == idOrName {
			found = []record{r}
			break
		}
		if len(idOrName) >= 4 && strings.HasPrefix(r.ID, idOrName) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("container %s: %w", idOrName, ErrNotFound)
	case 1:
	default:
		return nil, fmt.Errorf("container %s: prefix matches %d containers: %w", idOrName, len(found), ErrInvalid)
	}
	return rt.handle(ctx, found[0]), nil
}

// handle returns the live container of record r, or a new handle on it
// brought up to date.
func (rt *Runtime) handle(ctx context.Context, r record) *Container {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if c, ok := rt.live[r.ID]; ok {
		return c
	}
	c := &Container{rt: rt, id: r.ID, dir: rt.containerDir(r.ID), rec: r, cfg: r.Config}
	c.refresh(ctx, true)
	return c
}

// Containers lists the containers of the root; all=false lists only the
// running ones.
func (rt *Runtime) Containers(ctx context.Context, all bool) ([]*Container, error) {
	recs, err := rt.records()
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, r := range recs {
		c := rt.handle(ctx, r)
		if all || c.State().Running {
			out = append(out, c)
		}
	}
	return out, nil
}

// refresh brings the state of a container known only from disk up to
// date: a running container whose supervisor is gone has exited. With
// attach, a running detached container is attached to, so that this
// handle can exec, signal and wait.
func (c *Container) refresh(ctx context.Context, attach bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.rec.State.Running || c.ns != nil {
		return
	}
	if c.rec.ControlDir != "" {
		if st, ok := readExitStatus(c.rec.ControlDir); ok {
			c.teardownLocked(ctx, st, false)
			return
		}
		if !attach && processAlive(c.rec.State.Pid) {
			return
		}
		ns, err := namespace.Attach(ctx, filepath.Join(c.rec.ControlDir, "control.sock"))
		if err == nil {
			c.ns = ns
			c.done = make(chan struct{})
			select {
			case <-ns.Main().Done():
				st, _ := ns.Wait(ctx)
				c.teardownLocked(ctx, st, false)
			default:
				go c.reap(ns)
			}
			return
		}
		c.rt.log.Debug("attach to detached container", "container", c.id, "err", err)
	}
	if !processAlive(c.rec.State.Pid) {
		c.teardownLocked(ctx, namespace.ExitStatus{Code: 137, Signal: syscall.SIGKILL}, false)
	}
}

func readExitStatus(dir string) (namespace.ExitStatus, bool) {
	var st namespace.ExitStatus
	b, err := os.ReadFile(filepath.Join(dir, "status.json"))
	if err != nil {
		return st, false
	}
	if json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// State returns the container's current state.
func (c *Container) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.State
}
