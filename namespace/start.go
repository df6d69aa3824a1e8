//go:build linux

package namespace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthrt/berth/errdefs"
	"golang.org/x/sys/unix"
)

// Stdio is the standard input and output of a process, as in exec.Cmd: nil
// means /dev/null; an *os.File is passed to the process as is; anything
// else is copied through a pipe. With a terminal, Stdin is copied to the
// pty (its end sends an end-of-file character) and the pty's output goes to
// Stdout.
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// StartOptions are the owner-side hooks of Start.
type StartOptions struct {
	// Prestart is called with the host pid of the supervisor once the
	// namespaces exist and before the container's process runs: berth joins
	// the cgroups and moves a veth into the network namespace here. An
	// error aborts the start. Nil does nothing.
	Prestart func(pid int) error
	// CgroupFD is an open cgroup v2 directory the supervisor is created in
	// (CLONE_INTO_CGROUP), which also lets the kernel create the cgroup
	// namespace with the right root. 0 or negative means none (the
	// cgroup namespace is then created by the init once Prestart is done).
	CgroupFD int
	// Spare lets this start use a spare init, one started ahead of need
	// with the same namespaces, and keeps one ready for the next start
	// (see DiscardSpares). It saves the exec and start-up of the init,
	// most of a start's time; the spare is an idle process of its own
	// until taken.
	Spare bool
}

// Container is a running container: a handle on its supervisor. All
// methods are safe for concurrent use.
type Container struct {
	id    string
	pid   int // host pid of the supervisor
	main  *Process
	proc  *os.Process // owner only: the supervisor, our child
	owner *conn       // owner only: the connection whose end kills the container
	ctl   string      // control socket path, "" without
	dir   string      // ControlDir
	mu    sync.Mutex

	detached bool
}

// Process is a process started in a container (the main one or by Exec).
type Process struct {
	c      *Container
	conn   *conn
	pid    int
	nspid  int
	master *os.File

	done   chan struct{}
	status ExitStatus
	err    error

	closeAfterWait []io.Closer
	copying        sync.WaitGroup
	stdinDone      chan struct{}
	reaped         func() (*os.ProcessState, error) // owner: wait for the supervisor process
}

// host facts, learnt once.
var hostOnce struct {
	sync.Once
	cg []cgroupMount
}

func hostCgroups() []cgroupMount {
	hostOnce.Do(func() {
		var st unix.Statfs_t
		if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return
		}
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			sep := -1
			for i, f := range fields {
				if f == "-" {
					sep = i
					break
				}
			}
			if sep < 0 || len(fields) < sep+4 || len(fields) < 5 {
				continue
			}
			mp, fstype := fields[4], fields[sep+1]
			if (fstype != "cgroup" && fstype != "cgroup2") || path.Dir(mp) != "/sys/fs/cgroup" {
				continue
			}
			var opts []string
			for _, o := range strings.Split(fields[sep+3], ",") {
				if o != "rw" && o != "ro" {
					opts = append(opts, o)
				}
			}
			if fstype == "cgroup2" {
				opts = nil
			}
			hostOnce.cg = append(hostOnce.cg, cgroupMount{Dir: path.Base(mp), Type: fstype, Options: strings.Join(opts, ",")})
		}
	})
	return hostOnce.cg
}

var lastCapOnce struct {
	sync.Once
	n int
}

func hostLastCap() int {
	lastCapOnce.Do(func() { lastCapOnce.n = lastCap() })
	return lastCapOnce.n
}

var cloneFlags = map[Namespace]uintptr{
	NamespaceMount: unix.CLONE_NEWNS, NamespacePID: unix.CLONE_NEWPID,
	NamespaceUTS: unix.CLONE_NEWUTS, NamespaceIPC: unix.CLONE_NEWIPC,
	NamespaceNet: unix.CLONE_NEWNET, NamespaceUser: unix.CLONE_NEWUSER,
	NamespaceCgroup: unix.CLONE_NEWCGROUP,
}

