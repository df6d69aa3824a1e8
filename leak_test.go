//go:build linux

package berth_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
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

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/netdev"
	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The leak suite (issue 6, suite 3) runs create/start/wait/delete cycles
// and then asserts that the owner's footprint is exactly where it was:
// mounts, cgroups, links, nftables rules, open files, goroutines, child
// processes, files under the root and control directories.
//
// Links, rules, mounts and /run/berth are host-wide, and `go test ./...`
// runs other packages' tests (which make all of those) at the same time.
// So the cycles run in a child process of the test binary with its own
// network namespace and a private mount namespace with its own tmpfs on
// /run/berth: an isolated host, whose counts only this suite moves. The
// cgroups are real host cgroups, under a parent of their own.
//
// By default it runs 200 sequential cycles without a network, 50 on the
// default bridge network and 20 concurrent ones (about a minute in all);
// BERTH_LONG=1 runs the 1,000, 1,000 and 100.

const (
	leakChildEnv  = "BERTH_LEAK_CHILD"
	leakRootEnv   = "BERTH_LEAK_ROOT"
	leakCgroupEnv = "BERTH_LEAK_CGROUP"
	leakCountsEnv = "BERTH_LEAK_CYCLES"
)

func TestLeaks(t *testing.T) {
	testutil.RequiresRoot(t)
	if os.Getenv(leakChildEnv) != "" {
		leakChild(t)
		return
	}
	seq, bridged, conc := 200, 50, 20
	if os.Getenv("BERTH_LONG") != "" {
		seq, bridged, conc = 1000, 1000, 100
	}
	root := t.TempDir()
	parent := "berth-test-leak-" + randHex(4)
	t.Cleanup(func() {
		// The child cleans up after itself; this is for a child that was
		// killed. Its containers die with it (their supervisors watch it).
		if err := cgroup.Cleanup(parent, nil); err != nil {
			t.Errorf("cgroup cleanup: %v", err)
		}
		if dirs := leakCgroups(parent); len(dirs) > 0 {
			t.Errorf("cgroups survived the test: %v", slices.Sorted(maps.Keys(dirs)))
		}
	})
	ctx := context.Background()
	timeout := 20 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) - 30*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLeaks$", "-test.v", "-test.count=1",
		"-test.timeout="+(timeout-10*time.Second).String())
	cmd.Env = append(os.Environ(), leakChildEnv+"=1", leakRootEnv+"="+root, leakCgroupEnv+"="+parent,
		fmt.Sprintf("%s=%d,%d,%d", leakCountsEnv, seq, bridged, conc))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("leak suite (in a child with its own network and mount namespaces): %v\n%s", err, out)
	}
	t.Logf("the child's report:\n%s", out)
}

