//go:build linux

package berth_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/cgroup"
	"github.com/vishvananda/netlink"
)

// TestCrashHelper is the owner process of TestOwnerCrashLeavesNothing; it
// does nothing in a normal run.
func TestCrashHelper(t *testing.T) {
	root := os.Getenv("BERTH_CRASH_ROOT")
	if root == "" {
		t.Skip("helper process only")
	}
	rt, err := berth.New(berth.Config{Root: root, CgroupParent: os.Getenv("BERTH_CRASH_CGROUP")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := rt.Image(context.Background(), "berth-test/toolbox:latest")
	if err != nil {
		t.Fatal(err)
	}
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"sleep", "100"}})
	fmt.Printf("started %s %d\n", c.ID(), c.State().Pid)
	time.Sleep(time.Minute)
}

func TestOwnerCrashLeavesNothing(t *testing.T) {
	rt := newRuntime(t)
	toolboxImage(t, rt)
	root := rt.Root()
	parent := "berth-test-crash-" + randHex(3)
	t.Cleanup(func() { _ = cgroupCleanup(parent) })
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "BERTH_CRASH_ROOT="+root, "BERTH_CRASH_CGROUP="+parent)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var id string
	var pid int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "started %s %d", &id, &pid); err == nil {
			break
		}
	}
	if id == "" {
		t.Fatal("helper did not start a container")
	}
	// The owner dies without a chance to clean up.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Its container dies with it.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("supervisor %d outlived its owner", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var rec struct {
		Endpoints []struct {
			HostIfName string `json:"hostIfName"`
		} `json:"endpoints"`
	}
	b, err := os.ReadFile(filepath.Join(root, "containers", id, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Endpoints) != 1 {
		t.Fatalf("record of the crashed container: %v %s", err, b)
	}
	// The next New on the root removes what was left.
	rt2, err := berth.New(berth.Config{Root: root, CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close()
	c, err := rt2.Container(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st.Running {
		t.Errorf("container still recorded as running: %+v", st)
	}
	for _, ctl := range []string{"memory", "pids", "freezer"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctl, parent, id)); err == nil {
			t.Errorf("cgroup %s of the dead owner's container survived", ctl)
		}
	}
	if _, err := netlink.LinkByName(rec.Endpoints[0].HostIfName); err == nil {
		t.Errorf("veth %s of the dead owner's container survived", rec.Endpoints[0].HostIfName)
	}
	if err := c.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func cgroupCleanup(parent string) error { return cgroup.Cleanup(parent, nil) }