func (c *Config) validate() error {
	if c.RootDir == "" {
		return fmt.Errorf("container %s: no RootDir: %w", c.ID, errdefs.ErrInvalid)
	}
	if len(c.Process.Args) == 0 {
		return fmt.Errorf("container %s: no command: %w", c.ID, errdefs.ErrInvalid)
	}
	if !c.has(NamespaceMount) {
		return fmt.Errorf("container %s: the mount namespace is required: %w", c.ID, errdefs.ErrInvalid)
	}
	for _, n := range c.namespaces() {
		if _, ok := cloneFlags[n]; !ok {
			return fmt.Errorf("container %s: unknown namespace %q: %w", c.ID, n, errdefs.ErrInvalid)
		}
	}
	if err := c.validateMapRootfs(); err != nil {
		return err
	}
	if c.Detached && c.ControlDir == "" {
		return fmt.Errorf("container %s: a detached container needs a ControlDir: %w", c.ID, errdefs.ErrInvalid)
	}
	for _, rl := range c.Process.Rlimits {
		if _, ok := rlimitType(rl.Type); !ok {
			return fmt.Errorf("container %s: unknown rlimit %q: %w", c.ID, rl.Type, errdefs.ErrInvalid)
		}
	}
	if _, err := capMask(c.Process.Capabilities, len(capNames)); err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	for _, m := range c.Mounts {
		if m.IsBind() {
			if _, err := os.Stat(m.Source); err != nil {
				return fmt.Errorf("container %s: bind mount source %s: %w", c.ID, m.Source, errdefs.ErrNotFound)
			}
		}
	}
	for t, src := range c.Files {
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("container %s: file for %s: %w", c.ID, t, errdefs.ErrNotFound)
		}
	}
	if c.NetNS != "" {
		if _, err := os.Stat(c.NetNS); err != nil {
			return fmt.Errorf("container %s: network namespace %s: %w", c.ID, c.NetNS, errdefs.ErrNotFound)
		}
	}
	return nil
}

// stdioPlumbing turns a Stdio into the three files the process gets and
// the copying the caller does.
type stdioPlumbing struct {
	child   [3]*os.File // to send; nil means /dev/null
	closeMe []*os.File  // our copies of the child's ends, closed after sending
	copies  []func()    // output copiers, run after start
	stdin   func()      // input copier
	after   []io.Closer // closed when the process is done
}

func plumb(stdio Stdio, tty bool) (*stdioPlumbing, error) {
	p := &stdioPlumbing{}
	if tty {
		return p, nil
	}
	fail := func(err error) (*stdioPlumbing, error) {
		closeFiles(p.closeMe)
		for _, c := range p.after {
			c.Close()
		}
		return nil, err
	}
	switch r := stdio.Stdin.(type) {
	case nil:
	case *os.File:
		p.child[0] = r
	default:
		pr, pw, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		p.child[0] = pr
		p.closeMe = append(p.closeMe, pr)
		p.stdin = func() {
			_, _ = io.Copy(pw, r)
			pw.Close()
		}
	}
	for i, w := range []io.Writer{stdio.Stdout, stdio.Stderr} {
		switch w := w.(type) {
		case nil:
		case *os.File:
			p.child[i+1] = w
		default:
			if i == 1 && sameWriter(stdio.Stderr, stdio.Stdout) && p.child[1] != nil {
				p.child[2] = p.child[1]
				continue
			}
			pr, pw, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			p.child[i+1] = pw
			p.closeMe = append(p.closeMe, pw)
			p.after = append(p.after, pr)
			p.copies = append(p.copies, func() { _, _ = io.Copy(w, pr) })
		}
	}
	return p, nil
}

// sameWriter reports whether a and b are the same writer (one pipe then
// serves both, as in exec.Cmd); incomparable values are not.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

func (p *stdioPlumbing) files() ([]*os.File, [3]bool) {
	var fs []*os.File
	var have [3]bool
	for i, f := range p.child {
		if f != nil {
			fs = append(fs, f)
			have[i] = true
		}
	}
	return fs, have
}