// leakChild is TestLeaks in the isolated child.
func leakChild(t *testing.T) {
	var seq, bridged, conc int
	if _, err := fmt.Sscanf(os.Getenv(leakCountsEnv), "%d,%d,%d", &seq, &bridged, &conc); err != nil {
		t.Fatalf("%s: %v", leakCountsEnv, err)
	}
	root, parent := os.Getenv(leakRootEnv), os.Getenv(leakCgroupEnv)
	isolateLeakHost(t)

	before := takeLeakSnapshot(t, root, parent)
	rt, err := berth.New(berth.Config{Root: root, CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		deleteAllContainers(t, rt)
		if err := rt.RemoveNetwork(ctx, netdev.DefaultNetwork); err != nil && !errors.Is(err, berth.ErrNotFound) {
			t.Errorf("remove the default network: %v", err)
		}
		rt.Close()
		if err := cgroup.Cleanup(parent, nil); err != nil {
			t.Errorf("cgroup cleanup: %v", err)
		}
	})
	img := toolboxImage(t, rt)
	ctx := context.Background()

	// Warm-up: the first bridge container creates the default network,
	// its bridge and rules; the first container of each kind makes the
	// store's directories. None of that is a leak.
	for i := range 10 {
		for _, k := range []leakKind{leakNoneKind(i), leakBridgeKind(i)} {
			if err := leakCycle(ctx, rt, img, k); err != nil {
				t.Fatalf("warm-up %v: %v", k, err)
			}
		}
	}
	take := func() leakSnapshot { return takeLeakSnapshot(t, root, parent) }
	base := leakSettled(take)
	t.Logf("baseline: %s", base.summary())

	phase := func(name string, n int, kind func(i int) leakKind, concurrent bool) {
		t.Helper()
		var times leakTimes
		start := time.Now()
		if concurrent {
			var wg sync.WaitGroup
			errs := make(chan error, n)
			gate := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-gate
					if err := times.run(ctx, rt, img, kind(i)); err != nil {
						errs <- fmt.Errorf("cycle %d (%v): %w", i, kind(i), err)
					}
				})
			}
			close(gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("%s: %v", name, err)
			}
		} else {
			for i := range n {
				if err := times.run(ctx, rt, img, kind(i)); err != nil {
					t.Fatalf("%s: cycle %d (%v): %v", name, i, kind(i), err)
				}
			}
		}
		d := time.Since(start)
		t.Logf("%s: %d cycles in %v, %v a cycle; by kind: %v", name, n, d.Round(time.Millisecond),
			(d / time.Duration(max(n, 1))).Round(100*time.Microsecond), &times)
		expectNoLeak(t, name, base, take)
	}
	phase("sequential, network none", seq, leakNoneKind, false)
	phase("sequential, bridge network", bridged, leakBridgeKind, false)
	// All at once, half of them on the bridge.
	phase("concurrent", conc, func(i int) leakKind {
		if i%2 == 1 {
			return leakBridgeKind(i / 2)
		}
		return leakNoneKind(i / 2)
	}, true)
	if cs, _ := rt.Containers(ctx, true); len(cs) != 0 {
		t.Errorf("%d containers left", len(cs))
	}

	// Removing the default network takes its bridge and every rule with
	// it: links and rules are back where they were before berth.New.
	if err := rt.RemoveNetwork(ctx, netdev.DefaultNetwork); err != nil {
		t.Fatalf("remove the default network: %v", err)
	}
	expectNoLeak(t, "after removing the default network (links, rules)", before.only("links", "rules"),
		func() leakSnapshot { return take().only("links", "rules") })
}

