//go:build linux

package berth_test

// Crash consistency (suite 2 of issue 6). A worker process pulls, imports,
// creates, starts, waits for and deletes containers in a loop, and the test
// SIGKILLs it at many points: right after it announces a phase (with and
// without a short extra delay), and at times spread over its loop. After
// each kill the root must open, check clean, pull and run, and nothing of
// the dead owner may remain: no process, mount, cgroup, veth or nftables
// rule.
//
// The worker runs under a "reaper" process, also this test binary, that is
// a child subreaper: whatever the worker started and left behind when it
// died is re-parented to the reaper instead of to init, so the reaper can
// tell exactly which processes outlived the worker and for how long.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/registrytest"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// cpLong reports whether the long versions of the reliability suites
// were asked for (BERTH_LONG=1).
func cpLong() bool { return os.Getenv("BERTH_LONG") == "1" }

// cpMarkers are the phases the crash worker announces, in loop order.
var cpMarkers = []string{
	"removing", "gc", "pulling", "downloading", "unpacking", "importing",
	"creating none", "starting none", "running none", "deleting none",
	"creating bridge", "starting bridge", "running bridge", "deleting bridge",
	"done",
}

// TestCrashPointHelper is the reaper and the worker of TestCrashPoints; it
// does nothing in a normal run.
func TestCrashPointHelper(t *testing.T) {
	switch os.Getenv("BERTH_CP_MODE") {
	case "reaper":
		cpReaper()
	case "worker":
		cpWorker()
	default:
		t.Skip("helper process only")
	}
}

func cpSay(format string, a ...any) {
	// One write per line: the reaper and the worker share the pipe.
	os.Stdout.WriteString("cp: " + fmt.Sprintf(format, a...) + "\n")
}

// cpReaper starts the worker, waits for it to die, then reaps what it left
// (processes re-parented here) and reports them.
func cpReaper() {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		cpSay("reaper-error %v", err)
		os.Exit(1)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashPointHelper$")
	cmd.Env = append(os.Environ(), "BERTH_CP_MODE=worker")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cpSay("reaper-error %v", err)
		os.Exit(1)
	}
	cpSay("worker %d", cmd.Process.Pid)
	err := cmd.Wait()
	died := time.Now()
	cpSay("worker-exit %v", err)
	seen := map[int]string{}
	alive := map[int]bool{}
	var reaped int
	var last time.Duration
	deadline := died.Add(20 * time.Second)
	killed := false
	for {
		for _, pid := range cpChildren(os.Getpid()) {
			if _, ok := seen[pid]; !ok {
				seen[pid] = cpArgv0(pid)
			}
			alive[pid] = true
		}
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.ECHILD {
			break
		}
		if pid > 0 {
			reaped++
			last = time.Since(died)
			delete(alive, pid)
			if _, ok := seen[pid]; !ok {
				seen[pid] = "?"
			}
			continue
		}
		if !killed && time.Now().After(deadline) {
			for p := range alive {
				cpSay("orphan-alive %d %s", p, seen[p])
				_ = unix.Kill(p, unix.SIGKILL)
			}
			killed = true
		}
		time.Sleep(2 * time.Millisecond)
	}
	var names []string
	for _, n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	cpSay("orphans %d reaped %d last %d killed %v names %s", len(seen), reaped, last.Milliseconds(), killed, strings.Join(names, ","))
}

// cpChildren lists the processes whose parent is pid.
func cpChildren(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cpPpid(p) == pid {
			out = append(out, p)
		}
	}
	return out
}

func cpPpid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func cpArgv0(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	s, _, _ := strings.Cut(string(b), "\x00")
	if s == "" {
		return "?"
	}
	return filepath.Base(s)
}