// Start starts a container: it spawns this program's binary as the
// container's init (argv[0] "berth-init") in new namespaces, sends it cfg,
// calls opts.Prestart, and returns once the container's process runs. A
// failure of the init is a *SetupError naming the failing step (Code 127
// when the command is not found, 126 when it cannot be executed). ctx
// bounds the start only.
func Start(ctx context.Context, cfg *Config, stdio Stdio, opts StartOptions) (*Container, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if opts.CgroupFD == 0 {
		opts.CgroupFD = -1
	}
	tr := openTracer(os.Getenv(traceEnv), "owner")
	defer tr.close()
	tr.mark("start")

	var flags uintptr
	for _, n := range cfg.namespaces() {
		if n == NamespaceNet && cfg.NetNS != "" {
			continue
		}
		if n == NamespaceCgroup && opts.CgroupFD < 0 {
			continue // unshared by the init once Prestart has placed it
		}
		flags |= cloneFlags[n]
	}
	host := &hostInfo{CgroupV1: hostCgroups(), NewCgroupNS: flags&unix.CLONE_NEWCGROUP != 0, LastCap: hostLastCap(),
		MountFDs: flags&unix.CLONE_NEWUSER != 0}
	if tr != nil {
		host.Trace = tr.f.Name()
	}

	pl, err := plumb(stdio, cfg.Process.Terminal)
	if err != nil {
		return nil, err
	}
	var extra []*os.File
	var tmpClose []*os.File
	var ctlPath string
	if cfg.ControlDir != "" {
		if err := os.MkdirAll(cfg.ControlDir, 0o700); err != nil {
			return nil, cleanupStart(pl, tmpClose, err)
		}
		sf, err := os.OpenFile(path.Join(cfg.ControlDir, "status.json"), os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, cleanupStart(pl, tmpClose, err)
		}
		tmpClose = append(tmpClose, sf)
		extra = append(extra, sf)
		host.StatusFD = true
		ctlPath = path.Join(cfg.ControlDir, "control.sock")
		_ = os.Remove(ctlPath)
		lf, err := listenControl(ctlPath)
		if err != nil {
			return nil, cleanupStart(pl, tmpClose, err)
		}
		tmpClose = append(tmpClose, lf)
		extra = append(extra, lf)
		host.ListenFD = true
	}
	sfiles, have := pl.files()
	extra = append(extra, sfiles...)
	sendCfg := cfg
	if cfg.Seccomp != nil {
		prog, err := compileSeccomp(cfg.Seccomp, cfg.capabilities())
		if err != nil {
			return nil, cleanupStart(pl, tmpClose, fmt.Errorf("container %s: seccomp: %w", cfg.ID, err))
		}
		if prog != nil {
			host.SeccompProg = prog
			c := *cfg
			c.Seccomp = nil
			sendCfg = &c
		}
	}
	tr.mark("config ready")
	msg := &message{Op: "init", Config: sendCfg, Host: host, Stdio: have}
	spareKey, spareOK := spareFlags(cfg, flags, opts)
	var sp *spareInit
	if spareOK {
		sp = takeSpare(spareKey)
	}
	proc, owner, spare, err := launchInit(cfg, flags, opts.CgroupFD, sp, msg, extra)
	closeFiles(tmpClose)
	closeFiles(pl.closeMe)
	if err != nil {
		pl.abort()
		return nil, fmt.Errorf("container %s: starting the init: %w", cfg.ID, err)
	}
	pid := proc.Pid
	if spare {
		tr.mark("spare taken")
	} else {
		tr.mark("init spawned")
	}

	c := &Container{id: cfg.ID, pid: pid, proc: proc, owner: owner, ctl: ctlPath, dir: cfg.ControlDir, detached: cfg.Detached}
	abort := func(err error) (*Container, error) {
		_ = proc.Kill()
		owner.Close()
		_, _ = proc.Wait()
		pl.abort()
		return nil, err
	}

	if spare && opts.CgroupFD >= 0 {
		if err := joinCgroupFD(opts.CgroupFD, pid); err != nil {
			return abort(fmt.Errorf("container %s: moving the init into its cgroup: %w", cfg.ID, err))
		}
	}
	if host.MountFDs {
		if err := sendMounts(owner, cfg, pid); err != nil {
			if serr := pendingError(owner, cfg.ID); serr != nil {
				return abort(serr)
			}
			return abort(fmt.Errorf("container %s: mounts for the user namespace: %w", cfg.ID, err))
		}
		tr.mark("mounts sent")
	}
	if opts.Prestart != nil {
		if err := opts.Prestart(pid); err != nil {
			// The init may have failed first, and that is the better error.
			if serr := pendingError(owner, cfg.ID); serr != nil {
				return abort(serr)
			}
			return abort(fmt.Errorf("container %s: prestart: %w", cfg.ID, err))
		}
	}
	if err := ctx.Err(); err != nil {
		return abort(err)
	}
	tr.mark("prestart done")
	if err := owner.send(&message{Op: "go"}); err != nil {
		if serr := pendingError(owner, cfg.ID); serr != nil {
			return abort(serr)
		}
		return abort(fmt.Errorf("container %s: init died: %w", cfg.ID, err))
	}

	// Wait for "started" (or "error"), bounded by ctx.
	stop := context.AfterFunc(ctx, func() { owner.setReadDeadline(time.Unix(1, 0)) })
	m, files, err := owner.recv()
	if errors.Is(err, unix.ECONNRESET) {
		// The init exited with our "go" unread; its error may still be queued.
		m, files, err = owner.recv()
	}
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return abort(ctx.Err())
		}
		werr := fmt.Errorf("container %s: init died before starting the process: %w", cfg.ID, err)
		return abort(werr)
	}
	owner.setReadDeadline(time.Time{})
	if m.Op == "error" && m.Err != nil {
		closeFiles(files)
		return abort(m.Err.err(cfg.ID))
	}
	if m.Op != "started" {
		closeFiles(files)
		return abort(fmt.Errorf("container %s: unexpected message %q from the init", cfg.ID, m.Op))
	}
	p := newProcess(c, owner, m, files)
	p.reaped = proc.Wait
	c.main = p
	p.startIO(stdio, pl)
	tr.mark("started")
	if spareOK {
		fillSpare(spareKey)
	}
	return c, nil
}

