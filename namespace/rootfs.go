//go:build linux

package namespace

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/mount"
	"golang.org/x/sys/unix"
)

// inRoot resolves the container path p inside root the way the container
// would see it: symlinks are followed relative to root, and ".." stops at
// root, so an image cannot point a mount target outside its rootfs. Missing
// components are kept as they are.
func inRoot(root, p string) (string, error) {
	var resolved string // always "" or "/..." relative to root
	rest := p
	links := 0
	for rest != "" {
		var comp string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			comp, rest = rest[:i], rest[i+1:]
		} else {
			comp, rest = rest, ""
		}
		switch comp {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir("/" + resolved)
			if resolved == "/" {
				resolved = ""
			}
			continue
		}
		next := resolved + "/" + comp
		fi, err := os.Lstat(root + next)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			resolved = next
			if err != nil { // the rest does not exist: keep it literally
				if rest != "" {
					resolved += "/" + rest
				}
				return path.Join(root, path.Clean("/"+resolved)), nil
			}
			continue
		}
		links++
		if links > 255 {
			return "", fmt.Errorf("resolving %s in the rootfs: %w", p, unix.ELOOP)
		}
		dest, err := os.Readlink(root + next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(dest) {
			resolved = ""
		}
		rest = dest + "/" + rest
	}
	return path.Join(root, path.Clean("/"+resolved)), nil
}

func mountErr(step string, err error) error { return stepErr(step, err) }

func doMount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &mount.Error{Op: "mount " + fstype, Source: source, Target: target, Err: err}
	}
	return nil
}

