//go:build linux

package berth_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
	c, err := rt.Create(ctx, berth.ContainerConfig{Image: img, Cmd: []string{"spew", "300000"}, NetworkMode: "none",
		LogMaxSize: 100000, LogMaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
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
