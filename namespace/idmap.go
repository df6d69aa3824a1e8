//go:build linux

package namespace

// Mounts prepared by the owner, for containers in a user namespace.
//
// A container with a user namespace runs its init as that namespace's root,
// which has no privilege over the host's files: it cannot look up paths
// below directories private to host root (berth's root and run directories
// are 0700), overlayfs mounted from it ignores the layers'
// trusted.overlay.* xattrs (opaque directories), and it cannot make
// idmapped mounts. So the owner, host root, prepares each host-side mount
// the init needs as a detached mount (open_tree(OPEN_TREE_CLONE), or
// fsopen/fsmount for an overlay) and passes the descriptors over the control
// socket ("mountfd" messages, then "mounts"), right after the clone and
// before Prestart; the init attaches them with move_mount in its own mount
// namespace. A detached mount belongs to no mount namespace: whichever side
// dies, it goes with the last descriptor, and nothing ever appears on the
// host.
//
// With Config.MapRootfs the rootfs is shown through idmapped mounts
// (mount_setattr MOUNT_ATTR_IDMAP) with the init's own user namespace
// (/proc/<pid>/ns/user, opened right after the clone: Go writes the id maps
// before the child runs, so no helper process is needed), and a file owned
// by host uid 0 in an image layer appears owned by the container's root.
// For an overlay only the lower directories are idmapped. The overlay
// itself cannot be (overlayfs does not allow idmapped mounts of itself), and
// its upper directory is used as it is, so what the container writes is
// stored with the mapped host ids, as with a chowned rootfs; the upper
// directory, which is the container's "/", is chowned to the host ids of
// the container's root. The overlay is created by the owner, in the initial
// user namespace, so its layer xattrs count. Layers are passed as
// descriptors ("lowerdir+" with FSCONFIG_SET_FD) or, where the kernel does
// not take those, as /proc/self/fd paths; overlayfs accepts layers on
// detached mounts from Linux 6.15. A bind rootfs (a copy snapshot, or a
// plain directory) is idmapped as a whole: there, what the container writes
// is stored with the ids it has in the container (container root as host
// uid 0), as with podman's idmap mount option.

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

// Keys of the descriptors in "mountfd" messages.
const (
	mountKeyRoot    = "root"    // the rootfs, detached
	mountKeyRootDir = "rootdir" // O_PATH fd of RootDir in the init's mount namespace
	mountKeyFile    = "file:"   // + container path: a Files entry
	mountKeyMount   = "mount:"  // + index in Config.Mounts: a bind mount
)

// mountAttrs turns mount flags into MOUNT_ATTR_* bits.
func mountAttrs(flags uintptr) uint64 {
	var a uint64
	for _, f := range []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV}, {unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NOATIME, unix.MOUNT_ATTR_NOATIME}, {unix.MS_STRICTATIME, unix.MOUNT_ATTR_STRICTATIME},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	} {
		if flags&f.ms != 0 {
			a |= f.attr
		}
	}
	return a
}

// cloneTree returns a detached copy of the mount at src (with its submounts
// when recursive), with attrs set and, when userns >= 0, idmapped with the
// user namespace userns.
func cloneTree(src string, recursive bool, attrs uint64, userns int) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	if err != nil {
		err = &mount.Error{Op: "open_tree", Target: src, Err: err}
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
		}
		return nil, err
	}
	attr := unix.MountAttr{Attr_set: attrs}
	if userns >= 0 {
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(userns)
	}
	if attr.Attr_set != 0 {
		at := unix.AT_EMPTY_PATH
		if recursive {
			at |= unix.AT_RECURSIVE
		}
		if err := unix.MountSetattr(fd, "", uint(at), &attr); err != nil {
			unix.Close(fd)
			op := "mount_setattr"
			if userns >= 0 {
				op = "idmap"
			}
			return nil, &mount.Error{Op: op, Target: src, Err: err}
		}
	}
	return os.NewFile(uintptr(fd), "mount:"+src), nil
}

