//go:build linux

package berth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// An escapeCase is one attempt by a root process in a container to reach
// past it. Under the default configuration (only Image and Cmd set) the
// container must print want; under Privileged, when privileged is not
// empty, it must print that instead, which shows the default's outcome
// comes from the confinement and not from a broken attempt.
type escapeCase struct {
	name string
	// why names what stops the attempt (docs/SECURITY.md lists the same).
	why string
	cmd []string
	// mod changes the configuration beyond the default (a bind, an image).
	mod func(*berth.ContainerConfig)
	// want is the whole expected output, trimmed; check, when set, judges
	// the output instead.
	want  string
	check func(out string) error
	// privileged is the expected output with Privileged set; "" skips the
	// contrast.
	privileged string
	// after checks the host once the container is gone.
	after func(t *testing.T)
}

// TestEscapes runs suite 5 of issue 6: each subtest is one escape attempt
// that must fail for the reason it names (docs/SECURITY.md, "Escapes").
func TestEscapes(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	hostTmp := t.TempDir()

	// A host process the container must not even see: a pid the test
	// started itself.
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	hostPid := strconv.Itoa(sleeper.Process.Pid)

	// A host file the container must not see, under a path that does not
	// exist in the image.
	hostFile := filepath.Join(hostTmp, "host-secret")
	if err := os.WriteFile(hostFile, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	// A neighbour container, running, with a file of its own.
	secret := "/neighbour-" + randHex(4)
	neighbour, err := rt.Create(ctx, berth.ContainerConfig{Image: img, Cmd: []string{"sleep", "inf"}, NetworkMode: "none"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = neighbour.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	if err := neighbour.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var wout bytes.Buffer
	p, err := neighbour.Exec(ctx, berth.ExecConfig{Cmd: []string{"write", secret, "neighbour"}, Stdout: &wout, Stderr: &wout})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("write in the neighbour: exit %d, %v: %s", code, err, wout.String())
	}
	neighbourPid := strconv.Itoa(neighbour.State().Pid)

	// A read-only bind of a host directory holding one file.
	roDir := filepath.Join(hostTmp, "ro")
	if err := os.Mkdir(roDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(roDir, "f"), []byte("ro"), 0o666); err != nil {
		t.Fatal(err)
	}

	// An image whose /etc/evil and /etc/evil-rel are symlinks to host
	// paths (absolute, and relative with more ".." than the rootfs is
	// deep), with a bind mounted over each: the binds must land inside
	// the rootfs. The absolute victim exists on the host with a file in
	// it; the relative one does not exist.
	victim := filepath.Join(hostTmp, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "victim-file"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	victimRel := filepath.Join(hostTmp, "victim-rel")
	bindSrc := filepath.Join(hostTmp, "bind-src")
	if err := os.Mkdir(bindSrc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bindSrc, "from-src"), []byte("src"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := append(imagebuild.Toolbox(toolboxtest.Bytes(t)),
		imagebuild.Symlink("etc/evil", victim),
		imagebuild.Symlink("etc/evil-rel", strings.Repeat("../", 40)+strings.TrimPrefix(victimRel, "/")))
	evilImg, err := rt.Import(ctx, bytes.NewReader(imagebuild.LayerTar(files)), berth.ImportOptions{
		Ref:    "berth-test/evil-symlinks:latest",
		Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hostUnchanged := func(t *testing.T) {
		ents, err := os.ReadDir(victim)
		if err != nil || len(ents) != 1 || ents[0].Name() != "victim-file" {
			t.Errorf("host directory %s changed: %v %v", victim, ents, err)
		}
		if b, err := os.ReadFile(filepath.Join(victim, "victim-file")); err != nil || string(b) != "untouched" {
			t.Errorf("host file changed: %q %v", b, err)
		}
		if _, err := os.Lstat(victimRel); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("host path %s was created: %v", victimRel, err)
		}
		if ents, _ := os.ReadDir(bindSrc); len(ents) != 1 {
			t.Errorf("bind source %s changed: %v", bindSrc, ents)
		}
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(victim)) {
			t.Errorf("a mount at %s is visible on the host", victim)
		}
	}

	// A service the host offers on loopback only.
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostLn.Close() })
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	// The cgroup file the container would write to move itself or raise
	// its own limits.
	cgroupFile := "/sys/fs/cgroup/pids/cgroup.procs"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgroupFile = "/sys/fs/cgroup/cgroup.procs" // cgroup v2
	}

	try := func(args ...string) []string { return append([]string{"try"}, args...) }
	cases := []escapeCase{
		{name: "mount", why: "no CAP_SYS_ADMIN", cmd: try("mount"), want: "EPERM", privileged: "ok"},
		{name: "umount-proc", why: "no CAP_SYS_ADMIN", cmd: try("umount", "/proc"), want: "EPERM"},
		{name: "unshare-mnt", why: "seccomp allows unshare only with CAP_SYS_ADMIN", cmd: try("unshare-mnt"), want: "EPERM"},
		{name: "unshare-user", why: "seccomp allows unshare only with CAP_SYS_ADMIN, so no new user namespace with a full set of capabilities",
			cmd: try("unshare-user"), want: "EPERM"},
		{name: "init_module", why: "no CAP_SYS_MODULE; seccomp", cmd: try("init_module"), want: "EPERM"},
		{name: "proc-sys-write", why: "/proc/sys is a read-only bind", cmd: try("open-wo", "/proc/sys/kernel/panic"), want: "EROFS", privileged: "ok"},
		{name: "sysrq-trigger", why: "/proc/sysrq-trigger is a read-only bind", cmd: try("open-wo", "/proc/sysrq-trigger"),
			want: onHost("/proc/sysrq-trigger", "EROFS")},
		{name: "proc-irq-write", why: "/proc/irq is a read-only bind", cmd: try("open-wo", "/proc/irq/default_smp_affinity"),
			want: onHost("/proc/irq/default_smp_affinity", "EROFS")},
		{name: "sys-write", why: "/sys is mounted read-only", cmd: try("open-wo", "/sys/kernel/rcu_expedited"), want: "EROFS"},
		{name: "cgroup-write", why: "/sys/fs/cgroup is mounted read-only", cmd: try("open-wo", cgroupFile), want: "EROFS"},
		{name: "kcore", why: "masked: /dev/null bound over it", cmd: []string{"cat", "/proc/kcore"},
			check: maskedFile("/proc/kcore")},
		{name: "proc-keys", why: "masked: /dev/null bound over it", cmd: []string{"cat", "/proc/keys"},
			check: maskedFile("/proc/keys")},
		{name: "timer_list", why: "masked: /dev/null bound over it", cmd: []string{"cat", "/proc/timer_list"},
			check: maskedFile("/proc/timer_list")},
		{name: "sys-firmware", why: "masked: an empty read-only tmpfs over it", cmd: []string{"ls", "/sys/firmware"},
			check: maskedFile("/sys/firmware")},
		{name: "keyctl", why: "seccomp (keyctl is not in the default profile)", cmd: try("keyctl"), want: "EPERM", privileged: "ok"},
		{name: "ptrace-host-pid", why: "PID namespace: the host's pids do not exist inside",
			cmd: try("ptrace-pid", hostPid), want: "ESRCH"},
		{name: "kill-host-pid", why: "PID namespace", cmd: []string{"kill", "-KILL", hostPid},
			want: "kill " + hostPid + ": ESRCH"},
		{name: "kill-neighbour", why: "PID namespace: another container's supervisor is a host pid too",
			cmd: []string{"kill", "-KILL", neighbourPid}, want: "kill " + neighbourPid + ": ESRCH"},
		{name: "ptrace-supervisor", why: "the supervisor (PID 1) is non-dumpable and there is no CAP_SYS_PTRACE",
			cmd: try("ptrace-pid", "1"), want: "EPERM"},
		{name: "proc-1-exe-write", why: "CVE-2019-5736: the supervisor is non-dumpable, so /proc/1/exe is closed",
			cmd: try("open-wo", "/proc/1/exe"), want: "EACCES"},
		{name: "proc-1-exe-read", why: "the supervisor is non-dumpable", cmd: try("open-ro", "/proc/1/exe"), want: "EACCES"},
		{name: "host-binary-path", why: "mount namespace: the host binary's path is not in the rootfs",
			cmd: try("open-ro", self), want: "ENOENT"},
		{name: "host-file", why: "mount namespace + pivot_root", cmd: try("open-ro", hostFile), want: "ENOENT"},
		{name: "runtime-root", why: "the runtime's root is not mounted inside", cmd: try("open-ro", rt.Root()), want: "ENOENT"},
		{name: "run-dir", why: "the run directory is not mounted inside", cmd: try("open-ro", berth.DefaultRunDir), want: "ENOENT"},
		{name: "chroot-escape", why: "pivot_root: there is no host root above the container's to climb to",
			cmd: try("chroot-escape", hostFile), want: "ENOENT", privileged: "ENOENT"},
		{name: "symlinked-bind-target", why: "bind targets are resolved inside the rootfs",
			cmd: []string{"cat", "/etc/evil/from-src", "/etc/evil-rel/from-src"},
			mod: func(c *berth.ContainerConfig) {
				c.Image = evilImg
				c.Mounts = []berth.Mount{{Source: bindSrc, Target: "/etc/evil"}, {Source: bindSrc, Target: "/etc/evil-rel"}}
			},
			want: "srcsrc", after: hostUnchanged},
		{name: "read-only-bind", why: "the bind is mounted read-only",
			cmd: try("open-wo", "/data/f"),
			mod: func(c *berth.ContainerConfig) {
				c.Mounts = []berth.Mount{{Source: roDir, Target: "/data", ReadOnly: true}}
			},
			want: "EROFS"},
		{name: "open_by_handle_at", why: "no CAP_DAC_READ_SEARCH; seccomp (the \"shocker\" escape through a file bound from the host's file system)", cmd: try("open_by_handle_at", "/etc/hostname"),
			want: "EPERM", privileged: "ok"},
		{name: "setrlimit-raise", why: "no CAP_SYS_RESOURCE", cmd: try("setrlimit-raise"), want: "EPERM"},
		{name: "neighbour-processes", why: "PID namespace", cmd: []string{"ps"}, check: onlySelf},
		{name: "neighbour-file", why: "separate rootfs snapshots", cmd: try("open-ro", secret), want: "ENOENT"},
		{name: "mknod-open-loop", why: "device cgroup (mknod itself is allowed: CAP_MKNOD)", cmd: try("mknod-open", "b", "7", "0"), want: "EPERM"},
		{name: "mknod-open-mem", why: "device cgroup", cmd: try("mknod-open", "c", "1", "1"), want: "EPERM"},
		{name: "settime", why: "no CAP_SYS_TIME; seccomp", cmd: try("settime"), want: "EPERM"},
		{name: "bpf", why: "seccomp allows bpf only with CAP_SYS_ADMIN or CAP_BPF", cmd: try("bpf"), want: "EPERM"},
		{name: "perf_event_open", why: "seccomp allows it only with CAP_SYS_ADMIN or CAP_PERFMON", cmd: try("perf_event_open"), want: "EPERM"},
		{name: "userfaultfd", why: "seccomp", cmd: try("userfaultfd"), want: "EPERM"},
		{name: "io_uring", why: "seccomp (io_uring_setup is not in the default profile)", cmd: try("io_uring"), want: "EPERM"},
		{name: "sethostname", why: "no CAP_SYS_ADMIN; privileged, the UTS namespace keeps it in the container",
			cmd: try("sethostname", "escaped-"+randHex(3)), want: "EPERM", privileged: "ok",
			after: func(t *testing.T) {
				if h, _ := os.Hostname(); h != hostname {
					t.Errorf("the host's hostname changed from %q to %q", hostname, h)
				}
			}},
		{name: "swapon", why: "no CAP_SYS_ADMIN; seccomp", cmd: try("swapon"), want: "EPERM", privileged: "ENOENT"},
		{name: "syslog", why: "no CAP_SYSLOG; seccomp", cmd: try("syslog"), want: "EPERM"},
		{name: "acct", why: "no CAP_SYS_PACCT; seccomp", cmd: try("acct"), want: "EPERM"},
		{name: "net-admin", why: "no CAP_NET_ADMIN", cmd: try("net-admin"), want: "EPERM",
			mod: func(c *berth.ContainerConfig) { c.NetworkMode = "bridge" }},
		{name: "host-loopback", why: "network namespace: 127.0.0.1 inside is the container's own loopback",
			cmd:  []string{"connect", "-timeout", "2s", hostLn.Addr().String()},
			mod:  func(c *berth.ContainerConfig) { c.NetworkMode = "bridge" },
			want: "connect: ECONNREFUSED"},
	}
	if len(cases) < 20 {
		t.Fatalf("only %d escape attempts", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, privileged := range []bool{false, true} {
				want := tc.want
				if privileged {
					if tc.privileged == "" {
						continue
					}
					want = tc.privileged
				}
				cfg := berth.ContainerConfig{Image: img, Cmd: tc.cmd, Privileged: privileged}
				if tc.mod != nil {
					tc.mod(&cfg)
				}
				out, st, err := run(t, rt, cfg)
				out = strings.TrimSpace(out)
				var ee *berth.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatalf("privileged=%v: berth failed: %v (%s)", privileged, err, out)
				}
				switch {
				case tc.check != nil && !privileged:
					if err := tc.check(out); err != nil {
						t.Errorf("%s: %v\n%s", tc.why, err, out)
					}
				case out != want:
					t.Errorf("privileged=%v: %v printed %q, want %q (%s)", privileged, tc.cmd, out, want, tc.why)
				case (tc.cmd[0] == "try" || tc.cmd[0] == "kill") && (want == "ok") != (st.ExitCode == 0):
					t.Errorf("privileged=%v: exit %d with output %q", privileged, st.ExitCode, out)
				}
				if tc.after != nil {
					tc.after(t)
				}
			}
		})
	}

	// A process started by Exec in a running container is held the same
	// way as its main process.
	t.Run("exec", func(t *testing.T) {
		for _, a := range []struct {
			cmd  []string
			want string
		}{
			{try("mount"), "EPERM"},
			{try("keyctl"), "EPERM"},
			{try("unshare-user"), "EPERM"},
			{try("ptrace-pid", "1"), "EPERM"},
			{try("open-wo", "/proc/1/exe"), "EACCES"},
			{try("ptrace-pid", hostPid), "ESRCH"},
		} {
			var out bytes.Buffer
			p, err := neighbour.Exec(ctx, berth.ExecConfig{Cmd: a.cmd, Stdout: &out, Stderr: &out})
			if err != nil {
				t.Fatal(err)
			}
			code, err := p.Wait(ctx)
			if err != nil || code != 1 || strings.TrimSpace(out.String()) != a.want {
				t.Errorf("exec %v: exit %d, %v, printed %q, want %q", a.cmd, code, err, out.String(), a.want)
			}
		}
	})

	// The host side of CVE-2019-5736: a handle on a running supervisor's
	// executable leads to a read-only mount of the berth binary (or a
	// sealed memfd copy on kernels without mount_setattr), never to the
	// writable file, and opening it for writing fails.
	t.Run("supervisor-exe-read-only", func(t *testing.T) {
		exe := "/proc/" + neighbourPid + "/exe"
		target, err := os.Readlink(exe)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(target, "/memfd:") {
			t.Logf("the supervisor runs from a sealed copy: %s", target)
		} else {
			var st, own unix.Statfs_t
			if err := unix.Statfs(exe, &st); err != nil {
				t.Fatal(err)
			}
			if err := unix.Statfs(self, &own); err != nil {
				t.Fatal(err)
			}
			if st.Flags&unix.ST_RDONLY == 0 {
				t.Errorf("the supervisor's executable %s is on a writable mount (statfs flags %#x; the test binary's %#x)", target, st.Flags, own.Flags)
			}
		}
		// ETXTBSY (the binary is running) comes before EROFS in the
		// kernel's checks; either stops the write.
		f, err := os.OpenFile(exe, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
			t.Fatal("the supervisor's executable opened for writing from the host")
		}
		if !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.ETXTBSY) && !errors.Is(err, syscall.EPERM) {
			t.Errorf("open for writing: %v, want EROFS, ETXTBSY or EPERM", err)
		}
	})
	// The sleeper was never signalled.
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the host sleeper is gone: %v", err)
	}
}

