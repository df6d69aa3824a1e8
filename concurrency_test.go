//go:build linux

package berth_test

// Concurrency (suite 7 of issue 6): two processes share one root and, round
// after round, pull the same image at the same time, run containers from
// it (one named, one on a user network of their own), create and remove
// networks, tag and untag, and run GC, all at once. Every operation of both
// must succeed, and at the end the root checks clean and every image
// pulled still runs.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestConcurrencyHelper is one of the two processes of
// TestConcurrentProcessesShareRoot; it does nothing in a normal run.
func TestConcurrencyHelper(t *testing.T) {
	if os.Getenv("BERTH_CC_ROOT") == "" {
		t.Skip("helper process only")
	}
	ccWorker()
}

func ccSay(format string, a ...any) {
	os.Stdout.WriteString("cc: " + fmt.Sprintf(format, a...) + "\n")
}

func ccWorker() {
	root, parent := os.Getenv("BERTH_CC_ROOT"), os.Getenv("BERTH_CC_CGROUP")
	id, tag, repo := os.Getenv("BERTH_CC_ID"), os.Getenv("BERTH_CC_TAG"), os.Getenv("BERTH_CC_REPO")
	rounds, _ := strconv.Atoi(os.Getenv("BERTH_CC_ROUNDS"))
	ops := 0
	fail := func(what string, round int, err error) {
		ccSay("error %s (round %d, after %d operations): %v", what, round, ops, err)
		os.Exit(1)
	}
	time.AfterFunc(20*time.Minute, func() { fail("worker", -1, fmt.Errorf("not done in time")) })
	rt, err := berth.New(berth.Config{Root: root, CgroupParent: parent})
	if err != nil {
		fail("new", -1, err)
	}
	defer rt.Close()
	ccSay("ready")
	// Both processes start together.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fail("wait for go", -1, err)
	}
	ctx := context.Background()
	run := func(k int, cfg berth.ContainerConfig, want string) {
		var out bytes.Buffer
		cfg.Stdout, cfg.Stderr = &out, &out
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := rt.Run(rctx, cfg); err != nil || out.String() != want {
			fail("run on "+cfg.NetworkMode, k, fmt.Errorf("output %q, err %v", out.String(), err))
		}
		ops++
	}
	for k := 0; k < rounds; k++ {
		ref := fmt.Sprintf("%s:r%d", repo, k)
		img, err := rt.Pull(ctx, ref, berth.PullOptions{})
		if err != nil {
			fail("pull", k, err)
		}
		ops++
		msg := fmt.Sprintf("%s %d", id, k)
		run(k, berth.ContainerConfig{Image: img, Name: fmt.Sprintf("cc-%s-%s-%d", tag, id, k), Cmd: []string{"echo", msg}, NetworkMode: "none"}, msg+"\n")
		net := fmt.Sprintf("cc%s%s%d", tag, id, k)
		if _, err := rt.CreateNetwork(ctx, berth.NetworkConfig{Name: net}); err != nil {
			fail("create network", k, err)
		}
		ops++
		run(k, berth.ContainerConfig{Image: img, Cmd: []string{"cat", "/round"}, NetworkMode: net}, fmt.Sprintf("round %d", k))
		if err := rt.RemoveNetwork(ctx, net); err != nil {
			fail("remove network", k, err)
		}
		ops++
		if k%3 == 0 {
			// A name of this process's own for the shared image, dropped
			// at once: the removal GCs while the other process may pull.
			mine := fmt.Sprintf("berth-test/cc-%s-%s:r%d", tag, id, k)
			if err := rt.Tag(ctx, ref, mine); err != nil {
				fail("tag", k, err)
			}
			if err := rt.RemoveImage(ctx, mine, berth.RemoveImageOptions{}); err != nil {
				fail("remove image", k, err)
			}
			ops += 2
		}
		if _, err := rt.GC(ctx); err != nil {
			fail("gc", k, err)
		}
		ops++
	}
	ccSay("ok %d", ops)
}

