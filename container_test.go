//go:build linux

package berth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newRuntime opens a runtime on a fresh root, with its own cgroup parent,
// and checks after the test that nothing it made is left: no mount under
// the root, no cgroup, no container.
func newRuntime(t testing.TB) *berth.Runtime {
	t.Helper()
	return newRuntimeWith(t, berth.Config{})
}

// newRuntimeWith is newRuntime with cfg's other fields (Root and
// CgroupParent are the test's own).
func newRuntimeWith(t testing.TB, cfg berth.Config) *berth.Runtime {
	t.Helper()
	testutil.RequiresRoot(t)
	root := t.TempDir()
	parent := "berth-test-" + randHex(4)
	cfg.Root, cfg.CgroupParent = root, parent
	rt, err := berth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteAllContainers(t, rt)
		rt.Close()
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mi), root) {
			t.Errorf("a mount under %s survived the test", root)
		}
		if err := cgroup.Cleanup(parent, nil); err != nil {
			t.Errorf("cgroup cleanup: %v", err)
		}
		for _, c := range []string{"memory", "pids", "cpu"} {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, parent)); err == nil {
				t.Errorf("cgroup %s/%s survived the test", c, parent)
			}
		}
	})
	return rt
}

// deleteAllContainers force-deletes every container of rt, reporting
// failures.
func deleteAllContainers(t testing.TB, rt *berth.Runtime) {
	t.Helper()
	ctx := context.Background()
	cs, _ := rt.Containers(ctx, true)
	for _, c := range cs {
		if err := c.Delete(ctx, berth.DeleteOptions{Force: true}); err != nil {
			t.Errorf("delete %s: %v", c.ID(), err)
		}
	}
}

// toolboxImage imports the toolbox image into rt.
func toolboxImage(t *testing.T, rt *berth.Runtime) *berth.Image {
	t.Helper()
	layer := imagebuild.LayerTar(imagebuild.Toolbox(toolboxtest.Bytes(t)))
	img, err := rt.Import(context.Background(), bytes.NewReader(layer), berth.ImportOptions{
		Ref:    "berth-test/toolbox:latest",
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/toolbox", "true"}, Env: []string{"PATH=/bin"}, StopSignal: "SIGTERM"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// startContainer creates a container from cfg and starts it.
func startContainer(t *testing.T, rt *berth.Runtime, cfg berth.ContainerConfig) *berth.Container {
	t.Helper()
	ctx := context.Background()
	c, err := rt.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, rt *berth.Runtime, cfg berth.ContainerConfig) (string, berth.State, error) {
	t.Helper()
	var out bytes.Buffer
	cfg.Stdout, cfg.Stderr = &out, &out
	if cfg.NetworkMode == "" {
		cfg.NetworkMode = "none"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := rt.Run(ctx, cfg)
	return out.String(), st, err
}

func TestRunEchoAndExitCodes(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	out, st, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"echo", "hello", "world"}})
	if err != nil || out != "hello world\n" || st.ExitCode != 0 {
		t.Fatalf("echo: out %q, state %+v, err %v", out, st, err)
	}
	_, st, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"exit", "3"}})
	var ee *berth.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || st.ExitCode != 3 {
		t.Fatalf("exit 3: state %+v, err %v", st, err)
	}
	_, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"no-such-command"}})
	if !errors.As(err, &ee) || ee.Code != 127 {
		t.Fatalf("missing command: want exit 127, got %v", err)
	}
}

func TestEnvUserWorkdirHostname(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"env"}, Env: []string{"FOO=bar"}, Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FOO=bar", "PATH=/bin", "HOSTNAME=box", "HOME=/root"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, out)
		}
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"id"}, User: "tester"})
	if err != nil || !strings.HasPrefix(out, "uid=1000(tester) gid=1000(tester)") {
		t.Fatalf("id as tester: %q %v", out, err)
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"pwd"}, WorkingDir: "/made/here"})
	if err != nil || out != "/made/here\n" {
		t.Fatalf("pwd: %q %v", out, err)
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"hostname"}, Hostname: "box"})
	if err != nil || out != "box\n" {
		t.Fatalf("hostname: %q %v", out, err)
	}
}