// cpWorker loops over pull, import, create, start, wait and delete until
// it is killed (or two minutes have passed, should its killer be gone).
func cpWorker() {
	root, parent, ref := os.Getenv("BERTH_CP_ROOT"), os.Getenv("BERTH_CP_CGROUP"), os.Getenv("BERTH_CP_REF")
	fail := func(what string, err error) {
		cpSay("error %s: %v", what, err)
		os.Exit(1)
	}
	time.AfterFunc(2*time.Minute, func() { fail("worker", fmt.Errorf("not killed in time")) })
	layerTar, err := os.ReadFile(os.Getenv("BERTH_CP_LAYER"))
	if err != nil {
		fail("layer", err)
	}
	rt, err := berth.New(berth.Config{Root: root, CgroupParent: parent})
	if err != nil {
		fail("new", err)
	}
	ctx := context.Background()
	cpSay("ready")
	for i := 0; ; i++ {
		cpSay("removing %d", i)
		if _, err := rt.Image(ctx, ref); err == nil {
			if err := rt.RemoveImage(ctx, ref, berth.RemoveImageOptions{Force: true}); err != nil {
				fail("remove image", err)
			}
		}
		cpSay("gc %d", i)
		if _, err := rt.GC(ctx); err != nil {
			fail("gc", err)
		}
		cpSay("pulling %d", i)
		var dl, half bool
		img, err := rt.Pull(ctx, ref, berth.PullOptions{ProgressFunc: func(p berth.Progress) {
			if p.State != berth.StateDownloading || p.Total < 1<<20 {
				return
			}
			if !dl && p.Done > 0 {
				dl = true
				cpSay("downloading %d", i)
			}
			if !half && p.Done >= p.Total/2 {
				half = true
				cpSay("unpacking %d", i)
			}
		}})
		if err != nil {
			fail("pull", err)
		}
		cpSay("importing %d", i)
		timg, err := rt.Import(ctx, bytes.NewReader(layerTar), berth.ImportOptions{
			Ref:    "berth-test/crash-import:latest",
			Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}},
		})
		if err != nil {
			fail("import", err)
		}
		for _, mode := range []string{"none", "bridge"} {
			cfg := berth.ContainerConfig{Image: img, Cmd: []string{"sleep", "0.05"}, NetworkMode: mode}
			if i%2 == 1 {
				cfg.Image = timg
			}
			if mode == "bridge" {
				cfg.Publish = []berth.PortMapping{{ContainerPort: 80}}
			}
			cpSay("creating %s %d", mode, i)
			c, err := rt.Create(ctx, cfg)
			if err != nil {
				fail("create", err)
			}
			cpSay("starting %s %d", mode, i)
			if err := c.Start(ctx); err != nil {
				fail("start", err)
			}
			cpSay("running %s %d", mode, i)
			if st, err := c.Wait(ctx); err != nil || st.ExitCode != 0 {
				fail("wait", fmt.Errorf("%+v %v", st, err))
			}
			cpSay("deleting %s %d", mode, i)
			if err := c.Delete(ctx); err != nil {
				fail("delete", err)
			}
		}
		cpSay("done %d", i)
	}
}

// cpPoint is where a worker is killed: right after the iter-th
// announcement of marker plus delay, or (marker "") at after its start.
type cpPoint struct {
	marker string
	iter   int
	delay  time.Duration
	at     float64 // fraction of two loop iterations
}

func (p cpPoint) String() string {
	if p.marker == "" {
		return fmt.Sprintf("at %.2f of two iterations", p.at)
	}
	return fmt.Sprintf("after %q of iteration %d +%v", p.marker, p.iter, p.delay)
}

// cpPoints spreads n kill points: the first waits for two whole iterations
// (to time them), three of five follow a marker (each marker in turn, in
// the first three iterations, with no delay the first time round and a few
// milliseconds later ones), the rest are times spread evenly (golden-ratio
// sequence) over two iterations.
func cpPoints(n int) []cpPoint {
	out := []cpPoint{{marker: "done", iter: 1}}
	k, j := 0, 0
	for i := 1; i < n; i++ {
		if i%5 < 3 {
			p := cpPoint{marker: cpMarkers[k%len(cpMarkers)], iter: (k / len(cpMarkers)) % 3}
			if k >= len(cpMarkers) {
				p.delay = time.Duration(k*7919%20) * time.Millisecond
			}
			out = append(out, p)
			k++
			continue
		}
		j++
		f := float64(j) * (math.Sqrt(5) - 1) / 2
		out = append(out, cpPoint{at: f - math.Floor(f)})
	}
	return out
}

