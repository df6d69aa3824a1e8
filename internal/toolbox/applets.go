package toolbox

import "slices"

// applets is the sorted list of applet names; toolbox_linux.go's table must
// hold exactly these (a test checks it).
var applets = []string{
	"addrs", "caps", "cat", "cgroup", "connect", "echo", "echo-err", "env",
	"exit", "false", "fetch", "forkbomb", "hostname", "http", "id",
	"ignore-term", "isatty", "kill", "ls", "memhog", "mkdir", "mounts",
	"orphan", "ps", "pwd", "resolve", "rlimits", "rm", "sha256sum",
	"signals", "sleep", "spew", "spin", "stat", "tcp-echo", "touch", "true",
	"try", "udp-echo", "umask", "write",
}

// Applets returns the names of all applets, sorted. A rootfs links each name
// to the toolbox binary under /bin.
func Applets() []string { return slices.Clone(applets) }

// IsApplet reports whether Main runs something for a program called name
// (the base name of argv[0]): an applet, or "toolbox" itself, which takes
// the applet from argv[1].
func IsApplet(name string) bool {
	_, ok := slices.BinarySearch(applets, name)
	return ok || name == "toolbox"
}

// Passwd is the /etc/passwd of a toolbox rootfs: root, daemon (1), nobody
// (65534) and a user tester (1000:1000, home /home/tester).
const Passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`

// Group is the /etc/group of a toolbox rootfs: root, daemon, tty (5),
// tester (1000), extra (2000, with tester as member) and nogroup (65534).
const Group = `root:x:0:
daemon:x:1:
tty:x:5:
tester:x:1000:
extra:x:2000:tester
nogroup:x:65534:
`
