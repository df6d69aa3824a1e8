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

// # Decisions
//
//   - State layout follows DESIGN.md: <root>/containers/<id>/config.json is a
//     container's record (configuration and state); it is replaced
//     atomically but not fsynced, since a container does not outlive the
//     host. Images, layers and references are fsynced (package layer).
//   - A container's output is kept in <root>/containers/<id>/container.log,
//     stdout and stderr interleaved as written, rotated by size
//     (ContainerConfig.LogMaxSize, LogMaxFiles). A detached container's
//     supervisor writes the file itself, so its log is not rotated.
//   - Names resolve between containers of a user-defined network through
//     /etc/hosts files that package netdev rewrites in place; there is no
//     embedded DNS server. The default network does not resolve names, as
//     Docker's default bridge.
//   - Exit status: ExitCode is the process's code, or 128+n when signal n
//     killed it; a command that cannot be found or run fails Start with an
//     *ExitError of 127 or 126, as `docker run` exits.
//   - New removes what a crashed owner left: containers recorded as running
//     whose supervisor is gone are marked exited and their cgroups and
//     network endpoints removed; half-created containers are removed.
//   - Not yet: user-namespace remapping of containers (package namespace
//     supports id mappings; ContainerConfig does not expose them), health
//     checks (Image.Healthcheck is read, nothing runs it), restart policies.
