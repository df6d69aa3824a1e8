//go:build linux

package namespace_test

import (
	"context"
	"fmt"
	"os"

	"github.com/berthrt/berth/namespace"
	"github.com/berthrt/berth/namespace/seccomp"
)

// A program that starts containers calls namespace.Init first in main (or
// relies on the package's init function); the container's init is this
// same binary.
func Example() {
	namespace.Init()

	ctx := context.Background()
	c, err := namespace.Start(ctx, &namespace.Config{
		ID:       "example",
		Hostname: "example",
		RootDir:  "/var/lib/example/rootfs", // an unpacked image
		Process: namespace.ProcessConfig{
			Args: []string{"sh", "-c", "echo hello from $(hostname)"},
			Env:  []string{"PATH=/bin:/usr/bin"},
		},
		Seccomp: seccomp.DefaultProfile(),
	}, namespace.Stdio{Stdout: os.Stdout, Stderr: os.Stderr}, namespace.StartOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	st, err := c.Wait(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println("exit status", st.Code)
}

// Exec runs another process in a running container, through its supervisor.
func ExampleContainer_Exec() {
	var c *namespace.Container // from Start or Attach
	ctx := context.Background()
	p, err := c.Exec(ctx, namespace.ProcessConfig{Args: []string{"ps"}}, namespace.Stdio{Stdout: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	st, _ := p.Wait(ctx)
	fmt.Println("ps exited with", st.Code)
}
