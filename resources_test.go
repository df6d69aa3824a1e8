//go:build linux

package berth_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/cgroup"
)

func TestPauseResumeStatsUpdate(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"spin", "60"}, NetworkMode: "none",
		Resources: berth.Resources{Memory: 64 << 20, PidsLimit: 50}})
	t.Cleanup(func() { c.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	s1, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Memory.Limit != 64<<20 || s1.Pids.Current == 0 {
		t.Errorf("stats: memory limit %d, pids %d", s1.Memory.Limit, s1.Pids.Current)
	}
	time.Sleep(200 * time.Millisecond)
	s2, _ := c.Stats(ctx)
	if s2.CPU.Total <= s1.CPU.Total {
		t.Errorf("cpu usage did not move while spinning: %d then %d", s1.CPU.Total, s2.CPU.Total)
	}
	if err := c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.State(); !st.Paused || st.Status != berth.StatusPaused {
		t.Errorf("after pause: %+v", st)
	}
	p1, _ := c.Stats(ctx)
	time.Sleep(300 * time.Millisecond)
	p2, _ := c.Stats(ctx)
	if p2.CPU.Total-p1.CPU.Total > uint64(20*time.Millisecond) {
		t.Errorf("a paused container used %v of cpu", time.Duration(p2.CPU.Total-p1.CPU.Total))
	}
	if err := c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	p3, _ := c.Stats(ctx)
	if p3.CPU.Total <= p2.CPU.Total {
		t.Error("the container did not run again after resume")
	}
	if err := c.Update(ctx, berth.Resources{Memory: 128 << 20, PidsLimit: 50}); err != nil {
		t.Fatal(err)
	}
	s3, _ := c.Stats(ctx)
	if s3.Memory.Limit != 128<<20 {
		t.Errorf("memory limit after update: %d", s3.Memory.Limit)
	}
	info, _ := c.Inspect(ctx)
	if info.Config.Memory != 128<<20 {
		t.Errorf("inspect after update: %d", info.Config.Memory)
	}
	if err := c.Update(ctx, berth.Resources{Memory: 1 << 20}); err == nil {
		t.Error("a 1 MB memory limit was accepted")
	}
}

func TestInvalidLimitsAreRefused(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	for _, r := range []berth.Resources{{Memory: 1 << 20}, {CPUPeriod: 10}, {BlkioWeight: 5},
		{MemorySwappiness: new(int64(101))}, {BlkioWeightDevice: []cgroup.WeightDevice{{Major: 8, Weight: 5}}}} {
		if _, err := rt.Create(context.Background(), berth.ContainerConfig{Image: img, Resources: r}); err == nil {
			t.Errorf("limits %+v accepted", r)
		}
	}
}

// TestOOMKillDisableAndSwappiness: with --oom-kill-disable a memory hog
// waits at its limit instead of being killed, and finishes once Update
// raises the limit; --memory-swappiness reaches the group.
func TestOOMKillDisableAndSwappiness(t *testing.T) {
	if cgroup.HostMode() == cgroup.Unified {
		t.Skip("v1 controls, ignored on cgroup v2")
	}
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	var out bytes.Buffer // read after Wait only
	r := berth.Resources{Memory: 32 << 20, MemorySwap: 32 << 20, MemorySwappiness: new(int64(0)), OOMKillDisable: true}
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"memhog", "64"}, NetworkMode: "none",
		Stdout: &out, Resources: r})
	t.Cleanup(func() { c.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	dir := memoryCgroup(t, c.State().Pid)
	if b, _ := os.ReadFile(filepath.Join(dir, "memory.swappiness")); strings.TrimSpace(string(b)) != "0" {
		t.Errorf("memory.swappiness = %q, want 0", b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
		if strings.Contains(string(b), "oom_kill_disable 1") && strings.Contains(string(b), "under_oom 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hog never waited at its limit: memory.oom_control %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := c.State(); st.Status != berth.StatusRunning || st.OOMKilled {
		t.Fatalf("under OOM with the killer off: %+v", st)
	}
	r.Memory, r.MemorySwap = 256<<20, 0
	if err := c.Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := c.Wait(wctx)
	if err != nil || st.ExitCode != 0 || st.OOMKilled {
		t.Fatalf("after raising the limit: %+v %v", st, err)
	}
	if !strings.Contains(out.String(), "allocated 64 MiB") {
		t.Errorf("memhog printed %q", out.String())
	}
	info, err := c.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Config.OOMKillDisable || info.Config.MemorySwappiness == nil || *info.Config.MemorySwappiness != 0 {
		t.Errorf("inspect: OOMKillDisable %v, MemorySwappiness %v", info.Config.OOMKillDisable, info.Config.MemorySwappiness)
	}
}

// memoryCgroup returns the v1 memory group directory of process pid.
func memoryCgroup(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] == "memory" {
			return filepath.Join("/sys/fs/cgroup/memory", f[2])
		}
	}
	t.Fatalf("process %d has no memory group: %s", pid, b)
	return ""
}

func TestPidsLimitStopsForkBomb(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	out, _, _ := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"forkbomb", "200"}, Resources: berth.Resources{PidsLimit: 20}})
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "forked" {
		t.Fatalf("forkbomb printed %q", out)
	}
	if n, _ := strconv.Atoi(f[1]); n >= 20 {
		t.Errorf("forked %d processes under a limit of 20", n)
	}
}

func TestNetworkModes(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	// none: loopback only.
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"addrs"}, NetworkMode: "none"})
	if err != nil || !strings.Contains(out, "lo") || strings.Contains(out, "eth0") {
		t.Errorf("none mode interfaces: %q %v", out, err)
	}
	// container:<id> shares the other's localhost.
	srv := startContainer(t, rt, berth.ContainerConfig{Image: img, Name: "lo-srv", Cmd: []string{"http", "-addr", "127.0.0.1:8081"}, NetworkMode: "none"})
	t.Cleanup(func() { srv.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"fetch", "http://127.0.0.1:8081/echo?msg=shared"}, NetworkMode: "container:lo-srv"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || strings.TrimSpace(out) != "shared" {
		t.Errorf("container: mode: %q %v", out, err)
	}
	// --add-host and --dns reach the container's files.
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"cat", "/etc/hosts", "/etc/resolv.conf"}, NetworkMode: "none",
		ExtraHosts: []string{"extra.test:192.0.2.7"}, DNS: []string{"192.0.2.53"}, DNSSearch: []string{"example.test"}})
	if err != nil || !strings.Contains(out, "192.0.2.7") || !strings.Contains(out, "extra.test") || !strings.Contains(out, "nameserver 192.0.2.53") || !strings.Contains(out, "search example.test") {
		t.Errorf("hosts and resolv.conf: %q %v", out, err)
	}
}

func TestDeviceMapping(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"try", "open-ro", "/dev/extra-zero"},
		Devices: []berth.DeviceMapping{{PathOnHost: "/dev/zero", PathInContainer: "/dev/extra-zero", Permissions: "r"}}})
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("mapped device: %q %v", out, err)
	}
	// A node made inside the container for a device not allowed cannot be opened.
	out, _, _ = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"try", "mknod-open"}})
	if strings.TrimSpace(out) == "ok" {
		t.Errorf("a mknod'ed device was opened: %q", out)
	}
}
