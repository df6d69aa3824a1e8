//go:build linux

package toolbox

import "syscall"

// On s390x, clone(2) takes the new stack first and the flags second.
const cloneArg1, cloneArg2 = 0, uintptr(syscall.SIGCHLD)
