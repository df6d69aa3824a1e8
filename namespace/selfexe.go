//go:build linux

package namespace

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The init is spawned from a protected view of this program's binary, so
// that a process in the container can never write to (or re-open for
// writing) the host binary through /proc/<pid>/exe (CVE-2019-5736).
//
// The preferred view is a detached, read-only bind mount of the binary:
// open_tree(OPEN_TREE_CLONE) of /proc/self/exe, made read-only with
// mount_setattr. It exists only as a file descriptor of this process (no
// mount table shows it, nothing to clean up when the process dies), costs no
// memory, and the kernel refuses every write through it with EROFS. The init
// is executed as /proc/self/fd/<n>. Kernels older than 5.12 (no
// mount_setattr) fall back to a sealed memfd copy of the binary, which costs
// the binary's size in memory once per process.
//
// The view is made once per process, on the first Start, and each init
// gets it as its descriptor initExeFD: the path Start executes,
// initExePath, names that descriptor in the child, where nothing else can
// be on it. (A path naming the owner's own descriptor number can be
// clobbered in the child: os.StartProcess moves descriptors above the
// highest it passes before placing them, and one such move landed on it.)
var selfExe struct {
	once sync.Once
	kind string // "ro-bind" or "memfd"
	f    *os.File
	err  error
}

const (
	initExeFD   = 4
	initExePath = "/proc/self/fd/4"
)

// initBinary returns the view of this program's binary that inits are
// executed from.
func initBinary() (*os.File, error) {
	selfExe.once.Do(func() {
		f, err := roBindSelf()
		kind := "ro-bind"
		if err != nil {
			f, err = memfdSelf()
			kind = "memfd"
		}
		if err != nil {
			selfExe.err = fmt.Errorf("protecting the init binary: %w", err)
			return
		}
		selfExe.f, selfExe.kind = f, kind
	})
	return selfExe.f, selfExe.err
}

func roBindSelf() (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("open_tree", err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("mount_setattr", err)
	}
	return os.NewFile(uintptr(fd), "berth-init-exe"), nil
}

func memfdSelf() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "berth-init-memfd")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, err
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, os.NewSyscallError("fcntl(F_ADD_SEALS)", err)
	}
	return f, nil
}
