//go:build linux

package berth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/ids"
	"github.com/berthrt/berth/namespace"
	"golang.org/x/sys/unix"
)

// Start starts the container's process in fresh namespaces, under its
// cgroup limits and on its networks. It returns once the process runs (or
// failed to: a command that is not found gives an *ExitError with code 127,
// one that cannot be executed 126).
func (c *Container) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec.State.Running {
		return fmt.Errorf("start container %s: %w", ids.Short(c.id), ErrRunning)
	}
	if err := c.startLocked(ctx); err != nil {
		return fmt.Errorf("start container %s: %w", ids.Short(c.id), err)
	}
	return nil
}

func (c *Container) startLocked(ctx context.Context) (err error) {
	rt := c.rt
	cfg := &c.rec.Config
	snap, err := rt.store.Snapshotter()
	if err != nil {
		return err
	}
	rootfs, err := snap.Mounts(ctx, c.id)
	if err != nil {
		return err
	}
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()

	parent := cfg.CgroupParent
	if parent == "" {
		parent = rt.cfg.CgroupParent
	}
	res := cfg.Resources
	if cfg.Privileged && res.Devices == nil {
		res.Devices = cgroup.AllowAllDevices()
	}
	if len(cfg.Devices) > 0 && !cfg.Privileged {
		rules, err := deviceRules(cfg.Devices)
		if err != nil {
			return err
		}
		if res.Devices == nil {
			res.Devices = cgroup.DefaultDevices()
		}
		res.Devices = append(append([]cgroup.DeviceRule{}, res.Devices...), rules...)
	}
	cg, err := cgroup.New(ctx, cgroup.Config{Parent: parent, Name: c.id, Resources: res})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cg.Kill(ctx)
		_ = cg.Delete(ctx)
	})

	nsCfg, err := c.namespaceConfig(ctx, rootfs)
	if nsCfg != nil && nsCfg.ControlDir != "" {
		cleanups = append(cleanups, func() { _ = os.RemoveAll(nsCfg.ControlDir) })
	}
	if err != nil {
		return err
	}
	stdio, logw, err := c.stdio()
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { logw.Close() })

	net, err := c.networkPlan(ctx, nsCfg)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { net.undo(context.Background()) })

	fd, fdErr := cg.FD()
	if fdErr != nil {
		fd = -1
	}
	opts := namespace.StartOptions{
		CgroupFD: fd,
		Spare:    !rt.cfg.NoSpareInit,
		Prestart: func(pid int) error {
			if fd < 0 {
				if err := cg.Add(pid); err != nil {
					return err
				}
			}
			return net.attach(ctx, pid)
		},
	}
	ns, err := namespace.Start(ctx, nsCfg, stdio, opts)
	if err != nil {
		var se *namespace.SetupError
		if errors.As(err, &se) && (se.Code == 126 || se.Code == 127) {
			return errors.Join(err, &ExitError{Code: se.Code})
		}
		return err
	}
	c.ns, c.cg, c.logw = ns, cg, logw
	c.done = make(chan struct{})
	c.rec.Endpoints = net.endpoints
	c.rec.ControlDir = nsCfg.ControlDir
	c.rec.Owner = os.Getpid()
	c.rec.State = State{Status: StatusRunning, Running: true, Pid: ns.Pid(), StartedAt: time.Now().UTC()}
	if err := c.save(); err != nil {
		_ = ns.Signal(syscall.SIGKILL)
		return err
	}
	rt.mu.Lock()
	rt.live[c.id] = c
	rt.mu.Unlock()
	go c.reap(ns)
	return nil
}

