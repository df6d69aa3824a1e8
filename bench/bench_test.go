//go:build linux

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/registrytest"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	"github.com/berthrt/berth/netdev"
	"github.com/berthrt/berth/registryclient"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newRuntime(b *testing.B) *berth.Runtime { return newRuntimeWith(b, berth.Config{}) }

// newRuntimeWith is newRuntime with cfg's settings (Root and CgroupParent
// are the benchmark's).
func newRuntimeWith(b *testing.B, cfg berth.Config) *berth.Runtime {
	b.Helper()
	testutil.RequiresRoot(b)
	parent := fmt.Sprintf("berth-bench-%d", time.Now().UnixNano())
	cfg.Root, cfg.CgroupParent = b.TempDir(), parent
	rt, err := berth.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// The default network (BenchmarkBerthRunTrueBridge makes it) goes
		// with the runtime: nothing else owns its bridge and rules.
		_ = rt.RemoveNetwork(context.Background(), netdev.DefaultNetwork)
		rt.Close()
		_ = cgroup.Cleanup(parent, nil)
	})
	return rt
}

func toolbox(b *testing.B, rt *berth.Runtime) *berth.Image {
	b.Helper()
	layer := imagebuild.LayerTar(imagebuild.Toolbox(toolboxtest.Bytes(b)))
	img, err := rt.Import(context.Background(), bytes.NewReader(layer), berth.ImportOptions{
		Ref: "bench/toolbox", Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return img
}

// reportMedian records the median of per-iteration durations.
func reportMedian(b *testing.B, d []time.Duration) { reportMedianAs(b, d, "median-ms") }

// reportMedianAs records the median of d as the metric unit.
func reportMedianAs(b *testing.B, d []time.Duration, unit string) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, unit)
}

// BenchmarkBerthRunTrue: create + start + wait + delete of `true`, image
// present, network none, all namespaces, cgroup, overlay, seccomp.
func BenchmarkBerthRunTrue(b *testing.B) {
	rt := newRuntime(b)
	benchRun(b, rt, toolbox(b, rt), []string{"/bin/toolbox", "true"})
}

// BenchmarkBerthRunTrueBusybox is BenchmarkBerthRunTrue with busybox's
// `true` (a static C program) instead of the toolbox's (a Go program, which
// costs several ms of CPU of its own): berth's own cost stands out.
func BenchmarkBerthRunTrueBusybox(b *testing.B) {
	rt := newRuntime(b)
	benchRun(b, rt, busybox(b, rt), []string{"/bin/true"})
}

// BenchmarkBerthRunTrueBusyboxNoSpare is BenchmarkBerthRunTrueBusybox
// without spare inits (berth.Config.NoSpareInit): every start spawns its
// init, as the first start of a program does.
func BenchmarkBerthRunTrueBusyboxNoSpare(b *testing.B) {
	rt := newRuntimeWith(b, berth.Config{NoSpareInit: true})
	benchRun(b, rt, busybox(b, rt), []string{"/bin/true"})
}

func benchRun(b *testing.B, rt *berth.Runtime, img *berth.Image, cmd []string) {
	ctx := context.Background()
	cfg := berth.ContainerConfig{Image: img, Cmd: cmd, NetworkMode: "none"}
	var d []time.Duration
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := rt.Run(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
	}
	reportCPU(b, cpu0)
	reportMedian(b, d)
}

// cpuUse is the CPU time (user + system) used so far by this process
// (the owner) and by the children it has reaped (a container's supervisor
// and its processes, runc and its).
type cpuUse struct{ self, kids time.Duration }

func cpuTime() cpuUse {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return cpuUse{tv(self.Utime) + tv(self.Stime), tv(kids.Utime) + tv(kids.Stime)}
}

// reportCPU records the mean CPU time per iteration since cpu0, in all
// (cpu-ms/op) and the children's part (kids-cpu-ms/op): unlike the wall
// time, it hardly depends on what else the machine runs. The kernel's
// deferred work (network namespace clean-up in kworkers) is not in it.
func reportCPU(b *testing.B, cpu0 cpuUse) {
	now := cpuTime()
	n := float64(b.N)
	self, kids := now.self-cpu0.self, now.kids-cpu0.kids
	b.ReportMetric(float64((self+kids).Microseconds())/1000/n, "cpu-ms/op")
	b.ReportMetric(float64(kids.Microseconds())/1000/n, "kids-cpu-ms/op")
}