func (pl *stdioPlumbing) abort() {
	closeFiles(pl.closeMe)
	for _, c := range pl.after {
		c.Close()
	}
}

func cleanupStart(pl *stdioPlumbing, tmp []*os.File, err error) error {
	pl.abort()
	closeFiles(tmp)
	return err
}

// launchInit returns an init for cfg that has msg, its "init" message, with
// files: sp when it is not nil and still alive, else one spawned now with
// flags (cloned into the cgroup v2 directory cgroupFD when that is not
// negative).
func launchInit(cfg *Config, flags uintptr, cgroupFD int, sp *spareInit, msg *message, files []*os.File) (proc *os.Process, owner *conn, spare bool, err error) {
	if sp != nil {
		// A spare was cloned without a cgroup namespace: it makes one
		// once the owner has moved it into the container's cgroups.
		host := *msg.Host
		host.NewCgroupNS = false
		m := *msg
		m.Host = &host
		if err := sp.wake(); err == nil {
			if err := sp.owner.send(&m, files...); err == nil {
				return sp.proc, sp.owner, true, nil
			}
		}
		sp.end() // it died: spawn one
	}
	proc, owner, err = spawnInit(flags, cfg, cgroupFD, false)
	if err != nil {
		return nil, nil, false, err
	}
	if err := owner.send(msg, files...); err != nil {
		(&spareInit{proc: proc, owner: owner}).end()
		return nil, nil, false, fmt.Errorf("sending the container config: %w", err)
	}
	return proc, owner, false, nil
}

