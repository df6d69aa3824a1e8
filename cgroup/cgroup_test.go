//go:build linux

package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestValidate(t *testing.T) {
	ncpu := int64(runtime.NumCPU())
	for _, tc := range []struct {
		name string
		r    Resources
		flag string // "" = valid
	}{
		{"zero", Resources{}, ""},
		{"memory ok", Resources{Memory: 6 << 20}, ""},
		{"memory small", Resources{Memory: 4 << 20}, "--memory"},
		{"memory negative", Resources{Memory: -5}, "--memory"},
		{"reservation small", Resources{MemoryReservation: 1 << 20}, "--memory-reservation"},
		{"reservation over limit", Resources{Memory: 10 << 20, MemoryReservation: 20 << 20}, "--memory-reservation"},
		{"swap unlimited", Resources{Memory: 10 << 20, MemorySwap: -1}, ""},
		{"swap without memory", Resources{MemorySwap: 20 << 20}, "--memory-swap"},
		{"swap below memory", Resources{Memory: 20 << 20, MemorySwap: 10 << 20}, "--memory-swap"},
		{"swap -2", Resources{Memory: 20 << 20, MemorySwap: -2}, "--memory-swap"},
		{"shares clamp low", Resources{CPUShares: 1}, ""},
		{"shares clamp high", Resources{CPUShares: 1 << 30}, ""},
		{"shares negative", Resources{CPUShares: -1}, "--cpu-shares"},
		{"period low", Resources{CPUPeriod: 999}, "--cpu-period"},
		{"period high", Resources{CPUPeriod: 1000001}, "--cpu-period"},
		{"period ok", Resources{CPUPeriod: 1000, CPUQuota: 1000}, ""},
		{"quota low", Resources{CPUQuota: 999}, "--cpu-quota"},
		{"quota -1", Resources{CPUQuota: -1}, ""},
		{"cpus ok", Resources{NanoCPUs: 5e8}, ""},
		{"cpus too many", Resources{NanoCPUs: (ncpu + 1) * 1e9}, "--cpus"},
		{"cpus tiny", Resources{NanoCPUs: 1e6}, "--cpus"},
		{"cpus and period", Resources{NanoCPUs: 5e8, CPUPeriod: 50000}, "--cpus"},
		{"cpus and quota", Resources{NanoCPUs: 5e8, CPUQuota: 50000}, "--cpus"},
		{"cpuset ok", Resources{CpusetCpus: "0-1,3", CpusetMems: "0"}, ""},
		{"cpuset bad", Resources{CpusetCpus: "0-a"}, "--cpuset-cpus"},
		{"cpuset reversed", Resources{CpusetCpus: "3-1"}, "--cpuset-cpus"},
		{"mems bad", Resources{CpusetMems: "x"}, "--cpuset-mems"},
		{"pids -1", Resources{PidsLimit: -1}, ""},
		{"pids -2", Resources{PidsLimit: -2}, "--pids-limit"},
		{"blkio low", Resources{BlkioWeight: 9}, "--blkio-weight"},
		{"blkio high", Resources{BlkioWeight: 1001}, "--blkio-weight"},
		{"blkio ok", Resources{BlkioWeight: 10}, ""},
		{"swappiness 0", Resources{MemorySwappiness: new(int64(0))}, ""},
		{"swappiness 100", Resources{MemorySwappiness: new(int64(100))}, ""},
		{"swappiness -1", Resources{MemorySwappiness: new(int64(-1))}, ""},
		{"swappiness 101", Resources{MemorySwappiness: new(int64(101))}, "--memory-swappiness"},
		{"swappiness -2", Resources{MemorySwappiness: new(int64(-2))}, "--memory-swappiness"},
		{"oom kill disable", Resources{OOMKillDisable: true}, ""},
		{"weight device ok", Resources{BlkioWeightDevice: []WeightDevice{{8, 0, 10}, {8, 16, 1000}, {8, 32, 0}}}, ""},
		{"weight device low", Resources{BlkioWeightDevice: []WeightDevice{{8, 0, 9}}}, "--blkio-weight-device"},
		{"weight device high", Resources{BlkioWeightDevice: []WeightDevice{{8, 0, 1001}}}, "--blkio-weight-device"},
		{"weight device dup", Resources{BlkioWeightDevice: []WeightDevice{{8, 0, 100}, {8, 0, 200}}}, "--blkio-weight-device"},
		{"weight device negative", Resources{BlkioWeightDevice: []WeightDevice{{8, -1, 100}}}, "--blkio-weight-device"},
		{"throttle dup", Resources{BlkioDeviceReadBps: []ThrottleDevice{{8, 0, 1}, {8, 0, 2}}}, "--device-read-bps"},
		{"throttle negative", Resources{BlkioDeviceWriteIOps: []ThrottleDevice{{-1, 0, 1}}}, "--device-write-iops"},
		{"hugetlb bad", Resources{Hugetlb: []HugepageLimit{{"2M", 1}}}, "hugetlb"},
		{"hugetlb ok", Resources{Hugetlb: []HugepageLimit{{"2MB", 1 << 21}}}, ""},
		{"device bad type", Resources{Devices: []DeviceRule{{Allow: true, Type: 'x', Major: 1, Minor: 1, Access: "r"}}}, "--device-cgroup-rule"},
		{"device bad access", Resources{Devices: []DeviceRule{{Allow: true, Type: 'c', Major: 1, Minor: 1, Access: "rx"}}}, "--device-cgroup-rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			if tc.flag == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error naming %s", tc.flag)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.flag+":") {
				t.Errorf("%v does not name %s", err, tc.flag)
			}
		})
	}
	// Docker's own words for the ranges.
	for r, want := range map[*Resources]string{
		{Memory: 1}:                         "minimum memory limit allowed is 6MB",
		{CPUPeriod: 5}:                      "can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
		{CPUQuota: 5}:                       "can not be less than 1ms (i.e. 1000)",
		{BlkioWeight: 5}:                    "range of blkio weight is from 10 to 1000",
		{MemorySwappiness: new(int64(101))}: "valid memory swappiness range is 0-100",
		{BlkioWeightDevice: []WeightDevice{{8, 0, 1001}}}: "range of blkio weight is from 10 to 1000",
		{NanoCPUs: 100 * ncpu * 1e9}:                      "range of CPUs is from 0.01 to",
	} {
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: got %v, want %q", *r, err, want)
		}
	}
}

