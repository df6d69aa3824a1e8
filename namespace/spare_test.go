//go:build linux

package namespace

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/mount"
	"golang.org/x/sys/unix"
)

// withSpares starts a container with StartOptions.Spare, which leaves a
// spare of its kind behind, and returns the spare's pid once it is ready.
// The spares go when the test ends.
func withSpares(t *testing.T) int {
	t.Helper()
	t.Cleanup(DiscardSpares)
	c, err := Start(context.Background(), newConfig(t, sh("true")), Stdio{}, StartOptions{Spare: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	return readySpare(t)
}

// readySpare waits for a spare to be ready and returns its pid.
func readySpare(t *testing.T) int {
	t.Helper()
	var pid int
	waitFor(t, func() bool {
		spares.mu.Lock()
		defer spares.mu.Unlock()
		for _, sp := range spares.idle {
			pid = sp.proc.Pid
			return true
		}
		return false
	})
	return pid
}

func spareCount() int {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	return len(spares.idle)
}

func startSpare(t *testing.T, cfg *Config, stdio Stdio, opts StartOptions) *Container {
	t.Helper()
	opts.Spare = true
	c, err := Start(context.Background(), cfg, stdio, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		assertGone(t, c.Pid())
	})
	return c
}

// A start takes the spare: the container runs in the spare's process with
// everything a cold start gives it (its own namespaces, hostname, lo up,
// the rootfs, the user's process), and a new spare takes its place.
func TestSpareStart(t *testing.T) {
	spare := withSpares(t)
	cfg := newConfig(t, sh(`hostname; cat /sys/class/net/lo/flags; ls /bin/busybox; cat /proc/1/cmdline | tr '\0' ' '`))
	var out testutil.Buffer
	c := startSpare(t, cfg, Stdio{Stdout: &out, Stderr: &out}, StartOptions{})
	if c.Pid() != spare {
		t.Fatalf("the start spawned init %d instead of taking spare %d", c.Pid(), spare)
	}
	st, err := c.Wait(context.Background())
	if err != nil || st.Code != 0 {
		t.Fatalf("%v %v: %s", st, err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"berthtest", "0x9", "/bin/busybox", "berth-init spare newnet"}
	if len(lines) != len(want) {
		t.Fatalf("output %q, want %q", lines, want)
	}
	for i := range want {
		if strings.TrimSpace(lines[i]) != want[i] {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}
	if next := readySpare(t); next == spare {
		t.Errorf("no new spare after the start")
	}
}

// A spare was not cloned into the container's cgroup v2 directory: Start
// moves it there, and its cgroup namespace is rooted there.
func TestSpareCgroupFD(t *testing.T) {
	dir, f := cgroupV2Dir(t, "spare")
	spare := withSpares(t)
	var out testutil.Buffer
	c := startSpare(t, newConfig(t, sh(`grep '^0::' /proc/self/cgroup; sleep 100`)), Stdio{Stdout: &out}, StartOptions{CgroupFD: int(f.Fd())})
	if c.Pid() != spare {
		t.Fatalf("spare %d not taken (init %d)", spare, c.Pid())
	}
	checkCgroupV2(t, c, &out, dir)
}

// DiscardSpares ends the spares and reaps them before it returns.
func TestSpareDiscard(t *testing.T) {
	spare := withSpares(t)
	DiscardSpares()
	if alive(spare) {
		t.Errorf("spare %d outlived DiscardSpares", spare)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", spare)); err == nil {
		t.Errorf("spare %d not reaped", spare)
	}
	if n := spareCount(); n != 0 {
		t.Errorf("%d spares left", n)
	}
}

// A spare nobody takes ends after spareIdle.
func TestSpareExpires(t *testing.T) {
	withSpares(t)
	old := spareIdle
	spareIdle = 200 * time.Millisecond // for the spare the next start leaves
	t.Cleanup(func() { spareIdle = old })
	c := startSpare(t, newConfig(t, sh("true")), Stdio{}, StartOptions{})
	spare := readySpare(t)
	if _, err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return spareCount() == 0 && !alive(spare) })
}

// A spare that died (killed by someone) is not used: the start spawns an
// init of its own.
func TestSpareDead(t *testing.T) {
	spare := withSpares(t)
	if err := unix.Kill(spare, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !alive(spare) })
	var out testutil.Buffer
	c := startSpare(t, newConfig(t, sh("echo ok")), Stdio{Stdout: &out}, StartOptions{})
	if c.Pid() == spare {
		t.Fatal("the dead spare was used")
	}
	if st, err := c.Wait(context.Background()); err != nil || st.Code != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("%v %v %q", st, err, out.String())
	}
}

