//go:build linux

package cgroup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestV2Mapping applies Resources through the v2 code to plain files in a
// temporary directory and compares them file by file, then updates.
func TestV2Mapping(t *testing.T) {
	root := t.TempDir()
	h := &host{mode: Unified, unified: root, noDevices: true}
	files := []string{"memory.max", "memory.low", "memory.swap.max", "cpu.weight", "cpu.max",
		"cpuset.cpus", "cpuset.mems", "pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "hugetlb.1GB.max"}
	r := Resources{
		Memory:               100 << 20,
		MemoryReservation:    50 << 20,
		MemorySwap:           250 << 20,
		CPUShares:            512,
		NanoCPUs:             1.5e9,
		CpusetCpus:           "0-1",
		CpusetMems:           "0",
		PidsLimit:            100,
		BlkioWeight:          500,
		BlkioDeviceReadBps:   []ThrottleDevice{{8, 0, 1 << 20}},
		BlkioDeviceWriteIOps: []ThrottleDevice{{8, 0, 10}},
		Hugetlb:              []HugepageLimit{{"2MB", 4 << 20}},
	}
	cfg := Config{Parent: "berth", Name: "c", Resources: r, host: h}
	c, err := cfg.build()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.v2, 0o755); err != nil {
		t.Fatal(err)
	}
	// truncate empties every control file, as a fresh group's are.
	truncate := func() {
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(c.v2, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		for _, f := range files {
			b, _ := os.ReadFile(filepath.Join(c.v2, f))
			if got := string(b); got != want[f] {
				t.Errorf("%s: %s = %q, want %q", step, f, got, want[f])
			}
		}
	}
	truncate()
	if err := c.apply(&Resources{}, &r, true); err != nil {
		t.Fatal(err)
	}
	c.res = r
	check("create", map[string]string{
		"memory.max":      "104857600",
		"memory.low":      "52428800",
		"memory.swap.max": "157286400", // --memory-swap is memory+swap
		"cpu.weight":      "20",        // 1 + (512-2)*9999/262142
		"cpu.max":         "150000 100000",
		"cpuset.cpus":     "0-1",
		"cpuset.mems":     "0",
		"pids.max":        "100",
		"io.weight":       "default 4950", // no io.bfq.weight file: iocost
		"io.max":          "8:0 rbps=1048576 wbps=max riops=max wiops=10",
		"hugetlb.2MB.max": "4194304",
	})

	// Update: only the changed files are written; dropped ones reset.
	r2 := r
	r2.Memory, r2.MemorySwap = 200<<20, 0 // swap 0: twice --memory
	r2.MemoryReservation = 0
	r2.NanoCPUs, r2.CPUQuota, r2.CPUPeriod = 0, 20000, 50000
	r2.PidsLimit = -1
	r2.BlkioDeviceReadBps, r2.BlkioDeviceWriteIOps = nil, nil
	r2.Hugetlb = []HugepageLimit{{"1GB", 1 << 30}}
	truncate()
	if err := c.Update(r2); err != nil {
		t.Fatal(err)
	}
	check("update", map[string]string{
		"memory.max":      "209715200",
		"memory.low":      "0",
		"memory.swap.max": "209715200",
		"cpu.max":         "20000 50000",
		"pids.max":        "max",
		"io.max":          "8:0 rbps=max wbps=max riops=max wiops=max",
		"hugetlb.2MB.max": "max",
		"hugetlb.1GB.max": "1073741824",
	})
	truncate()
	if err := c.Update(Resources{}); err != nil {
		t.Fatal(err)
	}
	check("reset", map[string]string{
		"memory.max":      "max",
		"memory.swap.max": "max",
		"cpu.weight":      "100",
		"cpu.max":         "max 100000",
		"cpuset.cpus":     "\n",
		"cpuset.mems":     "\n",
		"io.weight":       "default 100",
		"hugetlb.1GB.max": "max",
	})
	// With BFQ, the weight goes unconverted to io.bfq.weight.
	os.WriteFile(filepath.Join(c.v2, "io.bfq.weight"), nil, 0o644)
	if err := c.Update(Resources{BlkioWeight: 300}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(c.v2, "io.bfq.weight")); string(b) != "300" {
		t.Errorf("io.bfq.weight = %q, want 300", b)
	}
	// A missing control is ErrUnsupported; memory.swap.max may be missing.
	os.Remove(filepath.Join(c.v2, "memory.swap.max"))
	if err := c.Update(Resources{Memory: 10 << 20}); err != nil {
		t.Errorf("update without swap accounting: %v", err)
	}
	os.Remove(filepath.Join(c.v2, "pids.max"))
	if err := c.Update(Resources{Memory: 10 << 20, PidsLimit: 5}); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("update of a missing pids.max: %v, want ErrUnsupported", err)
	}
}

