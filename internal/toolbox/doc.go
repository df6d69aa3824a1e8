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
// # Applets
//
// Exit status 0 means success, 1 failure, 2 a usage error, 127 an unknown
// applet; errors go to stderr as "APPLET: message".
//
//	true, false                exit 0, exit 1
//	echo [-n] WORD...          words to stdout; echo-err to stderr
//	cat [FILE|-]...            files or stdin to stdout
//	sleep SECONDS              float, a Go duration ("200ms") or "inf"
//	exit N                     exit with status N
//	id [-u|-g|-G] [-n]         "uid=1000(tester) gid=1000(tester) groups=1000(tester),2000(extra)"
//	env, pwd, hostname, umask  the process's environment, cwd, hostname, umask ("0022")
//	ls [-l] [-a] [PATH...]     sorted names; -l: "MODE UID GID SIZE NAME[ -> TARGET]"
//	stat PATH...               "type=file mode=0644 uid=0 gid=0 size=5" (+ " rdev=1:3", " link=T")
//	write [-a] FILE TEXT...    TEXT joined by spaces, no newline; -a appends
//	mkdir [-p] [-m MODE] DIR.. rm [-rf] PATH..  touch FILE..  sha256sum [FILE|-]..
//	caps                       CapInh/CapPrm/CapEff/CapBnd/CapAmb, NoNewPrivs, Seccomp lines of /proc/self/status
//	mounts, cgroup             /proc/self/mountinfo, /proc/self/cgroup
//	ps                         "PID PPID STATE COMMAND" for every process in /proc
//	rlimits                    "NOFILE 1024 524288" for common limits ("unlimited")
//	isatty                     "stdin=tty size=24x80" or "stdin=notty", for each of stdin, stdout, stderr
//	kill [-SIG] PID...         SIG as TERM, SIGTERM or 15
//	signals                    prints "ready", then each signal's name ("SIGUSR1"); exits 0 after SIGTERM/SIGINT
//	ignore-term                ignores SIGTERM, prints "ready", sleeps forever
//	memhog MB [SECONDS]        allocates and touches MB MiB, prints "allocated MB MiB", holds it SECONDS
//	spin SECONDS               busy loop, then "iterations N"
//	forkbomb N                 forks up to N blocked children: "forked K" (+ "error EAGAIN", exit 1)
//	orphan N [SECONDS]         starts N "sleep SECONDS" children, prints their pids, exits without waiting
//	spew [-err] BYTES          BYTES of text lines to stdout (stderr)
//	http [-addr :8080]         HTTP server: / (hostname), /echo[?msg=], /env, /headers, /remote,
//	                           /status/N, /healthz, /exit?code=N; prints "listening on ADDR"
//	fetch [-timeout D] URL     GET, body to stdout; exit 1 unless 2xx
//	tcp-echo, udp-echo [-addr :7]  echo servers; print "listening on ADDR"
//	connect [-udp] [-timeout D] HOST:PORT  stdin to the peer, the peer to stdout; errors name the errno
//	resolve NAME               addresses from the pure-Go resolver, one a line
//	addrs                      "NAME MTU FLAGS ADDR/PREFIX..." for every interface
//	try NAME [ARG...]          "ok" (exit 0) or the errno name (exit 1); NAME is one of:
//	    mount [TARGET], umount [PATH=/proc], keyctl, unshare-{user,mnt,net,pid,uts,ipc,cgroup},
//	    mknod [PATH [MAJ MIN]], mknod-open [c|b MAJ MIN], open-rw|open-ro|open-wo PATH, ptrace-pid [PID=1], init_module,
//	    sethostname [NAME], setrlimit-raise, chroot [DIR=/], chroot-escape PATH (climb out, then open PATH),
//	    setuid-root, chown PATH [UID [GID]],
//	    raw-socket, net-admin, bind [ADDR=:80], settime, swapon, syslog, bpf, perf_event_open,
//	    userfaultfd, io_uring, acct, open_by_handle_at [PATH=/]
//
// The toolbox is a test fixture, not a general-purpose userland: use
// busybox when a test needs a shell.
package toolbox
