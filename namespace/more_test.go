//go:build linux

package namespace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/mount"
	"github.com/berthrt/berth/namespace/seccomp"
	"golang.org/x/sys/unix"
)

func TestSeccomp(t *testing.T) {
	cfg := newConfig(t, sh(`grep -E '^Seccomp:' /proc/self/status; sleep 100`))
	cfg.Seccomp = seccomp.DefaultProfile()
	var out testutil.Buffer
	c := startT(t, cfg, Stdio{Stdout: &out})
	waitFor(t, func() bool { return strings.Contains(out.String(), "Seccomp") })
	if !strings.Contains(out.String(), "Seccomp:\t2") {
		t.Fatalf("main process: %q", out.String())
	}
	// Exec'd processes are filtered too, and the supervisor still works.
	var eout bytes.Buffer
	p, err := c.Exec(context.Background(), sh(`grep -E '^Seccomp:' /proc/self/status`), Stdio{Stdout: &eout})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(context.Background()); err != nil || st.Code != 0 || !strings.Contains(eout.String(), "Seccomp:\t2") {
		t.Fatalf("exec: %v %v %q", st, err, eout.String())
	}
	_ = c.Signal(syscall.SIGKILL)
	if st, _ := c.Wait(context.Background()); st.Code != 137 {
		t.Fatalf("status %v", st)
	}

	// A custom profile that denies mkdir.
	eperm := uint(1)
	deny := &seccomp.Profile{
		DefaultAction: seccomp.ActAllow,
		Syscalls:      []seccomp.Syscall{{Names: []string{"mkdir", "mkdirat"}, Action: seccomp.ActErrno, ErrnoRet: &eperm}},
	}
	cfg = newConfig(t, sh(`mkdir /tmp/x 2>/dev/null && echo made || echo denied`))
	cfg.Seccomp = deny
	if r := run(t, cfg, nil); strings.TrimSpace(r.stdout) != "denied" {
		t.Fatalf("custom profile: %q %q", r.stdout, r.stderr)
	}
}