// isolateLeakHost makes the child's mount namespace private (nothing it
// mounts reaches the host) with a tmpfs of its own on /run/berth, and sets
// its network namespace's loopback up, as on a host.
func isolateLeakHost(t *testing.T) {
	// Never change the host's own namespaces.
	for _, ns := range []string{"net", "mnt"} {
		self, err1 := os.Readlink("/proc/self/ns/" + ns)
		parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", os.Getppid(), ns))
		if err1 != nil || err2 != nil || self == parent {
			t.Fatalf("the child is not in a %s namespace of its own: %s %s %v %v", ns, self, parent, err1, err2)
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make mounts private: %v", err)
	}
	if err := os.MkdirAll(berth.DefaultRunDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", berth.DefaultRunDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		t.Fatalf("tmpfs on %s: %v", berth.DefaultRunDir, err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
}

// leakNoneKind is the i-th cycle without a network: mostly plain, and in
// every ten one whose start fails (a missing command), one detached
// (control dir and socket), one with stdin, one on a terminal and one
// exec'd into and killed.
func leakNoneKind(i int) leakKind {
	return leakKind{missing: i%10 == 1, detached: i%10 == 3, stdin: i%10 == 5, tty: i%10 == 9, kill: i%10 == 7}
}

// leakBridgeKind is the i-th cycle on the default bridge network: every
// other one publishes a port (DNAT rules, a host port); in every ten one
// is exec'd into and killed, and one fails to start after it was attached
// and its port published.
func leakBridgeKind(i int) leakKind {
	return leakKind{bridge: true, publish: i%2 == 1, kill: i%10 == 4, missing: i%10 == 9}
}

// leakKind is one flavour of cycle.
type leakKind struct {
	bridge   bool // the default bridge network, else "none"
	publish  bool // publish a port (bridge only)
	detached bool // a detached container: control dir and socket
	stdin    bool // stdin copied in (cat)
	tty      bool // on a pseudo-terminal
	kill     bool // exec in it while it runs, then delete it (Force) instead of waiting for its exit
	missing  bool // its command does not exist: Start fails with exit code 127 and undoes what it made
}

func (k leakKind) String() string {
	var parts []string
	for _, f := range []struct {
		on   bool
		name string
	}{{k.bridge, "bridge"}, {k.publish, "publish"}, {k.detached, "detached"}, {k.stdin, "stdin"}, {k.tty, "tty"}, {k.kill, "exec+kill"}, {k.missing, "failed start"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	if len(parts) == 0 {
		return "plain"
	}
	return strings.Join(parts, "+")
}

// leakCycle creates, starts, waits for (or kills) and deletes one container.
func leakCycle(ctx context.Context, rt *berth.Runtime, img *berth.Image, k leakKind) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out testutil.Buffer
	cfg := berth.ContainerConfig{Image: img, Cmd: []string{"echo", "cycle"}, NetworkMode: "none", Stdout: &out, Detached: k.detached, TTY: k.tty}
	want := "cycle\n"
	if k.tty {
		want = "cycle\r\n"
	}
	if k.bridge {
		cfg.NetworkMode = "bridge"
	}
	if k.publish {
		cfg.Publish = []berth.PortMapping{{ContainerPort: 8080}}
	}
	if k.stdin {
		cfg.Cmd, cfg.Stdin = []string{"cat"}, strings.NewReader("cycle\n")
	}
	if k.kill {
		cfg.Cmd = []string{"sleep", "inf"}
	}
	if k.missing {
		cfg.Cmd = []string{"no-such-command"}
	}
	c, err := rt.Create(ctx, cfg)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = c.Delete(context.Background(), berth.DeleteOptions{Force: true})
		return err
	}
	err = c.Start(ctx)
	if k.missing {
		var ee *berth.ExitError
		if !errors.As(err, &ee) || ee.Code != 127 {
			return fail(fmt.Errorf("start of a missing command: want exit code 127, got %v", err))
		}
		return c.Delete(ctx)
	}
	if err != nil {
		return fail(err)
	}
	if k.kill {
		var eo bytes.Buffer
		p, err := c.Exec(ctx, berth.ExecConfig{Cmd: []string{"echo", "exec"}, Stdout: &eo})
		if err != nil {
			return fail(err)
		}
		if code, err := p.Wait(ctx); err != nil || code != 0 || eo.String() != "exec\n" {
			return fail(fmt.Errorf("exec: code %d, output %q, %v", code, eo.String(), err))
		}
	} else {
		st, err := c.Wait(ctx)
		if err == nil && st.ExitCode != 0 {
			err = fmt.Errorf("exit code %d", st.ExitCode)
		}
		if err == nil && !k.detached && out.String() != want {
			err = fmt.Errorf("output %q", out.String())
		}
		if err != nil {
			return fail(err)
		}
	}
	if err := c.Delete(ctx, berth.DeleteOptions{Force: true}); err != nil {
		return err
	}
	if k.kill {
		if st := c.State(); st.Running || st.ExitCode != 137 {
			return fmt.Errorf("killed container's state: %+v", st)
		}
	}
	return nil
}

// leakTimes accumulates the time of cycles by kind.
type leakTimes struct {
	mu sync.Mutex
	n  map[string]int
	d  map[string]time.Duration
}

func (lt *leakTimes) run(ctx context.Context, rt *berth.Runtime, img *berth.Image, k leakKind) error {
	start := time.Now()
	err := leakCycle(ctx, rt, img, k)
	d := time.Since(start)
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.n == nil {
		lt.n, lt.d = map[string]int{}, map[string]time.Duration{}
	}
	lt.n[k.String()]++
	lt.d[k.String()] += d
	return err
}

func (lt *leakTimes) String() string {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(lt.n)) {
		parts = append(parts, fmt.Sprintf("%s %d x %v", k, lt.n[k], (lt.d[k]/time.Duration(lt.n[k])).Round(100*time.Microsecond)))
	}
	return strings.Join(parts, ", ")
}

// leakSnapshot is the owner's footprint: for each kind of resource, the
// things of that kind, counted by a name that says what they are.
type leakSnapshot map[string]map[string]int

// leakKinds are the kinds of a snapshot, in the order they are reported.
var leakKinds = []string{"mounts", "cgroups", "links", "rules", "fds", "goroutines", "children", "root files", "control dirs", "run dir files"}

// takeLeakSnapshot counts what this process has on the host.
func takeLeakSnapshot(t *testing.T, root, parent string) leakSnapshot {
	t.Helper()
	s := leakSnapshot{
		"mounts":       leakMounts(t),
		"cgroups":      leakCgroups(parent),
		"links":        leakLinks(t),
		"rules":        leakRules(t),
		"fds":          leakFDs(t),
		"goroutines":   leakGoroutines(),
		"children":     leakChildren(t),
		"root files":   leakFiles(t, root),
		"control dirs": leakEntries(t, filepath.Join(berth.DefaultRunDir, "c")),
		// Host-wide state: the child's own /run/berth.
		"run dir files": leakFiles(t, berth.DefaultRunDir),
	}
	return s
}

// only keeps the named kinds.
func (s leakSnapshot) only(kinds ...string) leakSnapshot {
	out := leakSnapshot{}
	for _, k := range kinds {
		out[k] = s[k]
	}
	return out
}

func (s leakSnapshot) total(kind string) int {
	n := 0
	for _, c := range s[kind] {
		n += c
	}
	return n
}

func (s leakSnapshot) summary() string {
	var parts []string
	for _, k := range leakKinds {
		if _, ok := s[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.total(k)))
		}
	}
	return strings.Join(parts, ", ")
}

