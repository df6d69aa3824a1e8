package toolbox

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The functions here fork with a raw clone(SIGCHLD): the child is a copy of
// the calling thread only, with the Go runtime frozen in whatever state the
// other threads left it. The child therefore runs nothing but raw system
// calls from nosplit code, and leaves with exit_group.

// rawForkBlock forks a child that dies with its parent thread and otherwise
// blocks forever.
//
//go:nosplit
func rawForkBlock() (int, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, cloneArg1, cloneArg2, 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	if pid != 0 {
		return int(pid), 0
	}
	syscall.RawSyscall(syscall.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	for {
		syscall.RawSyscall6(unix.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
	}
}

// rawForkCall forks a child that makes one system call and exits with its
// errno (0 on success). It returns the child's pid.
//
//go:nosplit
func rawForkCall(trap, a1, a2, a3 uintptr) (int, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, cloneArg1, cloneArg2, 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	if pid != 0 {
		return int(pid), 0
	}
	_, _, e := syscall.RawSyscall(trap, a1, a2, a3)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(e), 0, 0)
	for {
	}
}

// inChild runs the system call trap(a1, a2, a3) in a single-threaded child
// and returns its error. A pointer argument must point into memory that
// stays alive across the call (the child sees a copy of it).
func inChild(trap, a1, a2, a3 uintptr) error {
	pid, errno := rawForkCall(trap, a1, a2, a3)
	if errno != 0 {
		return errno
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	if ws.Signaled() {
		// e.g. a seccomp filter that kills instead of failing the call
		return fmt.Errorf("killed by %s", signalName(ws.Signal()))
	}
	if st := ws.ExitStatus(); st != 0 {
		return syscall.Errno(st)
	}
	return nil
}

// cstring returns a NUL-terminated copy of s as a system call argument.
func cstring(s string) (uintptr, *byte) {
	p, err := syscall.BytePtrFromString(s)
	if err != nil {
		return 0, nil
	}
	return uintptr(unsafe.Pointer(p)), p
}
