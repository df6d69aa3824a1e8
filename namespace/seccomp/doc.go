// Package seccomp reads Docker seccomp profiles, compiles them to classic
// BPF in pure Go, and installs them. It is what `--security-opt seccomp=`
// means in berth: no libseccomp, no cgo.
//
// # Use
//
//	prog, err := seccomp.Compile(seccomp.DefaultProfile(), runtime.GOARCH, boundingCaps)
//	...
//	err = seccomp.InstallFilter(prog) // in the container init, last thing before execve
//
// or [Install] to do both at once. [Load] reads a profile file in Docker's
// JSON format; [DefaultProfile] is Docker's default profile as Go data.
// Profile types, Load, DefaultProfile and Compile build on every platform
// (so a profile can be checked or compiled anywhere); Install and
// InstallFilter exist on Linux only.
//
// # Design
//
// Compile resolves the profile the way Docker does (includes and excludes
// against the container's capabilities, the architecture and the kernel
// version), then emits a program that:
//
//  1. loads seccomp_data.arch and jumps to the section for that audit
//     architecture; an architecture the profile does not cover gets the
//     default action (ERRNO(EPERM) when the default would allow);
//  2. loads the system call number and finds its decision by binary search
//     over ranges of numbers: consecutive numbers with the same plain
//     decision (allowed, or the default) form one range. Every call costs
//     about the same, with no guessing of which calls are frequent: under
//     Docker's profile read and futex run 11 and 12 instructions on amd64
//     (10 on arm64) and no call more than 32, where a linear list
//     (libseccomp's default layout) walks up to ~370 comparisons for a
//     call near its end;
//  3. for a call with argument rules, tests them in order, comparing 64-bit
//     arguments as two 32-bit words (high word first) and returns the
//     first matching rule's action.
//
// Classic BPF conditional jumps reach 255 instructions; the assembler
// routes longer jumps through JA trampolines and lays the program out again
// until every jump fits. The result must stay under the kernel's 4096
// instructions: Docker's profile compiles to 691 on amd64 (with the i386
// and x32 sections) and 497 on arm64, in a fraction of a millisecond
// (BenchmarkCompileDefault); a runtime starting many containers with the
// same capabilities can compile once and pass the program to InstallFilter.
//
// System call numbers come from golang.org/x/sys/unix (zsysnum.go is
// generated from its tables by mksysnum.go, so every architecture's table is
// available on every build host), plus the ARM private calls and the x32
// calls numbered 512-547, which x/sys lacks. Programs can be emitted for
// amd64 (with the i386 and x32 sub-architectures), arm64 (with arm), 386
// and arm; names of other architectures' calls are valid in a profile and
// skipped.
//
// # Where berth differs from Docker
//
//   - A profile naming a system call no architecture has is an error
//     (errdefs.ErrInvalid); runc skips it with a warning.
//   - When several rules name one call, conditional rules are tried before
//     the unconditional one (libseccomp's result for the rules Docker
//     ships; undefined there for conflicting custom rules).
//   - A call from an architecture the profile does not cover gets the
//     default action (libseccomp kills the thread); an ALLOW or LOG default
//     becomes ERRNO(EPERM) there.
//   - SCMP_ACT_NOTIFY is not supported.
//   - Unknown system call numbers get the default action; runc answers
//     ENOSYS for calls newer than its libseccomp knows. Docker's profile
//     already answers ENOSYS for clone3 without CAP_SYS_ADMIN, the case
//     that matters to libc.
//
// # When not to use it
//
// A profile is not a sandbox by itself: it complements capabilities, user
// namespaces and no_new_privs. Privileged containers and
// `seccomp=unconfined` skip this package altogether.
package seccomp

//go:generate go run mksysnum.go