func mkdirIn(root, p string, mode os.FileMode) (string, error) {
	t, err := inRoot(root, p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(t, mode); err != nil {
		return "", err
	}
	return t, nil
}

// touchIn makes sure p exists in root as a file (a mount point for a file bind).
func touchIn(root, p string) (string, error) {
	t, err := inRoot(root, p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(path.Dir(t), 0o755); err != nil {
		return "", err
	}
	f, err := os.OpenFile(t, os.O_CREATE|os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EISDIR) {
			return t, nil
		}
		return "", err
	}
	f.Close()
	return t, nil
}

type device struct {
	name         string
	major, minor uint32
}

var defaultDevices = []device{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// setupRootfs builds the container's filesystem under root, in the new mount
// namespace, before pivot_root. Paths are host paths.
func (s *initState) setupRootfs() error {
	cfg := s.cfg
	root := cfg.RootDir
	if s.host.MountFDs {
		if err := s.recvMounts(); err != nil {
			return mountErr("mounts from the owner", err)
		}
	}

	// Nothing mounted from here on may propagate to the host.
	prop := uintptr(unix.MS_REC | unix.MS_PRIVATE)
	for _, m := range cfg.Mounts {
		_, p, _ := mount.ParseOptions(m.Options)
		if p&(unix.MS_SHARED|unix.MS_SLAVE) != 0 {
			prop = unix.MS_REC | unix.MS_SLAVE // keep receiving host events
		}
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return mountErr("make / private", os.NewSyscallError("mount", err))
	}

	if s.mfds != nil {
		r, err := s.attachRoot()
		if err != nil {
			return mountErr("mount rootfs", err)
		}
		root = r
	} else if len(cfg.Rootfs) > 0 {
		if err := mount.All(cfg.Rootfs, root); err != nil {
			return mountErr("mount rootfs", err)
		}
	} else if err := doMount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return mountErr("bind rootfs", err)
	}
	s.root = root

	// /proc
	t, err := mkdirIn(root, "/proc", 0o555)
	if err != nil {
		return mountErr("mkdir /proc", err)
	}
	if err := doMount("proc", t, "proc", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, ""); err != nil {
		return mountErr("mount /proc", err)
	}

	if err := s.setupDev(root); err != nil {
		return err
	}
	if err := s.setupSys(root); err != nil {
		return err
	}

	for _, p := range cfg.maskedPaths() {
		if err := maskPath(root, p); err != nil {
			return mountErr("mask "+p, err)
		}
	}
	for _, p := range cfg.readonlyPaths() {
		if err := readonlyPath(root, p); err != nil {
			return mountErr("read-only "+p, err)
		}
	}

	for i, m := range cfg.Mounts {
		var err error
		if f := s.mfds[mountKeyMount+strconv.Itoa(i)]; f != nil {
			err = attachAt(root, m.Target, f, m.Options)
		} else {
			err = mountInRoot(root, m)
		}
		if err != nil {
			return mountErr("mount "+m.Target, err)
		}
	}
	for _, target := range sortedKeys(cfg.Files) {
		if f := s.mfds[mountKeyFile+target]; f != nil {
			if err := attachAt(root, target, f, nil); err != nil {
				return mountErr("bind "+target, err)
			}
			continue
		}
		src := cfg.Files[target]
		t, err := touchIn(root, target)
		if err != nil {
			return mountErr("bind "+target, err)
		}
		if err := doMount(src, t, "", unix.MS_BIND, ""); err != nil {
			return mountErr("bind "+target, err)
		}
	}

	if cfg.ReadonlyRootfs {
		if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return mountErr("read-only rootfs", &mount.Error{Op: "remount", Target: root, Err: err})
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ { // tiny maps: insertion sort
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func (s *initState) setupDev(root string) error {
	dev, err := mkdirIn(root, "/dev", 0o755)
	if err != nil {
		return mountErr("mkdir /dev", err)
	}
	if err := doMount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return mountErr("mount /dev", err)
	}
	for _, d := range defaultDevices {
		p := dev + "/" + d.name
		if s.userns {
			// mknod is not allowed in a user namespace: bind the host's.
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o666)
			if err != nil {
				return mountErr("create /dev/"+d.name, err)
			}
			f.Close()
			if err := doMount("/dev/"+d.name, p, "", unix.MS_BIND, ""); err != nil {
				return mountErr("bind /dev/"+d.name, err)
			}
			continue
		}
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return mountErr("mknod /dev/"+d.name, os.NewSyscallError("mknod", err))
		}
	}
	if s.cfg.Privileged && !s.userns {
		if err := copyHostDevices("/dev", dev); err != nil {
			return mountErr("privileged devices", err)
		}
	}
	if err := os.Mkdir(dev+"/pts", 0o755); err != nil {
		return mountErr("mkdir /dev/pts", err)
	}
	ptsData := "newinstance,ptmxmode=0666,mode=0620"
	if !s.userns || MapToHost(s.cfg.GIDMappings, 5) >= 0 {
		ptsData += ",gid=5"
	}
	if err := doMount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsData); err != nil {
		return mountErr("mount /dev/pts", err)
	}
	if err := os.Symlink("pts/ptmx", dev+"/ptmx"); err != nil {
		return mountErr("symlink /dev/ptmx", err)
	}
	if err := os.Mkdir(dev+"/shm", 0o1777); err != nil {
		return mountErr("mkdir /dev/shm", err)
	}
	if err := doMount("shm", dev+"/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, "mode=1777,size=65536k"); err != nil {
		return mountErr("mount /dev/shm", err)
	}
	if err := os.Mkdir(dev+"/mqueue", 0o755); err != nil {
		return mountErr("mkdir /dev/mqueue", err)
	}
	if err := doMount("mqueue", dev+"/mqueue", "mqueue", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, ""); err != nil {
		// A user namespace without its own IPC namespace cannot mount mqueue.
		if !s.userns {
			return mountErr("mount /dev/mqueue", err)
		}
	}
	for _, l := range [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	} {
		if err := os.Symlink(l[0], dev+"/"+l[1]); err != nil {
			return mountErr("symlink /dev/"+l[1], err)
		}
	}
	if s.cfg.Process.Terminal {
		f, err := os.OpenFile(dev+"/console", os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return mountErr("create /dev/console", err)
		}
		f.Close()
	}
	return nil
}

