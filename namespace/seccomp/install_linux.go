//go:build linux

package seccomp

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
)

// Install compiles p for the running architecture and the capabilities
// caps (the container's bounding set) and installs it on every thread of
// the calling process (SECCOMP_FILTER_FLAG_TSYNC), adding the flags
// p.Flags names. See InstallFilter for what the kernel requires.
func Install(p *Profile, caps []string) error {
	prog, err := Compile(p, runtime.GOARCH, caps)
	if err != nil {
		return err
	}
	var flags uintptr
	for _, f := range p.Flags {
		flags |= knownFlags()[f]
	}
	return installFilter(prog, flags)
}

// InstallFilter installs a compiled program on every thread of the calling
// process (seccomp(2), SECCOMP_SET_MODE_FILTER with
// SECCOMP_FILTER_FLAG_TSYNC). Filters stack: one installed later applies
// too, and none can be removed. They are kept across fork, clone and
// execve.
//
// The kernel refuses (EACCES) unless the calling thread has no_new_privs
// set or CAP_SYS_ADMIN in its user namespace. no_new_privs is per thread:
// a caller that sets it with prctl(PR_SET_NO_NEW_PRIVS) must do so and
// call InstallFilter with its goroutine locked to the thread
// (runtime.LockOSThread); TSYNC then gives every thread the filter and
// no_new_privs. A container init that keeps CAP_SYS_ADMIN until the filter
// is in place need not set it.
//
// Errors are *os.SyscallError wrapping the errno; a thread that cannot be
// synchronised (it has an unrelated filter) yields errdefs.ErrUnavailable
// naming its thread id.
func InstallFilter(prog []bpf.RawInstruction) error {
	return installFilter(prog, 0)
}

func installFilter(prog []bpf.RawInstruction, flags uintptr) error {
	if len(prog) == 0 || len(prog) > maxInsns {
		return fmt.Errorf("seccomp: program of %d instructions: %w", len(prog), errdefs.ErrInvalid)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	flags |= unix.SECCOMP_FILTER_FLAG_TSYNC
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return os.NewSyscallError("seccomp", errno)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: thread %d could not take the filter: %w", r, errdefs.ErrUnavailable)
	}
	return nil
}