// overlayMount creates the overlay m as a detached mount, its lower
// directories idmapped with userns when userns >= 0 (the upper directory
// then chowned to uid:gid).
func overlayMount(m mount.Mount, userns, uid, gid int) (_ *os.File, err error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, &mount.Error{Op: "fsopen overlay", Err: err}
	}
	defer unix.Close(fsfd)
	fsErr := func(op string, err error) error {
		// The filesystem's own messages, if it left any, say more.
		b := make([]byte, 1024)
		var msgs []string
		for {
			n, rerr := unix.Read(fsfd, b)
			if rerr != nil || n <= 0 {
				break
			}
			msgs = append(msgs, string(b[:n]))
		}
		if len(msgs) > 0 {
			err = fmt.Errorf("%w (%s)", err, strings.Join(msgs, "; "))
		}
		return &mount.Error{Op: op, Source: "overlay", Err: err}
	}
	var lowers []*os.File
	defer func() { closeFiles(lowers) }()
	var flags uintptr
	for _, o := range m.Options {
		f, p, data := mount.ParseOptions([]string{o})
		flags |= f
		if p != 0 || data == "" {
			continue
		}
		key, val, hasVal := strings.Cut(data, "=")
		switch {
		case key == "lowerdir" && userns >= 0:
			for _, dir := range strings.Split(val, ":") {
				l, err := cloneTree(dir, false, 0, userns)
				if err != nil {
					return nil, err
				}
				lowers = append(lowers, l)
			}
			if err := setLowers(fsfd, lowers); err != nil {
				return nil, fsErr("fsconfig lowerdir", err)
			}
			continue
		case key == "upperdir" && userns >= 0:
			if err := os.Lchown(val, uid, gid); err != nil {
				return nil, fmt.Errorf("upper directory for the container's root: %w", err)
			}
		}
		var err error
		if hasVal {
			err = unix.FsconfigSetString(fsfd, key, val)
		} else {
			err = unix.FsconfigSetFlag(fsfd, key)
		}
		if err != nil {
			return nil, fsErr("fsconfig "+key, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fsErr("fsconfig create", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(mountAttrs(flags)))
	if err != nil {
		return nil, fsErr("fsmount", err)
	}
	return os.NewFile(uintptr(mfd), "overlay"), nil
}

// setLowers gives the overlay its lower layers, top first: as descriptors
// where the kernel takes them, else as /proc/self/fd paths.
func setLowers(fsfd int, lowers []*os.File) error {
	err := unix.FsconfigSetFd(fsfd, "lowerdir+", int(lowers[0].Fd()))
	if err == nil {
		for _, l := range lowers[1:] {
			if err := unix.FsconfigSetFd(fsfd, "lowerdir+", int(l.Fd())); err != nil {
				return err
			}
		}
		return nil
	}
	paths := make([]string, len(lowers))
	for i, l := range lowers {
		paths[i] = "/proc/self/fd/" + strconv.Itoa(int(l.Fd()))
	}
	return unix.FsconfigSetString(fsfd, "lowerdir", strings.Join(paths, ":"))
}

type mountFD struct {
	key string
	f   *os.File
}

// prepareMounts makes the detached mounts the init pid needs (see above).
func prepareMounts(cfg *Config, pid int) (out []mountFD, err error) {
	defer func() {
		if err != nil {
			for _, m := range out {
				m.f.Close()
			}
			out = nil
		}
	}()
	userns := -1
	uid, gid := MapToHost(cfg.UIDMappings, 0), MapToHost(cfg.GIDMappings, 0)
	if cfg.MapRootfs {
		fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("user namespace of the init: %w", err)
		}
		defer unix.Close(fd)
		userns = fd
	}
	rootDir, err := absPath(cfg.RootDir)
	if err != nil {
		return nil, err
	}
	// RootDir as the init sees it: in its mount namespace.
	dir, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/root"+rootDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("rootfs directory: %w", err)
	}
	out = append(out, mountFD{mountKeyRootDir, dir})

	var root *os.File
	switch {
	case len(cfg.Rootfs) == 0:
		root, err = cloneTree(rootDir, true, 0, userns)
	case len(cfg.Rootfs) == 1 && (cfg.Rootfs[0].Target == "" || path.Clean(cfg.Rootfs[0].Target) == rootDir):
		m := cfg.Rootfs[0]
		flags, _, _ := mount.ParseOptions(m.Options)
		switch {
		case m.IsBind():
			root, err = cloneTree(m.Source, flags&unix.MS_REC != 0, mountAttrs(flags), userns)
		case m.Type == "overlay":
			root, err = overlayMount(m, userns, uid, gid)
		default:
			err = fmt.Errorf("rootfs of type %q in a user namespace: %w", m.Type, errdefs.ErrUnsupported)
		}
	default:
		err = fmt.Errorf("rootfs of %d mounts in a user namespace: %w", len(cfg.Rootfs), errdefs.ErrUnsupported)
	}
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	out = append(out, mountFD{mountKeyRoot, root})

	for _, t := range sortedKeys(cfg.Files) {
		f, err := cloneTree(cfg.Files[t], false, 0, -1)
		if err != nil {
			return nil, fmt.Errorf("file for %s: %w", t, err)
		}
		out = append(out, mountFD{mountKeyFile + t, f})
	}
	for i, m := range cfg.Mounts {
		if !m.IsBind() {
			continue
		}
		flags, _, _ := mount.ParseOptions(m.Options)
		f, err := cloneTree(m.Source, flags&unix.MS_REC != 0, mountAttrs(flags), -1)
		if err != nil {
			return nil, fmt.Errorf("bind mount %s: %w", m.Target, err)
		}
		out = append(out, mountFD{mountKeyMount + strconv.Itoa(i), f})
	}
	return out, nil
}

