package faultproxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// unsent is the number of bytes of c's send queue not yet acknowledged.
func unsent(c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	raw.Control(func(fd uintptr) {
		n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	})
	if err != nil {
		return 0
	}
	return n
}
