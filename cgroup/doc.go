// Package cgroup puts a container's processes under resource limits and
// reports what they use, on cgroup v1, v2 and hybrid hosts.
//
// One Cgroup is one container's group. New creates it under a parent
// ("berth" by default, like Docker's --cgroup-parent) in every v1
// hierarchy berth uses (cpuset, cpu, cpuacct, memory, pids, blkio, hugetlb,
// devices, freezer) plus the unified directory on a hybrid host, or in the
// v2 tree, and applies Resources before any process joins. The container's
// first process then joins with Add, or on v2 is born inside with
// CLONE_INTO_CGROUP through FD. Update, Stats, Watch, OOMKilled,
// OOMEvents, Freeze, Thaw, Kill, Procs and Delete follow the container's
// life; Cleanup removes what a crashed owner left.
//
// # Semantics
//
// Resources has the meaning of `docker run`'s flags, zero meaning no limit:
// --memory-swap is memory plus swap (0: twice --memory, -1: unlimited),
// --cpus is a CFS quota over a 100 ms period, cpu shares become the v2
// cpu.weight 1 + ((shares-2)*9999)/262142, a blkio weight (also one per
// device, --blkio-weight-device) the v2 io.weight 1 + (w-10)*9999/990 (or
// io.bfq.weight unchanged). --memory-swappiness and --oom-kill-disable are
// v1 controls that cgroup v2 lacks: on v2 they are ignored, as Docker does
// (Docker also warns). Validate rejects what Docker rejects, naming the
// flag and the accepted range; errors wrap errdefs.ErrInvalid. A block io
// weight on a kernel without CFQ or BFQ, or for a device whose scheduler
// does not weigh groups, is errdefs.ErrUnsupported (Docker warns and drops
// it); BFQ is recognised by its stat files, since its weight files exist
// in child groups only. The device rules default to Docker's list for an
// unprivileged container, so a node made with mknod cannot be opened.
//
// # Design decisions
//
//   - The mode (v1, hybrid, v2) is detected once per process with
//     containerd/cgroups/v3's Mode, and the mount points from
//     /proc/self/mountinfo. Everything else is direct reads and writes of
//     cgroup files with x/sys/unix, so creating, limiting and removing a
//     group costs little more than the kernel's own mkdir and rmdir, where
//     cgroup1.New/cgroup2.NewManager re-read mountinfo and walk every
//     subsystem on each call. The mapping from Resources to files is a pure
//     function, tested file by file; Update writes only the files whose
//     values change.
//   - The parent path is taken from the root of each hierarchy, as Docker's
//     cgroupfs driver does, not from the caller's own group: a program in a
//     nested group (a systemd service, a CI job) still puts containers under
//     /berth, and on v2 a caller's leaf group could not take children with
//     controllers anyway (no internal processes). On v2 berth enables its
//     controllers in subtree_control down the parent chain, root included,
//     as Docker does. On v1 the parent's cpuset is filled from its own
//     parent and cgroup.clone_children set, so containers' cpuset groups
//     start usable without extra writes.
//   - Device control on v2 is an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
//     that berth assembles itself and loads with bpf(2), instead of pulling
//     cilium/ebpf in through containerd's cgroup2.DeviceFilter for a dozen
//     instructions. On v1 and hybrid hosts it is the devices controller.
//   - On a hybrid host limits live in v1; the unified group only carries
//     membership, so the container's cgroup namespace is complete and
//     cgroup.kill and cgroup.events work there too. FD is v2-only because
//     CLONE_INTO_CGROUP cannot reach v1 hierarchies.
//   - Kill never signals a process outside the group: each pid is opened as
//     a pidfd, checked in /proc/<pid>/cgroup, then signalled through the
//     pidfd. On v1 the group is frozen during the walk so nothing forks past
//     it. Delete does not kill; it waits for the group to empty, retrying
//     rmdir with backoff until its ctx ends.
//   - OOMKilled reads the kernel's oom_kill counter (v1 memory.oom_control,
//     v2 memory.events) and remembers it across Delete. OOMEvents pushes
//     the counter as it grows (eventfd on v1, inotify on v2).
//
// # Cost
//
// Creating a group with limits and removing it is a mkdir and an rmdir per
// hierarchy plus one open and write per limit; Docker's default device
// rules are 12 writes through two open files on v1, and on v2 the attach
// of an eBPF program loaded once per process. Nothing is read before it is
// written, values equal to a fresh group's defaults are not written, and
// an empty group is removed with one rmdir per hierarchy (the OOM counter
// is read first, with one read). The parent's directory in each hierarchy
// is set up once per process and held open, and the group's directories
// and files are made, opened and removed relative to it (mkdirat, openat,
// unlinkat), which spares the kernel the walk from /sys/fs/cgroup on every
// call; Cleanup closes it when it removes the parent. On a syscall-bound
// virtual machine each call costs about a microsecond before any work, so
// the count matters. The kernel's mkdir and rmdir dominate (the memory
// controller's alone is about 0.1 ms): see BenchmarkCreateLimitRemove
// against BenchmarkMkdirRmdir.
//
// # Testing
//
// The tests run on real cgroups as root, each under its own berth-test-*
// parent that is removed at the end. On a hybrid host (v1 controllers, an
// empty unified mount) the v2 code is pointed at the unified mount, where
// membership, CLONE_INTO_CGROUP, cgroup.freeze, cgroup.kill, cgroup.events,
// cpu.stat and eBPF device programs are real; the v2 limit files, stat
// files and memory.events are exercised on plain files in a temporary
// directory, because no v2 resource controller is free there.
//
// # When not to use it
//
// Inside a container on a v2 host whose cgroup namespace root holds
// processes, the kernel refuses to enable controllers below it (no
// internal processes), so limits fail with errdefs.ErrUnsupported; Docker
// in Docker first moves its own processes into a leaf group, this package
// does not. On a host where systemd owns the tree and must know about every group
// (systemd cgroup driver), groups made here are invisible to it. Rootless
// containers need a delegated v2 subtree, which this package does not ask
// systemd for.
package cgroup
