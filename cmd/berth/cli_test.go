//go:build linux

package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/testutil"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// berthBinary builds the CLI once per test process, static, as the README
// says.
func berthBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-cli-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", build.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = err
			t.Logf("%s", out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

type cli struct {
	t      *testing.T
	bin    string
	root   string
	parent string
}

func newCLI(t *testing.T) *cli {
	testutil.RequiresRoot(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	c := &cli{t: t, bin: berthBinary(t), root: t.TempDir(), parent: "berth-clitest-" + hex.EncodeToString(b)}
	t.Cleanup(func() {
		out, _ := c.run("ps", "-a", "-q")
		for _, id := range strings.Fields(out) {
			c.run("rm", "-f", id)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mi), c.root) {
			t.Errorf("a mount under %s survived", c.root)
		}
		if err := cgroup.Cleanup(c.parent, nil); err != nil {
			t.Errorf("cgroup cleanup: %v", err)
		}
	})
	return c
}

func (c *cli) run(args ...string) (string, error) {
	full := append([]string{"--root", c.root}, args...)
	cmd := exec.Command(c.bin, full...)
	cmd.Env = append(os.Environ(), "BERTH_CGROUP_PARENT="+c.parent)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func exitStatus(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestMainJob runs the README's main-job commands.
func TestMainJob(t *testing.T) {
	c := newCLI(t)
	c.must("toolbox-image", "berth/toolbox")
	out := c.must("run", "--rm", "--network", "none", "berth/toolbox", "echo", "hello from a container")
	if out != "hello from a container\n" {
		t.Errorf("run printed %q", out)
	}
	if out, err := c.run("run", "--rm", "--network", "none", "berth/toolbox", "exit", "7"); exitStatus(err) != 7 {
		t.Errorf("run exit 7: status %d, %s", exitStatus(err), out)
	}
	if out, err := c.run("run", "--rm", "--network", "none", "berth/toolbox", "no-such-cmd"); exitStatus(err) != 127 {
		t.Errorf("run of a missing command: status %d, %s", exitStatus(err), out)
	}
	if out, err := c.run("run", "--rm", "no/such-image-here:v1"); exitStatus(err) != 125 || strings.Count(out, "\n") != 1 {
		t.Errorf("run of a missing image: status %d, output %q", exitStatus(err), out)
	}
	if out := c.must("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("--rm left containers: %q", out)
	}
}

// TestDetachedLifecycle drives a detached container from separate
// processes: run -d, exec, logs, inspect, stop, rm.
func TestDetachedLifecycle(t *testing.T) {
	c := newCLI(t)
	c.must("toolbox-image", "berth/toolbox")
	// A command that does not exist: the start fails with 127 and nothing stays.
	if out, err := c.run("run", "-d", "--name", "sleeper", "--network", "none", "berth/toolbox", "no-such-loop"); exitStatus(err) != 127 {
		t.Errorf("run -d of a missing command: status %d, %s", exitStatus(err), out)
	}
	if out := c.must("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("after a failed start: %q", out)
	}
	id := strings.TrimSpace(c.must("run", "-d", "--name", "sleeper2", "--network", "none", "berth/toolbox", "ignore-term"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q", id)
	}
	if out := c.must("exec", "sleeper2", "echo", "exec works"); out != "exec works\n" {
		t.Errorf("exec printed %q", out)
	}
	if out := c.must("ps"); !strings.Contains(out, id[:12]) {
		t.Errorf("ps lacks the container:\n%s", out)
	}
	var info []struct {
		State struct {
			Pid    int
			Status string
		}
	}
	if err := json.Unmarshal([]byte(c.must("inspect", id[:12])), &info); err != nil || len(info) != 1 || info[0].State.Status != "running" || info[0].State.Pid == 0 {
		t.Errorf("inspect: %+v %v", info, err)
	}
	start := time.Now()
	c.must("stop", "-t", "1", "sleeper2")
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("stop returned after %v, before the timeout", d)
	}
	if err := json.Unmarshal([]byte(c.must("inspect", id[:12])), &info); err != nil || info[0].State.Status != "exited" {
		t.Errorf("inspect after stop: %+v %v", info, err)
	}
	c.must("rm", id[:12])
	if out := c.must("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("rm left %q", out)
	}
	if _, err := os.Stat(filepath.Join("/run/berth/c", id[:16])); err == nil {
		t.Errorf("the control directory of %s survived", id[:12])
	}
}

// TestResourceFlags: --memory-swappiness, --oom-kill-disable and
// --blkio-weight-device reach the container's config, and bad values
// fail with status 125 and a message naming the flag.
func TestResourceFlags(t *testing.T) {
	c := newCLI(t)
	c.must("toolbox-image", "berth/toolbox")
	dev := anyBlockDevice(t)
	id := strings.TrimSpace(c.must("create", "--network", "none", "-m", "64m", "--memory-swappiness", "0",
		"--oom-kill-disable", "--blkio-weight-device", dev+":300", "berth/toolbox", "true"))
	var info []struct {
		Config struct {
			Resources cgroup.Resources `json:"resources"`
		}
	}
	if err := json.Unmarshal([]byte(c.must("inspect", id)), &info); err != nil || len(info) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	r := info[0].Config.Resources
	if r.MemorySwappiness == nil || *r.MemorySwappiness != 0 || !r.OOMKillDisable ||
		len(r.BlkioWeightDevice) != 1 || r.BlkioWeightDevice[0].Weight != 300 {
		t.Errorf("config: swappiness %v, oom-kill-disable %v, weight devices %+v", r.MemorySwappiness, r.OOMKillDisable, r.BlkioWeightDevice)
	}
	// Left unset, swappiness is nil (the default), not 0.
	id = strings.TrimSpace(c.must("create", "--network", "none", "berth/toolbox", "true"))
	if err := json.Unmarshal([]byte(c.must("inspect", id)), &info); err != nil || info[0].Config.Resources.MemorySwappiness != nil {
		t.Errorf("default swappiness: %v %v", info[0].Config.Resources.MemorySwappiness, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory-swappiness", "101"}, "--memory-swappiness: invalid value: 101, valid memory swappiness range is 0-100"},
		{[]string{"--blkio-weight-device", dev + ":5"}, "--blkio-weight-device: device"},
		{[]string{"--blkio-weight-device", "/dev/null:100"}, "--blkio-weight-device \"/dev/null:100\": /dev/null is not a block device"},
	} {
		out, err := c.run(append(append([]string{"create", "--network", "none"}, tc.args...), "berth/toolbox", "true")...)
		if exitStatus(err) != 125 || !strings.Contains(out, tc.want) {
			t.Errorf("create %s: status %d, %q, want 125 and %q", strings.Join(tc.args, " "), exitStatus(err), out, tc.want)
		}
	}
}

// anyBlockDevice returns the path of a block device node.
func anyBlockDevice(t *testing.T) string {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		p := "/dev/" + e.Name()
		if st, err := os.Stat(p); err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0 {
			return p
		}
	}
	t.Skip("no block device node")
	return ""
}

// TestUserNamespaceFlags: --uidmap and --gidmap (podman's CONTAINER:HOST:SIZE,
// repeatable; one stands for both) reach the container's config, and a
// container runs with them.
func TestUserNamespaceFlags(t *testing.T) {
	c := newCLI(t)
	c.must("toolbox-image", "berth/toolbox")
	type idMap struct{ ContainerID, HostID, Size int }
	inspect := func(id string) (uids, gids []idMap) {
		var info []struct {
			Config struct {
				UIDMappings []idMap `json:"uidMappings"`
				GIDMappings []idMap `json:"gidMappings"`
			}
		}
		if err := json.Unmarshal([]byte(c.must("inspect", id)), &info); err != nil || len(info) != 1 {
			t.Fatalf("inspect: %v", err)
		}
		return info[0].Config.UIDMappings, info[0].Config.GIDMappings
	}
	id := strings.TrimSpace(c.must("create", "--network", "none", "--uidmap", "0:100000:1000", "--uidmap", "1000:200000:1",
		"--gidmap", "0:300000:65536", "berth/toolbox", "true"))
	uids, gids := inspect(id)
	if want := []idMap{{0, 100000, 1000}, {1000, 200000, 1}}; !slices.Equal(uids, want) {
		t.Errorf("uid maps %v, want %v", uids, want)
	}
	if want := []idMap{{0, 300000, 65536}}; !slices.Equal(gids, want) {
		t.Errorf("gid maps %v, want %v", gids, want)
	}
	id = strings.TrimSpace(c.must("create", "--network", "none", "--uidmap", "0:100000:65536", "berth/toolbox", "true"))
	if uids, gids := inspect(id); len(uids) != 1 || !slices.Equal(uids, gids) {
		t.Errorf("--uidmap alone: uid maps %v, gid maps %v", uids, gids)
	}

	out := c.must("run", "--rm", "--network", "none", "--uidmap", "0:100000:65536", "berth/toolbox", "cat", "/proc/self/uid_map")
	if got := strings.Join(strings.Fields(out), " "); got != "0 100000 65536" {
		t.Errorf("run --uidmap: uid_map %q", got)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--uidmap", "0:100000"}, `--uidmap "0:100000": want CONTAINER:HOST:SIZE`},
		{[]string{"--gidmap", "0:x:1"}, `--gidmap "0:x:1"`},
		{[]string{"--uidmap", "0:-5:1"}, "negative id"},
		{[]string{"--uidmap", "1:100000:10"}, "container id 0 (root) is not mapped"},
		{[]string{"--uidmap", "0:100000:10", "--uidmap", "5:200000:10"}, "container ranges overlap"},
	} {
		out, err := c.run(append(append([]string{"create", "--network", "none"}, tc.args...), "berth/toolbox", "true")...)
		if exitStatus(err) != 125 || !strings.Contains(out, tc.want) {
			t.Errorf("create %s: status %d, %q, want 125 and %q", strings.Join(tc.args, " "), exitStatus(err), out, tc.want)
		}
	}
}