// spawnInit starts this binary as an init in new namespaces (flags), with
// the other end of the returned connection as its control socket. cfg,
// when not nil, gives the user namespace's id maps and a network
// namespace to join; spare marks an init started ahead of need.
func spawnInit(flags uintptr, cfg *Config, cgroupFD int, spare bool) (*os.Process, *conn, error) {
	exe, err := initBinary()
	if err != nil {
		return nil, nil, err
	}
	null, err := devNull()
	if err != nil {
		return nil, nil, err
	}
	ours, theirs, err := socketPair()
	if err != nil {
		return nil, nil, err
	}
	defer theirs.Close()
	owner, err := connFromFile(ours)
	if err != nil {
		return nil, nil, err
	}
	owner.wire = true // the init is this binary: see conn.wire
	args := []string{initArg0}
	if spare {
		args = append(args, spareArg)
		if flags&unix.CLONE_NEWNET != 0 {
			args = append(args, spareNewNet)
		}
	}
	sys := &syscall.SysProcAttr{
		Cloneflags: flags,
		// Its own session: the owner's terminal signals are not the container's.
		Setsid: true,
	}
	if cgroupFD >= 0 {
		sys.UseCgroupFD = true
		sys.CgroupFD = cgroupFD
	}
	if flags&unix.CLONE_NEWUSER != 0 && cfg != nil {
		for _, m := range cfg.UIDMappings {
			sys.UidMappings = append(sys.UidMappings, syscall.SysProcIDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
		}
		for _, m := range cfg.GIDMappings {
			sys.GidMappings = append(sys.GidMappings, syscall.SysProcIDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
		}
		sys.GidMappingsEnableSetgroups = true
		// Become the namespace's root before the exec, so that the init
		// keeps its capabilities in the new user namespace.
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	attr := &os.ProcAttr{
		// One P is plenty for a supervisor; skip the runtime's cgroup probing.
		Env:   []string{"GOMAXPROCS=1", "GODEBUG=containermaxprocs=0,updatemaxprocs=0"},
		Files: []*os.File{null, null, null, theirs, exe}, // initExeFD is 4
		Sys:   sys,
	}
	var proc *os.Process
	if cfg != nil && cfg.NetNS != "" {
		proc, err = startInNetNS(initExePath, args, attr, cfg.NetNS)
	} else {
		proc, err = os.StartProcess(initExePath, args, attr)
	}
	if err != nil {
		owner.Close()
		return nil, nil, err
	}
	return proc, owner, nil
}

// devNull is /dev/null, opened once: the stdin, stdout and stderr of every
// init (its container's stdio arrives over the control socket).
var devNull = sync.OnceValues(func() (*os.File, error) {
	return os.OpenFile(os.DevNull, os.O_RDWR|syscall.O_CLOEXEC, 0)
})

// pendingError returns the init's setup error if it sent one already.
func pendingError(owner *conn, id string) error {
	owner.setReadDeadline(time.Now().Add(200 * time.Millisecond))
	defer owner.setReadDeadline(time.Time{})
	m, files, err := owner.recv()
	if errors.Is(err, unix.ECONNRESET) {
		m, files, err = owner.recv()
	}
	closeFiles(files)
	if err == nil && m.Op == "error" && m.Err != nil {
		return m.Err.err(id)
	}
	return nil
}

// startInNetNS starts exe from a thread that joined the network namespace
// at nsPath. setns is per thread: the thread stays locked and dies with its
// goroutine, so no other goroutine ever runs in that namespace.
func startInNetNS(exe string, args []string, attr *os.ProcAttr, nsPath string) (*os.Process, error) {
	type result struct {
		proc *os.Process
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		f, err := os.Open(nsPath)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{nil, fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		proc, err := os.StartProcess(exe, args, attr)
		done <- result{proc, err}
	}()
	r := <-done
	return r.proc, r.err
}

func newProcess(c *Container, cn *conn, m *message, files []*os.File) *Process {
	p := &Process{c: c, conn: cn, nspid: m.Pid, done: make(chan struct{})}
	if m.PidFD && len(files) > 0 {
		p.pid = pidfdPid(files[0])
		files[0].Close()
		files = files[1:]
	}
	if m.SelfFD && len(files) > 0 {
		c.pid = pidfdPid(files[0])
		files[0].Close()
		files = files[1:]
	}
	if m.Master && len(files) > 0 {
		p.master = files[0]
		files = files[1:]
	}
	closeFiles(files)
	return p
}

// pidfdPid reads the pid a pidfd refers to, in our pid namespace.
func pidfdPid(f *os.File) int {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			if n > 0 {
				return n
			}
		}
	}
	return 0
}

// startIO starts copying stdio and the goroutine that waits for the exit.
func (p *Process) startIO(stdio Stdio, pl *stdioPlumbing) {
	if p.master != nil {
		m := p.master
		out := stdio.Stdout
		if out == nil {
			out = io.Discard // drain, or the process blocks on a full pty
		}
		p.copying.Add(1)
		go func() {
			defer p.copying.Done()
			_, _ = io.Copy(out, m)
		}()
		if stdio.Stdin != nil {
			go func() {
				_, _ = io.Copy(m, stdio.Stdin)
				// End of input: an EOF character (VEOF, ^D) for the line discipline.
				_, _ = m.Write([]byte{4})
			}()
		}
	} else if pl != nil {
		for _, f := range pl.copies {
			p.copying.Add(1)
			go func() {
				defer p.copying.Done()
				f()
			}()
		}
		if pl.stdin != nil {
			go pl.stdin()
		}
		for _, c := range pl.after {
			p.closeAfterWait = append(p.closeAfterWait, c)
		}
	}
	go p.waitLoop()
}

func (p *Process) waitLoop() {
	var got bool
	for {
		m, files, err := p.conn.recv()
		closeFiles(files)
		if err != nil {
			break
		}
		if m.Op == "exit" && m.Status != nil {
			p.status, got = *m.Status, true
			if p.reaped == nil {
				break // exec'd process: done; owner: wait for the init's exit
			}
		}
	}
	if p.reaped != nil {
		tr := openTracer(os.Getenv(traceEnv), "owner")
		tr.mark("status received")
		ps, err := p.reaped()
		var st ExitStatus
		if err == nil {
			ws, _ := ps.Sys().(syscall.WaitStatus)
			st = statusFromWait(ws)
			if tr != nil {
				tr.mark("init reaped initcpu=" + strconv.FormatInt(cpuMicros(ps.SysUsage()), 10))
			}
		}
		tr.close()
		switch {
		case got:
		case err != nil:
			p.err = err
		case st.Signal != 0:
			// The init was killed (berth's cgroup kill-all does that): the
			// container died with it.
			p.status = st
		case st.Code == 137:
			// The init killed the container because its owner's end closed.
			p.status, p.status.OwnerGone = st, true
		default:
			p.err = fmt.Errorf("container %s: the container's init exited with status %d without reporting the process's: %w", p.c.id, st.Code, errdefs.ErrUnavailable)
		}
	} else if !got {
		if p.c.main == p {
			if st, ok := p.c.readStatus(); ok {
				p.status = st
			} else {
				p.err = fmt.Errorf("container %s: the container's init exited before reporting the status: %w", p.c.id, errdefs.ErrUnavailable)
			}
		} else {
			// The init is gone, and with it (PID namespace) every process.
			p.status = ExitStatus{Code: 128 + int(syscall.SIGKILL), Signal: syscall.SIGKILL}
		}
	}
	p.copying.Wait()
	if p.master != nil {
		p.master.Close()
	}
	for _, c := range p.closeAfterWait {
		c.Close()
	}
	// The init is gone (or this process's connection is done with): the
	// connection has nothing more to say.
	p.conn.Close()
	close(p.done)
}

// Pid returns the host pid of the process (0 if unknown).
func (p *Process) Pid() int { return p.pid }

// Wait waits for the process to exit and for its output to be copied. A
// process that exits with a non-zero status is not an error: check
// ExitStatus.Code. The error is ctx's, or says the supervisor vanished
// without a status.
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.err
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Done is closed when the process has exited and Wait would not block.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process (through the supervisor).
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("process %d: %w", p.pid, errdefs.ErrNotRunning)
	default:
	}
	if err := p.conn.send(&message{Op: "signal", Sig: int(sig)}); err != nil {
		return fmt.Errorf("process %d: signal: %w", p.pid, errdefs.ErrNotRunning)
	}
	return nil
}

