//go:build linux

package namespace

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/berthrt/berth/errdefs"
	"golang.org/x/sys/unix"
)

var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// lastCap is the highest capability the running kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return len(capNames) - 1
}

// capMask turns capability names into a bit mask. "ALL" means every one.
func capMask(names []string, last int) (uint64, error) {
	var m uint64
	for _, n := range names {
		u := strings.TrimPrefix(strings.ToUpper(n), "CAP_")
		if u == "ALL" {
			return allCaps(last), nil
		}
		found := false
		for i, c := range capNames {
			if c == u {
				if i <= last {
					m |= 1 << uint(i)
				}
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown capability %q: %w", n, errdefs.ErrInvalid)
		}
	}
	return m, nil
}

func allCaps(last int) uint64 {
	if last >= 63 {
		return ^uint64(0)
	}
	return 1<<uint(last+1) - 1
}

// threadSyscall runs a syscall on every thread of the process when the Go
// runtime can (syscall.AllThreadsSyscall, not available when cgo is linked
// in), and otherwise on the calling thread only. The init calls it from
// its locked main thread, which is the only thread processes are spawned
// from, so the change always reaches the container's processes; the
// all-threads variant also hardens the supervisor's other threads.
func threadSyscall(trap, a1, a2, a3 uintptr) error {
	_, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if e == syscall.ENOTSUP {
		_, _, e = syscall.RawSyscall(trap, a1, a2, a3)
	}
	if e != 0 {
		return e
	}
	return nil
}

func threadSyscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) error {
	_, _, e := syscall.AllThreadsSyscall6(trap, a1, a2, a3, a4, a5, a6)
	if e == syscall.ENOTSUP {
		_, _, e = syscall.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	}
	if e != 0 {
		return e
	}
	return nil
}

// dropBounding removes every capability not in keep from the bounding set
// of the calling thread, the init's main thread, which every process of the
// container is forked from. Only execve reads the bounding set, and only
// that thread execs: the supervisor's other threads keep theirs, which
// gives them nothing (seal cuts their permitted set on all threads, and
// that set cannot grow without an execve). Doing it on all threads
// (AllThreadsSyscall, one stop-the-world per capability) cost 2.5-3 ms of
// every start.
func dropBounding(keep uint64, last int) error {
	for i := 0; i <= last; i++ {
		if keep&(1<<uint(i)) != 0 {
			continue
		}
		_, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0, 0)
		if e != 0 && e != syscall.EINVAL { // EINVAL: unknown to this kernel
			return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", i, e)
		}
	}
	return nil
}

// permittedCaps returns the calling thread's permitted set.
func permittedCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32, nil
}

// setCaps sets the permitted and effective sets to caps, inheritable and
// ambient empty: the kernel keeps in the ambient set only what is both
// permitted and inheritable, so the empty inheritable set clears it (no
// PR_CAP_AMBIENT_CLEAR_ALL, which on all threads is one more
// stop-the-world).
func setCaps(caps uint64) error {
	// One cannot gain what one lacks (a privileged container on a host
	// whose own bounding set is short).
	if perm, err := permittedCaps(); err == nil {
		caps &= perm
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0].Effective = uint32(caps)
	data[0].Permitted = uint32(caps)
	data[1].Effective = uint32(caps >> 32)
	data[1].Permitted = uint32(caps >> 32)
	if err := threadSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

func setNoNewPrivs() error {
	if err := threadSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	return nil
}