func TestDefaultCapabilitiesAndMaskedPaths(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"caps"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb", "Seccomp:\t2"} {
		if !strings.Contains(out, want) {
			t.Errorf("caps lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"caps"}, User: "tester"})
	if err != nil || !strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Errorf("non-root caps: %v\n%s", err, out)
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"cat", "/proc/kcore"}})
	if err == nil || strings.Contains(out, "ELF") {
		t.Errorf("/proc/kcore readable: %q", out)
	}
}

func TestReadOnlyRootfsAndMounts(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from host"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"write", "/x", "y"}, ReadOnlyRootfs: true})
	if err == nil {
		t.Error("write to a read-only rootfs succeeded")
	}
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"cat", "/data/in"},
		Mounts: []berth.Mount{{Source: host, Target: "/data", ReadOnly: true}}})
	if err != nil || out != "from host" {
		t.Fatalf("bind mount: %q %v", out, err)
	}
	_, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"write", "/data/out", "x"},
		Mounts: []berth.Mount{{Source: host, Target: "/data", ReadOnly: true}}})
	if err == nil {
		t.Error("write to a read-only bind succeeded")
	}
	// A named volume outlives its container.
	if _, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"write", "/v/f", "kept"},
		Mounts: []berth.Mount{{Type: "volume", Source: "vol1", Target: "/v"}}}); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"cat", "/v/f"},
		Mounts: []berth.Mount{{Type: "volume", Source: "vol1", Target: "/v"}}})
	if err != nil || out != "kept" {
		t.Fatalf("volume: %q %v", out, err)
	}
	_, err = rt.Create(context.Background(), berth.ContainerConfig{Image: img, Mounts: []berth.Mount{{Source: "/no/such/dir", Target: "/x"}}})
	if !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("missing bind source: %v", err)
	}
}

func TestExecStopAndLogs(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	ready := newLineWaiter("ready")
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"ignore-term"}, NetworkMode: "none", Stdout: ready})
	ready.wait(t)
	var out bytes.Buffer
	p, err := c.Exec(ctx, berth.ExecConfig{Cmd: []string{"echo", "from exec"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(ctx); err != nil || code != 0 || out.String() != "from exec\n" {
		t.Fatalf("exec: code %d err %v out %q", code, err, out.String())
	}
	pids, err := c.Processes(ctx)
	if err != nil || len(pids) < 2 {
		t.Errorf("processes: %v %v", pids, err)
	}
	start := time.Now()
	if err := c.Stop(ctx, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	st := c.State()
	if st.Running || st.ExitCode != 137 {
		t.Errorf("after stop of a process ignoring SIGTERM: %+v", st)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("stop killed after %v, before the timeout", d)
	}
	rc, err := c.Logs(ctx, berth.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "ready\n" {
		t.Errorf("logs: %q", b)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Container(ctx, c.ID()); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("deleted container still found: %v", err)
	}
}

func TestLogsKeepOutput(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"echo", "logged"}, NetworkMode: "none"})
	if _, err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Logs(ctx, berth.LogsOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "logged\n" {
		t.Errorf("logs: %q", b)
	}
}

func TestSignalGives128PlusN(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"sleep", "30"}, NetworkMode: "none"})
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx)
	if err != nil || st.ExitCode != 137 {
		t.Fatalf("SIGKILL: %+v %v", st, err)
	}
}

func TestMemoryLimitOOMKill(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	_, st, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"memhog", "256"},
		Resources: berth.Resources{Memory: 32 << 20, MemorySwap: 32 << 20}})
	var ee *berth.ExitError
	if !errors.As(err, &ee) || st.ExitCode != 137 || !st.OOMKilled {
		t.Fatalf("memory hog: state %+v err %v", st, err)
	}
}

func TestBridgeNetworkByName(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	name := "bt" + randHex(3)
	if _, err := rt.CreateNetwork(ctx, berth.NetworkConfig{Name: name}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.RemoveNetwork(context.Background(), name); err != nil {
			t.Errorf("remove network: %v", err)
		}
	})
	srv := startContainer(t, rt, berth.ContainerConfig{Image: img, Name: "web-" + name, Cmd: []string{"http", "-addr", ":8080"},
		NetworkMode: name, Publish: []berth.PortMapping{{ContainerPort: 8080}}})
	t.Cleanup(func() { srv.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	info, err := srv.Inspect(ctx)
	if err != nil || len(info.NetworkSettings.Ports) != 1 || info.NetworkSettings.Ports[0].HostPort == 0 {
		t.Fatalf("inspect: %+v %v", info, err)
	}
	// The host reaches the published port on 127.0.0.1.
	url := fmt.Sprintf("http://127.0.0.1:%d/", info.NetworkSettings.Ports[0].HostPort)
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published port: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.TrimSpace(string(body)) != srv.ID()[:12] {
		t.Errorf("published port answered %q, want the hostname %s", body, srv.ID()[:12])
	}
	// Another container on the network reaches it by name.
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"fetch", "http://web-" + name + ":8080/"}, NetworkMode: name})
	if err != nil || strings.TrimSpace(out) != srv.ID()[:12] {
		t.Errorf("fetch by name: %q %v", out, err)
	}
	if err := srv.Delete(ctx, berth.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
}