// reap waits for the container's process and tears down what it used.
func (c *Container) reap(ns *namespace.Container) {
	st, err := ns.Wait(context.Background())
	if err != nil {
		// The connection to the supervisor broke without a status: if the
		// supervisor still runs (a detached container whose handle was
		// closed), the container has not exited.
		c.mu.Lock()
		alive := processAlive(c.rec.State.Pid)
		if alive && c.rec.Config.Detached {
			c.ns = nil
			if c.done != nil {
				close(c.done)
				c.done = nil
			}
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		st = namespace.ExitStatus{Code: 137, Signal: syscall.SIGKILL}
	}
	c.mu.Lock()
	c.teardownLocked(context.Background(), st, true)
	c.mu.Unlock()
}

// teardownLocked records the exit and removes the cgroup and network
// endpoints of a container that has stopped.
func (c *Container) teardownLocked(ctx context.Context, st namespace.ExitStatus, live bool) {
	cg := c.cg
	if cg == nil {
		parent := c.rec.Config.CgroupParent
		if parent == "" {
			parent = c.rt.cfg.CgroupParent
		}
		cg, _ = cgroup.Load(cgroup.Config{Parent: parent, Name: c.id})
	}
	oom := false
	if cg != nil {
		oom = cg.OOMKilled()
		// The supervisor's exit killed the pid namespace; only a process
		// that escaped it (none should) needs the slower kill-all.
		if procs, _ := cg.Procs(); len(procs) > 0 {
			kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = cg.Kill(kctx)
			cancel()
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := cg.Delete(dctx); err != nil {
			c.rt.log.Warn("remove cgroup", "container", c.id, "err", err)
		}
		cancel()
	}
	for _, ep := range c.rec.Endpoints {
		if err := c.rt.net.Detach(ctx, ep); err != nil {
			c.rt.log.Warn("detach network", "container", c.id, "network", ep.Network, "err", err)
		}
	}
	c.rec.Endpoints = nil
	if c.ns != nil {
		_ = c.ns.Close()
	}
	if c.logw != nil {
		c.logw.Close()
		c.logw = nil
	}
	if c.rec.ControlDir != "" {
		_ = os.RemoveAll(c.rec.ControlDir)
		c.rec.ControlDir = ""
	}
	c.rec.State.Status = StatusExited
	c.rec.State.Running = false
	c.rec.State.Paused = false
	c.rec.State.Pid = 0
	c.rec.State.ExitCode = st.Code
	c.rec.State.OOMKilled = oom
	c.rec.State.FinishedAt = time.Now().UTC()
	c.ns, c.cg = nil, nil
	if err := c.save(); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.rt.log.Warn("save container state", "container", c.id, "err", err)
	}
	c.rt.mu.Lock()
	delete(c.rt.live, c.id)
	c.rt.mu.Unlock()
	if c.done != nil {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
}

// Wait waits for the container's process to end and returns its final
// state (ExitCode is 128+n when it was killed by signal n). A container
// that is not running returns its last state at once.
func (c *Container) Wait(ctx context.Context) (State, error) {
	c.mu.Lock()
	done := c.done
	running := c.rec.State.Running
	c.mu.Unlock()
	if !running || done == nil {
		return c.State(), nil
	}
	select {
	case <-done:
		return c.State(), nil
	case <-ctx.Done():
		return c.State(), ctx.Err()
	}
}

// Signal sends sig to the container's main process.
func (c *Container) Signal(sig syscall.Signal) error {
	c.mu.Lock()
	ns := c.ns
	c.mu.Unlock()
	if ns == nil {
		return fmt.Errorf("signal container %s: %w", ids.Short(c.id), ErrNotRunning)
	}
	return ns.Signal(sig)
}

// Kill ends every process of the container at once (SIGKILL to the
// cgroup) and waits for it to be torn down.
func (c *Container) Kill(ctx context.Context) error {
	c.mu.Lock()
	ns, cg := c.ns, c.cg
	c.mu.Unlock()
	if ns == nil {
		return fmt.Errorf("kill container %s: %w", ids.Short(c.id), ErrNotRunning)
	}
	_ = ns.Signal(syscall.SIGKILL)
	if cg != nil {
		_ = cg.Thaw(ctx)
		_ = cg.Kill(ctx)
	}
	_, err := c.Wait(ctx)
	return err
}

// Stop sends the stop signal (the config's, else the image's, else
// SIGTERM), waits up to timeout (zero: the config's StopTimeout, else 10 s)
// and then kills the container.
func (c *Container) Stop(ctx context.Context, timeout time.Duration) error {
	if !c.State().Running {
		return nil
	}
	if timeout <= 0 {
		timeout = c.rec.Config.StopTimeout
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sig, err := ParseSignal(c.rec.StopSignal)
	if err != nil {
		sig = syscall.SIGTERM
	}
	if err := c.Signal(sig); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = c.Wait(wctx)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := c.Kill(ctx); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return nil
}

// DeleteOptions configure Delete.
type DeleteOptions struct {
	// Force kills a running container first; without it, deleting a
	// running container is refused with ErrRunning.
	Force bool
	// RemoveVolumes is accepted for Docker compatibility; named volumes are
	// kept regardless (remove them with RemoveVolume).
	RemoveVolumes bool
}

// Delete removes the container: its writable layer, logs and record.
func (c *Container) Delete(ctx context.Context, opts ...DeleteOptions) error {
	var o DeleteOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if c.State().Running {
		if !o.Force {
			return fmt.Errorf("delete container %s: %w", ids.Short(c.id), ErrRunning)
		}
		if err := c.Kill(ctx); err != nil && !errors.Is(err, ErrNotRunning) {
			return fmt.Errorf("delete container %s: %w", ids.Short(c.id), err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	snap, err := c.rt.store.Snapshotter()
	if err != nil {
		return err
	}
	// The record goes first, so that a crash from here on leaves a
	// directory without a record (which New removes, snapshot and all),
	// never a record whose snapshot is gone. It comes back if the
	// snapshot cannot be removed.
	record, removing := filepath.Join(c.dir, "config.json"), filepath.Join(c.dir, "removing.json")
	if err := os.Rename(record, removing); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete container %s: %w", ids.Short(c.id), err)
	}
	if err := snap.Remove(ctx, c.id); err != nil && !errors.Is(err, ErrNotFound) {
		_ = os.Rename(removing, record)
		return fmt.Errorf("delete container %s: %w", ids.Short(c.id), err)
	}
	if err := c.rt.store.Unref(ctx, "container:"+c.id); err != nil {
		return fmt.Errorf("delete container %s: %w", ids.Short(c.id), err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("delete container %s: %w", ids.Short(c.id), err)
	}
	return nil
}

// Run creates and starts a container, waits for it and deletes it. A
// non-zero exit is returned as an *ExitError along with the final state.
func (rt *Runtime) Run(ctx context.Context, cfg ContainerConfig) (State, error) {
	c, err := rt.Create(ctx, cfg)
	if err != nil {
		return State{}, err
	}
	defer c.Delete(context.WithoutCancel(ctx), DeleteOptions{Force: true})
	if err := c.Start(ctx); err != nil {
		return State{}, err
	}
	st, err := c.Wait(ctx)
	if err != nil {
		_ = c.Kill(context.WithoutCancel(ctx))
		return st, err
	}
	if st.ExitCode != 0 {
		return st, &ExitError{Code: st.ExitCode, OOMKilled: st.OOMKilled}
	}
	return st, nil
}

// stdio wires the caller's stdio and the container's log.
func (c *Container) stdio() (namespace.Stdio, io.Closer, error) {
	cfg := &c.cfg
	logPath := filepath.Join(c.dir, "container.log")
	if c.rec.Config.Detached {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return namespace.Stdio{}, nil, err
		}
		st := namespace.Stdio{Stdin: cfg.Stdin, Stdout: f, Stderr: f}
		return st, f, nil
	}
	lw, err := newRotatingLog(logPath, c.rec.Config.LogMaxSize, c.rec.Config.LogMaxFiles)
	if err != nil {
		return namespace.Stdio{}, nil, err
	}
	st := namespace.Stdio{Stdin: cfg.Stdin, Stdout: teeWriter(cfg.Stdout, lw), Stderr: teeWriter(cfg.Stderr, lw)}
	if c.rec.Config.TTY {
		st.Stderr = nil
	}
	return st, lw, nil
}

func teeWriter(user io.Writer, log io.Writer) io.Writer {
	if user == nil {
		return log
	}
	return io.MultiWriter(&lenientWriter{w: user}, log)
}

// lenientWriter keeps the log going when the caller's writer fails.
type lenientWriter struct {
	w      io.Writer
	failed bool
}

func (l *lenientWriter) Write(p []byte) (int, error) {
	if !l.failed {
		if _, err := l.w.Write(p); err != nil {
			l.failed = true
		}
	}
	return len(p), nil
}

// deviceRules are the device cgroup rules that let a container use devs.
func deviceRules(devs []DeviceMapping) ([]cgroup.DeviceRule, error) {
	var out []cgroup.DeviceRule
	for _, d := range devs {
		var st unix.Stat_t
		if err := unix.Stat(d.PathOnHost, &st); err != nil {
			return nil, fmt.Errorf("device %s: %w", d.PathOnHost, ErrNotFound)
		}
		typ := 'c'
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
		case unix.S_IFBLK:
			typ = 'b'
		default:
			return nil, fmt.Errorf("device %s is not a device node: %w", d.PathOnHost, ErrInvalid)
		}
		perm := d.Permissions
		if perm == "" {
			perm = "rwm"
		}
		out = append(out, cgroup.DeviceRule{Allow: true, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))), Access: perm})
	}
	return out, nil
}
