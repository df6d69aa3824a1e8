//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	"golang.org/x/sys/unix"
)

// TestV1Swappiness sets --memory-swappiness on a real v1 group, changes
// it, and drops it back to the parent's value.
func TestV1Swappiness(t *testing.T) {
	requireV1(t, "memory")
	c := newTestGroup(t, Resources{MemorySwappiness: new(int64(0))})
	file := filepath.Join(c.v1["memory"], "memory.swappiness")
	if got := readFile(t, file); got != "0" {
		t.Errorf("memory.swappiness = %q, want 0", got)
	}
	if err := c.Update(Resources{MemorySwappiness: new(int64(100))}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, file); got != "100" {
		t.Errorf("after update: memory.swappiness = %q, want 100", got)
	}
	if err := c.Update(Resources{}); err != nil {
		t.Fatal(err)
	}
	parent := readFile(t, filepath.Join(filepath.Dir(c.v1["memory"]), "memory.swappiness"))
	if got := readFile(t, file); got != parent {
		t.Errorf("after reset: memory.swappiness = %q, want the parent's %q", got, parent)
	}
}

// TestOOMKillDisable: with the OOM killer off, a process that allocates
// past --memory waits instead of dying, and finishes once Update raises
// the limit.
func TestOOMKillDisable(t *testing.T) {
	requireV1(t, "memory")
	// No swap, so the limit is reached whatever the host's swap.
	r := Resources{Memory: 32 << 20, MemorySwap: 32 << 20, OOMKillDisable: true}
	c := newTestGroup(t, r)
	oomControl := filepath.Join(c.v1["memory"], "memory.oom_control")
	if got := readFile(t, oomControl); !strings.Contains(got, "oom_kill_disable 1") {
		t.Fatalf("memory.oom_control = %q, want oom_kill_disable 1", got)
	}
	h := startHelper(t, -1)
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h.send(t, "alloc 64")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readFile(t, oomControl), "under_oom 1") {
		select {
		case <-h.done:
			t.Fatalf("helper ended with the OOM killer off: %v", h.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group never reached its limit: %q", readFile(t, oomControl))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case <-h.done:
		t.Fatalf("helper ended under OOM with the killer off: %v", h.err)
	default:
	}
	if c.OOMKilled() {
		t.Error("OOMKilled() with the OOM killer off")
	}
	r.Memory, r.MemorySwap = 256<<20, 0
	if err := c.Update(r); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-h.out:
		if s != "ok" {
			t.Errorf("helper answered %q, want ok", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("allocation did not finish after the limit was raised")
	}
	r.OOMKillDisable = false
	if err := c.Update(r); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, oomControl); !strings.Contains(got, "oom_kill_disable 0") {
		t.Errorf("after update: memory.oom_control = %q, want oom_kill_disable 0", got)
	}
}

// TestV1BlkioWeightDevice sets --blkio-weight and --blkio-weight-device for
// a loop device under BFQ, drops the device's weight, and checks that a
// device whose scheduler weighs nothing is refused as ErrUnsupported.
func TestV1BlkioWeightDevice(t *testing.T) {
	requireV1(t, "blkio")
	hst := defaultHost()
	if hst.blkioWeight == "" {
		t.Skip("the kernel has no blkio weight (no CFQ or BFQ)")
	}
	maj, min := loopDevice(t, "bfq")
	dev := fmt.Sprintf("%d:%d", maj, min)
	c := newTestGroup(t, Resources{BlkioWeight: 300, BlkioWeightDevice: []WeightDevice{{maj, min, 200}}})
	weights := filepath.Join(c.v1["blkio"], hst.blkioWeight+"_device")
	if got := readFile(t, filepath.Join(c.v1["blkio"], hst.blkioWeight)); !strings.HasSuffix(got, "300") {
		t.Errorf("%s = %q, want 300", hst.blkioWeight, got)
	}
	if got := readFile(t, weights); !hasLine([]byte(got), dev+" 200") {
		t.Errorf("%s = %q, want a line %q", filepath.Base(weights), got, dev+" 200")
	}
	if err := c.Update(Resources{BlkioWeight: 300, BlkioWeightDevice: []WeightDevice{{maj, min, 1000}}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, weights); !hasLine([]byte(got), dev+" 1000") {
		t.Errorf("after update: %s = %q, want a line %q", filepath.Base(weights), got, dev+" 1000")
	}
	if err := c.Update(Resources{BlkioWeight: 300}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, weights); strings.Contains(got, dev+" ") {
		t.Errorf("after dropping the device: %s = %q", filepath.Base(weights), got)
	}

	// A device without a weighing scheduler: the kernel says EOPNOTSUPP.
	maj, min = loopDevice(t, "none")
	parent := randomParent(t)
	t.Cleanup(func() { cleanup(hst, parent, nil); assertNoDirs(t, hst, parent) })
	_, err := New(t.Context(), Config{Parent: parent, Name: "w", Resources: Resources{BlkioWeightDevice: []WeightDevice{{maj, min, 200}}}})
	if !errors.Is(err, errdefs.ErrUnsupported) || !strings.Contains(err.Error(), "--blkio-weight-device:") {
		t.Errorf("weight for a device under no weighing scheduler: %v, want ErrUnsupported naming --blkio-weight-device", err)
	}
	for _, mp := range hst.v1dirs {
		if _, err := os.Stat(filepath.Join(mp, parent, "w")); err == nil {
			t.Errorf("failed New left %s", filepath.Join(mp, parent, "w"))
		}
	}
}

// loopDevice attaches a loop device to a small file and puts it under the
// io scheduler sched; both are undone at the end of the test.
func loopDevice(t *testing.T, sched string) (maj, min int64) {
	t.Helper()
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("no losetup")
	}
	img := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", loop, err, out)
		}
	})
	schedFile := filepath.Join("/sys/block", filepath.Base(loop), "queue", "scheduler")
	old, err := os.ReadFile(schedFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(schedFile, []byte(sched), 0o644); err != nil {
		t.Skipf("%s under %s: %v", loop, sched, err)
	}
	// "none [mq-deadline] bfq": the bracketed one is in use.
	if i, j := strings.IndexByte(string(old), '['), strings.IndexByte(string(old), ']'); i >= 0 && j > i {
		t.Cleanup(func() { os.WriteFile(schedFile, old[i+1:j], 0o644) })
	}
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	return int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
}
