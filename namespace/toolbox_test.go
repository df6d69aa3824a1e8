//go:build linux

package namespace

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
)

// The same checks as the busybox tests, with the repository's static toolbox
// binary as the rootfs (no shell: one applet per process).

func toolboxConfig(t *testing.T, args ...string) *Config {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	toolboxtest.Rootfs(t, dir)
	t.Cleanup(func() { assertNoMounts(t, dir) })
	return &Config{ID: "toolbox", RootDir: dir, Hostname: "tb", Process: ProcessConfig{Args: args, Env: []string{"PATH=/bin"}}}
}

func TestToolboxCaps(t *testing.T) {
	r := run(t, toolboxConfig(t, "caps"), nil)
	if capLine(r.stdout, "CapEff") != "00000000a80425fb" || capLine(r.stdout, "CapBnd") != "00000000a80425fb" {
		t.Fatalf("root:\n%s%s", r.stdout, r.stderr)
	}
	cfg := toolboxConfig(t, "caps")
	cfg.Process.User = "tester"
	r = run(t, cfg, nil)
	if capLine(r.stdout, "CapEff") != "0000000000000000" || capLine(r.stdout, "CapBnd") != "00000000a80425fb" {
		t.Fatalf("tester:\n%s%s", r.stdout, r.stderr)
	}
	cfg = toolboxConfig(t, "id")
	cfg.Process.User = "tester"
	if r := run(t, cfg, nil); !strings.Contains(r.stdout, "uid=1000(tester) gid=1000(tester)") || !strings.Contains(r.stdout, "2000(extra)") {
		t.Fatalf("id: %q %q", r.stdout, r.stderr)
	}
}

func TestToolboxStopIgnoringTerm(t *testing.T) {
	var out testutil.Buffer
	c := startT(t, toolboxConfig(t, "ignore-term"), Stdio{Stdout: &out})
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SIGTERM was not ignored: %v", err)
	}
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Wait(context.Background()); err != nil || st.Code != 137 {
		t.Fatalf("after SIGKILL: %v %v", st, err)
	}
}

func TestToolboxReapsOrphans(t *testing.T) {
	c := startT(t, toolboxConfig(t, "sleep", "100"), Stdio{})
	ctx := context.Background()
	p, err := c.Exec(ctx, ProcessConfig{Args: []string{"orphan", "5", "0.01"}}, Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(ctx); err != nil || st.Code != 0 {
		t.Fatal(st, err)
	}
	time.Sleep(300 * time.Millisecond)
	var out bytes.Buffer
	p, err = c.Exec(ctx, ProcessConfig{Args: []string{"ps"}}, Stdio{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "Z" {
			t.Errorf("zombie: %s\n%s", line, out.String())
		}
	}
}

func TestToolboxTerminal(t *testing.T) {
	cfg := toolboxConfig(t, "isatty")
	cfg.Process.Terminal = true
	var out testutil.Buffer
	c := startT(t, cfg, Stdio{Stdout: &out})
	if st, err := c.Wait(context.Background()); err != nil || st.Code != 0 || !strings.Contains(out.String(), "stdin=tty") || !strings.Contains(out.String(), "stdout=tty") {
		t.Fatalf("%v %v %q", st, err, out.String())
	}
	cfg = toolboxConfig(t, "isatty")
	if r := run(t, cfg, nil); !strings.Contains(r.stdout, "stdout=notty") {
		t.Fatalf("isatty without a terminal: %+v", r)
	}
}