// diff names what moved from s to now: one line per kind whose count
// changed or whose members differ, with the members that appeared (+) and
// went (-).
func (s leakSnapshot) diff(now leakSnapshot) []string {
	var out []string
	for _, k := range leakKinds {
		a, b := s[k], now[k]
		if a == nil && b == nil {
			continue
		}
		var moved []string
		for _, name := range slices.Sorted(maps.Keys(leakUnion(a, b))) {
			if d := b[name] - a[name]; d != 0 {
				moved = append(moved, fmt.Sprintf("%+d %s", d, name))
			}
		}
		if len(moved) == 0 {
			continue
		}
		const maxShown = 12
		more := ""
		if len(moved) > maxShown {
			more = fmt.Sprintf("\n    ... and %d more", len(moved)-maxShown)
			moved = moved[:maxShown]
		}
		out = append(out, fmt.Sprintf("%s: %d -> %d\n    %s%s", k, s.total(k), now.total(k), strings.Join(moved, "\n    "), more))
	}
	return out
}

// leakSettled takes snapshots until two in a row agree (links are deleted
// in the background, goroutines end after the state they report).
func leakSettled(take func() leakSnapshot) leakSnapshot {
	prev := take()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		cur := take()
		if len(prev.diff(cur)) == 0 {
			return cur
		}
		prev = cur
	}
	return prev
}

// expectNoLeak polls for a while for the counts to come back to base (a
// veth pair goes some milliseconds after its container, a goroutine after
// the state it reported), and fails naming what did not.
func expectNoLeak(t *testing.T, phase string, base leakSnapshot, take func() leakSnapshot) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cur := take()
		moved := base.diff(cur)
		if len(moved) == 0 {
			t.Logf("%s: nothing moved (%s)", phase, cur.summary())
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: counts moved:\n  %s", phase, strings.Join(moved, "\n  "))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func leakUnion(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k := range a {
		out[k] = 0
	}
	for k := range b {
		out[k] = 0
	}
	return out
}

// leakMounts counts the mounts of this process's mount namespace by
// "mount point (fstype source)".
func leakMounts(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			continue
		}
		out[fmt.Sprintf("%s (%s %s)", fields[4], tail[0], tail[1])]++
	}
	return out
}

// leakCgroups counts the directories under parent in every cgroup
// hierarchy (each v1 controller's and the unified one), by
// "hierarchy:/path".
func leakCgroups(parent string) map[string]int {
	out := map[string]int{}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 1 || (tail[0] != "cgroup" && tail[0] != "cgroup2") {
			continue
		}
		mp := fields[4]
		_ = filepath.WalkDir(filepath.Join(mp, parent), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(mp, p)
			out[filepath.Base(mp)+":/"+rel]++
			return nil
		})
	}
	return out
}