// busybox imports the host's static busybox as an image.
func busybox(b *testing.B, rt *berth.Runtime) *berth.Image {
	b.Helper()
	img := toolboxtest.BusyboxImage(b)
	layer := img.Layers[0].Tar
	im, err := rt.Import(context.Background(), bytes.NewReader(layer), berth.ImportOptions{
		Ref: "bench/busybox", Config: img.Config,
	})
	if err != nil {
		b.Fatal(err)
	}
	return im
}

// BenchmarkBerthRunTrueBridge is the same on the default bridge network.
func BenchmarkBerthRunTrueBridge(b *testing.B) {
	rt := newRuntime(b)
	img := toolbox(b, rt)
	ctx := context.Background()
	cfg := berth.ContainerConfig{Image: img, Cmd: []string{"/bin/toolbox", "true"}}
	if _, err := rt.Run(ctx, cfg); err != nil { // creates the default network
		b.Fatal(err)
	}
	var d []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := rt.Run(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
	}
	reportMedian(b, d)
}

// BenchmarkRuncRunTrue: `runc run` of `true` on the same toolbox rootfs.
func BenchmarkRuncRunTrue(b *testing.B) {
	benchRunc(b, toolboxtest.Rootfs, []string{"/bin/toolbox", "true"})
}

// BenchmarkRuncRunTrueBusybox: `runc run` of busybox's `true`.
func BenchmarkRuncRunTrueBusybox(b *testing.B) {
	benchRunc(b, toolboxtest.BusyboxRootfs, []string{"/bin/true"})
}

func benchRunc(b *testing.B, populate func(testing.TB, string), args []string) {
	testutil.RequiresRoot(b)
	runc := testutil.RequiresCommand(b, "runc")
	bundle := b.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	populate(b, rootfs)
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		b.Fatalf("runc spec: %v %s", err, out)
	}
	specPath := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(specPath)
	if err != nil {
		b.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		b.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["args"] = args
	proc["terminal"] = false
	spec["root"].(map[string]any)["readonly"] = false
	raw, _ = json.Marshal(spec)
	if err := os.WriteFile(specPath, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	state := b.TempDir()
	var d []time.Duration
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("berth-bench-%d-%d", os.Getpid(), i)
		t0 := time.Now()
		out, err := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id).CombinedOutput()
		if err != nil {
			b.Fatalf("runc run: %v %s", err, out)
		}
		d = append(d, time.Since(t0))
	}
	reportCPU(b, cpu0)
	reportMedian(b, d)
}

// BenchmarkBerthExec: exec of `true` in a running container.
func BenchmarkBerthExec(b *testing.B) {
	rt := newRuntime(b)
	benchExec(b, rt, toolbox(b, rt), []string{"/bin/toolbox", "sleep", "600"}, []string{"/bin/toolbox", "true"})
}

// BenchmarkBerthExecBusybox: exec of busybox's `true` (see
// BenchmarkBerthRunTrueBusybox).
func BenchmarkBerthExecBusybox(b *testing.B) {
	rt := newRuntime(b)
	benchExec(b, rt, busybox(b, rt), []string{"/bin/sleep", "600"}, []string{"/bin/true"})
}

func benchExec(b *testing.B, rt *berth.Runtime, img *berth.Image, main, cmd []string) {
	ctx := context.Background()
	c, err := rt.Create(ctx, berth.ContainerConfig{Image: img, Cmd: main, NetworkMode: "none"})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	var d []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p, err := c.Exec(ctx, berth.ExecConfig{Cmd: cmd})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := p.Wait(ctx); err != nil || code != 0 {
			b.Fatal(code, err)
		}
		d = append(d, time.Since(t0))
	}
	reportMedian(b, d)
}

