//go:build linux

package namespace

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The pseudo-terminal is set up with a few ioctls of our own rather than
// with a pty package: the common one imports os/exec and with it
// path/filepath, and a dependency whose package initialisation sorts late
// makes every other ready package of the user's program initialise before
// this package's init, the hook that runs a container's init.

// openPTY opens a new pseudo-terminal: master is /dev/ptmx, slave the
// /dev/pts/N it allocated, and slave.Name() is that path (the init
// bind-mounts it onto /dev/console). Both are close-on-exec and neither
// becomes the caller's controlling terminal.
//
// Both descriptors are blocking and their os.Files bypass the runtime
// poller: the master is passed over a unix socket and read with io.Copy in
// a goroutine on the other side, and the slave becomes a process's stdio,
// which must be blocking.
func openPTY() (master, slave *os.File, err error) {
	const ptmx = "/dev/ptmx"
	const flags = unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC
	mfd, err := unix.Open(ptmx, flags, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: ptmx, Err: err}
	}
	defer func() {
		if err != nil {
			unix.Close(mfd)
		}
	}()
	// A new master starts locked: opening its slave fails until unlocked.
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, nil, &os.PathError{Op: "ioctl TIOCSPTLCK", Path: ptmx, Err: err}
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		return nil, nil, &os.PathError{Op: "ioctl TIOCGPTN", Path: ptmx, Err: err}
	}
	// The number is within the devpts instance /dev/ptmx belongs to; the
	// container's /dev/ptmx is the symlink pts/ptmx, so that is /dev/pts.
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	sfd, err := unix.Open(name, flags, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(mfd), ptmx), os.NewFile(uintptr(sfd), name), nil
}

// setWinsize sets the window size of the terminal f (either end of a pty)
// to cols columns and rows rows; the kernel sends SIGWINCH to the
// terminal's foreground process group when the size changes.
func setWinsize(f *os.File, cols, rows uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ws := &unix.Winsize{Col: cols, Row: rows}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws)
	}); err != nil {
		return err
	}
	if ierr != nil {
		return &os.PathError{Op: "ioctl TIOCSWINSZ", Path: f.Name(), Err: ierr}
	}
	return nil
}
