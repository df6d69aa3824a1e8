//go:build linux

package cgroup_test

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/berthrt/berth/cgroup"
)

// A process under --memory 256m --cpus 1.5 --pids-limit 100, with its
// usage sampled and everything removed at the end.
func Example() {
	ctx := context.Background()
	cg, err := cgroup.New(ctx, cgroup.Config{
		Name: "example",
		Resources: cgroup.Resources{
			Memory:    256 << 20,
			NanoCPUs:  1.5e9,
			PidsLimit: 100,
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cg.Delete(ctx)

	cmd := exec.Command("sleep", "1")
	if fd, err := cg.FD(); err == nil {
		// cgroup v2: the process starts inside the group.
		cmd.SysProcAttr = cgroupFD(fd)
	}
	if err := cmd.Start(); err != nil {
		fmt.Println(err)
		return
	}
	if cmd.SysProcAttr == nil {
		// v1 or hybrid: move it in (a container init waits for this).
		cg.Add(cmd.Process.Pid)
	}
	for s := range cg.Watch(ctx, 500*time.Millisecond) {
		fmt.Println(s.Memory.Usage, s.CPU.Total, s.Pids.Current)
		if s.Pids.Current == 0 {
			break
		}
	}
	cmd.Wait()
	fmt.Println("OOM killed:", cg.OOMKilled())
}