// ccImage is base (the toolbox image) plus a small layer of its own: a
// file /round saying which round it is for, and random bytes. The base
// layer is reused as it is, not compressed again.
func ccImage(t *testing.T, base imagebuild.Built, k int) imagebuild.Built {
	t.Helper()
	noise := make([]byte, 256<<10)
	_, _ = rand.Read(noise)
	tar := imagebuild.LayerTar([]imagebuild.File{
		imagebuild.Reg("round", 0o644, fmt.Sprintf("round %d", k)),
		imagebuild.Reg("noise", 0o644, string(noise)),
	})
	blob, err := imagebuild.Compress(tar, imagebuild.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	var m ocispec.Manifest
	if err := json.Unmarshal(base.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(base.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	b := imagebuild.Built{Format: base.Format, Blobs: map[digest.Digest][]byte{}}
	for _, l := range m.Layers {
		b.Blobs[l.Digest] = base.Blobs[l.Digest]
	}
	ld := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	b.Blobs[ld.Digest] = blob
	m.Layers = append(m.Layers, ld)
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(tar))
	cfg.History = append(cfg.History, ocispec.History{CreatedBy: "round"})
	if b.Config, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	m.Config = ocispec.Descriptor{MediaType: m.Config.MediaType, Digest: digest.FromBytes(b.Config), Size: int64(len(b.Config))}
	b.Blobs[m.Config.Digest] = b.Config
	if b.Manifest, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	b.Desc = ocispec.Descriptor{MediaType: base.Desc.MediaType, Digest: digest.FromBytes(b.Manifest), Size: int64(len(b.Manifest))}
	b.Blobs[b.Desc.Digest] = b.Manifest
	return b
}

func TestConcurrentProcessesShareRoot(t *testing.T) {
	testutil.RequiresCommand(t, "docker-registry")
	rounds := 30
	if cpLong() {
		rounds = 200
	}
	if s := os.Getenv("BERTH_CC_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	rt := newRuntime(t)
	root := rt.Root()
	parent := "berth-test-cc-" + randHex(3)
	t.Cleanup(func() { _ = cgroupCleanup(parent) })
	tag := randHex(2)

	reg := registrytest.Start(t, registrytest.Options{})
	repo := reg.Host + "/conc/img"
	pushed := map[digest.Digest]bool{}
	setup := time.Now()
	base := toolboxtest.Built(t)
	for k := 0; k < rounds; k++ {
		pushBuiltSkipping(t, fmt.Sprintf("%s:r%d", repo, k), ccImage(t, base, k), pushed)
	}
	t.Logf("%d images pushed in %v", rounds, time.Since(setup).Round(time.Millisecond))

	type proc struct {
		id    string
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines chan string
		out   []string
	}
	var procs []*proc
	for _, id := range []string{"a", "b"} {
		p := &proc{id: id, lines: make(chan string, 64)}
		p.cmd = exec.Command(os.Args[0], "-test.run=^TestConcurrencyHelper$")
		p.cmd.Env = append(os.Environ(), "BERTH_CC_ROOT="+root, "BERTH_CC_CGROUP="+parent, "BERTH_CC_ID="+id,
			"BERTH_CC_TAG="+tag, "BERTH_CC_REPO="+repo, "BERTH_CC_ROUNDS="+strconv.Itoa(rounds))
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stderr = p.cmd.Stdout
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
			close(p.lines)
		}()
		procs = append(procs, p)
	}
	// wait reads p's output until a "cc: " line starting with one of want.
	wait := func(p *proc, timeout time.Duration, want ...string) string {
		deadline := time.After(timeout)
		for {
			select {
			case l, ok := <-p.lines:
				if !ok {
					t.Fatalf("process %s ended early:\n%s", p.id, strings.Join(p.out, "\n"))
				}
				p.out = append(p.out, l)
				rest, ok := strings.CutPrefix(l, "cc: ")
				if !ok {
					continue
				}
				for _, w := range want {
					if strings.HasPrefix(rest, w) {
						return rest
					}
				}
			case <-deadline:
				t.Fatalf("process %s: no %v within %v:\n%s", p.id, want, timeout, strings.Join(p.out, "\n"))
			}
		}
	}
	for _, p := range procs {
		wait(p, time.Minute, "ready")
	}
	start := time.Now()
	for _, p := range procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	limit := 5*time.Minute + time.Duration(rounds)*5*time.Second
	total := 0
	for _, p := range procs {
		res := wait(p, limit, "ok ", "error ")
		if strings.HasPrefix(res, "error ") {
			t.Errorf("process %s: %s", p.id, res)
			continue
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(res, "ok "))
		total += n
	}
	elapsed := time.Since(start)
	for _, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("process %s: %v", p.id, err)
		}
	}
	t.Logf("2 processes, %d rounds each, %d operations, all succeeded: %v", rounds, total, !t.Failed())
	t.Logf("took %v", elapsed.Round(time.Millisecond))
	if t.Failed() {
		return
	}

	// The shared root is whole: it checks clean, nothing runs or is left,
	// and every image the two pulled is still there and runs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rt2, err := berth.New(berth.Config{Root: root, CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close()
	probs, err := rt2.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("check: %v", p)
	}
	if cs, err := rt2.Containers(ctx, true); err != nil || len(cs) != 0 {
		t.Errorf("containers left: %d %v", len(cs), err)
	}
	nets, err := rt2.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		if strings.HasPrefix(n.Name, "cc"+tag) {
			t.Errorf("network %s left", n.Name)
		}
	}
	_, bridges := cpNetNames(t, root)
	for _, l := range cpLeftovers(t, root, parent, nil, bridges) {
		t.Errorf("left: %s", l)
	}
	imgs, err := rt2.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*berth.Image{}
	for _, img := range imgs {
		byName[img.Name] = img
	}
	// Check has verified every image's manifest, config and layers; a
	// sample of them runs too.
	runs, step := 0, 3
	if rounds > 50 {
		step = 10
	}
	for k := 0; k < rounds; k++ {
		img := byName[fmt.Sprintf("%s:r%d", repo, k)]
		if img == nil {
			t.Errorf("image of round %d lost", k)
			continue
		}
		if k%step != 0 && k != rounds-1 {
			continue
		}
		var out bytes.Buffer
		if _, err := rt2.Run(ctx, berth.ContainerConfig{Image: img, Cmd: []string{"cat", "/round"}, NetworkMode: "none", Stdout: &out}); err != nil || out.String() != fmt.Sprintf("round %d", k) {
			t.Errorf("image of round %d: %q %v", k, out.String(), err)
		}
		runs++
	}
	t.Logf("%d images kept, %d of them run after the storm", len(imgs), runs)
}