func TestCommitDiffExport(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"write", "/added.txt", "committed"}, NetworkMode: "none"})
	if st, err := c.Wait(ctx); err != nil || st.ExitCode != 0 {
		t.Fatalf("write: %+v %v", st, err)
	}
	changes, err := c.Diff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ch := range changes {
		if ch.String() == "A /added.txt" {
			found = true
		}
	}
	if !found {
		t.Errorf("diff lacks A /added.txt: %v", changes)
	}
	var tarball bytes.Buffer
	if err := c.Export(ctx, &tarball); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(tarball.Bytes(), []byte("committed")) || !bytes.Contains(tarball.Bytes(), []byte("bin/toolbox")) {
		t.Error("export lacks the written file or the image's files")
	}
	newImg, err := c.Commit(ctx, berth.CommitOptions{Ref: "berth-test/committed:1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(newImg.DiffIDs()) != len(img.DiffIDs())+1 {
		t.Errorf("committed image has %d layers", len(newImg.DiffIDs()))
	}
	out, _, err := run(t, rt, berth.ContainerConfig{Image: newImg, Cmd: []string{"cat", "/added.txt"}})
	if err != nil || out != "committed" {
		t.Fatalf("run committed image: %q %v", out, err)
	}
	// Import of the exported tarball gives a runnable image too.
	imported, err := rt.Import(ctx, bytes.NewReader(tarball.Bytes()), berth.ImportOptions{Ref: "berth-test/imported:1"})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: imported, Cmd: []string{"/bin/cat", "/added.txt"}})
	if err != nil || out != "committed" {
		t.Fatalf("run imported export: %q %v", out, err)
	}
}

func TestConnectNetworkAndIsolation(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	a, b := "na"+randHex(3), "nb"+randHex(3)
	for _, n := range []string{a, b} {
		if _, err := rt.CreateNetwork(ctx, berth.NetworkConfig{Name: n}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rt.RemoveNetwork(context.Background(), n) })
	}
	srv := startContainer(t, rt, berth.ContainerConfig{Image: img, Name: "srv-" + a, Cmd: []string{"http", "-addr", ":8080"}, NetworkMode: a})
	t.Cleanup(func() { srv.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	info, _ := srv.Inspect(ctx)
	ip := info.NetworkSettings.Networks[a].IPAddress
	// From network b the server's address is unreachable.
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"connect", "-timeout", "1s", ip + ":8080"}, NetworkMode: b})
	if err == nil {
		t.Errorf("a container on another network reached %s: %s", ip, out)
	}
	if err := rt.RemoveNetwork(ctx, a); !errors.Is(err, berth.ErrInUse) {
		t.Errorf("remove network in use: %v", err)
	}
	// Connected to b as well, the server is reachable from b by name.
	if err := srv.ConnectNetwork(ctx, b); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"fetch", "http://srv-" + a + ":8080/echo?msg=via-b"}, NetworkMode: b})
	if err != nil || strings.TrimSpace(out) != "via-b" {
		t.Errorf("fetch after connect: %q %v", out, err)
	}
	if err := srv.DisconnectNetwork(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// lineWaiter is a writer that signals when a line with want was written.
type lineWaiter struct {
	mu   sync.Mutex
	want string
	buf  bytes.Buffer
	done chan struct{}
}

func newLineWaiter(want string) *lineWaiter {
	return &lineWaiter{want: want, done: make(chan struct{})}
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		select {
		case <-w.done:
		default:
			close(w.done)
		}
	}
	return len(p), nil
}

func (w *lineWaiter) wait(t *testing.T) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %q in the output", w.want)
	}
}
