//go:build unix

package toolboxtest

import (
	"archive/tar"
	"os"

	"golang.org/x/sys/unix"
)

func mknod(path string, typ byte, mode os.FileMode, major, minor int64) error {
	perm := uint32(mode.Perm())
	switch typ {
	case tar.TypeFifo:
		if err := unix.Mkfifo(path, perm); err != nil {
			return &os.PathError{Op: "mkfifo", Path: path, Err: err}
		}
	default:
		kind := uint32(unix.S_IFCHR)
		if typ == tar.TypeBlock {
			kind = unix.S_IFBLK
		}
		if err := unix.Mknod(path, kind|perm, int(unix.Mkdev(uint32(major), uint32(minor)))); err != nil {
			return &os.PathError{Op: "mknod", Path: path, Err: err}
		}
	}
	return os.Chmod(path, mode)
}