func TestV2SettingsDevices(t *testing.T) {
	r := Resources{
		BlkioDeviceReadBps:   []ThrottleDevice{{8, 16, 5}, {8, 0, 1}},
		BlkioDeviceWriteBps:  []ThrottleDevice{{8, 0, 2}},
		BlkioDeviceReadIOps:  []ThrottleDevice{{8, 0, 3}},
		BlkioDeviceWriteIOps: []ThrottleDevice{{8, 16, 4}},
	}
	var got []string
	for _, s := range v2Settings(&r) {
		got = append(got, s.file+": "+s.value)
	}
	want := []string{
		"io.max: 8:0 rbps=1 wbps=2 riops=3 wiops=max",
		"io.max: 8:16 rbps=5 wbps=max riops=max wiops=4",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestV2Knobs maps --memory-swappiness, --oom-kill-disable and
// --blkio-weight-device through the v2 code to plain files, file by file:
// the first two have no v2 file and are ignored, as Docker does; a device
// weight goes to io.bfq.weight as is, or converted to io.weight (iocost).
func TestV2Knobs(t *testing.T) {
	root := t.TempDir()
	h := &host{mode: Unified, unified: root, noDevices: true}
	files := []string{"memory.max", "memory.swap.max", "io.weight"}
	r := Resources{
		Memory: 100 << 20, MemorySwappiness: new(int64(10)), OOMKillDisable: true,
		BlkioWeightDevice: []WeightDevice{{8, 0, 300}},
	}
	c, err := (&Config{Name: "k", Resources: r, host: h}).build()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.v2, 0o755); err != nil {
		t.Fatal(err)
	}
	// step empties the control files (as a fresh group's are), applies r
	// as an update from the last resources and compares every file.
	step := func(name string, r Resources, want map[string]string) {
		t.Helper()
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(c.v2, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		old := c.res
		if err := c.apply(&old, &r, false); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.res = r
		for _, f := range files {
			b, _ := os.ReadFile(filepath.Join(c.v2, f))
			if got := string(b); got != want[f] {
				t.Errorf("%s: %s = %q, want %q", name, f, got, want[f])
			}
		}
		for _, f := range []string{"memory.swappiness", "memory.oom_control"} {
			if _, err := os.Stat(filepath.Join(c.v2, f)); err == nil {
				t.Errorf("%s: %s written on v2", name, f)
			}
		}
	}
	step("create", r, map[string]string{
		"memory.max":      "104857600",
		"memory.swap.max": "104857600",
		"io.weight":       "8:0 2930", // 1 + (300-10)*9999/990
	})
	r.BlkioWeightDevice = []WeightDevice{{8, 0, 1000}}
	r.MemorySwappiness, r.OOMKillDisable = new(int64(0)), false
	step("update", r, map[string]string{"io.weight": "8:0 10000"})
	r.BlkioWeightDevice = nil
	step("drop", r, map[string]string{"io.weight": "8:0 default"})

	// With BFQ, the weight goes unconverted to io.bfq.weight.
	files = append(files, "io.bfq.weight")
	r.BlkioWeightDevice = []WeightDevice{{8, 0, 200}}
	step("bfq", r, map[string]string{"io.bfq.weight": "8:0 200"})
	r.BlkioWeightDevice = []WeightDevice{{8, 0, 0}} // 0: none for the device
	step("bfq drop", r, map[string]string{"io.bfq.weight": "8:0 default"})

	// Several devices: one line each, in the order given.
	var got []string
	for _, s := range v2Settings(&Resources{BlkioWeight: 500, OOMKillDisable: true,
		BlkioWeightDevice: []WeightDevice{{8, 16, 100}, {8, 0, 10}}}) {
		got = append(got, s.file+": "+s.value+" (else "+s.fallback.file+": "+s.fallback.value+")")
	}
	want := []string{
		"io.bfq.weight: 500 (else io.weight: default 4950)",
		"io.bfq.weight: 8:16 100 (else io.weight: 8:16 910)",
		"io.bfq.weight: 8:0 10 (else io.weight: 8:0 1)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// unifiedHost points the v2 code at the hybrid host's unified mount, which
// has no resource controllers but a real cgroup2 tree: membership,
// CLONE_INTO_CGROUP, cgroup.freeze, cgroup.kill, cgroup.events and eBPF
// device programs all work there.
func unifiedHost(t *testing.T) *host {
	t.Helper()
	testutil.RequiresRoot(t)
	h := defaultHost()
	switch h.mode {
	case Unified:
		return h // the real thing
	case Hybrid:
		return &host{mode: Unified, unified: h.unified}
	}
	t.Skipf("no cgroup2 mount (mode %s)", h.mode)
	return nil
}

func TestV2Unified(t *testing.T) {
	hst := unifiedHost(t)
	c := newGroupOn(t, hst, Resources{})
	fd, err := c.FD()
	if err != nil {
		t.Fatal(err)
	}
	// Born inside the group with CLONE_INTO_CGROUP.
	h := startHelper(t, fd)
	if got, want := h.must(t, "cgroup"), "0::"+c.Path(); !strings.Contains(got, want) {
		t.Errorf("/proc/self/cgroup = %q, want it to contain %q", got, want)
	}
	procs, err := c.Procs()
	if err != nil || len(procs) != 1 || procs[0] != h.cmd.Process.Pid {
		t.Errorf("Procs = %v, %v; want [%d]", procs, err, h.cmd.Process.Pid)
	}
	b, _ := os.ReadFile(filepath.Join(c.v2, "cgroup.events"))
	if !hasLine(b, "populated 1") {
		t.Errorf("cgroup.events = %q, want populated 1", b)
	}
	t.Run("devices", func(t *testing.T) { testDevices(t, h) })
	t.Run("freeze", func(t *testing.T) { testFreeze(t, c, h) })
	t.Run("stats", func(t *testing.T) {
		s0, err := c.Stats()
		if err != nil {
			t.Fatal(err)
		}
		h.must(t, "spin")
		time.Sleep(200 * time.Millisecond)
		s1, _ := c.Stats()
		if s1.CPU.Total <= s0.CPU.Total {
			t.Errorf("cpu.stat usage did not move: %d -> %d", s0.CPU.Total, s1.CPU.Total)
		}
	})
	if hst != defaultHost() {
		// What this mount cannot do: it has no memory, cpu or pids controller.
		if _, err := c.OOMEvents(context.Background()); err == nil {
			t.Error("OOMEvents without a memory controller succeeded")
		}
		if err := c.Update(Resources{PidsLimit: 10}); !errors.Is(err, errdefs.ErrUnsupported) {
			t.Errorf("Update without a pids controller = %v, want ErrUnsupported", err)
		}
	}
	// A second process joins with Add.
	h2 := startHelper(t, -1)
	if err := c.Add(h2.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*helper{h, h2} {
		err := x.wait(t, 10*time.Second)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("helper ended with %v, want SIGKILL", err)
		}
	}
	if err := c.Delete(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.v2); err == nil {
		t.Error("group survived Delete")
	}
	if _, err := c.FD(); err == nil {
		t.Error("FD after Delete")
	}
}

// TestV2DeviceUpdate swaps the eBPF program on a live group.
func TestV2DeviceUpdate(t *testing.T) {
	hst := unifiedHost(t)
	c := newGroupOn(t, hst, Resources{})
	fd, _ := c.FD()
	h := startHelper(t, fd)
	dir := t.TempDir()
	mem := filepath.Join(dir, "mem")
	if err := syscall.Mknod(mem, syscall.S_IFCHR|0o600, 1<<8|1); err != nil {
		t.Fatal(err)
	}
	if got := h.must(t, "open "+mem); got != syscall.EPERM.Error() {
		t.Fatalf("default rules: open mem = %q", got)
	}
	rules := append(DefaultDevices(), DeviceRule{Allow: true, Type: 'c', Major: 1, Minor: 1, Access: "r"})
	if err := c.Update(Resources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	if got := h.must(t, "open "+mem); got == syscall.EPERM.Error() {
		t.Errorf("after allowing c 1:1 r: open mem = %q", got)
	}
	// A second Cgroup value for the same group (another process) replaces
	// the program too.
	l, err := Load(Config{Parent: c.Parent(), Name: c.Name(), Resources: Resources{Devices: rules}, host: hst})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(Resources{}); err != nil {
		t.Fatal(err)
	}
	if got := h.must(t, "open "+mem); got != syscall.EPERM.Error() {
		t.Errorf("after Load+Update to defaults: open mem = %q", got)
	}
	l.closeFDs()
}

func TestDeviceProgram(t *testing.T) {
	// Walk the program in a tiny interpreter and compare with the rules.
	run := func(p []insn, typ, acc, maj, min uint32) uint64 {
		var r [11]uint64
		ctx := []uint32{typ | acc<<16, maj, min}
		for pc := 0; pc < len(p); pc++ {
			in := p[pc]
			switch in.code {
			case opLdxW:
				r[in.dst] = uint64(ctx[in.off/4])
			case opMovX:
				r[in.dst] = r[in.src]
			case opMovK:
				r[in.dst] = uint64(int64(in.imm))
			case opAndK:
				r[in.dst] &= uint64(int64(in.imm))
			case opRshK:
				r[in.dst] >>= uint(in.imm)
			case opJneK:
				if r[in.dst] != uint64(int64(in.imm)) {
					pc += int(in.off)
				}
			case opJeqK:
				if r[in.dst] == uint64(int64(in.imm)) {
					pc += int(in.off)
				}
			case opExit:
				return r[0]
			default:
				t.Fatalf("unknown opcode %#x", in.code)
			}
		}
		t.Fatal("fell off the program")
		return 0
	}
	p := deviceProgram(append(DefaultDevices(), DeviceRule{Allow: false, Type: 'c', Major: 1, Minor: 9, Access: "w"}))
	for _, tc := range []struct {
		typ, acc, maj, min uint32
		want               uint64
	}{
		{devChar, accRead | accWrite, 1, 3, 1}, // null
		{devChar, accMknod, 1, 1, 1},           // mknod anything
		{devBlock, accMknod, 8, 0, 1},
		{devChar, accRead, 1, 1, 0}, // mem
		{devBlock, accRead, 8, 0, 0},
		{devChar, accRead, 136, 4, 1}, // pts
		{devChar, accWrite, 1, 9, 0},  // denied by the last rule
		{devChar, accRead, 1, 9, 1},   // urandom read still allowed
		{devBlock, accRead, 1, 3, 0},  // block 1:3 is not null
	} {
		if got := run(p, tc.typ, tc.acc, tc.maj, tc.min); got != tc.want {
			t.Errorf("type %d access %d %d:%d = %d, want %d", tc.typ, tc.acc, tc.maj, tc.min, got, tc.want)
		}
	}
	all := deviceProgram(AllowAllDevices())
	if run(all, devBlock, accAll, 8, 0) != 1 {
		t.Error("allow-all denies")
	}
}

// BenchmarkCreateLimitRemove: New with typical limits, then Delete, on the
// host's hierarchies (8 v1 ones plus unified here). Run it with a few
// hundred iterations (-benchtime 300x): the kernel frees removed groups
// lazily, and thousands of them in a row pile up and slow every cgroup
// operation on the host for a while.
//
// Figures on the 2-vCPU hybrid machine while ~7 other jobs kept the load
// near 20, under chrt -f 10 so waiting for a cpu is not counted:
// create+limit+remove 0.64-0.73 ms (New alone 0.44-0.56 ms), without
// limits 0.50-0.59 ms (New 0.29-0.38 ms), bare mkdir+rmdir of the same 9
// directories 0.35-0.57 ms; on the unified mount (one directory plus the
// shared eBPF device program) 0.06-0.08 ms. Without chrt the wall times
// are 2-4 times these and swing with the other jobs.
func BenchmarkCreateLimitRemove(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    Resources
	}{
		{"limits", Resources{Memory: 256 << 20, NanoCPUs: 1e9, PidsLimit: 512, CPUShares: 512}},
		{"none", Resources{}},
		{"privileged", Resources{Devices: AllowAllDevices()}},
	} {
		b.Run(bc.name, func(b *testing.B) { benchCreate(b, defaultHost(), bc.r) })
	}
	if h := defaultHost(); h.mode == Hybrid {
		b.Run("v2-unified-ebpf", func(b *testing.B) { benchCreate(b, &host{mode: Unified, unified: h.unified}, Resources{}) })
	}
}

func benchCreate(b *testing.B, h *host, r Resources) {
	testutil.RequiresRoot(b)
	parent := randomParent(b)
	b.Cleanup(func() { cleanup(h, parent, nil) })
	ctx := context.Background()
	// The parent is made once per process; do it outside the timing.
	c, err := New(ctx, Config{Parent: parent, Name: "warm", Resources: r, host: h})
	if err != nil {
		b.Fatal(err)
	}
	c.Delete(ctx)
	cpu0 := cpuTime()
	var inNew time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := New(ctx, Config{Parent: parent, Name: "b" + strconv.Itoa(i), Resources: r, host: h})
		inNew += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Delete(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// New alone is what a container start waits for.
	b.ReportMetric(float64(inNew.Nanoseconds())/float64(b.N), "new-ns/op")
	// CPU time is what the work costs; wall time also holds the waits of
	// a machine shared with other jobs.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkMkdirRmdir is the floor: the bare mkdir and rmdir of a group in
// each of the host's hierarchies, without limits.
func BenchmarkMkdirRmdir(b *testing.B) {
	testutil.RequiresRoot(b)
	h := defaultHost()
	parent := randomParent(b)
	b.Cleanup(func() { cleanup(h, parent, nil) })
	c, err := New(context.Background(), Config{Parent: parent, Name: "warm", host: h})
	if err != nil {
		b.Fatal(err)
	}
	c.Delete(context.Background())
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := "/" + parent + "/b" + strconv.Itoa(i)
		for _, d := range c.dirs {
			if err := unix.Mkdir(filepath.Dir(filepath.Dir(d))+n, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		for _, d := range c.dirs {
			unix.Rmdir(filepath.Dir(filepath.Dir(d)) + n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestV2StatsParse reads v2 stat files as the kernel writes them (no real
// v2 memory, io or pids controller runs on this hybrid host).
func TestV2StatsParse(t *testing.T) {
	root := t.TempDir()
	cfg := Config{Name: "s", host: &host{mode: Unified, unified: root, noDevices: true}}
	c, err := cfg.build()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.v2, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{
		"memory.current":      "10485760\n",
		"memory.peak":         "20971520\n",
		"memory.max":          "max\n",
		"memory.swap.current": "4096\n",
		"memory.stat":         "anon 6291456\nfile 4194304\nkernel 1000\ninactive_file 2097152\nactive_file 2097152\n",
		"memory.events":       "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
		"cpu.stat":            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 250\nnr_bursts 0\nburst_usec 0\n",
		"pids.current":        "7\n",
		"pids.max":            "100\n",
		"io.stat":             "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n254:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
	} {
		if err := os.WriteFile(filepath.Join(c.v2, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	m := s.Memory
	if m.Usage != 10<<20 || m.MaxUsage != 20<<20 || m.Limit != 0 || m.RSS != 6<<20 || m.Cache != 4<<20 ||
		m.InactiveFile != 2<<20 || m.Swap != 4096 || m.OOMKills != 1 {
		t.Errorf("memory %+v", m)
	}
	if s.CPU.Total != 1500e3 || s.CPU.User != 1000e3 || s.CPU.System != 500e3 || s.CPU.Periods != 10 ||
		s.CPU.ThrottledPeriods != 4 || s.CPU.ThrottledTime != 250e3 {
		t.Errorf("cpu %+v", s.CPU)
	}
	if s.Pids != (PidsStats{Current: 7, Limit: 100}) {
		t.Errorf("pids %+v", s.Pids)
	}
	if s.IO.ReadBytes != 4097 || s.IO.WriteBytes != 8194 || s.IO.ReadOps != 4 || s.IO.WriteOps != 6 || len(s.IO.Devices) != 2 {
		t.Errorf("io %+v", s.IO)
	}
	if !c.OOMKilled() {
		t.Error("OOMKilled false with oom_kill 1 in memory.events")
	}
}

// TestV2OOMEventsInotify drives the v2 OOM watch with a plain
// memory.events file, as the kernel would rewrite it.
func TestV2OOMEventsInotify(t *testing.T) {
	root := t.TempDir()
	cfg := Config{Name: "o", host: &host{mode: Unified, unified: root, noDevices: true}}
	c, err := cfg.build()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(c.v2, 0o755)
	ev := filepath.Join(c.v2, "memory.events")
	os.WriteFile(ev, []byte("oom 0\noom_kill 0\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := c.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ev, []byte("oom 1\noom_kill 2\n"), 0o644)
	select {
	case n := <-ch:
		if n != 2 {
			t.Errorf("event count %d, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("event after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

func TestReadCgroupMounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(p, []byte(`25 1 0:22 / /sys rw - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
33 30 0:29 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:29 / /mnt/mem\040root rw - cgroup cgroup rw,memory
35 30 0:30 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
`), 0o644)
	v1, unified := readCgroupMounts(p)
	if unified != "/sys/fs/cgroup/unified" {
		t.Errorf("unified = %q", unified)
	}
	for ctrl, want := range map[string]string{
		"cpu":     "/sys/fs/cgroup/cpu,cpuacct",
		"cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"memory":  "/mnt/mem root", // the root mount wins over a sub-tree
		"pids":    "/sys/fs/cgroup/pids",
	} {
		if v1[ctrl] != want {
			t.Errorf("%s at %q, want %q", ctrl, v1[ctrl], want)
		}
	}
	h := &host{v1: map[string]string{}}
	h.setV1(v1)
	if len(h.v1dirs) != 3 {
		t.Errorf("distinct hierarchies %v, want 3 (cpu and cpuacct share one)", h.v1dirs)
	}
}

// BenchmarkAdd moves a process into a group in every hierarchy, as a
// container start on a v1 or hybrid host does (v2 starts it inside with
// CLONE_INTO_CGROUP instead). The process alternates between two groups.
func BenchmarkAdd(b *testing.B) {
	testutil.RequiresRoot(b)
	h := defaultHost()
	parent := randomParent(b)
	b.Cleanup(func() { cleanup(h, parent, nil) })
	ctx := context.Background()
	var gs [2]*Cgroup
	for i := range gs {
		c, err := New(ctx, Config{Parent: parent, Name: "a" + strconv.Itoa(i), host: h})
		if err != nil {
			b.Fatal(err)
		}
		gs[i] = c
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		for _, c := range gs {
			c.Delete(ctx)
		}
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := gs[i%2].Add(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
	}
}
