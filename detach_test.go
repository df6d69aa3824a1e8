//go:build linux

package berth_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/berthrt/berth"
)

func TestDetachedReachableFromAnotherRuntime(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx := context.Background()
	c := startContainer(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"sleep", "100"}, NetworkMode: "none", Detached: true})
	rt2, err := berth.New(berth.Config{Root: rt.Root()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close()
	c2, err := rt2.Container(ctx, c.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !c2.State().Running {
		t.Fatalf("detached container not running from another runtime: %+v", c2.State())
	}
	var out bytes.Buffer
	p, err := c2.Exec(ctx, berth.ExecConfig{Cmd: []string{"echo", "attached"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(ctx); code != 0 || err != nil || out.String() != "attached\n" {
		t.Fatalf("exec: %d %v %q", code, err, out.String())
	}
	if err := c2.Stop(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if st := c2.State(); st.Running || st.ExitCode != 143 {
		t.Errorf("after stop: %+v", st)
	}
}
