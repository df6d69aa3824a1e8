//go:build linux

package namespace

import (
	"github.com/berthrt/berth/mount"
	"github.com/berthrt/berth/namespace/seccomp"
)

// Namespace names a Linux namespace the container gets a new instance of.
type Namespace string

// The namespaces Start can create.
const (
	NamespaceMount  Namespace = "mount"
	NamespacePID    Namespace = "pid"
	NamespaceUTS    Namespace = "uts"
	NamespaceIPC    Namespace = "ipc"
	NamespaceNet    Namespace = "net"
	NamespaceCgroup Namespace = "cgroup"
	NamespaceUser   Namespace = "user"
)

// DefaultNamespaces are the namespaces a container gets when
// Config.Namespaces is nil: everything but the user namespace, as Docker.
var DefaultNamespaces = []Namespace{
	NamespaceMount, NamespacePID, NamespaceUTS, NamespaceIPC, NamespaceNet, NamespaceCgroup,
}

// DefaultCapabilities is Docker's default capability set (14 capabilities,
// CapEff/CapBnd 00000000a80425fb for root in the container). The Default
// variables are read-only: copy them to change them.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultMaskedPaths are Docker's masked paths: files get /dev/null bound
// over them, directories an empty read-only tmpfs.
var DefaultMaskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// DefaultReadonlyPaths are Docker's read-only paths.
var DefaultReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// DefaultPath is the PATH used to find the command when the process
// environment has none (Docker's default PATH). It is not added to the
// environment: that is the caller's choice.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config describes a container for Start. It is plain data, serialised as
// JSON and sent to the container's init over a pipe. Fields are read once,
// by Start.
type Config struct {
	// ID identifies the container in errors. Optional.
	ID string `json:"id,omitempty"`
	// Hostname is set in the new UTS namespace. "" means the first 12
	// characters of ID, as Docker, or, without an ID, the hostname the UTS
	// namespace starts with (the host's).
	Hostname string `json:"hostname,omitempty"`

	// RootDir is a host directory that becomes the container's "/". When
	// Rootfs is empty it is bind-mounted onto itself (a plain rootfs dir);
	// otherwise the Rootfs mounts are performed on it. Required.
	RootDir string `json:"rootDir"`
	// Rootfs are the layer store's snapshot mounts (typically one overlay).
	// They are performed inside the container's mount namespace, so they
	// vanish with it and nothing leaks to the host. An empty Target means
	// RootDir; a relative Target is taken relative to RootDir.
	Rootfs []mount.Mount `json:"rootfs,omitempty"`
	// ReadonlyRootfs makes "/" read-only (mounts on top keep their own mode).
	ReadonlyRootfs bool `json:"readonlyRootfs,omitempty"`

	// Mounts are performed after the standard ones (/proc, /dev, /sys, ...),
	// in order. Targets are paths in the container, resolved inside RootDir
	// (symlinks cannot escape it) and created when missing (an empty file
	// when a bind source is a file). Binds (volumes are binds) take
	// "ro"/"rw" and propagation options; a missing bind source is an error
	// wrapping errdefs.ErrNotFound. A tmpfs takes "size=..." and "mode=...".
	Mounts []mount.Mount `json:"mounts,omitempty"`

	// Files are host files bind-mounted over container paths, for
	// /etc/hosts, /etc/hostname and /etc/resolv.conf: key is the container
	// path, value the host path. Nil binds nothing.
	Files map[string]string `json:"files,omitempty"`

	// Process is the container's main process.
	Process ProcessConfig `json:"process"`

	// Seccomp is the seccomp profile (seccomp.DefaultProfile() for
	// Docker's), compiled for the container's capabilities and installed
	// on the init and so on every process of the container. Nil means no
	// filter (unconfined). Start compiles it once per distinct profile.
	Seccomp *seccomp.Profile `json:"seccomp,omitempty"`

	// MaskedPaths are made unreadable, ReadonlyPaths read-only. Nil means
	// DefaultMaskedPaths and DefaultReadonlyPaths; an empty non-nil slice
	// means none. Ignored when Privileged.
	MaskedPaths   []string `json:"maskedPaths"`
	ReadonlyPaths []string `json:"readonlyPaths"`

	// Namespaces are the namespaces created for the container. Nil means
	// DefaultNamespaces. The mount namespace is required. Without "net" and
	// with NetNS empty the container shares the host's network.
	Namespaces []Namespace `json:"namespaces,omitempty"`
	// UIDMappings and GIDMappings map ids when Namespaces has "user".
	UIDMappings []IDMap `json:"uidMappings,omitempty"`
	GIDMappings []IDMap `json:"gidMappings,omitempty"`
	// MapRootfs shows the rootfs through idmapped mounts with the user
	// namespace's mappings, so that files owned by host ids appear owned by
	// the same ids in the container (host uid 0 as the container's root):
	// an image's layers need no chowned copy. For an overlay Rootfs only the
	// lower directories are idmapped, so what the container writes is
	// stored in the upper directory with the mapped host ids, and the upper
	// directory is chowned to the host ids of the container's root. False
	// uses the rootfs as it is (chown it to the mapped ids). Requires "user"
	// in Namespaces and container ids 0 mapped; see idmap.go for the
	// mechanism.
	MapRootfs bool `json:"mapRootfs,omitempty"`
	// NetNS is the path of an existing network namespace to join (for
	// example /proc/<pid>/ns/net of another container, Docker's
	// container:<id> mode) instead of creating one. "" joins nothing.
	NetNS string `json:"netns,omitempty"`

	// Privileged gives all capabilities, keeps /sys and /sys/fs/cgroup
	// writable and masks nothing. Seccomp is whatever the Seccomp field says
	// (Docker clears it for privileged containers; berth does too).
	Privileged bool `json:"privileged,omitempty"`

	// Detached keeps the container running when its owner (the program that
	// called Start) exits. By default the supervisor kills the container
	// when the owner's end of its control connection closes.
	Detached bool `json:"detached,omitempty"`
	// ControlDir is a host directory, private to the owner (mode 0700), in
	// which the supervisor listens on a control socket (control.sock) and
	// records the exit status (status.json), so that Attach can reach the
	// container from another process. "" means no socket (exec and signal
	// still work through the Container handle). Required with Detached.
	ControlDir string `json:"controlDir,omitempty"`
}

