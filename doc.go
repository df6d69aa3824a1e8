// Package berth runs Linux containers inside the calling Go program, with no
// daemon and no cgo.
//
// A Runtime owns a root directory: it pulls images from any OCI/Docker
// registry into a layered store, creates containers from them, starts their
// processes in fresh namespaces under cgroup limits, and wires them into
// bridge networks. The API follows os/exec: plain structs with useful zero
// values, ctx first on every call that can block, io.Reader/io.Writer for
// stdio, and errors that wrap a fixed set of kinds (ErrNotFound, ErrInvalid,
// ...) for errors.Is.
//
//	rt, err := berth.New(berth.Config{Root: "/var/lib/berth"})
//	img, err := rt.Pull(ctx, "alpine:3.20", berth.PullOptions{})
//	c, err := rt.Create(ctx, berth.ContainerConfig{Image: img, Cmd: []string{"echo", "hi"}, Stdout: os.Stdout})
//	err = c.Start(ctx)
//	st, err := c.Wait(ctx)
//	err = c.Delete(ctx)
//
// # The re-exec hook
//
// A container's init is this same program, re-executed with argv[0]
// "berth-init" (see package namespace for why Go needs that). The hook runs
// from package initialisation; programs that want it explicit call Init as
// the first statement of main.
//
// # Lifetime
//
// A container dies with the program that created it, unless it was created
// Detached: its supervisor then keeps running and a later process (the CLI)
// reaches it through a control socket under the run directory.
package berth