type cpLine struct {
	text string
	at   time.Time
}

// cpOutcome is what one kill point showed.
type cpOutcome struct {
	phase    string // the last marker before the kill
	orphans  int    // processes that outlived the worker
	lastGone time.Duration
	loop     time.Duration
}

func TestCrashPoints(t *testing.T) {
	testutil.RequiresCommand(t, "docker-registry")
	n := 50
	if cpLong() {
		n = 200
	}
	if s := os.Getenv("BERTH_CRASH_POINTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	rt := newRuntime(t)
	root := rt.Root()
	rt.Close()
	parent := "berth-test-cp-" + randHex(3)
	t.Cleanup(func() { _ = cgroupCleanup(parent) })

	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Host + "/crash/big:v1"
	pushBuilt(t, ref, bigToolbox(t, 8<<20))
	layerPath := filepath.Join(t.TempDir(), "toolbox.tar")
	if err := os.WriteFile(layerPath, imagebuild.LayerTar(imagebuild.Toolbox(toolboxtest.Bytes(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "BERTH_CP_MODE=reaper", "BERTH_CP_ROOT="+root, "BERTH_CP_CGROUP="+parent,
		"BERTH_CP_REF="+ref, "BERTH_CP_LAYER="+layerPath)

	start := time.Now()
	var iter time.Duration // one loop iteration, timed by the first point
	phases := map[string]int{}
	var orphans, maxOrphans, ingests, left int
	var maxGone time.Duration
	for i, p := range cpPoints(n) {
		if t.Failed() {
			break
		}
		o := cpKillOnce(t, i, p, env, iter)
		if i == 0 {
			iter = o.loop / 2
			t.Logf("one loop iteration takes %v", iter)
		}
		phases[o.phase]++
		orphans += o.orphans
		maxOrphans = max(maxOrphans, o.orphans)
		maxGone = max(maxGone, o.lastGone)
		ing, lft := cpVerify(t, i, p, root, parent, ref)
		ingests += ing
		left += lft
	}
	var ph []string
	for _, m := range append([]string{"ready"}, cpMarkers...) {
		if phases[m] > 0 {
			ph = append(ph, fmt.Sprintf("%s %d", m, phases[m]))
		}
	}
	t.Logf("%d kill points in %v; killed during: %s", n, time.Since(start).Round(time.Millisecond), strings.Join(ph, ", "))
	t.Logf("processes that outlived the worker: %d in all, at most %d at once, all gone within %v of its death; partial downloads left: %d; containers left: %d",
		orphans, maxOrphans, maxGone, ingests, left)
}

// cpKillOnce runs a reaper and worker on the root and kills the worker at p.
func cpKillOnce(t *testing.T, i int, p cpPoint, env []string, iter time.Duration) cpOutcome {
	t.Helper()
	var o cpOutcome
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashPointHelper$")
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan cpLine, 256)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- cpLine{sc.Text(), time.Now()}
		}
		close(lines)
	}()
	var log []string
	worker := 0
	defer func() {
		// On failure, nothing may keep running.
		if worker > 0 {
			_ = syscall.Kill(worker, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		for range lines {
		}
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("point %d (%v) output:\n%s", i, p, strings.Join(log, "\n"))
		}
	}()
	timeout := time.After(90 * time.Second)
	var ready time.Time
	var timer <-chan time.Time
	var kill <-chan time.Time
	killed := false
	seen := map[string]int{}
	doKill := func() {
		if !killed {
			_ = syscall.Kill(worker, syscall.SIGKILL)
			killed = true
		}
	}
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				if !killed {
					t.Fatalf("point %d (%v): the worker ended before it was killed", i, p)
				}
				return o
			}
			log = append(log, l.text)
			rest, ok := strings.CutPrefix(l.text, "cp: ")
			if !ok {
				continue
			}
			switch {
			case strings.HasPrefix(rest, "worker "):
				worker, _ = strconv.Atoi(strings.TrimPrefix(rest, "worker "))
			case rest == "ready":
				ready = l.at
				o.phase = "ready"
				if p.marker == "" {
					timer = time.After(time.Duration(p.at * float64(2*iter)))
				}
			case strings.HasPrefix(rest, "error "):
				t.Fatalf("point %d (%v): worker: %s", i, p, rest)
			case strings.HasPrefix(rest, "worker-exit "):
				if !killed || !strings.Contains(rest, "signal: killed") {
					t.Fatalf("point %d (%v): %s", i, p, rest)
				}
			case strings.HasPrefix(rest, "orphan-alive "):
				t.Errorf("point %d (%v): a process of the dead worker was still alive 20s after its death: %s", i, p, rest)
			case strings.HasPrefix(rest, "orphans "):
				var reaped, last int
				var gaveUp bool
				if _, err := fmt.Sscanf(rest, "orphans %d reaped %d last %d killed %t", &o.orphans, &reaped, &last, &gaveUp); err != nil {
					t.Fatalf("point %d: reaper said %q: %v", i, rest, err)
				}
				o.lastGone = time.Duration(last) * time.Millisecond
			default:
				if killed {
					continue
				}
				m := strings.TrimRight(rest, "0123456789")
				m = strings.TrimSpace(m)
				if !slices.Contains(cpMarkers, m) {
					continue
				}
				o.phase = m
				if m == "done" && seen["done"] == 1 {
					o.loop = l.at.Sub(ready)
				}
				if p.marker == m && seen[m] == p.iter {
					if p.delay == 0 {
						doKill()
					} else {
						kill = time.After(p.delay)
					}
				}
				seen[m]++
			}
		case <-timer:
			doKill()
		case <-kill:
			doKill()
		case <-timeout:
			t.Fatalf("point %d (%v): no kill or no end within 90s", i, p)
		}
	}
}

