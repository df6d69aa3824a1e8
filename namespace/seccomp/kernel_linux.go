//go:build linux

package seccomp

import "golang.org/x/sys/unix"

// hostKernel returns the running kernel's version.
func hostKernel() (kernelVersion, bool) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernelVersion{}, false
	}
	return parseRelease(unix.ByteSliceToString(u.Release[:]))
}
