//go:build linux

package berth

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/ids"
	"github.com/berthrt/berth/mount"
	"github.com/berthrt/berth/namespace"
	"github.com/berthrt/berth/netdev"
)

// ExecConfig describes a process to start in a running container.
type ExecConfig struct {
	// Cmd is the command and its arguments. Required.
	Cmd []string
	// Env is added to the container's environment.
	Env []string
	// User replaces the container's user. WorkingDir its working directory.
	User       string
	WorkingDir string
	// TTY runs the process on a new pseudo-terminal.
	TTY bool
	// Stdin, Stdout, Stderr as in exec.Cmd; nil is /dev/null.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Process is a process started by Exec.
type Process struct {
	p *namespace.Process
}

// Pid is the host pid of the process.
func (p *Process) Pid() int { return p.p.Pid() }

// Wait waits for the process to exit and returns its exit code (128+n
// for signal n).
func (p *Process) Wait(ctx context.Context) (int, error) {
	st, err := p.p.Wait(ctx)
	return st.Code, err
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.p.Signal(sig) }

// Resize sets the size of the process's terminal.
func (p *Process) Resize(width, height uint16) error { return p.p.Resize(width, height) }

// Exec starts a process in the running container, with the container's
// namespaces, capabilities, seccomp filter and cgroup.
func (c *Container) Exec(ctx context.Context, cfg ExecConfig) (*Process, error) {
	c.mu.Lock()
	ns := c.ns
	env := c.rec.Env
	c.mu.Unlock()
	if ns == nil {
		return nil, fmt.Errorf("exec in %s: %w", ids.Short(c.id), ErrNotRunning)
	}
	if len(cfg.Cmd) == 0 {
		return nil, fmt.Errorf("exec in %s: no command: %w", ids.Short(c.id), ErrInvalid)
	}
	pc := namespace.ProcessConfig{
		Args:     cfg.Cmd,
		Env:      append(append([]string{}, env...), cfg.Env...),
		Cwd:      cfg.WorkingDir,
		User:     cfg.User,
		Terminal: cfg.TTY,
	}
	p, err := ns.Exec(ctx, pc, namespace.Stdio{Stdin: cfg.Stdin, Stdout: cfg.Stdout, Stderr: cfg.Stderr})
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", ids.Short(c.id), err)
	}
	return &Process{p: p}, nil
}

// Processes returns the host pids of the container's processes.
func (c *Container) Processes(ctx context.Context) ([]int, error) {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return nil, fmt.Errorf("processes of %s: %w", ids.Short(c.id), ErrNotRunning)
	}
	return cg.Procs()
}

// Resize sets the size of the main process's terminal.
func (c *Container) Resize(width, height uint16) error {
	c.mu.Lock()
	ns := c.ns
	c.mu.Unlock()
	if ns == nil {
		return ErrNotRunning
	}
	return ns.Resize(width, height)
}

// Pause freezes every process of the container.
func (c *Container) Pause(ctx context.Context) error {
	return c.freeze(ctx, true)
}

// Resume thaws a paused container.
func (c *Container) Resume(ctx context.Context) error {
	return c.freeze(ctx, false)
}

func (c *Container) freeze(ctx context.Context, on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cg == nil {
		return fmt.Errorf("pause %s: %w", ids.Short(c.id), ErrNotRunning)
	}
	var err error
	if on {
		err = c.cg.Freeze(ctx)
	} else {
		err = c.cg.Thaw(ctx)
	}
	if err != nil {
		return err
	}
	c.rec.State.Paused = on
	c.rec.State.Status = StatusRunning
	if on {
		c.rec.State.Status = StatusPaused
	}
	return c.save()
}

// Stats are a container's resource usage.
type Stats = cgroup.Stats

// Stats returns the container's current resource usage.
func (c *Container) Stats(ctx context.Context) (*Stats, error) {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return nil, fmt.Errorf("stats of %s: %w", ids.Short(c.id), ErrNotRunning)
	}
	return cg.Stats()
}

// Update changes the resource limits of the container (running or not).
func (c *Container) Update(ctx context.Context, r Resources) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cg != nil {
		if err := c.cg.Update(r); err != nil {
			return err
		}
	}
	c.rec.Config.Resources = r
	return c.save()
}

// Info is what Inspect reports, with Docker's field names.
type Info struct {
	ID              string
	Name            string
	Image           string
	ImageID         string
	Created         time.Time
	Path            string
	Args            []string
	State           State
	Config          ContainerConfig
	Mounts          []Mount
	NetworkSettings NetworkSettings
}

// NetworkSettings are a container's addresses and published ports.
type NetworkSettings struct {
	Networks map[string]EndpointInfo
	Ports    []PortMapping
}

// EndpointInfo is a container's address on one network.
type EndpointInfo struct {
	IPAddress  string
	Gateway    string
	MacAddress string
	Aliases    []string
}

// Inspect reports the container's configuration and state.
func (c *Container) Inspect(ctx context.Context) (*Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &c.rec
	info := &Info{
		ID: r.ID, Name: r.Name, Image: r.ImageName, ImageID: r.ImageID.String(),
		Created: r.Created, State: r.State, Config: r.Config, Mounts: r.Config.Mounts,
		NetworkSettings: NetworkSettings{Networks: map[string]EndpointInfo{}},
	}
	if len(r.Args) > 0 {
		info.Path, info.Args = r.Args[0], r.Args[1:]
	}
	for _, ep := range r.Endpoints {
		info.NetworkSettings.Networks[ep.Network] = endpointInfo(ep)
		info.NetworkSettings.Ports = append(info.NetworkSettings.Ports, ep.Ports...)
	}
	return info, nil
}

func endpointInfo(ep *netdev.Endpoint) EndpointInfo {
	return EndpointInfo{IPAddress: ep.IP.String(), Gateway: ep.Gateway.String(), MacAddress: ep.MAC.String(), Aliases: ep.Aliases}
}

// unmountQuiet detaches a mount, ignoring errors.
func unmountQuiet(target string) { _ = mount.UnmountAll(target, 2) }