var (
	hostIfRE = regexp.MustCompile(`"hostIfName":\s*"([^"]+)"`)
	bridgeRE = regexp.MustCompile(`"bridge":\s*"([^"]+)"`)
)

// cpNetNames returns the veth and bridge names recorded anywhere under
// root: the networks' endpoint allocations and the container records.
func cpNetNames(t *testing.T, root string) (veths, bridges []string) {
	t.Helper()
	var files []string
	for _, g := range []string{"networks/*", "containers/*/config.json"} {
		m, _ := filepath.Glob(filepath.Join(root, g))
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range hostIfRE.FindAllSubmatch(b, -1) {
			if s := string(m[1]); !slices.Contains(veths, s) {
				veths = append(veths, s)
			}
		}
		if strings.HasPrefix(f, filepath.Join(root, "networks")) {
			for _, m := range bridgeRE.FindAllSubmatch(b, -1) {
				if s := string(m[1]); !slices.Contains(bridges, s) {
					bridges = append(bridges, s)
				}
			}
		}
	}
	return veths, bridges
}

// cpVerify opens the root after a kill and checks it: New works, Check is
// clean, nothing of the dead owner is left, a pull and a run work, and the
// dead owner's containers can be deleted. It returns how many partial
// downloads and container directories the dead owner left.
func cpVerify(t *testing.T, i int, p cpPoint, root, parent, ref string) (ingests, containers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	veths, bridges := cpNetNames(t, root)
	ing, _ := os.ReadDir(filepath.Join(root, "ingest"))
	cds, _ := os.ReadDir(filepath.Join(root, "containers"))
	for _, e := range cds {
		if e.IsDir() {
			containers++
		}
	}
	rt, err := berth.New(berth.Config{Root: root, CgroupParent: parent})
	if err != nil {
		t.Fatalf("point %d (%v): New after the kill: %v", i, p, err)
	}
	defer rt.Close()
	check := func(when string) {
		probs, err := rt.Check(ctx)
		if err != nil {
			t.Errorf("point %d (%v): Check %s: %v", i, p, when, err)
		}
		for _, pr := range probs {
			t.Errorf("point %d (%v): Check %s: %v", i, p, when, pr)
		}
	}
	check("after the kill")
	for _, l := range cpLeftovers(t, root, parent, veths, bridges) {
		t.Errorf("point %d (%v): left by the dead owner: %s", i, p, l)
	}
	cs, err := rt.Containers(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.State().Running {
			t.Errorf("point %d (%v): container %s of the dead owner still recorded as running", i, p, c.ID())
		}
	}
	img, err := rt.Pull(ctx, ref, berth.PullOptions{})
	if err != nil {
		t.Fatalf("point %d (%v): pull after the kill: %v", i, p, err)
	}
	mode := "none"
	if i%4 == 3 {
		mode = "bridge"
	}
	var outb bytes.Buffer
	if _, err := rt.Run(ctx, berth.ContainerConfig{Image: img, Cmd: []string{"echo", "alive"}, NetworkMode: mode, Stdout: &outb}); err != nil || outb.String() != "alive\n" {
		t.Fatalf("point %d (%v): run (%s) after the kill: %q %v", i, p, mode, outb.String(), err)
	}
	for _, c := range cs {
		if err := c.Delete(ctx); err != nil {
			t.Errorf("point %d (%v): delete container %s of the dead owner: %v", i, p, c.ID(), err)
		}
	}
	if _, err := rt.GC(ctx); err != nil {
		t.Errorf("point %d (%v): gc: %v", i, p, err)
	}
	check("after pull, run, delete and gc")
	return len(ing), containers
}