// sendMounts prepares the init's mounts and sends them to it.
func sendMounts(owner *conn, cfg *Config, pid int) error {
	mfds, err := prepareMounts(cfg, pid)
	if err != nil {
		return err
	}
	defer func() {
		for _, m := range mfds {
			m.f.Close()
		}
	}()
	for _, m := range mfds {
		if err := owner.send(&message{Op: "mountfd", Mount: m.key}, m.f); err != nil {
			return err
		}
	}
	return owner.send(&message{Op: "mounts"})
}

// recvMounts receives the owner's mounts (the init side of sendMounts).
func (s *initState) recvMounts() error {
	s.mfds = map[string]*os.File{}
	for {
		m, files, err := s.owner.recv()
		if err != nil {
			return fmt.Errorf("receiving mounts: %w", err)
		}
		switch {
		case m.Op == "mounts":
			closeFiles(files)
			if s.mfds[mountKeyRoot] == nil || s.mfds[mountKeyRootDir] == nil {
				return fmt.Errorf("receiving mounts: no rootfs: %w", errBadMessage)
			}
			return nil
		case m.Op == "mountfd" && len(files) == 1:
			if old := s.mfds[m.Mount]; old != nil {
				old.Close()
			}
			s.mfds[m.Mount] = files[0]
		default:
			closeFiles(files)
			return fmt.Errorf("receiving mounts: unexpected %q: %w", m.Op, errBadMessage)
		}
	}
}

// closeMounts closes what recvMounts received (after pivot_root).
func (s *initState) closeMounts() {
	for k, f := range s.mfds {
		f.Close()
		delete(s.mfds, k)
	}
}

// attachRoot moves the received rootfs onto RootDir and returns the path
// that names it from now on: RootDir itself may be out of reach.
func (s *initState) attachRoot() (string, error) {
	r, d := s.mfds[mountKeyRoot], s.mfds[mountKeyRootDir]
	if err := unix.MoveMount(int(r.Fd()), "", int(d.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return "", &mount.Error{Op: "move_mount", Source: "rootfs", Target: s.cfg.RootDir, Err: err}
	}
	return "/proc/self/fd/" + strconv.Itoa(int(r.Fd())), nil
}

// attachAt moves the received mount f onto target (created as a directory
// or a file, as f is), then applies the propagation in options.
func attachAt(root, target string, f *os.File, options []string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	t, err := inRoot(root, target)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.MkdirAll(t, 0o755)
	} else {
		_, err = touchIn(root, strings.TrimPrefix(t, root))
	}
	if err != nil {
		return err
	}
	if err := unix.MoveMount(int(f.Fd()), "", unix.AT_FDCWD, t, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return &mount.Error{Op: "move_mount", Target: t, Err: err}
	}
	if _, prop, _ := mount.ParseOptions(options); prop != 0 {
		if err := unix.Mount("", t, "", prop, ""); err != nil {
			return &mount.Error{Op: "propagation", Target: t, Err: err}
		}
	}
	return nil
}

// validateMapRootfs checks what MapRootfs needs.
func (c *Config) validateMapRootfs() error {
	if !c.MapRootfs {
		return nil
	}
	if !c.has(NamespaceUser) {
		return fmt.Errorf("container %s: MapRootfs without a user namespace: %w", c.ID, errdefs.ErrInvalid)
	}
	if MapToHost(c.UIDMappings, 0) < 0 || MapToHost(c.GIDMappings, 0) < 0 {
		return fmt.Errorf("container %s: MapRootfs needs uid and gid 0 mapped: %w", c.ID, errdefs.ErrInvalid)
	}
	return nil
}

// absPath is filepath.Abs for Linux paths (this package keeps clear of
// path/filepath: see TestInitDependencies).
func absPath(p string) (string, error) {
	if path.IsAbs(p) {
		return path.Clean(p), nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return path.Join(wd, p), nil
}
