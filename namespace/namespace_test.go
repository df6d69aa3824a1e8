//go:build linux

package namespace

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/mount"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_NS_HELPER") == "owner" {
		ownerHelper()
		return
	}
	os.Exit(m.Run())
}

var applets struct {
	once sync.Once
	list []string
	err  error
}

// rootfs makes a minimal rootfs with busybox in a temporary directory.
func rootfs(t testing.TB) string {
	t.Helper()
	testutil.RequiresRoot(t)
	bb := testutil.RequiresCommand(t, "busybox")
	applets.once.Do(func() {
		out, err := exec.Command(bb, "--list").Output()
		applets.list, applets.err = strings.Fields(string(out)), err
	})
	if applets.err != nil {
		t.Fatal(applets.err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "root", "home/alice"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(bb, filepath.Join(dir, "bin/busybox")); err != nil {
		data, err := os.ReadFile(bb)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range applets.list {
		if a == "busybox" {
			continue
		}
		_ = os.Symlink("busybox", filepath.Join(dir, "bin", a))
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nwheel:x:10:alice\nstaff:x:50:alice,bob\nalice:x:1000:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { assertNoMounts(t, dir) })
	return dir
}

// assertNoMounts fails if anything is mounted under dir in the host's namespace.
func assertNoMounts(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Error(err)
		return
	}
	if bytes.Contains(b, []byte(dir)) {
		t.Errorf("mounts leaked under %s:\n%s", dir, b)
	}
}

func sh(script string) ProcessConfig {
	return ProcessConfig{Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"}}
}

type result struct {
	stdout, stderr string
	status         ExitStatus
}

func startT(t testing.TB, cfg *Config, stdio Stdio) *Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Start(ctx, cfg, stdio, StartOptions{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		assertGone(t, c.Pid())
	})
	return c
}

func assertGone(t testing.TB, pid int) {
	t.Helper()
	if pid == 0 {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("process %d still alive", pid)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || len(b) < i+3 || b[i+2] != 'Z'
}

func run(t testing.TB, cfg *Config, stdin io.Reader) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := startT(t, cfg, Stdio{Stdin: stdin, Stdout: &stdout, Stderr: &stderr})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return result{stdout.String(), stderr.String(), st}
}

func newConfig(t testing.TB, p ProcessConfig) *Config {
	return &Config{ID: "t" + strconv.Itoa(os.Getpid()), RootDir: rootfs(t), Process: p, Hostname: "berthtest"}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
		sig    syscall.Signal
	}{
		{"true", 0, 0},
		{"exit 3", 3, 0},
		{"kill -9 $$", 137, syscall.SIGKILL},
		{"kill -USR1 $$", 128 + 10, syscall.SIGUSR1},
	} {
		r := run(t, newConfig(t, sh(tc.script)), nil)
		if r.status.Code != tc.code || r.status.Signal != tc.sig {
			t.Errorf("%q: got %+v, want code %d signal %v", tc.script, r.status, tc.code, tc.sig)
		}
	}
}

func TestCommandNotFound(t *testing.T) {
	cfg := newConfig(t, ProcessConfig{Args: []string{"nonexistent-cmd"}})
	_, err := Start(context.Background(), cfg, Stdio{}, StartOptions{})
	var se *SetupError
	if !errors.As(err, &se) || se.Code != 127 || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v (%#v), want a SetupError with code 127", err, err)
	}
	if err := os.WriteFile(filepath.Join(cfg.RootDir, "bin/noexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Process.Args = []string{"/bin/noexec"}
	_, err = Start(context.Background(), cfg, Stdio{}, StartOptions{})
	if !errors.As(err, &se) || se.Code != 126 {
		t.Fatalf("got %v, want a SetupError with code 126", err)
	}
	cfg.Process.Args = []string{"true"}
	cfg.Mounts = []mount.Mount{{Type: "bind", Source: "/nonexistent/berth", Target: "/x"}}
	_, err = Start(context.Background(), cfg, Stdio{}, StartOptions{})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing bind source: got %v, want ErrNotFound", err)
	}
}

func TestStdio(t *testing.T) {
	r := run(t, newConfig(t, sh("cat; echo err >&2")), strings.NewReader("hello\nworld\n"))
	if r.stdout != "hello\nworld\n" || r.stderr != "err\n" || r.status.Code != 0 {
		t.Fatalf("got %+v", r)
	}
	// Files are passed as they are.
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := startT(t, newConfig(t, sh("echo to-file")), Stdio{Stdout: f})
	if st, err := c.Wait(context.Background()); err != nil || st.Code != 0 {
		t.Fatal(st, err)
	}
	if b, _ := os.ReadFile(f.Name()); string(b) != "to-file\n" {
		t.Fatalf("file got %q", b)
	}
}

func TestTerminal(t *testing.T) {
	p := sh("tty; read x; stty size; echo got=$x")
	p.Terminal = true
	pr, pw := io.Pipe()
	var out testutil.Buffer
	c := startT(t, newConfig(t, p), Stdio{Stdin: pr, Stdout: &out})
	if err := c.Resize(100, 40); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(pw, "line\n")
	pw.Close()
	st, err := c.Wait(context.Background())
	if err != nil || st.Code != 0 {
		t.Fatalf("wait: %v %v, output %q", st, err, out.String())
	}
	got := out.String()
	for _, want := range []string{"/dev/pts/0", "40 100", "got=line"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}

	// Closing stdin gives the process an end of file.
	p = sh("cat; echo done")
	p.Terminal = true
	out.Reset()
	c = startT(t, newConfig(t, p), Stdio{Stdin: strings.NewReader("abc\n"), Stdout: &out})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := c.Wait(ctx); err != nil || st.Code != 0 || !strings.Contains(out.String(), "done") {
		t.Fatalf("stdin EOF: %v %v %q", st, err, out.String())
	}
}

func TestUserEnvCwd(t *testing.T) {
	for _, tc := range []struct {
		user, want string
	}{
		{"", "0 0 0 /root"},
		{"alice", "1000 1000 1000 10 50 /home/alice"},
		{"1000", "1000 1000 1000 10 50 /home/alice"},
		{"alice:staff", "1000 50 50 /home/alice"}, // moby/sys/user: an explicit group replaces membership
		{"1234:4321", "1234 4321 4321 /"},
		{"nobody", "65534 65534 65534 /nonexistent"},
	} {
		p := sh(`echo $(id -u) $(id -g) $(id -G) $HOME`)
		p.User = tc.user
		r := run(t, newConfig(t, p), nil)
		if strings.TrimSpace(r.stdout) != tc.want {
			t.Errorf("user %q: got %q (%s), want %q", tc.user, r.stdout, r.stderr, tc.want)
		}
	}
	p := sh(`pwd; echo $FOO`)
	p.Env = append(p.Env, "FOO=bar")
	p.Cwd = "/work/dir"
	r := run(t, newConfig(t, p), nil)
	if r.stdout != "/work/dir\nbar\n" {
		t.Errorf("cwd/env: got %q %q", r.stdout, r.stderr)
	}
	p.User = "nosuchuser"
	_, err := Start(context.Background(), newConfig(t, p), Stdio{}, StartOptions{})
	var se *SetupError
	if !errors.As(err, &se) {
		t.Errorf("missing user: got %v", err)
	}
}

func TestHostnameAndNamespaces(t *testing.T) {
	r := run(t, newConfig(t, sh("hostname; readlink /proc/self/ns/net; echo $$")), nil)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	if len(lines) != 3 || lines[0] != "berthtest" || lines[1] == hostNet || len(lines[2]) > 2 {
		t.Fatalf("got %q %q", r.stdout, r.stderr)
	}
	// The hostname defaults to the short id.
	cfg := newConfig(t, sh("hostname"))
	cfg.Hostname, cfg.ID = "", "0123456789abcdef0123"
	if r := run(t, cfg, nil); r.stdout != "0123456789ab\n" {
		t.Fatalf("default hostname: %q", r.stdout)
	}
	// No net namespace: the host's network.
	cfg = newConfig(t, sh("readlink /proc/self/ns/net"))
	cfg.Namespaces = []Namespace{NamespaceMount, NamespacePID, NamespaceUTS, NamespaceIPC}
	if r := run(t, cfg, nil); strings.TrimSpace(r.stdout) != hostNet {
		t.Fatalf("host network: got %q, want %q", r.stdout, hostNet)
	}
}

func TestJoinNetNS(t *testing.T) {
	a := startT(t, newConfig(t, sh("sleep 100")), Stdio{})
	ns := fmt.Sprintf("/proc/%d/ns/net", a.Main().Pid())
	want, err := os.Readlink(ns)
	if err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(t, sh("readlink /proc/self/ns/net"))
	cfg.NetNS = ns
	if r := run(t, cfg, nil); strings.TrimSpace(r.stdout) != want {
		t.Fatalf("got %q, want %q", r.stdout, want)
	}
	// No other thread of ours is left in that namespace. (The main thread
	// may be: Go wedges rather than ends it; /proc/self shows its view.)
	for i := 0; i < 20; i++ {
		ch := make(chan string)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			l, _ := os.Readlink("/proc/thread-self/ns/net")
			ch <- l
		}()
		if <-ch == want {
			t.Fatal("a thread of the owner stayed in the joined namespace")
		}
	}
}

func TestMounts(t *testing.T) {
	host := t.TempDir()
	rw, ro := filepath.Join(host, "rw"), filepath.Join(host, "ro")
	for _, d := range []string{rw, ro} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(host, "file.txt")
	if err := os.WriteFile(file, []byte("file-content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(host, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 berth-hosts\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(t, sh(`
		echo hi > /data/rw/x && echo rw-ok
		echo hi > /data/ro/x 2>/dev/null || echo ro-refused
		cat /etc/app/file.txt
		grep berth-hosts /etc/hosts
		grep ' /scratch ' /proc/mounts
		echo y > /scratch/y && echo tmpfs-ok
		touch /newfile 2>/dev/null || echo rootfs-ro
		echo z > /tmp/z 2>/dev/null || echo tmp-ro
	`))
	cfg.ReadonlyRootfs = true
	cfg.Mounts = []mount.Mount{
		{Type: "bind", Source: rw, Target: "/data/rw", Options: []string{"rbind"}},
		{Type: "bind", Source: ro, Target: "/data/ro", Options: []string{"rbind", "ro"}},
		{Type: "bind", Source: file, Target: "/etc/app/file.txt", Options: []string{"ro"}},
		{Type: "tmpfs", Source: "tmpfs", Target: "/scratch", Options: []string{"size=1m", "mode=1770", "nosuid"}},
	}
	cfg.Files = map[string]string{"/etc/hosts": hosts}
	r := run(t, cfg, nil)
	for _, want := range []string{"rw-ok", "ro-refused", "file-content", "berth-hosts", "size=1024k", "mode=1770", "tmpfs-ok", "rootfs-ro", "tmp-ro"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}
	if b, err := os.ReadFile(filepath.Join(rw, "x")); err != nil || string(b) != "hi\n" {
		t.Errorf("rw bind: %q %v", b, err)
	}
	// The rootfs dir on the host got no mount targets leaking out.
	if _, err := os.Stat(filepath.Join(ro, "x")); err == nil {
		t.Error("ro bind was written")
	}
}

// A symlink in the image cannot redirect a mount target to the host.
func TestMountTargetSymlink(t *testing.T) {
	victim := t.TempDir()
	cfg := newConfig(t, sh(`grep -c " $VICTIM/sub " /proc/mounts`))
	cfg.Process.Env = append(cfg.Process.Env, "VICTIM="+victim)
	if err := os.Symlink(victim, filepath.Join(cfg.RootDir, "evil")); err != nil {
		t.Fatal(err)
	}
	cfg.Mounts = []mount.Mount{{Type: "tmpfs", Source: "tmpfs", Target: "/evil/sub"}}
	r := run(t, cfg, nil)
	if r.status.Code != 0 {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(victim, "sub")); err == nil {
		t.Fatal("mount target escaped the rootfs through a symlink")
	}
}

func capLine(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestCapabilities(t *testing.T) {
	r := run(t, newConfig(t, sh("grep Cap /proc/self/status")), nil)
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if got := capLine(r.stdout, k); got != "00000000a80425fb" {
			t.Errorf("root %s = %s, want 00000000a80425fb", k, got)
		}
	}
	for _, k := range []string{"CapInh", "CapAmb"} {
		if got := capLine(r.stdout, k); got != "0000000000000000" {
			t.Errorf("%s = %s", k, got)
		}
	}
	p := sh("grep Cap /proc/self/status")
	p.User = "alice"
	r = run(t, newConfig(t, p), nil)
	if capLine(r.stdout, "CapEff") != "0000000000000000" || capLine(r.stdout, "CapPrm") != "0000000000000000" || capLine(r.stdout, "CapBnd") != "00000000a80425fb" {
		t.Errorf("non-root caps:\n%s", r.stdout)
	}
	p = sh("grep -E 'CapEff|NoNewPrivs' /proc/self/status")
	p.Capabilities = []string{"CAP_NET_ADMIN", "KILL"}
	p.NoNewPrivileges = true
	r = run(t, newConfig(t, p), nil)
	if capLine(r.stdout, "CapEff") != "0000000000001020" || capLine(r.stdout, "NoNewPrivs") != "1" {
		t.Errorf("custom caps:\n%s", r.stdout)
	}
	cfg := newConfig(t, sh("grep CapEff /proc/self/status; ls /dev | wc -l; touch /sys/fs/cgroup/x 2>&1 | grep -q 'Read-only' && echo cgroup-ro"))
	cfg.Privileged = true
	r = run(t, cfg, nil)
	hostDev, _ := os.ReadDir("/dev")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if n, _ := strconv.Atoi(lines[len(lines)-1]); len(lines) != 2 || n < len(hostDev)/2 {
		t.Errorf("privileged: want all host devices (host /dev has %d entries), /sys/fs/cgroup writable:\n%s", len(hostDev), r.stdout)
	}
	hostStatus, _ := os.ReadFile("/proc/self/status")
	if capLine(r.stdout, "CapEff") != capLine(string(hostStatus), "CapEff") {
		t.Errorf("privileged:\n%s", r.stdout)
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	r := run(t, newConfig(t, sh(`
		echo keys=$(wc -c < /proc/keys) timer_list=$(wc -c < /proc/timer_list)
		echo firmware=$(ls /sys/firmware | wc -l)
		echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sys-ro
		touch /sys/x 2>/dev/null || echo sysfs-ro
		touch /sys/fs/cgroup/x 2>/dev/null || echo cgroup-ro
		ls /sys/fs/cgroup | wc -l
		ls -l /dev | grep -c -E 'null|zero|full|random|urandom|tty'
		ls /dev/pts/ptmx /dev/shm /dev/mqueue /dev/fd/ /dev/stdin >/dev/null && echo dev-ok
	`)), nil)
	for _, want := range []string{"keys=0 timer_list=0", "firmware=0", "sys-ro", "sysfs-ro", "cgroup-ro", "dev-ok"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}
}

func TestExec(t *testing.T) {
	cfg := newConfig(t, sh("sleep 100"))
	cfg.Process.Env = append(cfg.Process.Env, "FROM_MAIN=yes")
	c := startT(t, cfg, Stdio{})
	ctx := context.Background()

	var out bytes.Buffer
	p, err := c.Exec(ctx, ProcessConfig{Args: []string{"sh", "-c", "echo $FROM_MAIN $(id -u) $(pwd) $(hostname); cat"}}, Stdio{Stdin: strings.NewReader("in\n"), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() == 0 {
		t.Error("exec'd process has no host pid")
	}
	st, err := p.Wait(ctx)
	if err != nil || st.Code != 0 || out.String() != "yes 0 / berthtest\nin\n" {
		t.Fatalf("exec: %v %v %q", st, err, out.String())
	}

	p, err = c.Exec(ctx, ProcessConfig{Args: []string{"sh", "-c", "exit 7"}, User: "alice", Cwd: "/tmp"}, Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Wait(ctx); st.Code != 7 {
		t.Fatalf("exec exit: %v", st)
	}

	_, err = c.Exec(ctx, ProcessConfig{Args: []string{"no-such-thing"}}, Stdio{})
	var se *SetupError
	if !errors.As(err, &se) || se.Code != 127 {
		t.Fatalf("exec not found: %v", err)
	}

	// A long-running exec: signal it; see it in Processes.
	p, err = c.Exec(ctx, ProcessConfig{Args: []string{"sleep", "100"}}, Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	pids, err := c.Processes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, p.Pid()) || !slices.Contains(pids, c.Main().Pid()) {
		t.Errorf("Processes() = %v, want %d and %d in it", pids, p.Pid(), c.Main().Pid())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Wait(ctx); st.Code != 143 || st.Signal != syscall.SIGTERM {
		t.Fatalf("signalled exec: %v", st)
	}

	// Exec with a terminal.
	out.Reset()
	var tout testutil.Buffer
	p, err = c.Exec(ctx, ProcessConfig{Args: []string{"tty"}, Terminal: true}, Stdio{Stdout: &tout})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Wait(ctx); st.Code != 0 || !strings.Contains(tout.String(), "/dev/pts/") {
		t.Fatalf("exec tty: %v %q", st, tout.String())
	}

	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Wait(ctx); st.Code != 137 {
		t.Fatalf("main: %v", st)
	}
	if _, err := c.Exec(ctx, ProcessConfig{Args: []string{"true"}}, Stdio{}); !errors.Is(err, errdefs.ErrNotRunning) {
		t.Fatalf("exec after exit: %v", err)
	}
}

func TestStopIgnoringTerm(t *testing.T) {
	var out testutil.Buffer
	c := startT(t, newConfig(t, sh(`trap "" TERM; echo ready; while :; do sleep 0.05; done`)), Stdio{Stdout: &out})
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SIGTERM was not ignored: %v", err)
	}
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(context.Background())
	if err != nil || st.Code != 137 {
		t.Fatalf("after SIGKILL: %v %v", st, err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestZombieReaping(t *testing.T) {
	// Orphans (the subshell's children) are reparented to the supervisor,
	// which must reap them.
	r := run(t, newConfig(t, sh(`
		for i in 1 2 3 4 5; do (sleep 0.01 &) ; done
		sleep 0.3
		cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z"' | wc -l
	`)), nil)
	if strings.TrimSpace(r.stdout) != "0" {
		t.Fatalf("zombies left: %q %q", r.stdout, r.stderr)
	}
}

// ownerHelper is the test binary run as a container owner that gets killed.
func ownerHelper() {
	cfg := &Config{RootDir: os.Getenv("BERTH_NS_ROOT"), Process: sh("sleep 1000")}
	c, err := Start(context.Background(), cfg, Stdio{}, StartOptions{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("pids", c.Pid(), c.Main().Pid())
	select {}
}

func TestOwnerDeathKillsContainer(t *testing.T) {
	root := rootfs(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BERTH_NS_HELPER=owner", "BERTH_NS_ROOT="+root)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	var sup, main int
	if _, err := fmt.Sscanf(line, "pids %d %d", &sup, &main); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q", line)
	}
	if !alive(sup) || !alive(main) {
		t.Fatalf("container not running: %d %d", sup, main)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	assertGone(t, main)
	assertGone(t, sup)
}

func TestDetachedAttach(t *testing.T) {
	cfg := newConfig(t, sh("sleep 100"))
	cfg.Detached = true
	cfg.ControlDir = filepath.Join(t.TempDir(), "ctl")
	c := startT(t, cfg, Stdio{})
	t.Cleanup(func() { _ = unix.Kill(c.Pid(), unix.SIGKILL) })
	// The owner's handle going away does not stop a detached container.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if !alive(c.Main().Pid()) {
		t.Fatal("detached container died with its handle")
	}

	ctx := context.Background()
	a, err := Attach(ctx, c.ControlSocket())
	if err != nil {
		t.Fatal(err)
	}
	if a.Pid() != c.Pid() || a.Main().Pid() != c.Main().Pid() {
		t.Errorf("attach pids %d %d, want %d %d", a.Pid(), a.Main().Pid(), c.Pid(), c.Main().Pid())
	}
	var out bytes.Buffer
	p, err := a.Exec(ctx, ProcessConfig{Args: []string{"hostname"}}, Stdio{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(ctx); err != nil || st.Code != 0 || out.String() != "berthtest\n" {
		t.Fatalf("exec via attach: %v %v %q", st, err, out.String())
	}
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := a.Wait(ctx)
	if err != nil || st.Code != 143 {
		t.Fatalf("wait via attach: %v %v", st, err)
	}
	// Later, the recorded status.
	assertGone(t, c.Pid())
	b, err := Attach(ctx, c.ControlSocket())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := b.Wait(ctx); err != nil || st.Code != 143 {
		t.Fatalf("status after exit: %v %v", st, err)
	}
}

func TestHostBinaryProtected(t *testing.T) {
	var mainOut testutil.Buffer
	c := startT(t, newConfig(t, sh(`
		echo x >> /proc/1/exe 2>/dev/null && echo WROTE-1
		cat /proc/1/exe > /dev/null 2>&1 && echo READ-1
		readlink /proc/1/fd/0 >/dev/null 2>&1 && echo FD-1
		cat /proc/1/environ >/dev/null 2>&1 && echo ENV-1
		echo ready
		sleep 100`)), Stdio{Stdout: &mainOut})
	waitFor(t, func() bool { return strings.Contains(mainOut.String(), "ready") })
	if s := mainOut.String(); strings.Contains(s, "WROTE") || strings.Contains(s, "READ") || strings.Contains(s, "FD") || strings.Contains(s, "ENV") {
		t.Fatalf("container reached the init binary: %q", s)
	}
	// Even host root, which passes the ptrace checks, cannot write through it:
	// the binary is executed from a read-only mount.
	exe := fmt.Sprintf("/proc/%d/exe", c.Pid())
	if f, err := os.OpenFile(exe, os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Fatal("opened the supervisor's exe for writing")
	} else if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.ETXTBSY) {
		t.Fatalf("open for writing: %v", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Flags&unix.ST_RDONLY == 0 {
		t.Fatalf("the init binary is on a writable mount (flags %#x, %s)", st.Flags, selfExe.kind)
	}
	// Processes being exec'd pass through the binary too: race some.
	ctx := context.Background()
	var out bytes.Buffer
	racer, err := c.Exec(ctx, sh(`
		i=0; while [ $i -lt 300 ]; do
			for p in /proc/[0-9]*; do
				case $(readlink $p/exe 2>/dev/null) in *busybox*) continue;; esac
				(echo -n >> $p/exe) 2>/dev/null && echo WROTE $p $(readlink $p/exe)
			done
			i=$((i+1))
		done`), Stdio{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		p, err := c.Exec(ctx, ProcessConfig{Args: []string{"true"}}, Stdio{})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Wait(ctx)
	}
	_ = racer.Signal(syscall.SIGKILL)
	_, _ = racer.Wait(ctx)
	if strings.Contains(out.String(), "WROTE") {
		t.Fatalf("wrote to an exe: %s", out.String())
	}
}

func BenchmarkStartTrue(b *testing.B) {
	cfg := &Config{RootDir: rootfs(b), Process: ProcessConfig{Args: []string{"/bin/true"}}}
	reportCPU := measureCPU(b)
	reportMedian(b, timeRuns(b, func(int) { startAndWait(b, cfg) }))
	reportCPU()
}

// startAndWait starts a container and waits for it to exit 0.
func startAndWait(b *testing.B, cfg *Config) {
	ctx := context.Background()
	c, err := Start(ctx, cfg, Stdio{}, StartOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if st, err := c.Wait(ctx); err != nil || st.Code != 0 {
		b.Fatal(st, err)
	}
}

// timeRuns resets the timer, calls run b.N times, stops the timer and
// returns how long each call took.
func timeRuns(b *testing.B, run func(i int)) []time.Duration {
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		run(i)
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	return durs
}

// measureCPU returns a function that reports the CPU time used per
// operation since this call by this process and by its children (the
// supervisors and, through them, the containers' processes): a figure
// that a loaded machine distorts less than wall time.
func measureCPU(b *testing.B) (report func()) {
	var self0, kids0 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self0)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids0)
	return func() {
		var self1, kids1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &self1)
		_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids1)
		tv := func(t unix.Timeval) float64 { return float64(t.Sec)*1e3 + float64(t.Usec)/1e3 }
		cpu := func(r *unix.Rusage) float64 { return tv(r.Utime) + tv(r.Stime) }
		n := float64(b.N)
		b.ReportMetric((cpu(&self1)-cpu(&self0))/n, "owner-cpu-ms/op")
		b.ReportMetric((cpu(&kids1)-cpu(&kids0))/n, "container-cpu-ms/op")
	}
}

// runcBundle makes a runc bundle running /bin/true from a busybox rootfs
// with runc's default spec (namespaces, masked paths, capabilities like
// berth's), and returns a function that runs it once.
func runcBundle(b *testing.B) func(i int) {
	runc := testutil.RequiresCommand(b, "runc")
	root := rootfs(b)
	bundle := b.TempDir()
	if err := os.Rename(root, filepath.Join(bundle, "rootfs")); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil { // for rootfs's cleanup check
		b.Fatal(err)
	}
	spec := exec.Command(runc, "spec")
	spec.Dir = bundle
	if out, err := spec.CombinedOutput(); err != nil {
		b.Fatalf("runc spec: %v %s", err, out)
	}
	cfgPath := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"terminal": true`), []byte(`"terminal": false`), 1)
	data = bytes.Replace(data, []byte(`"sh"`), []byte(`"/bin/true"`), 1)
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		b.Fatal(err)
	}
	state := b.TempDir()
	return func(i int) {
		cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, fmt.Sprintf("berth-bench-%d-%d", os.Getpid(), i))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("runc run: %v %s", err, out)
		}
	}
}

