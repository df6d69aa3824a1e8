//go:build linux

package berth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthrt/berth/internal/ids"
	"github.com/berthrt/berth/mount"
	"github.com/berthrt/berth/namespace"
	"github.com/berthrt/berth/namespace/seccomp"
	"golang.org/x/sys/unix"
)

// mergeArgs is Docker's rule: ENTRYPOINT + CMD; a Cmd replaces the image's
// CMD; an Entrypoint replaces the image's ENTRYPOINT and clears its CMD.
func mergeArgs(img *Image, cfg *ContainerConfig) []string {
	entry, cmd := img.Entrypoint(), img.Cmd()
	if cfg.Entrypoint != nil {
		entry, cmd = cfg.Entrypoint, nil
	}
	if cfg.Cmd != nil {
		cmd = cfg.Cmd
	}
	out := append([]string{}, entry...)
	return append(out, cmd...)
}

// mergeEnv is the image's environment, then the config's (later wins),
// with PATH defaulted and HOSTNAME set as Docker does.
func mergeEnv(img *Image, cfg *ContainerConfig, id string) []string {
	var keys []string
	vals := map[string]string{}
	set := func(kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	host := cfg.Hostname
	if host == "" {
		host = ids.Short(id)
	}
	set("PATH=" + namespace.DefaultPath)
	set("HOSTNAME=" + host)
	for _, e := range img.Env() {
		set(e)
	}
	for _, e := range cfg.Env {
		set(e)
	}
	if cfg.TTY {
		if _, ok := vals["TERM"]; !ok {
			set("TERM=xterm")
		}
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+vals[k])
	}
	return out
}

func validateConfig(cfg *ContainerConfig) error {
	for _, m := range cfg.Mounts {
		if !filepath.IsAbs(m.Target) {
			return fmt.Errorf("mount target %q is not absolute: %w", m.Target, ErrInvalid)
		}
		switch mountType(m) {
		case "bind":
			if _, err := os.Stat(m.Source); err != nil {
				return fmt.Errorf("bind source %s: %w", m.Source, ErrNotFound)
			}
		case "volume":
			if err := validVolumeName(m.Source); err != nil {
				return err
			}
		case "tmpfs":
		default:
			return fmt.Errorf("mount type %q: %w", m.Type, ErrInvalid)
		}
	}
	for _, u := range cfg.Ulimits {
		if _, ok := rlimitNames[u.Name]; !ok {
			return fmt.Errorf("ulimit %q: unknown name: %w", u.Name, ErrInvalid)
		}
		if u.Soft > u.Hard {
			return fmt.Errorf("ulimit %s: soft %d above hard %d: %w", u.Name, u.Soft, u.Hard, ErrInvalid)
		}
	}
	if cfg.Seccomp != nil && !cfg.SeccompUnconfined {
		if _, err := seccomp.Load(strings.NewReader(string(cfg.Seccomp))); err != nil {
			return fmt.Errorf("seccomp profile: %w", err)
		}
	}
	if _, err := capabilitySet(cfg); err != nil {
		return err
	}
	if cfg.StopSignal != "" {
		if _, err := ParseSignal(cfg.StopSignal); err != nil {
			return err
		}
	}
	if err := validateIDMaps(cfg.UIDMappings, cfg.GIDMappings); err != nil {
		return err
	}
	if cfg.Privileged && len(cfg.UIDMappings) > 0 {
		// As Docker: privileged mode needs the host's user namespace.
		return fmt.Errorf("Privileged with UIDMappings: a privileged container runs in the host's user namespace: %w", ErrInvalid)
	}
	return cfg.Resources.Validate()
}

// maxIDMapLines is the kernel's limit on the lines of a uid_map or gid_map.
const maxIDMapLines = 340