// A spare's mount tree is a slave of the host's: what is mounted on a
// shared host mount after the spare started is there for its container.
func TestSpareSeesLaterMounts(t *testing.T) {
	src := sharedMount(t)
	spare := withSpares(t)
	// Mounted after the spare's mount namespace was made.
	if err := unix.Mount("tmpfs", src+"/sub", "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"/sub/marker", []byte("late\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(t, sh("cat /shared/sub/marker"))
	cfg.Mounts = []mount.Mount{{Type: "bind", Source: src, Target: "/shared", Options: []string{"rbind"}}}
	var out testutil.Buffer
	c := startSpare(t, cfg, Stdio{Stdout: &out, Stderr: &out}, StartOptions{})
	if c.Pid() != spare {
		t.Fatalf("spare %d not taken (init %d)", spare, c.Pid())
	}
	if st, err := c.Wait(context.Background()); err != nil || st.Code != 0 || strings.TrimSpace(out.String()) != "late" {
		t.Fatalf("%v %v %q", st, err, out.String())
	}
}

// Starts that need an init made for them (joining a network namespace)
// leave the spare alone.
func TestSpareNotForJoinedNetNS(t *testing.T) {
	spare := withSpares(t)
	a := startT(t, newConfig(t, sh("sleep 100")), Stdio{})
	cfg := newConfig(t, sh("true"))
	cfg.NetNS = fmt.Sprintf("/proc/%d/ns/net", a.Main().Pid())
	c := startSpare(t, cfg, Stdio{}, StartOptions{})
	if c.Pid() == spare {
		t.Fatal("a start joining a network namespace took the spare")
	}
	if _, err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readySpare(t); got != spare {
		t.Errorf("spare %d replaced by %d", spare, got)
	}
}

// threadPolicies lists the scheduling policy of each thread of pid
// (field 41 of /proc/<pid>/task/<tid>/stat).
func threadPolicies(t *testing.T, pid int) []int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		p, err := strconv.Atoi(fields[41-3])
		if err != nil {
			t.Fatalf("%s: %q", task.Name(), s)
		}
		out = append(out, p)
	}
	return out
}

// A spare boots in the idle scheduling class, so it only takes CPU time
// nobody else wants; taken, every thread of it is back in the normal class,
// and so is the container's process.
func TestSpareSchedulingClass(t *testing.T) {
	spare := withSpares(t)
	for _, p := range threadPolicies(t, spare) {
		if p != unix.SCHED_IDLE {
			t.Errorf("spare thread in policy %d, want SCHED_IDLE (%d)", p, unix.SCHED_IDLE)
		}
	}
	c := startSpare(t, newConfig(t, sh("sleep 100")), Stdio{}, StartOptions{})
	if c.Pid() != spare {
		t.Fatalf("spare %d not taken (init %d)", spare, c.Pid())
	}
	waitFor(t, func() bool {
		for _, pid := range []int{c.Pid(), c.Main().Pid()} {
			for _, p := range threadPolicies(t, pid) {
				if p != unix.SCHED_NORMAL {
					return false
				}
			}
		}
		return true
	})
}

// Starts with spares at once, with DiscardSpares running among them: every
// start works, and once the last DiscardSpares returns no spare is left.
func TestSpareConcurrentStarts(t *testing.T) {
	t.Cleanup(DiscardSpares)
	const n = 8
	errs := make(chan error, n+1)
	for i := 0; i < n; i++ {
		go func() {
			c, err := Start(context.Background(), newConfig(t, sh("true")), Stdio{}, StartOptions{Spare: true})
			if err == nil {
				_, err = c.Wait(context.Background())
			}
			errs <- err
		}()
		if i == n/2 {
			go func() { DiscardSpares(); errs <- nil }()
		}
	}
	for i := 0; i < n+1; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	DiscardSpares()
	if n := spareCount(); n != 0 {
		t.Errorf("%d spares after DiscardSpares", n)
	}
}