// Resize sets the size of the process's terminal. A process without one
// gets an error wrapping errdefs.ErrInvalid.
func (p *Process) Resize(width, height uint16) error {
	if p.master == nil {
		return fmt.Errorf("process %d has no terminal: %w", p.pid, errdefs.ErrInvalid)
	}
	if err := setWinsize(p.master, width, height); err != nil {
		return p.conn.send(&message{Op: "resize", Width: width, Height: height})
	}
	return nil
}

// Pid returns the host pid of the container's supervisor (its PID 1).
func (c *Container) Pid() int { return c.pid }

// ID returns Config.ID.
func (c *Container) ID() string { return c.id }

// Main returns the container's main process.
func (c *Container) Main() *Process { return c.main }

// ControlSocket returns the path of the control socket Attach takes, "" when
// the container has no ControlDir.
func (c *Container) ControlSocket() string { return c.ctl }

// Wait waits for the main process to exit; see Process.Wait.
func (c *Container) Wait(ctx context.Context) (ExitStatus, error) { return c.main.Wait(ctx) }

// Signal sends sig to the main process.
func (c *Container) Signal(sig syscall.Signal) error { return c.main.Signal(sig) }

// Resize sets the size of the main process's terminal.
func (c *Container) Resize(width, height uint16) error { return c.main.Resize(width, height) }