func TestConversions(t *testing.T) {
	for shares, w := range map[int64]int64{2: 1, 1024: 39, 262144: 10000, 512: 20} {
		if got := SharesToWeight(shares); got != w {
			t.Errorf("SharesToWeight(%d) = %d, want %d", shares, got, w)
		}
	}
	for bw, w := range map[uint16]int64{10: 1, 1000: 10000, 500: 4950} {
		if got := BlkioWeightToIOWeight(bw); got != w {
			t.Errorf("BlkioWeightToIOWeight(%d) = %d, want %d", bw, got, w)
		}
	}
}

func TestDeviceRuleString(t *testing.T) {
	for r, want := range map[DeviceRule]string{
		{Type: 'c', Major: 1, Minor: 3, Access: "rwm"}:     "c 1:3 rwm",
		{Type: 'c', Major: 136, Minor: -1, Access: "rwm"}:  "c 136:* rwm",
		{Type: 'b', Major: -1, Minor: -1, Access: "m"}:     "b *:* m",
		{Type: 'a', Major: -1, Minor: -1, Access: "rwm"}:   "a",
		{Type: 'c', Major: 10, Minor: 200, Access: "rw"}:   "c 10:200 rw",
		{Type: 'b', Major: 259, Minor: 65536, Access: "r"}: "b 259:65536 r",
	} {
		if got := r.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", r, got, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{Name: ""},
		{Name: "a/b"},
		{Name: ".."},
		{Parent: "../etc", Name: "x"},
		{Name: "x", Resources: Resources{Memory: 1}},
	} {
		if _, err := New(ctx, cfg); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("New(%+v) = %v, want ErrInvalid", cfg, err)
		}
	}
}

// blockDevice returns the numbers of a whole disk of this machine.
func blockDevice(t *testing.T) (int64, int64) {
	ents, _ := os.ReadDir("/sys/dev/block")
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join("/sys/dev/block", e.Name(), "partition")); err == nil {
			continue
		}
		if maj, min, ok := parseDev(e.Name()); ok && maj != 7 { // not a loop device
			return maj, min
		}
	}
	t.Skip("no block device")
	return 0, 0
}