// BenchmarkRuncTrue is the same job done by Debian's runc, for a ratio.
func BenchmarkRuncTrue(b *testing.B) {
	runRunc := runcBundle(b)
	reportCPU := measureCPU(b)
	reportMedian(b, timeRuns(b, runRunc))
	reportCPU()
}

// BenchmarkStartTrueVsRunc alternates a berth start and a runc run of
// /bin/true, so that both see the same machine load, and reports both
// medians and their ratio.
func BenchmarkStartTrueVsRunc(b *testing.B) {
	runRunc := runcBundle(b)
	cfg := &Config{RootDir: rootfs(b), Process: ProcessConfig{Args: []string{"/bin/true"}}}
	var ours, theirs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		startAndWait(b, cfg)
		ours = append(ours, time.Since(t0))
		t0 = time.Now()
		runRunc(i)
		theirs = append(theirs, time.Since(t0))
	}
	b.StopTimer()
	mo, mt := median(ours), median(theirs)
	b.ReportMetric(float64(mo.Microseconds())/1000, "berth-ms-median")
	b.ReportMetric(float64(mt.Microseconds())/1000, "runc-ms-median")
	b.ReportMetric(float64(mt)/float64(mo), "runc/berth")
}

func median(durs []time.Duration) time.Duration {
	if len(durs) == 0 {
		return 0
	}
	s := slices.Clone(durs)
	slices.Sort(s)
	return s[len(s)/2]
}