func (s *initState) setupSys(root string) error {
	sys, err := mkdirIn(root, "/sys", 0o555)
	if err != nil {
		return mountErr("mkdir /sys", err)
	}
	ro := uintptr(unix.MS_RDONLY)
	if s.cfg.Privileged {
		ro = 0
	}
	flags := unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | ro
	if s.userns && !s.cfg.has(NamespaceNet) {
		// sysfs cannot be mounted from a user namespace that does not own
		// the network namespace: bind the host's, read-only.
		if err := doMount("/sys", sys, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return mountErr("bind /sys", err)
		}
		if ro != 0 {
			if err := unix.Mount("", sys, "", unix.MS_REMOUNT|unix.MS_BIND|flags, ""); err != nil {
				return mountErr("read-only /sys", &mount.Error{Op: "remount", Target: sys, Err: err})
			}
		}
		return nil
	}
	if err := doMount("sysfs", sys, "sysfs", flags, ""); err != nil {
		return mountErr("mount /sys", err)
	}
	if s.userns && len(s.host.CgroupV1) > 0 {
		// cgroup v1 cannot be mounted from a user namespace: bind the host's.
		cg := sys + "/fs/cgroup"
		if err := doMount("/sys/fs/cgroup", cg, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return mountErr("bind /sys/fs/cgroup", err)
		}
		if ro != 0 {
			if err := unix.Mount("", cg, "", unix.MS_REMOUNT|unix.MS_BIND|flags, ""); err != nil {
				return mountErr("read-only /sys/fs/cgroup", &mount.Error{Op: "remount", Target: cg, Err: err})
			}
		}
		return nil
	}
	if !s.cgroupDeferred {
		if err := s.mountCgroups(sys + "/fs/cgroup"); err != nil {
			return err
		}
	} else if len(s.host.CgroupV1) > 0 {
		s.prepareCgroupBinds(sys + "/fs/cgroup")
	}
	return nil
}

// Mounting a cgroup v1 hierarchy is slow when the host is busy with cgroups
// (the kernel drains offline cgroups under its global cgroup mutex: 3-30 ms
// per hierarchy measured here). Where the new mount API is available, the
// init instead bind-mounts its own cgroup directory of each hierarchy,
// which is what a mount in its cgroup namespace shows: before pivot_root it
// opens the host's hierarchies (prepareCgroupBinds); once the owner has
// placed it in the container's cgroups it clones the subtrees and moves them
// into place (bindCgroups).
type cgroupBinds struct {
	fds []int // per s.host.CgroupV1 entry, O_PATH fds of the host hierarchy
}

func (s *initState) prepareCgroupBinds(dir string) {
	if err := doMount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, "mode=755"); err != nil {
		return // mountCgroups will report it
	}
	fds := make([]int, len(s.host.CgroupV1))
	for i, cg := range s.host.CgroupV1 {
		// A detached clone: it survives pivot_root, and a subtree of it can
		// be cloned again later.
		fd, err := unix.OpenTree(unix.AT_FDCWD, "/sys/fs/cgroup/"+cg.Dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err == nil {
			err = os.Mkdir(dir+"/"+cg.Dir, 0o555)
		}
		if err != nil {
			for _, f := range fds[:i] {
				unix.Close(f)
			}
			_ = unix.Unmount(dir, unix.MNT_DETACH)
			return
		}
		fds[i] = fd
	}
	s.cgBinds = &cgroupBinds{fds: fds}
}

// bindCgroups runs after pivot_root, before the cgroup namespace is
// unshared (/proc/self/cgroup still shows the paths in the hierarchies).
func (s *initState) bindCgroups(dir string) error {
	b := s.cgBinds
	defer func() {
		for _, fd := range b.fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return mountErr("read /proc/self/cgroup", err)
	}
	paths := map[string]string{} // sorted controllers ("" for v2) -> path
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			paths[sortedList(parts[1])] = parts[2]
		}
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if !s.cfg.Privileged {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	for i, cg := range s.host.CgroupV1 {
		key := sortedList(cg.Options)
		if cg.Type == "cgroup2" {
			key = ""
		}
		p, ok := paths[key]
		if !ok {
			return mountErr("cgroup "+cg.Dir, fmt.Errorf("not in /proc/self/cgroup"))
		}
		tree := b.fds[i]
		if rel := strings.TrimPrefix(p, "/"); rel != "" {
			tree, err = unix.OpenTree(b.fds[i], rel, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if err != nil {
				return mountErr("cgroup "+cg.Dir, os.NewSyscallError("open_tree", err))
			}
		} else {
			b.fds[i] = -1 // moved into place below, closed there
		}
		err = unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr)
		if err == nil {
			err = unix.MoveMount(tree, "", unix.AT_FDCWD, dir+"/"+cg.Dir, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		unix.Close(tree)
		if err != nil {
			return mountErr("cgroup "+cg.Dir, err)
		}
	}
	if !s.cfg.Privileged {
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, "mode=755"); err != nil {
			return mountErr("read-only /sys/fs/cgroup", &mount.Error{Op: "remount", Target: dir, Err: err})
		}
	}
	return nil
}

func sortedList(s string) string {
	l := strings.Split(s, ",")
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j] < l[j-1]; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return strings.Join(l, ",")
}