// TestV1Limits writes every v1 limit and reads it back from the kernel,
// then updates and resets them.
func TestV1Limits(t *testing.T) {
	requireV1(t, "memory", "cpu", "cpuset", "pids", "blkio", "devices")
	h := defaultHost()
	r := Resources{
		Memory:            64 << 20,
		MemoryReservation: 32 << 20,
		CPUShares:         512,
		CPUPeriod:         50000,
		CPUQuota:          25000,
		CpusetCpus:        "0",
		CpusetMems:        "0",
		PidsLimit:         42,
	}
	maj, min := blockDevice(t)
	dev := strconv.FormatInt(maj, 10) + ":" + strconv.FormatInt(min, 10)
	r.BlkioDeviceReadBps = []ThrottleDevice{{Major: maj, Minor: min, Rate: 1 << 20}}
	r.BlkioDeviceWriteIOps = []ThrottleDevice{{Major: maj, Minor: min, Rate: 100}}
	c := newTestGroup(t, r)
	f := func(ctrl, file string) string { return readFile(t, filepath.Join(c.v1[ctrl], file)) }
	want := map[[2]string]string{
		{"memory", "memory.limit_in_bytes"}:           "67108864",
		{"memory", "memory.soft_limit_in_bytes"}:      "33554432",
		{"cpu", "cpu.shares"}:                         "512",
		{"cpu", "cpu.cfs_period_us"}:                  "50000",
		{"cpu", "cpu.cfs_quota_us"}:                   "25000",
		{"cpuset", "cpuset.cpus"}:                     "0",
		{"cpuset", "cpuset.mems"}:                     "0",
		{"pids", "pids.max"}:                          "42",
		{"blkio", "blkio.throttle.read_bps_device"}:   dev + " 1048576",
		{"blkio", "blkio.throttle.write_iops_device"}: dev + " 100",
	}
	if h.memsw {
		want[[2]string{"memory", "memory.memsw.limit_in_bytes"}] = "134217728" // twice --memory
	}
	for k, v := range want {
		if got := f(k[0], k[1]); got != v {
			t.Errorf("%s = %q, want %q", k[1], got, v)
		}
	}
	devs := f("devices", "devices.list")
	var wantDevs []string
	for _, d := range DefaultDevices() {
		wantDevs = append(wantDevs, d.String())
	}
	if devs != strings.Join(wantDevs, "\n") {
		t.Errorf("devices.list = %q, want %q", devs, wantDevs)
	}

	// Raise memory past the old memsw (needs memsw written first), switch to --cpus.
	r2 := r
	r2.Memory, r2.MemorySwap = 512<<20, -1
	r2.CPUPeriod, r2.CPUQuota, r2.NanoCPUs = 0, 0, 1.5e9
	r2.PidsLimit = 0
	r2.BlkioDeviceReadBps = nil
	if err := c.Update(r2); err != nil {
		t.Fatal(err)
	}
	want = map[[2]string]string{
		{"memory", "memory.limit_in_bytes"}:         "536870912",
		{"cpu", "cpu.cfs_period_us"}:                "100000",
		{"cpu", "cpu.cfs_quota_us"}:                 "150000",
		{"pids", "pids.max"}:                        "max",
		{"blkio", "blkio.throttle.read_bps_device"}: "",
	}
	if h.memsw {
		want[[2]string{"memory", "memory.memsw.limit_in_bytes"}] = "9223372036854771712"
	}
	for k, v := range want {
		if got := f(k[0], k[1]); got != v {
			t.Errorf("after update: %s = %q, want %q", k[1], got, v)
		}
	}
	// Back to nothing.
	if err := c.Update(Resources{}); err != nil {
		t.Fatal(err)
	}
	parentCpus := readFile(t, filepath.Join(filepath.Dir(c.v1["cpuset"]), "cpuset.cpus"))
	for k, v := range map[[2]string]string{
		{"memory", "memory.limit_in_bytes"}: "9223372036854771712",
		{"cpu", "cpu.shares"}:               "1024",
		{"cpu", "cpu.cfs_quota_us"}:         "-1",
		{"cpuset", "cpuset.cpus"}:           parentCpus,
	} {
		if got := f(k[0], k[1]); got != v {
			t.Errorf("after reset: %s = %q, want %q", k[1], got, v)
		}
	}
	if got := c.Resources(); got.Memory != 0 {
		t.Errorf("Resources() after reset = %+v", got)
	}
}

func TestV1Unsupported(t *testing.T) {
	requireV1(t, "blkio")
	// The real mounts, as a kernel without CFQ or BFQ would have them.
	live := defaultHost()
	h := &host{mode: live.mode, v1: live.v1, v1dirs: live.v1dirs, unified: live.unified, memsw: live.memsw}
	parent := randomParent(t)
	t.Cleanup(func() { cleanup(h, parent, nil); assertNoDirs(t, h, parent) })
	for flag, r := range map[string]Resources{
		"--blkio-weight":        {BlkioWeight: 500},
		"--blkio-weight-device": {BlkioWeightDevice: []WeightDevice{{8, 0, 500}}},
	} {
		_, err := New(context.Background(), Config{Parent: parent, Name: "w", Resources: r, host: h})
		if !errors.Is(err, errdefs.ErrUnsupported) || !strings.Contains(err.Error(), flag+":") {
			t.Fatalf("got %v, want ErrUnsupported naming %s", err, flag)
		}
		for _, mp := range h.v1dirs {
			if _, err := os.Stat(filepath.Join(mp, parent, "w")); err == nil {
				t.Errorf("failed New left %s", filepath.Join(mp, parent, "w"))
			}
		}
	}
}