// pullImage pushes a 5-layer image of about 100 MB (incompressible) to a
// fresh loopback registry and returns its reference.
func pullImage(b *testing.B) (string, *registrytest.Registry) {
	b.Helper()
	reg := registrytest.Start(b, registrytest.Options{})
	img := imagebuild.Image{Config: ocispec.ImageConfig{Cmd: []string{"/bin/true"}}}
	for i := 0; i < 5; i++ {
		data := make([]byte, 20<<20)
		_, _ = rand.Read(data)
		files := []imagebuild.File{
			imagebuild.Dir(fmt.Sprintf("l%d", i), 0o755),
			imagebuild.Reg(fmt.Sprintf("l%d/blob", i), 0o644, string(data)),
		}
		for j := 0; j < 200; j++ {
			files = append(files, imagebuild.Reg(fmt.Sprintf("l%d/small-%d", i, j), 0o644, fmt.Sprintf("file %d of layer %d\n", j, i)))
		}
		img.Layers = append(img.Layers, imagebuild.Layer{Tar: imagebuild.LayerTar(files)})
	}
	built, err := imagebuild.Build(img)
	if err != nil {
		b.Fatal(err)
	}
	ref := reg.Host + "/bench/big:v1"
	r, _ := registryclient.ParseReference(ref)
	c := &registryclient.Client{}
	ctx := context.Background()
	for d, blob := range built.Blobs {
		if d == built.Desc.Digest {
			continue
		}
		if err := c.PushBlob(ctx, r, ocispec.Descriptor{Digest: d, Size: int64(len(blob))}, bytes.NewReader(blob)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.PushManifest(ctx, r, built.Desc.MediaType, built.Manifest); err != nil {
		b.Fatal(err)
	}
	return ref, reg
}

// BenchmarkPull: berth pull + unpack of the 5-layer image into a new root,
// and the same by skopeo copy + umoci unpack, in one benchmark so both run
// on the same registry in the same conditions.
func BenchmarkPull(b *testing.B) {
	testutil.RequiresRoot(b)
	skopeo := testutil.RequiresCommand(b, "skopeo")
	umoci := testutil.RequiresCommand(b, "umoci")
	ref, _ := pullImage(b)
	ctx := context.Background()
	b.Run("berth", func(b *testing.B) {
		var d []time.Duration
		for i := 0; i < b.N; i++ {
			root := b.TempDir()
			rt, err := berth.New(berth.Config{Root: root})
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if _, err := rt.Pull(ctx, ref, berth.PullOptions{}); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
			rt.Close()
			os.RemoveAll(root)
		}
		reportMedian(b, d)
	})
	b.Run("skopeo+umoci", func(b *testing.B) {
		var d []time.Duration
		for i := 0; i < b.N; i++ {
			dir := b.TempDir()
			t0 := time.Now()
			if out, err := exec.Command(skopeo, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+"/layout:v1").CombinedOutput(); err != nil {
				b.Fatalf("skopeo: %v %s", err, out)
			}
			if out, err := exec.Command(umoci, "unpack", "--image", dir+"/layout:v1", dir+"/bundle").CombinedOutput(); err != nil {
				b.Fatalf("umoci: %v %s", err, out)
			}
			d = append(d, time.Since(t0))
			os.RemoveAll(dir)
		}
		reportMedian(b, d)
	})
	b.Run("ctr", func(b *testing.B) {
		ctr := testutil.RequiresCommand(b, "ctr")
		containerd := testutil.RequiresCommand(b, "containerd")
		var d []time.Duration
		for i := 0; i < b.N; i++ {
			dir := b.TempDir()
			sock := startContainerd(b, containerd, dir)
			t0 := time.Now()
			if out, err := exec.Command(ctr, "--address", sock, "images", "pull", "--plain-http", ref).CombinedOutput(); err != nil {
				b.Fatalf("ctr pull: %v %s", err, out)
			}
			d = append(d, time.Since(t0))
		}
		reportMedian(b, d)
	})
	b.Run("berth-present", func(b *testing.B) {
		rt, err := berth.New(berth.Config{Root: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close()
		if _, err := rt.Pull(ctx, ref, berth.PullOptions{}); err != nil {
			b.Fatal(err)
		}
		var d []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := rt.Pull(ctx, ref, berth.PullOptions{}); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		reportMedian(b, d)
	})
}

// startContainerd runs a containerd of its own (root, state and sockets
// under dir, no CRI) until the benchmark ends, and returns its socket.
func startContainerd(b *testing.B, bin, dir string) string {
	b.Helper()
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		// Anything containerd left mounted under its root goes too.
		_ = exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			b.Fatal("containerd did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkHostFloor: fork+exec+wait of `true` on the host, no container:
// the floor under BenchmarkBerthRunTrue* and BenchmarkBerthExec* on this
// machine (busybox's, and the Go toolbox's, which exits from an early init).
func BenchmarkHostFloor(b *testing.B) {
	busybox := testutil.RequiresCommand(b, "busybox")
	for _, tc := range []struct {
		name string
		path string
		argv []string
	}{
		{"busybox-true", busybox, []string{"true"}},
		{"toolbox-true", toolboxtest.Binary(b), []string{"toolbox", "true"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var d []time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				pid, err := syscall.ForkExec(tc.path, tc.argv, &syscall.ProcAttr{})
				if err != nil {
					b.Fatal(err)
				}
				var ws syscall.WaitStatus
				if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
					b.Fatal(ws, err)
				}
				d = append(d, time.Since(t0))
			}
			reportMedian(b, d)
		})
	}
}
