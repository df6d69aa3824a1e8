// Package namespace is berth's container init: it starts a process in new
// Linux namespaces from a rootfs directory and supervises it, with no
// daemon and no cgo.
//
// # Why a re-exec
//
// A Go program is multi-threaded from its first instruction, and Linux
// refuses or half-applies namespace changes in a multi-threaded process:
// unshare(CLONE_NEWUSER) fails, setns and unshare change only the calling
// thread, and the Go runtime may move a goroutine to another thread at any
// time. The only reliable way to get a process in fresh namespaces is to
// create it in them: Start spawns this program's own binary with
// SysProcAttr.Cloneflags and argv[0] "berth-init". The package's init
// function recognises that marker before main runs (returning at once in
// every other process) and runs the container init instead of the program.
// Programs may call Init first thing in main to make the hook explicit.
// There is exactly one re-exec per container.
//
// # Process model
//
// The init receives its Config over a SOCK_SEQPACKET socket, builds the
// container's filesystem in its new mount namespace (made private first, so
// nothing propagates to the host): the rootfs (the layer store's snapshot
// mounts, or a bind of a plain directory), /proc, a tmpfs /dev with the
// standard devices, /dev/pts, /dev/shm, /dev/mqueue, read-only /sys and
// /sys/fs/cgroup, Docker's masked and read-only paths, the bind, volume and
// tmpfs mounts and the /etc/hosts, /etc/hostname, /etc/resolv.conf files,
// then pivot_root and detaches the old root. Mount targets are resolved
// inside the rootfs, so an image's symlinks cannot redirect them to the
// host. It sets the hostname and rlimits, drops the capability bounding set
// and sets no_new_privs if asked. Meanwhile the owner runs
// StartOptions.Prestart (cgroups, network); when that is done the init
// creates its cgroup namespace and mounts /sys/fs/cgroup, installs the
// seccomp filter, cuts its own capabilities to the container's, and forks
// the user's process with its uid, gids, environment and working directory.
//
// The init stays as the container's PID 1, a supervisor: it reaps every
// zombie (and is the only one to call wait4), forwards signals, reports the
// exit status, and starts Exec'd processes, whose stdio arrives as file
// descriptors over the control socket; exec therefore never needs setns.
// When the main process exits, the supervisor exits with its status and the
// kernel kills what is left in the PID namespace (without a PID namespace,
// the supervisor is a child subreaper and kills its descendants itself).
// Container.Wait returns only after the supervisor itself has exited, so
// when it returns nothing of the container runs any more.
//
// With a user namespace, the init is the namespace's root and has no
// privilege over host paths: the owner prepares the rootfs, Files and bind
// mounts as detached mounts (open_tree, fsmount) and passes them over the
// socket right after the clone; with Config.MapRootfs the image layers are
// idmapped mounts with the init's own user namespace, so host uid 0 in a
// layer is the container's root (see idmap.go for why and how).
//
// Seccomp profiles are compiled to BPF by the owner, once per distinct
// profile and capability set, and the init only installs the program
// (compiling Docker's profile costs milliseconds).
//
// Per-thread state: the cgroup namespace (created after Prestart has placed
// the init in the container's cgroups, unless StartOptions.CgroupFD lets
// clone do it), the bounding set and no_new_privs are set on the init's
// main thread, which is locked, and every process of the container is
// forked from that thread. Where the Go runtime allows it
// (syscall.AllThreadsSyscall, which returns ENOTSUP when cgo is linked in),
// no_new_privs and the init's capabilities are applied to all threads of
// the init as well (the bounding set is not: see below); the seccomp filter
// always is (TSYNC).
//
// # Spare inits
//
// Most of a cold start goes by before the init has read its config: the
// clone of the namespaces, the exec of this binary and the Go runtime's
// start-up, none of which depends on the config. With StartOptions.Spare
// (berth's default), Start keeps one init of the namespace set it just
// used started ahead of need, and the next start with that set sends its
// config to that spare instead of spawning an init (see spare.go). A spare
// is spawned from a thread in the idle scheduling class, so its boot uses
// only CPU time nobody else wants; the owner returns its threads to the
// normal class before giving it work. While it waits, its mount tree is a
// slave of the owner's (host mounts and unmounts reach it), lo is up in its
// network namespace, and it sits in the owner's cgroups: a start moves it
// into the container's (on cgroup v2 with StartOptions.CgroupFD, Start
// writes cgroup.procs itself, since clone could not place it), and it
// makes its cgroup namespace once there. A spare ends after 10 s unused,
// on DiscardSpares, and with its owner. Starts that join a network
// namespace or map ids in a user namespace always spawn their init.
//
// # Lifetime
//
// By default a container dies with its owner: the supervisor holds one end
// of a socket whose other end only the owner holds (close-on-exec), and
// kills the container when it reads end-of-file. Pdeathsig is not used: it
// fires when the spawning thread exits, not the process. A Detached
// container ignores that end-of-file; with Config.ControlDir its supervisor
// listens on ControlDir/control.sock and writes the exit status to
// ControlDir/status.json, so another process can Attach to it, exec, signal
// and wait.
//
// # The host binary (CVE-2019-5736)
//
// The supervisor runs this program's binary, so a container process must
// never be able to write to it through /proc/<pid>/exe. The supervisor makes
// itself non-dumpable before reading its config (so /proc/1/exe, fd and mem
// are closed to the container), and it is executed from a detached,
// read-only bind mount of the binary (open_tree + mount_setattr), made once
// per process and held only as a file descriptor: every write through it
// fails with EROFS, it costs no memory and leaves nothing to clean up.
// Kernels without mount_setattr get a sealed memfd copy instead (the
// binary's size in memory, once per process: 4.7 MB for this package's test
// binary). An idle supervisor's memory is under Cost below.
//
// # Differences from Docker
//
// The user's process is not PID 1: the supervisor is (like docker run
// --init), so a process without a SIGTERM handler dies from SIGTERM where it
// would ignore it as PID 1. Capabilities, no_new_privs, rlimits and seccomp
// are per container: an Exec'd process gets the container's (its User,
// Env, Cwd and Terminal are its own). Privileged containers get all
// capabilities and the host's device nodes (copied one directory level
// deep; the device cgroup, which berth's cgroup package sets, decides what
// they may use). Users resolve as runc resolves them (user.go follows
// moby/sys/user, quirks included): with "-u name:group" the supplementary
// groups are not taken from /etc/group. A pseudo-terminal's end of input is sent as a VEOF character (^D),
// which a program reading in raw mode sees as a byte.
//
// no_new_privs and the init's own capabilities are applied on all threads
// with syscall.AllThreadsSyscall when the binary has no cgo; with cgo
// (AllThreadsSyscall returns ENOTSUP) they are applied to the init's main
// thread only, which is enough because every process of the container is
// forked from that thread. The bounding set is always dropped on the main
// thread only: execve is its only reader, and one stop-the-world per
// capability cost every start 2.5-3 ms.
//
// # Cost
//
// On the 2-vCPU CI machine (shared and noisy, and a PVM guest, where every
// page-table update traps to the hypervisor: an empty Go program takes
// about 6 ms from fork to exit, a fork+exec+wait of busybox's true from Go
// 1.5-2.2 ms, a first touch of an anonymous page 13 µs), a
// start of busybox's true takes 27-34 ms (BenchmarkBerthRunTrueBusybox;
// `runc run` 78-96 ms in the same runs), made of, in order of size:
//
//   - the re-executed binary's Go runtime and package initialisation before
//     this package's hook runs: 8.5-10 ms for bench's 16 MB test binary
//     (about 360 page faults), 2-3 ms more when it is built with cgo. Go
//     initialises, before this package, every package it imports and, as
//     they become ready, every package whose path sorts before the
//     latest-sorting of those imports that has work at init. That is why
//     this package avoids path/filepath, os/exec, creack/pty and
//     moby/sys/user (each imports path/filepath, which sorts at "p"): with
//     them, net/http and everything under github.com/, google.golang.org/,
//     k8s.io/ of the owning program initialised before every container's
//     init could start (TestInitOrder pins it). What is left before the
//     hook is golang.org/x/sys/unix (anything sorting before "golang.org"
//     and ready goes first) and the packages of the standard library the
//     runtime needs anyway; an init written against os and syscall alone
//     would remove the former, about 2-4 ms here (measured with an empty
//     hook); that rewrite is not done;
//   - the kernel's creation and teardown of the namespaces: about 4 ms
//     (`unshare -mpfniuC true` against `unshare true`), half of it at the
//     init's exit, which Wait includes;
//   - the rootfs (overlay, /proc, /dev, /sys, masks, cgroup binds) and
//     security settings: 4-5 ms;
//   - the user's process itself.
//
// What a cold process pays for first uses is kept off that path: the
// owner and its init talk in the binary form of wire.go, not JSON (1.3-2
// ms); the status file is written without encoding/json; the init
// registers for SIGCHLD only once its process runs (0.5-1 ms), a spare
// while it waits; the bounding set is dropped on one thread, not with a
// stop-the-world per capability (2.5-3 ms without cgo).
//
// A spare takes the first item, and the clone, off the path of the start
// that uses it: 11-14 ms of wall time before the config is read. On the CI
// machine that gains only 0-3 ms per start in a loop (27.2 against 28.8
// ms), and costs 4 ms more CPU time per start, because its two vCPUs do
// not run independently (a busy loop on one slows a fork+exec on the
// other by 1.8x) and the next spare boots while the container runs; on a
// host whose cores are its own, the boot is hidden. The CPU time stays:
// about 15 ms of the init's 26 ms is the Go runtime and package
// initialisation, which every container pays once. 100 starts at once are
// bound by that CPU time (2.7-2.8 s for 5.1 s of CPU), spares or not.
//
// An Exec costs a round trip on the control socket, a fork from the
// supervisor's main thread and the wait: 3.0-3.8 ms for busybox's true
// (1.5-2.2 ms of that is the fork+exec+wait itself).
//
// An idle supervisor unmaps, 50 ms after its process started, the pages of
// the binary its start-up touched (see shrink): its PSS is then about 1.6
// MB alone beside its owner, 1.3 MB each for ten (about 1.2 MB of it
// private heap and stacks), against 4.5 and 1.9 MB before.
//
// # Tracing a start
//
// With BERTH_TRACE=<file> in the owner's environment, Start and the init
// append one line per step to that file ("<unix µs> <pid> owner|init
// cpu=<µs> flt=<n> <step>", with the process's CPU time and minor faults
// so far: config ready, init spawned or spare taken, prestart done, hook
// entered, config received, rootfs mounted, go received, sealed, process
// forked, started, process exited, init reaped with the init's CPU time
// (initcpu=<µs>, its children's included)),
// so the time between any two steps of many starts can be read off
// (bench/run.sh says how). Without it nothing is written and nothing is
// opened.
//
// When not to use it: this package runs as root with real namespaces; it
// knows nothing about images, cgroups or networks (package berth composes
// those), and the owning program must not run other code as "berth-init".
package namespace