// cpLeftovers lists what is left of containers no process runs any
// more: mounts under root, cgroups under parent, the veths named and any
// link on the bridges named, and nftables rules of endpoints on those
// bridges. Call it when no container of root runs.
func cpLeftovers(t *testing.T, root, parent string, veths, bridges []string) []string {
	t.Helper()
	var out []string
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, root) {
			out = append(out, "mount: "+l)
		}
	}
	ctls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctls {
		ents, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", c.Name(), parent))
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, "cgroup: "+filepath.Join(c.Name(), parent, e.Name()))
			}
		}
	}
	for _, v := range veths {
		if _, err := netlink.LinkByName(v); err == nil {
			out = append(out, "link: "+v)
		}
	}
	var idx []int
	for _, b := range bridges {
		if l, err := netlink.LinkByName(b); err == nil {
			idx = append(idx, l.Attrs().Index)
		}
	}
	if len(idx) > 0 {
		for _, l := range linkList(t) {
			if slices.Contains(idx, l.Attrs().MasterIndex) {
				out = append(out, "link on a bridge: "+l.Attrs().Name)
			}
		}
	}
	for _, r := range cpRules(t) {
		for _, b := range bridges {
			if strings.HasPrefix(r, "ep="+b+"/") {
				out = append(out, "nftables rule: "+r)
			}
		}
	}
	snaps, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	for _, s := range snaps {
		if _, err := os.Stat(filepath.Join(root, "containers", s.Name(), "config.json")); err != nil {
			out = append(out, "snapshot without a container: "+s.Name())
		}
	}
	return out
}

// cpRules returns the comment tags of the rules in berth's table.
func cpRules(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: "berth", Family: nftables.TableFamilyIPv4}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil
	}
	var out []string
	for _, ch := range chains {
		if ch.Table.Name != tbl.Name {
			continue
		}
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if s, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