// Processes returns the host pids of the processes in the container (not
// counting the supervisor), parents before children.
func (c *Container) Processes() ([]int, error) {
	select {
	case <-c.main.done:
		return nil, nil
	default:
	}
	if c.pid == 0 {
		return nil, fmt.Errorf("container %s: supervisor pid unknown: %w", c.id, errdefs.ErrUnsupported)
	}
	var out []int
	queue := []int{c.pid}
	seen := map[int]bool{c.pid: true}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		kids, err := childrenOf(pid)
		if err != nil && pid == c.pid {
			return nil, fmt.Errorf("container %s: %w", c.id, errdefs.ErrNotRunning)
		}
		for _, k := range kids {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
				queue = append(queue, k)
			}
		}
	}
	return out, nil
}

func childrenOf(pid int) ([]int, error) {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range bytes.Fields(b) {
			if n, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// dial opens a new control connection to the supervisor.
func (c *Container) dial() (*conn, error) {
	if c.owner == nil {
		cn, err := dialControl(context.Background(), c.ctl)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w: %w", c.id, errdefs.ErrNotRunning, err)
		}
		return cn, nil
	}
	ours, theirs, err := socketPair()
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	cn, err := connFromFile(ours)
	if err != nil {
		return nil, err
	}
	if err := c.owner.send(&message{Op: "conn"}, theirs); err != nil {
		cn.Close()
		return nil, fmt.Errorf("container %s: %w: %w", c.id, errdefs.ErrNotRunning, err)
	}
	return cn, nil
}

// Exec starts another process in the running container. The supervisor
// forks it, so it joins every namespace, the cgroups and the security
// settings of the container without setns. A failure to start it is a
// *SetupError (Code 127: not found, 126: not executable).
func (c *Container) Exec(ctx context.Context, pc ProcessConfig, stdio Stdio) (*Process, error) {
	select {
	case <-c.main.done:
		return nil, fmt.Errorf("container %s: %w", c.id, errdefs.ErrNotRunning)
	default:
	}
	if len(pc.Args) == 0 {
		return nil, fmt.Errorf("container %s: exec: no command: %w", c.id, errdefs.ErrInvalid)
	}
	pl, err := plumb(stdio, pc.Terminal)
	if err != nil {
		return nil, err
	}
	cn, err := c.dial()
	if err != nil {
		pl.abort()
		return nil, err
	}
	fs, have := pl.files()
	err = cn.send(&message{Op: "exec", Process: &pc, Stdio: have}, fs...)
	closeFiles(pl.closeMe)
	if err != nil {
		cn.Close()
		pl.abort()
		return nil, fmt.Errorf("container %s: exec: %w", c.id, err)
	}
	stop := context.AfterFunc(ctx, func() { cn.setReadDeadline(time.Unix(1, 0)) })
	m, files, err := cn.recv()
	stop()
	if err != nil {
		cn.Close()
		pl.abort()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("container %s: exec: %w: %w", c.id, errdefs.ErrNotRunning, err)
	}
	cn.setReadDeadline(time.Time{})
	if m.Op == "error" && m.Err != nil {
		cn.Close()
		pl.abort()
		closeFiles(files)
		return nil, m.Err.err(c.id)
	}
	p := newProcess(c, cn, m, files)
	p.startIO(stdio, pl)
	return p, nil
}

// Close releases the handle. For a container that is not Detached and was
// started by this process, this is its end: the supervisor kills it. Close
// then waits for the supervisor to exit.
func (c *Container) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner != nil {
		c.owner.Close()
		if !c.detached {
			<-c.main.done
		}
		return nil
	}
	if c.main.conn != nil {
		c.main.conn.Close()
	}
	return nil
}