// leakLinks counts the network links by "type name".
func leakLinks(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range linkList(t) {
		out[l.Type()+" "+l.Attrs().Name]++
	}
	return out
}

// linkList lists the network links. Other tests change links at the same
// time: a dump the kernel interrupted is asked again.
func linkList(t *testing.T) []netlink.Link {
	t.Helper()
	links, err := netlink.LinkList()
	for i := 0; errors.Is(err, netlink.ErrDumpInterrupted) && i < 50; i++ {
		links, err = netlink.LinkList()
	}
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// leakRules counts the rules of berth's nftables table by "chain
// comment", and the elements of its bridges set.
func leakRules(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table, err := c.ListTableOfFamily(netdev.DefaultTable, nftables.TableFamilyIPv4)
	if err != nil {
		return out // no table, no rules
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if ch.Table.Name != table.Name {
			continue
		}
		rules, err := c.GetRules(table, ch)
		if err != nil {
			t.Fatalf("nftables: rules of %s: %v", ch.Name, err)
		}
		for _, r := range rules {
			tag, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			out[ch.Name+" "+tag]++
		}
	}
	if set, err := c.GetSetByName(table, "bridges"); err == nil {
		elems, err := c.GetSetElements(set)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range elems {
			out["set bridges "+strings.TrimRight(string(e.Key), "\x00")]++
		}
	}
	return out
}

// leakFDs counts this process's open files by what they are: a path,
// "pipe", "anon_inode:[pidfd]", or a socket's kind ("socket netlink 0",
// "socket unix /path", "socket tcp"), so that a descriptor replaced by
// another of the same kind does not count as moved.
func leakFDs(t *testing.T) map[string]int {
	t.Helper()
	sockets := leakSocketKinds()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			kind, ok := sockets[strings.TrimSuffix(ino, "]")]
			if !ok {
				kind = "socket (unknown kind)"
			}
			target = kind
		} else if strings.HasPrefix(target, "pipe:[") {
			target = "pipe"
		}
		out[target]++
	}
	return out
}

// leakSocketKinds maps the inode of each socket of this network namespace
// to its kind, from /proc/self/net.
func leakSocketKinds() map[string]string {
	out := map[string]string{}
	// Each table: its file, the column of the inode, and how to name it.
	for _, tab := range []struct {
		file string
		ino  int
		name func(f []string) string
	}{
		{"netlink", 9, func(f []string) string { return "socket netlink " + f[1] }},
		{"unix", 6, func(f []string) string {
			if len(f) > 7 {
				return "socket unix " + f[7]
			}
			return "socket unix"
		}},
		{"tcp", 9, func([]string) string { return "socket tcp" }},
		{"udp", 9, func([]string) string { return "socket udp" }},
		{"tcp6", 9, func([]string) string { return "socket tcp6" }},
		{"udp6", 9, func([]string) string { return "socket udp6" }},
		{"raw", 9, func([]string) string { return "socket raw" }},
	} {
		b, err := os.ReadFile("/proc/self/net/" + tab.file)
		if err != nil {
			continue
		}
		for i, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if i == 0 || len(f) <= tab.ino {
				continue
			}
			out[f[tab.ino]] = tab.name(f)
		}
	}
	return out
}

// leakGoroutines counts this process's goroutines by the function that
// started them.
func leakGoroutines() map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		creator := "(no creator)"
		for _, l := range strings.Split(g, "\n") {
			if rest, ok := strings.CutPrefix(l, "created by "); ok {
				creator, _, _ = strings.Cut(rest, " in goroutine")
			}
		}
		out[creator]++
	}
	return out
}

// leakChildren counts this process's children by "pid comm state".
func leakChildren(t *testing.T) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	out := map[string]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := bytes.LastIndexByte(b, ')')
		j := bytes.IndexByte(b, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			out[fmt.Sprintf("%d %s %s", pid, b[j+1:i], f[0])]++
		}
	}
	return out
}

// leakFiles counts every file and directory under root by its path.
func leakFiles(t *testing.T, root string) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leakEntries counts the names in dir (none when it does not exist).
func leakEntries(t *testing.T, dir string) map[string]int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		out[e.Name()]++
	}
	return out
}