func TestPrestart(t *testing.T) {
	cfg := newConfig(t, sh(`cat /proc/self/cgroup >/dev/null; echo ran`))
	var got int
	var out bytes.Buffer
	c, err := Start(context.Background(), cfg, Stdio{Stdout: &out}, StartOptions{Prestart: func(pid int) error {
		got = pid
		// The namespaces exist, the process does not run yet.
		if l1, _ := os.Readlink("/proc/self/ns/pid"); l1 == "" {
			return errors.New("no ns")
		}
		time.Sleep(20 * time.Millisecond)
		if out.Len() != 0 {
			return errors.New("the process ran before Prestart returned")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got != c.Pid() {
		t.Errorf("Prestart got pid %d, supervisor is %d", got, c.Pid())
	}
	if st, err := c.Wait(context.Background()); err != nil || st.Code != 0 || out.String() != "ran\n" {
		t.Fatalf("%v %v %q", st, err, out.String())
	}

	// A failing Prestart aborts the start and leaves nothing behind.
	var pid int
	_, err = Start(context.Background(), cfg, Stdio{}, StartOptions{Prestart: func(p int) error {
		pid = p
		return errors.New("boom")
	}})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
	assertGone(t, pid)
}

func TestContextCancelledStart(t *testing.T) {
	cfg := newConfig(t, sh("true"))
	ctx, cancel := context.WithCancel(context.Background())
	var pid int
	_, err := Start(ctx, cfg, Stdio{}, StartOptions{Prestart: func(p int) error {
		pid = p
		cancel()
		return nil
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	assertGone(t, pid)
}

func TestConcurrentStarts(t *testing.T) {
	root := rootfs(t)
	n := 20
	if s := os.Getenv("BERTH_NS_CONCURRENT"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			c, err := Start(context.Background(), &Config{RootDir: root, Process: ProcessConfig{Args: []string{"/bin/echo", "hi"}}}, Stdio{Stdout: &out}, StartOptions{})
			if err != nil {
				errs <- err
				return
			}
			st, err := c.Wait(context.Background())
			if err == nil && (st.Code != 0 || out.String() != "hi\n") {
				err = errors.New("bad result " + st.String() + " " + out.String())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d concurrent containers in %v", n, time.Since(t0))
}

// The package sits below berth: it must not import it, cgroup or netdev.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/berthrt/berth", "github.com/berthrt/berth/cgroup", "github.com/berthrt/berth/netdev", "github.com/berthrt/berth/layer":
			t.Errorf("namespace imports %s", dep)
		}
	}
}

// TestInitOrder: the hook (this package's init) runs before the packages
// of the program that do not need to run first. Go initialises, among the
// packages whose imports are done, the one whose path sorts first; so if
// this package imported a package with work at init that sorts late
// (path/filepath, which os/exec, creack/pty and moby/sys/user import),
// every package of the program sorting before that one (net/http, and
// most of a big program's: github.com/..., google.golang.org/..., k8s.io/...)
// would initialise first, in every container's init. A program importing
// net/http, run as an init with GODEBUG=inittrace=1, must not print
// net/http's initialisation before the hook ends it.
func TestInitOrder(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "initorder")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/initorder").CombinedOutput(); err != nil {
		t.Skipf("go build: %v\n%s", err, out)
	}
	cmd := &exec.Cmd{Path: bin, Args: []string{initArg0}, Env: []string{"GODEBUG=inittrace=1"}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 {
		t.Fatalf("the init without a control socket: %v (want exit status 125)\n%s", err, out)
	}
	if !strings.Contains(string(out), "init golang.org/x/sys/unix @") {
		t.Fatalf("no init trace:\n%s", out)
	}
	for _, late := range []string{"net/http", "path/filepath"} {
		if strings.Contains(string(out), "init "+late+" @") {
			t.Errorf("%s was initialised before the hook ran:\n%s", late, out)
		}
	}
}

func TestUserNamespace(t *testing.T) {
	cfg := newConfig(t, sh(`id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status; touch /tmp/f && stat -c %u /tmp/f; hostname`))
	cfg.Namespaces = append(append([]Namespace(nil), DefaultNamespaces...), NamespaceUser)
	cfg.UIDMappings = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	cfg.GIDMappings = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// The rootfs belongs to the mapped root, as with userns-remap.
	if err := chownTree(cfg.RootDir, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	for d := cfg.RootDir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	r := run(t, cfg, nil)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	want := []string{"0", "0 100000 65536", "CapEff: 00000000a80425fb", "0", "berthtest"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q (stderr %q)", lines, want, r.stderr)
	}
	st, err := os.Stat(cfg.RootDir + "/tmp/f")
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != 100000 {
		t.Errorf("file created by container root: %v %v", st, err)
	}
}

// TestSupervisorMemory measures the host memory of an idle container's
// supervisor (PSS: shared pages divided among their users).
func TestSupervisorMemory(t *testing.T) {
	c := startT(t, newConfig(t, sh("sleep 100")), Stdio{})
	time.Sleep(100 * time.Millisecond)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid()) + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	t.Logf("supervisor: Rss %s, Pss %s, Pss_Anon %s, Pss_File %s (binary %s)", fields["Rss"], fields["Pss"], fields["Pss_Anon"], fields["Pss_File"], selfExe.kind)
	var kb int
	fmt.Sscanf(fields["Pss"], "%d kB", &kb)
	if kb > 16<<10 && !raceEnabled {
		t.Errorf("supervisor PSS %d kB", kb)
	}
}

func BenchmarkExecTrue(b *testing.B) {
	cfg := &Config{RootDir: rootfs(b), Process: ProcessConfig{Args: []string{"/bin/sleep", "1000"}}}
	c, err := Start(context.Background(), cfg, Stdio{}, StartOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	reportMedian(b, timeRuns(b, func(int) {
		p, err := c.Exec(ctx, ProcessConfig{Args: []string{"/bin/true"}}, Stdio{})
		if err != nil {
			b.Fatal(err)
		}
		if st, err := p.Wait(ctx); err != nil || st.Code != 0 {
			b.Fatal(st, err)
		}
	}))
}

// BenchmarkStartTrueSeccomp is BenchmarkStartTrue with Docker's seccomp profile.
func BenchmarkStartTrueSeccomp(b *testing.B) {
	cfg := &Config{RootDir: rootfs(b), Process: ProcessConfig{Args: []string{"/bin/true"}}, Seccomp: seccomp.DefaultProfile()}
	reportMedian(b, timeRuns(b, func(int) { startAndWait(b, cfg) }))
}

// The layer store's snapshot mounts are performed inside the container's
// mount namespace: the host never sees them.
func TestOverlayRootfs(t *testing.T) {
	lower := rootfs(t)
	base := t.TempDir()
	upper, work, root := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "root")
	for _, d := range []string{upper, work, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &Config{RootDir: root, Process: sh(`echo new > /created; cat /etc/group | head -1; grep ' / ' /proc/mounts | cut -d' ' -f3`),
		Rootfs: []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
			"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work}}}}
	r := run(t, cfg, nil)
	if r.stdout != "root:x:0:\noverlay\n" {
		t.Fatalf("got %q %q", r.stdout, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(upper, "created")); err != nil || string(b) != "new\n" {
		t.Fatalf("upper: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(lower, "created")); err == nil {
		t.Fatal("wrote to the lower dir")
	}
	assertNoMounts(t, base)
}

// Without a PID namespace the supervisor still takes every process down
// with the main one.
func TestNoPIDNamespace(t *testing.T) {
	cfg := newConfig(t, sh(`sleep 1000 & echo $!; sleep 0.1`))
	cfg.Namespaces = []Namespace{NamespaceMount, NamespaceUTS, NamespaceIPC, NamespaceNet}
	r := run(t, cfg, nil)
	pid, err := strconv.Atoi(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("got %q %q", r.stdout, r.stderr)
	}
	if pid < 100 {
		t.Logf("background pid %d (host pid namespace expected)", pid)
	}
	assertGone(t, pid)
}

func TestRlimits(t *testing.T) {
	p := sh(`ulimit -n; ulimit -Hn`)
	p.Rlimits = []Rlimit{{Type: "RLIMIT_NOFILE", Soft: 1000, Hard: 2000}}
	r := run(t, newConfig(t, p), nil)
	if r.stdout != "1000\n2000\n" {
		t.Fatalf("got %q %q", r.stdout, r.stderr)
	}
	// Exec'd processes inherit the container's limits.
	c := startT(t, newConfig(t, ProcessConfig{Args: []string{"sleep", "100"}, Rlimits: []Rlimit{{Type: "nofile", Soft: 1001, Hard: 1001}}}), Stdio{})
	var out bytes.Buffer
	e, err := c.Exec(context.Background(), sh("ulimit -n"), Stdio{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Wait(context.Background()); err != nil || out.String() != "1001\n" {
		t.Fatalf("exec: %q %v", out.String(), err)
	}
	_, err = Start(context.Background(), newConfig(t, ProcessConfig{Args: []string{"true"}, Rlimits: []Rlimit{{Type: "bogus"}}}), Stdio{}, StartOptions{})
	if err == nil {
		t.Fatal("bogus rlimit accepted")
	}
}

// sharedMount makes a shared tmpfs mount in a temporary directory, with an
// empty directory sub in it, and returns its path; the test's end
// unmounts it and whatever was mounted on sub.
func sharedMount(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", src, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mount.UnmountAll(src+"/sub", unix.MNT_DETACH); _ = mount.UnmountAll(src, unix.MNT_DETACH) })
	if err := unix.Mount("", src, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(src+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}

// A bind with "rslave" receives mounts made later on the host; the rest of
// the container's mounts stay private.
func TestMountPropagation(t *testing.T) {
	src := sharedMount(t)
	cfg := newConfig(t, sh(`echo ready; while [ ! -e /shared/sub/marker ]; do sleep 0.02; done; echo seen; mount -t tmpfs x /shared/sub 2>&1 || true`))
	cfg.Mounts = []mount.Mount{{Type: "bind", Source: src, Target: "/shared", Options: []string{"rbind", "rslave"}}}
	cfg.Process.Capabilities = append(append([]string(nil), DefaultCapabilities...), "CAP_SYS_ADMIN")
	var out testutil.Buffer
	c := startT(t, cfg, Stdio{Stdout: &out, Stderr: &out})
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	if err := unix.Mount("tmpfs", src+"/sub", "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"/sub/marker", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Wait(ctx)
	if err != nil || st.Code != 0 || !strings.Contains(out.String(), "seen") {
		t.Fatalf("%v %v %q", st, err, out.String())
	}
	// The container's own mount on /shared/sub did not come back.
	if _, err := os.Stat(src + "/sub/marker"); err != nil {
		t.Fatalf("the container's mount propagated to the host: %v", err)
	}
}

// The fallback for kernels without mount_setattr: a sealed memfd copy.
func TestMemfdFallback(t *testing.T) {
	f, err := memfdSelf()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0}, 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("write to the sealed copy: %v", err)
	}
	st, _ := f.Stat()
	t.Logf("memfd copy: %d bytes", st.Size())
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), "-test.run=^$")
	cmd.ExtraFiles = nil
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("exec the copy: %v %s", err, out)
	}
}

// The container sees its own cgroup as the root of /sys/fs/cgroup (cgroup
// namespace created after Prestart placed it), read-only.
func TestCgroupView(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory/cgroup.procs"); err != nil {
		t.Skip("no cgroup v1 memory hierarchy")
	}
	parent := fmt.Sprintf("/sys/fs/cgroup/memory/berth-nstest-%d", os.Getpid())
	cg := parent + "/c1"
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg); _ = os.Remove(parent) })
	if err := os.WriteFile(cg+"/memory.limit_in_bytes", []byte("67108864"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(t, sh(`grep ':memory:' /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; touch /sys/fs/cgroup/memory/x 2>/dev/null || echo ro; ls /sys/fs/cgroup | wc -l`))
	var out bytes.Buffer
	c, err := Start(context.Background(), cfg, Stdio{Stdout: &out}, StartOptions{Prestart: func(pid int) error {
		return os.WriteFile(cg+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0o644)
	}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(context.Background())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err != nil || st.Code != 0 || len(lines) != 4 || !strings.HasSuffix(lines[0], ":memory:/") || lines[1] != "67108864" || lines[2] != "ro" {
		t.Fatalf("%v %v %q", st, err, out.String())
	}
}

// Killing the supervisor from outside (as a cgroup kill-all does) ends the
// container, and Wait reports the signal.
func TestSupervisorKilled(t *testing.T) {
	c := startT(t, newConfig(t, sh("sleep 100")), Stdio{})
	main := c.Main().Pid()
	if err := unix.Kill(c.Pid(), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(context.Background())
	if err != nil || st.Code != 137 || st.Signal != syscall.SIGKILL {
		t.Fatalf("%v %v", st, err)
	}
	assertGone(t, main)
}

// No descriptor of the init (control sockets, status file, host
// directories) reaches a container process (the CVE-2024-21626 class).
func TestNoLeakedFDs(t *testing.T) {
	cfg := newConfig(t, ProcessConfig{Args: []string{"ls", "/proc/self/fd"}})
	cfg.ControlDir = filepath.Join(t.TempDir(), "ctl")
	r := run(t, cfg, strings.NewReader(""))
	// ls opens the directory as fd 3.
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != "0 1 2 3" {
		t.Errorf("main process fds: %q", got)
	}
	c := startT(t, newConfig(t, ProcessConfig{Args: []string{"sleep", "100"}}), Stdio{})
	var eout bytes.Buffer
	p, err := c.Exec(context.Background(), ProcessConfig{Args: []string{"ls", "/proc/self/fd"}}, Stdio{Stdout: &eout})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(eout.String()); strings.Join(got, " ") != "0 1 2 3" {
		t.Errorf("exec'd process fds: %q", got)
	}
}

// A terminal can be resized through a handle from Attach.
func TestAttachResize(t *testing.T) {
	p := sh(`read x; stty size`)
	p.Terminal = true
	cfg := newConfig(t, p)
	cfg.ControlDir = filepath.Join(t.TempDir(), "ctl")
	pr, pw := io.Pipe()
	var out testutil.Buffer
	c := startT(t, cfg, Stdio{Stdin: pr, Stdout: &out})
	a, err := Attach(context.Background(), c.ControlSocket())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Resize(50, 20); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(pw, "go")
	st, err := c.Wait(context.Background())
	if err != nil || st.Code != 0 || !strings.Contains(out.String(), "20 50") {
		t.Fatalf("%v %v %q", st, err, out.String())
	}
	if st, err := a.Wait(context.Background()); err != nil || st.Code != 0 {
		t.Fatalf("attached wait: %v %v", st, err)
	}
}

// A finished container holds no descriptor of its owner.
func TestNoOwnerFDLeak(t *testing.T) {
	count := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents)
	}
	root := rootfs(t)
	cfg := &Config{RootDir: root, Process: ProcessConfig{Args: []string{"/bin/echo", "x"}}}
	run1 := func() {
		var out bytes.Buffer
		c, err := Start(context.Background(), cfg, Stdio{Stdin: strings.NewReader(""), Stdout: &out}, StartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	run1() // the first start opens the cached init binary
	before := count()
	for i := 0; i < 5; i++ {
		run1()
	}
	if after := count(); after > before {
		t.Fatalf("descriptors: %d before, %d after 5 containers", before, after)
	}
}

// An image whose /etc/passwd is a FIFO does not hang the init.
func TestPasswdFIFO(t *testing.T) {
	cfg := newConfig(t, sh("grep Uid: /proc/self/status | cut -f2"))
	p := filepath.Join(cfg.RootDir, "etc/passwd")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Process.User = "1234"
	if r := run(t, cfg, nil); r.stdout != "1234\n" {
		t.Fatalf("%+v", r)
	}
}

// StartOptions.CgroupFD: the init is created in a cgroup v2 directory
// (CLONE_INTO_CGROUP), and clone creates its cgroup namespace there.
func TestCgroupFD(t *testing.T) {
	dir, f := cgroupV2Dir(t, "fd")
	cfg := newConfig(t, sh(`grep '^0::' /proc/self/cgroup; sleep 100`))
	var out testutil.Buffer
	c, err := Start(context.Background(), cfg, Stdio{Stdout: &out}, StartOptions{CgroupFD: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	checkCgroupV2(t, c, &out, dir)
}

// cgroupV2Dir makes a cgroup v2 directory for the test (skipping it on a
// host without a v2 hierarchy) and opens it.
func cgroupV2Dir(t *testing.T, name string) (string, *os.File) {
	t.Helper()
	base := "/sys/fs/cgroup/unified"
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		base = "/sys/fs/cgroup"
	}
	if err := unix.Statfs(base, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("no cgroup v2 hierarchy")
	}
	dir := fmt.Sprintf("%s/berth-nstest-%s-%d", base, name, os.Getpid())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return dir, f
}

// checkCgroupV2 checks that c, whose process printed its /proc/self/cgroup
// v2 line to out, runs in dir with its cgroup namespace rooted there, then
// kills it.
func checkCgroupV2(t *testing.T, c *Container, out *testutil.Buffer, dir string) {
	t.Helper()
	waitFor(t, func() bool { return strings.Contains(out.String(), "\n") })
	if got := strings.TrimSpace(out.String()); got != "0::/" {
		t.Errorf("inside: %q, want the cgroup namespace rooted at the container's cgroup", got)
	}
	procs, _ := os.ReadFile(dir + "/cgroup.procs")
	if !strings.Contains(string(procs), strconv.Itoa(c.Pid())) {
		t.Errorf("supervisor %d not in %s: %q", c.Pid(), dir, procs)
	}
	_ = c.Signal(syscall.SIGKILL)
	if _, err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