func reportMedian(b *testing.B, durs []time.Duration) {
	if len(durs) > 0 {
		b.ReportMetric(float64(median(durs).Microseconds())/1000, "ms-median")
	}
}

func chownTree(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// TestLargeEnvironment: a config bigger than a control packet (an
// environment of about 1 MiB, under execve's ARG_MAX) starts and execs; one
// beyond ARG_MAX fails with a SetupError, not a broken socket.
func TestLargeEnvironment(t *testing.T) {
	big := func(n int) []string {
		env := []string{"PATH=/bin"}
		for i := 0; i < n; i++ {
			env = append(env, fmt.Sprintf("BIG%d=%s", i, strings.Repeat("x", 120<<10)))
		}
		return env
	}
	p := sh(`echo ${#BIG0} ${#BIG7}`)
	p.Env = big(8)
	r := run(t, newConfig(t, p), nil)
	if r.stdout != "122880 122880\n" || r.status.Code != 0 {
		t.Fatalf("1 MiB env: got %q %q %+v", r.stdout, r.stderr, r.status)
	}

	c := startT(t, newConfig(t, sh("sleep 30")), Stdio{})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep := sh(`echo ${#BIG3}`)
	ep.Env = big(8)
	proc, err := c.Exec(ctx, ep, Stdio{Stdout: &out})
	if err != nil {
		t.Fatalf("exec with 1 MiB env: %v", err)
	}
	if st, err := proc.Wait(ctx); err != nil || st.Code != 0 || out.String() != "122880\n" {
		t.Fatalf("exec with 1 MiB env: %q %+v %v", out.String(), st, err)
	}
	ep.Env = big(24) // about 2.9 MiB: over ARG_MAX (a quarter of an 8 MiB stack)
	_, err = c.Exec(ctx, ep, Stdio{})
	var se *SetupError
	if !errors.As(err, &se) || !errors.Is(err, unix.E2BIG) || se.Code != 126 {
		t.Fatalf("exec beyond ARG_MAX: got %v, want a SetupError with E2BIG and code 126", err)
	}

	p.Env = big(24)
	_, err = Start(context.Background(), newConfig(t, p), Stdio{}, StartOptions{})
	if !errors.As(err, &se) || !errors.Is(err, unix.E2BIG) {
		t.Fatalf("start beyond ARG_MAX: got %v, want a SetupError with E2BIG", err)
	}
}

// A new network namespace has lo up, as Docker's containers have it.
func TestLoopbackUp(t *testing.T) {
	r := run(t, newConfig(t, sh("cat /sys/class/net/lo/flags")), nil)
	if got := strings.TrimSpace(r.stdout); got != "0x9" {
		t.Fatalf("lo flags %q (%s), want 0x9 (up, loopback)", got, r.stderr)
	}
}