// Attach returns a handle on a running container from its control socket
// (ControlDir/control.sock), typically one started Detached by another
// process. If the container has exited already, the handle's Wait returns
// the status the supervisor recorded in ControlDir/status.json.
func Attach(ctx context.Context, controlSocket string) (*Container, error) {
	dir := path.Dir(controlSocket)
	c := &Container{ctl: controlSocket, dir: dir, id: path.Base(dir)}
	cn, err := dialControl(ctx, controlSocket)
	if err != nil {
		if st, ok := c.readStatus(); ok {
			p := &Process{c: c, done: make(chan struct{}), status: st}
			close(p.done)
			c.main = p
			return c, nil
		}
		return nil, fmt.Errorf("attach %s: %w: %w", controlSocket, errdefs.ErrNotFound, err)
	}
	if err := cn.send(&message{Op: "attach"}); err != nil {
		cn.Close()
		return nil, fmt.Errorf("attach %s: %w", controlSocket, err)
	}
	stop := context.AfterFunc(ctx, func() { cn.setReadDeadline(time.Unix(1, 0)) })
	m, files, err := cn.recv()
	stop()
	if err != nil || m.Op != "started" {
		closeFiles(files)
		cn.Close()
		if st, ok := c.readStatus(); ok {
			p := &Process{c: c, done: make(chan struct{}), status: st}
			close(p.done)
			c.main = p
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("attach %s: %w: %v", controlSocket, errdefs.ErrNotRunning, err)
	}
	cn.setReadDeadline(time.Time{})
	c.main = newProcess(c, cn, m, files)
	// The pty master (with a terminal) only serves Resize here: reading it
	// would take output from whoever attached the stdio.
	go c.main.waitLoop()
	return c, nil
}

// readStatus reads the status the supervisor recorded, if any.
func (c *Container) readStatus() (ExitStatus, bool) {
	if c.dir == "" {
		return ExitStatus{}, false
	}
	b, err := os.ReadFile(path.Join(c.dir, "status.json"))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ExitStatus{}, false
	}
	var st ExitStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return ExitStatus{}, false
	}
	return st, true
}