// validateIDMaps checks UIDMappings and GIDMappings as the kernel would
// when writing them, and that each maps the container's root.
func validateIDMaps(uids, gids []IDMap) error {
	if (len(uids) == 0) != (len(gids) == 0) {
		if len(uids) == 0 {
			return fmt.Errorf("GIDMappings without UIDMappings: give both or neither: %w", ErrInvalid)
		}
		return fmt.Errorf("UIDMappings without GIDMappings: give both or neither: %w", ErrInvalid)
	}
	for _, f := range []struct {
		name string
		maps []IDMap
	}{{"UIDMappings", uids}, {"GIDMappings", gids}} {
		if len(f.maps) > maxIDMapLines {
			return fmt.Errorf("%s: %d ranges, more than the kernel's %d: %w", f.name, len(f.maps), maxIDMapLines, ErrInvalid)
		}
		root := false
		for i, m := range f.maps {
			switch {
			case m.Size <= 0:
				return fmt.Errorf("%s[%d] %d:%d:%d: size must be positive: %w", f.name, i, m.ContainerID, m.HostID, m.Size, ErrInvalid)
			case m.ContainerID < 0 || m.HostID < 0:
				return fmt.Errorf("%s[%d] %d:%d:%d: negative id: %w", f.name, i, m.ContainerID, m.HostID, m.Size, ErrInvalid)
			case uint64(m.ContainerID)+uint64(m.Size) > 1<<32-1 || uint64(m.HostID)+uint64(m.Size) > 1<<32-1:
				return fmt.Errorf("%s[%d] %d:%d:%d: beyond the 32-bit id range: %w", f.name, i, m.ContainerID, m.HostID, m.Size, ErrInvalid)
			}
			if m.ContainerID == 0 {
				root = true
			}
			for j, o := range f.maps[:i] {
				if overlaps(m.ContainerID, m.Size, o.ContainerID, o.Size) {
					return fmt.Errorf("%s[%d] and [%d]: container ranges overlap: %w", f.name, j, i, ErrInvalid)
				}
				if overlaps(m.HostID, m.Size, o.HostID, o.Size) {
					return fmt.Errorf("%s[%d] and [%d]: host ranges overlap: %w", f.name, j, i, ErrInvalid)
				}
			}
		}
		if len(f.maps) > 0 && !root {
			return fmt.Errorf("%s: container id 0 (root) is not mapped: %w", f.name, ErrInvalid)
		}
	}
	return nil
}

func overlaps(a, n, b, m int) bool { return a < b+m && b < a+n }

func mountType(m Mount) string {
	switch {
	case m.Type != "":
		return m.Type
	case m.Source == "":
		return "tmpfs"
	case filepath.IsAbs(m.Source):
		return "bind"
	}
	return "volume"
}

var rlimitNames = map[string]int{
	"core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
	"as": unix.RLIMIT_AS,
}

var allCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

func normCap(c string) string { return strings.TrimPrefix(strings.ToUpper(c), "CAP_") }

// capabilitySet is Docker's default set with CapAdd and CapDrop applied.
func capabilitySet(cfg *ContainerConfig) ([]string, error) {
	known := map[string]bool{}
	for _, c := range allCaps {
		known[c] = true
	}
	if cfg.Privileged {
		out := make([]string, len(allCaps))
		for i, c := range allCaps {
			out[i] = "CAP_" + c
		}
		return out, nil
	}
	set := map[string]bool{}
	for _, c := range namespace.DefaultCapabilities {
		set[normCap(c)] = true
	}
	for _, c := range cfg.CapDrop {
		n := normCap(c)
		if n == "ALL" {
			set = map[string]bool{}
			continue
		}
		if !known[n] {
			return nil, fmt.Errorf("cap-drop %q: unknown capability: %w", c, ErrInvalid)
		}
		delete(set, n)
	}
	for _, c := range cfg.CapAdd {
		n := normCap(c)
		if n == "ALL" {
			for _, k := range allCaps {
				set[k] = true
			}
			continue
		}
		if !known[n] {
			return nil, fmt.Errorf("cap-add %q: unknown capability: %w", c, ErrInvalid)
		}
		set[n] = true
	}
	out := []string{}
	for _, c := range allCaps {
		if set[c] {
			out = append(out, "CAP_"+c)
		}
	}
	return out, nil
}

// ParseSignal parses "SIGTERM", "TERM", "term" or "15".
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: %w", s, ErrInvalid)
}

// maxUserLen bounds a "user[:group]" string: two names of at most
// LOGIN_NAME_MAX (256) bytes and the colon.
const maxUserLen = 2*256 + 1

// checkProcessStrings refuses what an image (or the caller) may put in a
// process's user, working directory, environment or arguments but no
// process can have: a NUL byte (execve and the passwd lookup would cut or
// refuse it), or a user longer than any passwd entry. The error wraps
// ErrInvalid, at Start, instead of a failure deep in the init.
func checkProcessStrings(user, cwd string, env, args []string) error {
	if len(user) > maxUserLen || strings.ContainsRune(user, 0) {
		return fmt.Errorf("user %.64q (%d bytes): not a valid user: %w", user, len(user), ErrInvalid)
	}
	if strings.ContainsRune(cwd, 0) {
		return fmt.Errorf("working directory %.64q contains a NUL byte: %w", cwd, ErrInvalid)
	}
	for _, e := range env {
		if strings.ContainsRune(e, 0) {
			return fmt.Errorf("environment entry %.64q contains a NUL byte: %w", e, ErrInvalid)
		}
	}
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("argument %.64q contains a NUL byte: %w", a, ErrInvalid)
		}
	}
	return nil
}