// ProcessConfig is a process to run in the container: the main process
// (Config.Process) or one started by Exec.
type ProcessConfig struct {
	// Args is the command and its arguments; Args[0] is looked up in the
	// PATH of Env (DefaultPath when none) unless it contains a "/".
	Args []string `json:"args"`
	// Env is the environment. HOME is added from the user's passwd entry
	// when missing. For Exec, nil means the main process's environment.
	Env []string `json:"env,omitempty"`
	// Cwd is the working directory, created when missing. "" means "/" (for
	// Exec: the main process's).
	Cwd string `json:"cwd,omitempty"`
	// User is "name", "uid", "name:group" or "uid:gid", resolved with the
	// container's /etc/passwd and /etc/group; the primary group comes from
	// passwd and supplementary groups from /etc/group membership. A numeric
	// uid without a passwd entry is allowed; a missing name is an error.
	// "" means root (for Exec: the main process's user).
	User string `json:"user,omitempty"`
	// AdditionalGroups are extra supplementary groups (names or gids).
	AdditionalGroups []string `json:"additionalGroups,omitempty"`
	// Terminal runs the process on a new pseudo-terminal; Stdout receives
	// its output, Stderr is unused.
	Terminal bool `json:"terminal,omitempty"`
	// Rlimits are set for the container (main process only; exec'd
	// processes inherit them).
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// NoNewPrivileges sets no_new_privs (main process only: it then holds
	// for every process of the container, as the supervisor keeps it too).
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	// Capabilities is the capability set ("CAP_CHOWN" or "CHOWN") of the
	// main process: the bounding set of the container, and the effective
	// set of a root process. Nil means DefaultCapabilities; Privileged
	// means all. Ignored for Exec (exec'd processes get the container's).
	Capabilities []string `json:"capabilities"`
}

// Rlimit is a resource limit. Type is "RLIMIT_NOFILE" or "nofile".
type Rlimit struct {
	Type string `json:"type"`
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// IDMap maps Size ids from ContainerID in the container to HostID.
type IDMap struct {
	ContainerID int `json:"containerID"`
	HostID      int `json:"hostID"`
	Size        int `json:"size"`
}

// MapToHost returns the host id that container id maps to in maps, or -1
// when the maps do not cover it.
func MapToHost(maps []IDMap, id int) int {
	for _, m := range maps {
		if id >= m.ContainerID && id < m.ContainerID+m.Size {
			return m.HostID + id - m.ContainerID
		}
	}
	return -1
}

// MapToContainer returns the container id that host id maps to in maps,
// or -1 when the maps do not cover it.
func MapToContainer(maps []IDMap, id int) int {
	for _, m := range maps {
		if id >= m.HostID && id < m.HostID+m.Size {
			return m.ContainerID + id - m.HostID
		}
	}
	return -1
}

// capabilities returns the capability names of the main process.
func (c *Config) capabilities() []string {
	if c.Privileged {
		all := make([]string, len(capNames))
		for i, n := range capNames {
			all[i] = "CAP_" + n
		}
		return all
	}
	if c.Process.Capabilities == nil {
		return DefaultCapabilities
	}
	return c.Process.Capabilities
}

func (c *Config) hostname() string {
	if c.Hostname != "" {
		return c.Hostname
	}
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

func (c *Config) namespaces() []Namespace {
	if c.Namespaces == nil {
		return DefaultNamespaces
	}
	return c.Namespaces
}

func (c *Config) has(ns Namespace) bool {
	for _, n := range c.namespaces() {
		if n == ns {
			return true
		}
	}
	return false
}

func (c *Config) maskedPaths() []string {
	if c.Privileged {
		return nil
	}
	if c.MaskedPaths == nil {
		return DefaultMaskedPaths
	}
	return c.MaskedPaths
}

func (c *Config) readonlyPaths() []string {
	if c.Privileged {
		return nil
	}
	if c.ReadonlyPaths == nil {
		return DefaultReadonlyPaths
	}
	return c.ReadonlyPaths
}