func TestExists(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{})
	_, err := New(context.Background(), Config{Parent: c.Parent(), Name: c.Name()})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second New = %v, want ErrAlreadyExists", err)
	}
	l, err := Load(Config{Parent: c.Parent(), Name: c.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if l.Path() != c.Path() {
		t.Errorf("Load path %s, want %s", l.Path(), c.Path())
	}
	if _, err := Load(Config{Parent: c.Parent(), Name: "nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Load of a missing group = %v, want ErrNotFound", err)
	}
}

// TestOOM: a process that allocates past --memory is killed by the kernel
// and the group reports it.
func TestOOM(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{Memory: 32 << 20})
	events, err := c.OOMEvents(cancelCtx(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if c.OOMKilled() {
		t.Fatal("OOMKilled before any allocation")
	}
	if _, exited := h.do(t, "alloc 256"); !exited {
		t.Fatal("helper survived allocating 256 MB under a 32 MB limit")
	}
	var ee *exec.ExitError
	if !errors.As(h.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want SIGKILL (exit 137)", h.err)
	}
	if !c.OOMKilled() {
		t.Error("OOMKilled() = false after an OOM kill")
	}
	select {
	case n := <-events:
		if n < 1 {
			t.Errorf("OOM event count %d", n)
		}
	case <-time.After(5 * time.Second):
		t.Error("no OOM event")
	}
	if err := c.Delete(cancelCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !c.OOMKilled() {
		t.Error("OOMKilled() forgotten after Delete")
	}
	if _, ok := <-events; ok {
		t.Error("OOM event channel not closed after Delete")
	}
}

// TestPidsLimit: a fork bomb stops at --pids-limit.
func TestPidsLimit(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := testutil.RequiresCommand(t, "busybox")
	const limit = 8
	c := newTestGroup(t, Resources{PidsLimit: limit})
	cmd := exec.Command(bb, "sh", "-c", `read x; i=0; while [ $i -lt 64 ]; do sleep 60 & i=$((i+1)); done; echo spawned $i; wait`)
	// A file, not a pipe: the orphaned sleeps keep a pipe open.
	errPath := filepath.Join(t.TempDir(), "stderr")
	ef, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	cmd.Stderr = ef
	h := runHelper(t, cmd)
	if err := c.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h.send(t, "go")
	// The shell gives up at the first failed fork.
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the fork bomb was not stopped")
	}
	if stderr := readFile(t, errPath); !strings.Contains(stderr, "fork") {
		t.Errorf("shell stderr %q: want a failed fork", stderr)
	}
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pids.Current > limit || s.Pids.Current < limit-2 {
		t.Errorf("pids.current = %d, want about %d", s.Pids.Current, limit)
	}
	if s.Pids.Limit != limit {
		t.Errorf("pids limit %d, want %d", s.Pids.Limit, limit)
	}
	procs, err := c.Procs()
	if err != nil || len(procs) == 0 {
		t.Fatalf("Procs = %v, %v", procs, err)
	}
	if err := c.Kill(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestCPUQuota: --cpus 0.5 holds a busy loop near half a cpu.
func TestCPUQuota(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{NanoCPUs: 5e8})
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h.must(t, "spin")
	h.must(t, "spin") // two busy goroutines could use two cpus without the quota
	time.Sleep(200 * time.Millisecond)
	s0, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	s1, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	share := float64(s1.CPU.Total-s0.CPU.Total) / float64(s1.Time.Sub(s0.Time).Nanoseconds())
	t.Logf("busy loop used %.2f cpu under --cpus 0.5; throttled %d of %d periods", share, s1.CPU.ThrottledPeriods, s1.CPU.Periods)
	// The machine is shared, so only the ceiling is tight.
	if share > 0.65 || share < 0.01 {
		t.Errorf("cpu share %.2f, want about 0.5", share)
	}
	// On a busy machine the loop may never reach its quota; when it came
	// close, the kernel must have throttled it.
	if share > 0.45 && s1.CPU.ThrottledPeriods == 0 {
		t.Error("no throttled periods")
	}
}

// TestCpuset: --cpuset-cpus pins the process.
func TestCpuset(t *testing.T) {
	testutil.RequiresRoot(t)
	cpu := strconv.Itoa(runtime.NumCPU() - 1)
	c := newTestGroup(t, Resources{CpusetCpus: cpu})
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got := h.must(t, "cpus"); got != cpu {
		t.Errorf("Cpus_allowed_list = %q, want %q", got, cpu)
	}
}

// counterFile returns a function that reads the helper's counter.
func readCounter(t *testing.T, p string) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile(p)
		if n, err := strconv.Atoi(string(b)); err == nil {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no counter in %s", p)
	return 0
}

func testFreeze(t *testing.T, c *Cgroup, h *helper) {
	p := filepath.Join(t.TempDir(), "counter")
	h.must(t, "count "+p)
	// Before the directory goes: the counter must stop writing there.
	t.Cleanup(func() {
		c.Thaw(context.Background())
		h.do(t, "stopcount")
	})
	readCounter(t, p)
	if err := c.Freeze(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if fr, err := c.Frozen(); !fr || err != nil {
		t.Errorf("Frozen() = %v, %v after Freeze", fr, err)
	}
	a := readCounter(t, p)
	time.Sleep(200 * time.Millisecond)
	if b := readCounter(t, p); b != a {
		t.Errorf("counter moved from %d to %d while frozen", a, b)
	}
	if err := c.Thaw(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if fr, err := c.Frozen(); fr || err != nil {
		t.Errorf("Frozen() = %v, %v after Thaw", fr, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for readCounter(t, p) == a {
		if time.Now().After(deadline) {
			t.Fatal("counter did not resume after Thaw")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFreeze(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{})
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	testFreeze(t, c, h)
}

// TestUpdate raises --memory under a running process, which then
// allocates what the old limit forbade.
func TestUpdate(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{Memory: 24 << 20})
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h.must(t, "alloc 4")
	if err := c.Update(Resources{Memory: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Stats(); s == nil || s.Memory.Limit != 256<<20 {
		t.Errorf("limit after update: %+v", s)
	}
	if got := h.must(t, "alloc 64"); got != "ok" {
		t.Fatalf("alloc after update: %q", got)
	}
	if c.OOMKilled() {
		t.Error("OOM kill under the raised limit")
	}
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory.Usage < 64<<20 {
		t.Errorf("memory usage %d after allocating 68 MB", s.Memory.Usage)
	}
}

// TestKill kills a tree of processes and Delete then succeeds.
func TestKill(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := testutil.RequiresCommand(t, "busybox")
	c := newTestGroup(t, Resources{})
	cmd := exec.Command(bb, "sh", "-c", `read x; for i in 1 2 3 4 5; do sleep 60 & done; sh -c 'sleep 60 & sleep 60' & echo started; wait`)
	h := runHelper(t, cmd)
	if err := c.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h.send(t, "go")
	select {
	case <-h.out:
	case <-time.After(10 * time.Second):
		t.Fatal("shell did not start its children")
	}
	procs, err := c.Procs()
	if err != nil || len(procs) < 7 {
		t.Fatalf("Procs = %v, %v; want at least 7", procs, err)
	}
	// Delete refuses while processes live.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Delete(short); !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("Delete of a busy group = %v, want ErrInUse", err)
	}
	if err := c.Kill(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	h.wait(t, 10*time.Second)
	if err := c.Delete(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if err := unix.Kill(p, 0); err == nil {
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat"); !strings.Contains(string(b), ") Z ") {
				t.Errorf("pid %d still alive after Kill", p)
			}
		}
	}
}

// TestStats: usage moves when the process works; Watch streams.
func TestStats(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{Memory: 512 << 20})
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	ctx := cancelCtx(t, 30*time.Second)
	w := c.Watch(ctx, 50*time.Millisecond)
	first := <-w
	h.must(t, "alloc 32")
	h.must(t, "spin")
	time.Sleep(300 * time.Millisecond)
	var last Stats
	for i := 0; i < 3; i++ {
		last = <-w
	}
	if last.Memory.Usage < first.Memory.Usage+24<<20 {
		t.Errorf("memory usage went from %d to %d after allocating 32 MB", first.Memory.Usage, last.Memory.Usage)
	}
	// A loaded machine may give the loop little time: only ask for some.
	if last.CPU.Total <= first.CPU.Total+5e6 {
		t.Errorf("cpu total went from %d to %d while spinning", first.CPU.Total, last.CPU.Total)
	}
	if last.Pids.Current < 1 {
		t.Errorf("pids.current = %d", last.Pids.Current)
	}
	if last.Memory.Limit != 512<<20 {
		t.Errorf("memory limit = %d", last.Memory.Limit)
	}
	if c.h.mode != Unified && len(last.CPU.PerCPU) != runtime.NumCPU() {
		t.Errorf("per-cpu usage %v", last.CPU.PerCPU)
	}
	if !last.Time.After(first.Time) {
		t.Error("sample times do not move")
	}
	if pct := last.CPUPercent(&first); pct <= 0.5 || pct > 100*float64(runtime.NumCPU())+5 {
		t.Errorf("CPU %% while spinning = %.1f", pct)
	}
	if pct := last.MemoryPercent(); pct < 4 || pct > 50 {
		t.Errorf("memory %% with 32 MB of 512 MB = %.1f", pct)
	}
}

// testDevices checks that a node made with mknod for /dev/mem (1:1)
// cannot be opened by a process in the group, while one for /dev/null can.
func testDevices(t *testing.T, h *helper) {
	dir := t.TempDir()
	mem, null := filepath.Join(dir, "mem"), filepath.Join(dir, "null")
	if err := unix.Mknod(mem, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if got := h.must(t, "open "+null); got != "ok" {
		t.Errorf("open of a /dev/null node: %s", got)
	}
	if got := h.must(t, "open "+mem); got != unix.EPERM.Error() {
		t.Errorf("open of a /dev/mem node: %q, want %q", got, unix.EPERM.Error())
	}
	if got := h.must(t, "open /dev/zero"); got != "ok" {
		t.Errorf("open /dev/zero: %s", got)
	}
}

func TestDevices(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{})
	h := startHelper(t, -1)
	// Before it joins, the mem node opens.
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	testDevices(t, h)
	// Privileged: everything opens.
	if err := c.Update(Resources{Devices: AllowAllDevices()}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mem := filepath.Join(dir, "mem")
	if err := unix.Mknod(mem, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
		t.Fatal(err)
	}
	// ENXIO: this kernel may have no /dev/mem driver; the cgroup let it through.
	if got := h.must(t, "open "+mem); got != "ok" && got != unix.ENXIO.Error() {
		t.Errorf("privileged open of /dev/mem node: %s", got)
	}
}

// TestCleanup removes the empty leftovers of a crashed owner but neither
// kept groups nor groups with processes.
// TestParentRemoved: New sets a parent up again when another process
// removed it after this one made groups there, and Cleanup closes the
// parent directories this process held open.
func TestParentRemoved(t *testing.T) {
	testutil.RequiresRoot(t)
	h := defaultHost()
	parent := randomParent(t)
	t.Cleanup(func() { cleanup(h, parent, nil); assertNoDirs(t, h, parent) })
	ctx := context.Background()
	c, err := New(ctx, Config{Parent: parent, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if n := heldDirs(t, parent); n != len(c.dirs) {
		t.Errorf("%d descriptors of %s held, want %d", n, parent, len(c.dirs))
	}
	for _, d := range c.dirs {
		if err := unix.Rmdir(filepath.Dir(d)); err != nil {
			t.Fatal(err)
		}
	}
	// cpuset.cpus "0" fails unless the new parent's cpuset is filled again.
	r := Resources{}
	if h.v1["cpuset"] != "" {
		r.CpusetCpus = "0"
	}
	c, err = New(ctx, Config{Parent: parent, Name: "b", Resources: r})
	if err != nil {
		t.Fatalf("New after the parent was removed: %v", err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cleanup(h, parent, nil); err != nil {
		t.Fatal(err)
	}
	if n := heldDirs(t, parent); n != 0 {
		t.Errorf("%d descriptors of %s still open after Cleanup", n, parent)
	}
}

// heldDirs counts this process's descriptors of directories named parent.
func heldDirs(t *testing.T, parent string) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if filepath.Base(strings.TrimSuffix(l, " (deleted)")) == parent {
			n++
		}
	}
	return n
}

func TestCleanup(t *testing.T) {
	testutil.RequiresRoot(t)
	hst := defaultHost()
	parent := randomParent(t)
	t.Cleanup(func() { cleanup(hst, parent, nil); assertNoDirs(t, hst, parent) })
	ctx := context.Background()
	var gs []*Cgroup
	for _, n := range []string{"stale", "kept", "busy"} {
		c, err := New(ctx, Config{Parent: parent, Name: n})
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, c)
		t.Cleanup(func() { c.Kill(ctx); c.Delete(cancelCtx(t, 10*time.Second)) })
	}
	h := startHelper(t, -1)
	if err := gs[2].Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(parent, func(n string) bool { return n == "kept" }); err != nil {
		t.Fatal(err)
	}
	for _, c := range gs {
		_, err := os.Stat(c.dirs[0])
		if gone := err != nil; gone != (c.Name() == "stale") {
			t.Errorf("%s: gone=%v after Cleanup", c.Name(), gone)
		}
	}
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.wait(t, 10*time.Second)
}

// TestIOThrottle: --device-write-bps caps direct writes to the disk that
// holds the test's temporary directory.
func TestIOThrottle(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	maj, min := int64(unix.Major(st.Dev)), int64(unix.Minor(st.Dev))
	if _, err := os.Stat(fmt.Sprintf("/sys/dev/block/%d:%d", maj, min)); err != nil {
		t.Skipf("%s is not on a block device (%d:%d)", dir, maj, min)
	}
	const rate = 1 << 20
	c, err := New(context.Background(), Config{Parent: randomParent(t), Name: "io",
		Resources: Resources{BlkioDeviceWriteBps: []ThrottleDevice{{maj, min, rate}}}})
	if errors.Is(err, unix.ENODEV) {
		t.Skipf("device %d:%d takes no throttle: %v", maj, min, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := cancelCtx(t, 10*time.Second)
		c.Kill(ctx)
		c.Delete(ctx)
		cleanup(c.h, c.Parent(), nil)
		assertNoDirs(t, c.h, c.Parent())
	})
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	ms, err := strconv.Atoi(h.must(t, "dwrite "+filepath.Join(dir, "f")+" 3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 MB of direct writes at %d B/s took %d ms", rate, ms)
	if ms < 1500 {
		t.Errorf("3 MB written in %d ms under a 1 MB/s cap", ms)
	}
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.IO.WriteBytes < 3<<20 {
		t.Errorf("io stats: %+v, want at least 3 MB written", s.IO)
	}
}

func TestV1SettingsMapping(t *testing.T) {
	h := &host{memsw: true, blkioWeight: "blkio.bfq.weight"}
	r := Resources{
		Memory: 100 << 20, MemoryReservation: 50 << 20, MemorySwap: -1, CPUShares: 1,
		CPUQuota: 5000, PidsLimit: 3, BlkioWeight: 300,
		BlkioDeviceReadIOps: []ThrottleDevice{{8, 0, 7}, {8, 16, 0}},
		Hugetlb:             []HugepageLimit{{"2MB", 1 << 21}},
	}
	var got []string
	for _, s := range v1Settings(&r, h) {
		got = append(got, s.ctrl+"/"+s.file+"="+s.value)
	}
	want := []string{
		"memory/memory.limit_in_bytes=104857600",
		"memory/memory.soft_limit_in_bytes=52428800",
		"cpu/cpu.shares=2", // clamped as Docker does
		"cpu/cpu.cfs_quota_us=5000",
		"pids/pids.max=3",
		"blkio/blkio.bfq.weight=300",
		"blkio/blkio.throttle.read_iops_device=8:0 7",
		"hugetlb/hugetlb.2MB.limit_in_bytes=2097152",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// --memory-swap unset: twice --memory; no swap accounting: nothing.
	r = Resources{Memory: 10 << 20}
	if s := v1Settings(&r, h); len(s) != 2 || s[1].file != "memory.memsw.limit_in_bytes" || s[1].value != "20971520" {
		t.Errorf("memsw: %+v", s)
	}
	if s := v1Settings(&r, &host{}); len(s) != 1 {
		t.Errorf("without memsw: %+v", s)
	}
}

// TestV1SettingsKnobs maps swappiness, the OOM killer switch and
// per-device weights to v1 files, with the values that undo them.
func TestV1SettingsKnobs(t *testing.T) {
	r := Resources{
		Memory: 100 << 20, MemorySwappiness: new(int64(0)), OOMKillDisable: true,
		BlkioWeightDevice: []WeightDevice{{8, 0, 200}, {8, 16, 0}, {259, 1, 1000}},
	}
	for _, tc := range []struct {
		h    *host
		want []string
	}{
		{&host{blkioWeight: "blkio.bfq.weight"}, []string{
			"memory/memory.limit_in_bytes=104857600 (reset -1)",
			"memory/memory.swappiness=0 (reset to the parent's)",
			"memory/memory.oom_control=1 (reset 0)",
			"blkio/blkio.bfq.weight_device=8:0 200 (reset 8:0 default)",
			"blkio/blkio.bfq.weight_device=259:1 1000 (reset 259:1 default)",
		}},
		{&host{blkioWeight: "blkio.weight"}, []string{ // CFQ drops a device at 0
			"memory/memory.limit_in_bytes=104857600 (reset -1)",
			"memory/memory.swappiness=0 (reset to the parent's)",
			"memory/memory.oom_control=1 (reset 0)",
			"blkio/blkio.weight_device=8:0 200 (reset 8:0 0)",
			"blkio/blkio.weight_device=259:1 1000 (reset 259:1 0)",
		}},
	} {
		var got []string
		for _, s := range v1Settings(&r, tc.h) {
			reset := "reset " + s.reset
			if s.reset == resetParent {
				reset = "reset to the parent's"
			}
			got = append(got, s.ctrl+"/"+s.file+"="+s.value+" ("+reset+")")
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.h.blkioWeight, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	// -1 is Docker's "not set", like nil.
	if s := v1Settings(&Resources{MemorySwappiness: new(int64(-1))}, &host{}); len(s) != 0 {
		t.Errorf("swappiness -1: %+v", s)
	}
}

func TestV1NoHugetlb(t *testing.T) {
	requireV1(t, "memory")
	if defaultHost().v1["hugetlb"] != "" {
		t.Skip("this host mounts hugetlb")
	}
	parent := randomParent(t)
	t.Cleanup(func() { cleanup(defaultHost(), parent, nil); assertNoDirs(t, defaultHost(), parent) })
	_, err := New(context.Background(), Config{Parent: parent, Name: "h", Resources: Resources{Hugetlb: []HugepageLimit{{"2MB", 1 << 21}}}})
	if !errors.Is(err, errdefs.ErrUnsupported) {
		t.Fatalf("hugetlb limit without the controller: %v, want ErrUnsupported", err)
	}
}

// TestDeleteSubgroups: groups a container made below its own (through its
// cgroup namespace) go with it, and Watch ends at Delete.
func TestDeleteSubgroups(t *testing.T) {
	testutil.RequiresRoot(t)
	c := newTestGroup(t, Resources{})
	for _, d := range c.dirs {
		if err := os.MkdirAll(filepath.Join(d, "inner", "deeper"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := startHelper(t, -1)
	inner := filepath.Join(c.procsDir(), "inner", "deeper")
	if err := writeFile(inner, "cgroup.procs", strconv.Itoa(h.cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	procs, err := c.Procs()
	if err != nil || len(procs) != 1 || procs[0] != h.cmd.Process.Pid {
		t.Fatalf("Procs = %v, %v: want the helper in a sub-group", procs, err)
	}
	w := c.Watch(context.Background(), 10*time.Millisecond)
	if err := c.Kill(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	h.wait(t, 10*time.Second)
	if err := c.Delete(cancelCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, d := range c.dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s survived Delete", d)
		}
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-w:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("Watch channel open after Delete")
		}
	}
}

// TestLoadUpdate: another process (here another Cgroup value) updates a
// group it did not create.
func TestLoadUpdate(t *testing.T) {
	requireV1(t, "pids")
	r := Resources{PidsLimit: 10}
	c := newTestGroup(t, r)
	l, err := Load(Config{Parent: c.Parent(), Name: c.Name(), Resources: r})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(Resources{PidsLimit: 20}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(c.v1["pids"], "pids.max")); got != "20" {
		t.Errorf("pids.max = %s after Update through Load", got)
	}
}

// TestKernelRefuses: a cpuset the host lacks fails as ErrInvalid naming
// the flag, and leaves nothing behind.
func TestKernelRefuses(t *testing.T) {
	testutil.RequiresRoot(t)
	h := defaultHost()
	parent := randomParent(t)
	t.Cleanup(func() { cleanup(h, parent, nil); assertNoDirs(t, h, parent) })
	cpu := strconv.Itoa(runtime.NumCPU() + 3)
	_, err := New(context.Background(), Config{Parent: parent, Name: "x", Resources: Resources{CpusetCpus: cpu}})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "--cpuset-cpus") {
		t.Fatalf("cpuset %s: %v, want ErrInvalid naming --cpuset-cpus", cpu, err)
	}
	for _, mp := range append(append([]string{}, h.v1dirs...), h.unified) {
		if _, err := os.Stat(filepath.Join(mp, parent, "x")); err == nil {
			t.Errorf("failed New left %s", filepath.Join(mp, parent, "x"))
		}
	}
}

// TestV1DeviceRulesForAll: a rule for all devices with partial access is
// written per type, not as the kernel's "a" (which means everything).
func TestV1DeviceRulesForAll(t *testing.T) {
	requireV1(t, "devices")
	rules := []DeviceRule{{Allow: true, Type: 'a', Major: -1, Minor: -1, Access: "m"}, {Allow: true, Type: 'c', Major: 1, Minor: 3, Access: "rw"}}
	c := newTestGroup(t, Resources{Devices: rules})
	if got, want := readFile(t, filepath.Join(c.v1["devices"], "devices.list")), "c *:* m\nb *:* m\nc 1:3 rw"; got != want {
		t.Errorf("devices.list = %q, want %q", got, want)
	}
}
