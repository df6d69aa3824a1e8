//go:build linux

package berth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthrt/berth"
)

func TestTTYAndStdin(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"isatty"}, TTY: true})
	if err != nil || !strings.Contains(out, "stdout=tty") {
		t.Errorf("with a TTY: %q %v", out, err)
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"isatty"}})
	if err != nil || !strings.Contains(out, "stdout=notty") {
		t.Errorf("without a TTY: %q %v", out, err)
	}
	// stdin reaches the process, and its end is the process's EOF.
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"cat"}, Stdin: strings.NewReader("through stdin\n")})
	if err != nil || out != "through stdin\n" {
		t.Errorf("stdin: %q %v", out, err)
	}
}

func TestLogRotation(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"spew", "300000"}, NetworkMode: "none",
		LogMaxSize: 100000, LogMaxFiles: 2})
	if _, err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Logs(ctx, berth.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if len(b) > 200000 || len(b) < 100000 {
		t.Errorf("rotated logs hold %d bytes, want at most 2 files of 100000", len(b))
	}
	files, _ := filepath.Glob(filepath.Join(rt.Root(), "containers", c.ID(), "container.log*"))
	if len(files) != 2 {
		t.Errorf("log files: %v", files)
	}
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Size() > 100000 {
			t.Errorf("%s is %d bytes", f, fi.Size())
		}
	}
}

func TestConcurrentContainers(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"echo", fmt.Sprint(i)}})
			if err != nil || out != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Errorf("container %d: %q %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cs, _ := rt.Containers(context.Background(), true); len(cs) != 0 {
		t.Errorf("%d containers left", len(cs))
	}
}

func TestPublishAllExposedPorts(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	base := toolboxImage(t, rt)
	c0, err := rt.Create(ctx, berth.ContainerConfig{Image: base, NetworkMode: "none"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := base.Config.Config
	cfg.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	img, err := c0.Commit(ctx, berth.CommitOptions{Ref: "berth-test/exposed:1", Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	c0.Delete(ctx)
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"http", "-addr", ":8080"}, PublishAll: true})
	t.Cleanup(func() { c.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
	info, _ := c.Inspect(ctx)
	if len(info.NetworkSettings.Ports) != 1 || info.NetworkSettings.Ports[0].ContainerPort != 8080 || info.NetworkSettings.Ports[0].HostPort == 0 {
		t.Fatalf("-P ports: %+v", info.NetworkSettings.Ports)
	}
	port := info.NetworkSettings.Ports[0].HostPort
	var gw string
	for _, n := range info.NetworkSettings.Networks {
		gw = n.Gateway
	}
	for _, host := range []string{"127.0.0.1", gw} {
		url := fmt.Sprintf("http://%s:%d/echo?msg=published", host, port)
		var body string
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", url, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if body != "published" {
			t.Errorf("GET %s: %q", url, body)
		}
	}
}