// mountCgroups mounts the cgroup filesystems at dir (read-only unless
// privileged): cgroup2 on a unified host, or a tmpfs holding each v1
// hierarchy (and the hybrid "unified" one) as the host has them. Mounted in
// the container's cgroup namespace, they show the container's cgroup as root.
func (s *initState) mountCgroups(dir string) error {
	ro := uintptr(unix.MS_RDONLY)
	if s.cfg.Privileged {
		ro = 0
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV)
	if len(s.host.CgroupV1) == 0 {
		if err := doMount("cgroup2", dir, "cgroup2", flags|ro, ""); err != nil {
			return mountErr("mount /sys/fs/cgroup", err)
		}
		return nil
	}
	if err := doMount("tmpfs", dir, "tmpfs", flags, "mode=755"); err != nil {
		return mountErr("mount /sys/fs/cgroup", err)
	}
	for _, cg := range s.host.CgroupV1 {
		p := dir + "/" + cg.Dir
		if err := os.Mkdir(p, 0o555); err != nil {
			return mountErr("mkdir /sys/fs/cgroup/"+cg.Dir, err)
		}
		if err := doMount("cgroup", p, cg.Type, flags|ro, cg.Options); err != nil {
			return mountErr("mount /sys/fs/cgroup/"+cg.Dir, err)
		}
	}
	if ro != 0 {
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|flags|ro, "mode=755"); err != nil {
			return mountErr("read-only /sys/fs/cgroup", &mount.Error{Op: "remount", Target: dir, Err: err})
		}
	}
	return nil
}

func maskPath(root, p string) error {
	t, err := inRoot(root, p)
	if err != nil {
		return err
	}
	fi, err := os.Stat(t)
	if err != nil {
		return nil // nothing to mask
	}
	if fi.IsDir() {
		return doMount("tmpfs", t, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
	}
	return doMount(root+"/dev/null", t, "", unix.MS_BIND, "")
}

func readonlyPath(root, p string) error {
	t, err := inRoot(root, p)
	if err != nil {
		return err
	}
	if _, err := os.Stat(t); err != nil {
		return nil
	}
	if err := doMount(t, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return &mount.Error{Op: "remount", Target: t, Err: err}
	}
	return nil
}

// mountInRoot performs a user mount with its target resolved in root.
func mountInRoot(root string, m mount.Mount) error {
	t, err := inRoot(root, m.Target)
	if err != nil {
		return err
	}
	if m.IsBind() {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("bind source %s: %w: %w", m.Source, errdefs.ErrNotFound, err)
		}
		if fi.IsDir() {
			err = os.MkdirAll(t, 0o755)
		} else {
			_, err = touchIn(root, strings.TrimPrefix(t, root))
		}
		if err != nil {
			return err
		}
	} else if err := os.MkdirAll(t, 0o755); err != nil {
		return err
	}
	m.Target = t
	return m.Mount("")
}

// copyHostDevices recreates the host's device nodes under dst (a privileged
// container gets all of them, as with Docker), one directory level deep;
// what the container has its own of (pts, shm, mqueue, console, ptmx, the
// standard devices) is skipped.
func copyHostDevices(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		switch name {
		case "pts", "shm", "mqueue", "console", "ptmx", "fd", "stdin", "stdout", "stderr", "core":
			continue
		}
		sp, dp := src+"/"+name, dst+"/"+name
		var st unix.Stat_t
		if err := unix.Lstat(sp, &st); err != nil {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if src != "/dev" {
				continue
			}
			if err := os.Mkdir(dp, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			if err := copyHostDevices(sp, dp); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			if err := unix.Mknod(dp, st.Mode, int(st.Rdev)); err != nil && err != unix.EEXIST {
				return os.NewSyscallError("mknod "+dp, err)
			}
			_ = unix.Chown(dp, int(st.Uid), int(st.Gid))
		}
	}
	return nil
}
