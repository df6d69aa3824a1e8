package seccomp_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berthrt/berth/namespace/seccomp"
)

func ExampleLoad() {
	_, err := seccomp.Load(strings.NewReader(`{
		"defaultAction": "SCMP_ACT_ERRNO",
		"syscalls": [{"names": ["read", "raed"], "action": "SCMP_ACT_ALLOW"}]
	}`))
	var pe *seccomp.ProfileError
	if errors.As(err, &pe) {
		fmt.Println(pe.Field)
	}
	// Output: syscalls[0].names[1]
}

func ExampleCompile() {
	// Docker's default capabilities, as the container's bounding set.
	caps := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
	prog, err := seccomp.Compile(seccomp.DefaultProfile(), "arm64", caps)
	fmt.Println(err, len(prog) > 0 && len(prog) < 4096)
	// Output: <nil> true
}