// namespaceConfig turns the container's record into the init's config.
func (c *Container) namespaceConfig(ctx context.Context, rootfs []mount.Mount) (*namespace.Config, error) {
	cfg := &c.rec.Config
	rootDir := filepath.Join(c.dir, "rootfs")
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return nil, err
	}
	caps, err := capabilitySet(cfg)
	if err != nil {
		return nil, err
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = ids.Short(c.id)
	}
	cwd, user := c.rec.Cwd, c.rec.User
	if err := checkProcessStrings(user, cwd, c.rec.Env, c.rec.Args); err != nil {
		return nil, err
	}
	n := &namespace.Config{
		ID:             c.id,
		Hostname:       hostname,
		RootDir:        rootDir,
		Rootfs:         rootfs,
		ReadonlyRootfs: cfg.ReadOnlyRootfs,
		Privileged:     cfg.Privileged,
		Detached:       cfg.Detached,
		Process: namespace.ProcessConfig{
			Args:            c.rec.Args,
			Env:             c.rec.Env,
			Cwd:             cwd,
			User:            user,
			Terminal:        cfg.TTY,
			NoNewPrivileges: cfg.NoNewPrivileges,
			Capabilities:    caps,
		},
	}
	if len(cfg.UIDMappings) > 0 {
		n.Namespaces = append(append([]namespace.Namespace(nil), namespace.DefaultNamespaces...), namespace.NamespaceUser)
		n.UIDMappings, n.GIDMappings = cfg.UIDMappings, cfg.GIDMappings
		n.MapRootfs = true // the image's layers, idmapped
	}
	for _, u := range cfg.Ulimits {
		n.Process.Rlimits = append(n.Process.Rlimits, namespace.Rlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: u.Soft, Hard: u.Hard})
	}
	if !cfg.Privileged && !cfg.SeccompUnconfined {
		if cfg.Seccomp != nil {
			p, err := seccomp.Load(strings.NewReader(string(cfg.Seccomp)))
			if err != nil {
				return nil, fmt.Errorf("seccomp profile: %w", err)
			}
			n.Seccomp = p
		} else {
			n.Seccomp = seccomp.DefaultProfile()
		}
	}
	for _, d := range cfg.Devices {
		target := d.PathInContainer
		if target == "" {
			target = d.PathOnHost
		}
		n.Mounts = append(n.Mounts, mount.Mount{Type: "bind", Source: d.PathOnHost, Target: target, Options: []string{"bind"}})
	}
	rootUID, rootGID := namespace.MapToHost(cfg.UIDMappings, 0), namespace.MapToHost(cfg.GIDMappings, 0)
	for _, m := range cfg.Mounts {
		nm, err := c.rt.nsMount(ctx, m, rootUID, rootGID)
		if err != nil {
			return nil, err
		}
		n.Mounts = append(n.Mounts, nm)
	}
	if cfg.Detached {
		n.ControlDir = filepath.Join(c.rt.cfg.RunDir, "c", c.id[:16])
		if err := os.MkdirAll(n.ControlDir, 0o700); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// nsMount turns a Mount into the mount the init performs. A volume it
// creates belongs to rootUID:rootGID (the host ids of a mapped container's
// root; -1 for unmapped).
func (rt *Runtime) nsMount(ctx context.Context, m Mount, rootUID, rootGID int) (mount.Mount, error) {
	opts := append([]string{}, m.Options...)
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	switch mountType(m) {
	case "tmpfs":
		return mount.Mount{Type: "tmpfs", Source: "tmpfs", Target: m.Target, Options: append([]string{"nosuid", "nodev"}, opts...)}, nil
	case "volume":
		dir, err := rt.volumeDir(ctx, m.Source, rootUID, rootGID)
		if err != nil {
			return mount.Mount{}, err
		}
		return mount.Mount{Type: "bind", Source: dir, Target: m.Target, Options: append([]string{"rbind"}, opts...)}, nil
	default:
		return mount.Mount{Type: "bind", Source: m.Source, Target: m.Target, Options: append([]string{"rbind"}, opts...)}, nil
	}
}
