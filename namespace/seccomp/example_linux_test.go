//go:build linux

package seccomp_test

import (
	"log"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/namespace/seccomp"
)

// A container init without CAP_SYS_ADMIN installs the filter after setting
// no_new_privs on its own, locked, thread; the filter then reaches every
// thread and survives the execve of the container's command.
func ExampleInstall() {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		log.Fatal(err)
	}
	if err := seccomp.Install(seccomp.DefaultProfile(), []string{"CAP_CHOWN", "CAP_KILL"}); err != nil {
		log.Fatal(err)
	}
	// unix.Exec(...)
}