// onHost returns want when the host has path, and ENOENT when it does not
// (some kernels have no /proc/kcore or /proc/sysrq-trigger: there is then
// nothing to reach).
func onHost(path, want string) string {
	if _, err := os.Stat(path); err != nil {
		return "ENOENT"
	}
	return want
}

// maskedFile checks the output of cat PATH (or ls PATH for a directory):
// nothing when the host has the path (it is masked), an ENOENT error when
// the host has not.
func maskedFile(path string) func(string) error {
	return func(out string) error {
		if _, err := os.Stat(path); err != nil {
			if !strings.Contains(out, "no such file") {
				return fmt.Errorf("%s is absent on the host but not in the container", path)
			}
			return nil
		}
		if out != "" {
			return fmt.Errorf("%s is readable", path)
		}
		return nil
	}
}

// onlySelf checks toolbox ps output: the supervisor (PID 1) and ps itself,
// nothing of the host or of another container.
func onlySelf(out string) error {
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "PID") {
		return fmt.Errorf("unexpected ps output")
	}
	var pids []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 4 {
			return fmt.Errorf("bad line %q", l)
		}
		if strings.Contains(l, "sleep") {
			return fmt.Errorf("a sleep process is visible: %q", l)
		}
		pids = append(pids, f[0])
	}
	if !slices.Contains(pids, "1") || len(pids) > 2 {
		return fmt.Errorf("want PID 1 and ps only, got pids %v", pids)
	}
	return nil
}
