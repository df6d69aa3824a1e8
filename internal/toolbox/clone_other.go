//go:build linux && !s390x

package toolbox

import "syscall"

// clone(2) takes the flags first (and the new stack second).
const cloneArg1, cloneArg2 = uintptr(syscall.SIGCHLD), 0
