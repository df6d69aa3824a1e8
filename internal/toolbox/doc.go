// Package toolbox is the test "toolbox": a small, static, multi-call Go
// program that is the whole content of the images berth's tests build, so
// tests need no network and no external image.
//
// One binary holds many applets (true, echo, cat, sleep, id, caps, mounts,
// an http server, try, ...). Main picks the applet from the base name of
// argv[0], so a rootfs holds /bin/toolbox plus a symlink /bin/<applet> for
// each applet; when argv[0] is "toolbox" the applet is argv[1]
// ("toolbox echo hi").
//
// Decisions:
//
//   - Applets print plain, line-oriented, stable text so tests can compare
//     it: `id` prints like coreutils, `stat` prints "type=file mode=0644
//     uid=0 gid=0 size=5", servers print "listening on ADDR" once they
//     accept connections, long-running applets that install signal
//     handlers print a line once the handler is in place ("ready").
//   - `try NAME [ARG...]` attempts one privileged operation from a fixed
//     table (mount, keyctl, unshare-user, mknod, ptrace-pid, ...) and
//     prints "ok" (exit 0) or the errno name such as "EPERM" (exit 1). The
//     escape tests are written against these names. Operations that Linux
//     refuses in a multi-threaded process (unshare(CLONE_NEWUSER)) or that
//     would change this process for good (chroot, unshare) run in a raw
//     clone()d single-threaded child that makes the one system call and
//     exits with the errno as its status.
//   - `forkbomb N` uses the same raw clone: each child is a single thread
//     that blocks in ppoll and dies with its parent (PR_SET_PDEATHSIG), so
//     the count reflects processes, not Go runtime threads of re-executed
//     children.
//   - The package imports only the standard library and x/sys, never
//     anything test-related, so cmd/berth can link Main in to be
//     multi-call itself. Helpers that build the binary and populate a
//     rootfs for tests live in the toolboxtest sub-package.
//   - Applets and the user/group database (Passwd, Group) are portable so
//     image builders on any OS can lay out a toolbox rootfs; Main itself
//     works only on Linux.
//
// The toolbox is a test fixture, not a general-purpose userland: use
// busybox when a test needs a shell.
package toolbox
