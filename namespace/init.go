//go:build linux

package namespace

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initArg0 is the argv[0] that marks this binary as a container's init.
const initArg0 = "berth-init"

func init() {
	if len(os.Args) == 0 || os.Args[0] != initArg0 {
		return
	}
	// All namespace work, and every fork of a container process, happens on
	// the main thread: per-thread state (cgroup namespace, capability
	// bounding set, no_new_privs without AllThreadsSyscall) is then the same
	// for everything the init starts.
	runtime.LockOSThread()
	runInit()
}

// Init runs the container init when this process was started as one (argv[0]
// "berth-init") and never returns then; otherwise it returns at once. The
// package's init function does the same, so calling Init is only needed to
// make the hook explicit: call it first in main.
func Init() {
	if len(os.Args) > 0 && os.Args[0] == initArg0 {
		runtime.LockOSThread()
		runInit()
	}
}

// initState is the init's view of its container.
type initState struct {
	cfg   *Config
	host  *hostInfo
	owner *conn

	userns         bool
	pidns          bool
	cgroupDeferred bool
	caps           uint64
	lastCap        int

	statusFile *os.File
	listener   *os.File
	trace      *tracer
	mainSpec   *spawnSpec
	cgBinds    *cgroupBinds
	mfds       map[string]*os.File // mounts from the owner (idmap.go)
	root       string              // the rootfs before pivot_root: RootDir, or a path to it

	spare        bool // started ahead of need, from an idle-class thread (spare.go)
	loopbackDone bool // lo is up already (a spare does it while it waits)
}

// fail reports a setup error to the owner and exits.
func (s *initState) fail(step string, err error) {
	if s.owner != nil {
		_ = s.owner.send(&reply{Op: "error", Err: toWire(step, err)})
		// Exiting with the owner's "go" unread would make the kernel reset
		// the connection, and the owner could lose the error: wait for the
		// owner to hang up (it does on reading the error).
		s.owner.setReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, files, err := s.owner.recv(); err != nil {
				break
			} else {
				closeFiles(files)
			}
		}
	}
	os.Exit(125)
}

func runInit() {
	entered := time.Now()
	// Nobody in the container may ptrace us or open /proc/1/exe, fd, mem.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// The view of the binary we were executed from has done its job.
	_ = unix.Close(initExeFD)
	// Descriptors the owner leaked to us (anything past the control socket
	// not opened close-on-exec) must not reach the container's processes.
	markCloseOnExec(4)
	unix.Umask(0)

	// SIGCHLD reaches sigs from run on (see there): os/signal's first Notify
	// costs 0.5-1 ms, which need not delay the container's start.
	sigs := make(chan os.Signal, 32)
	s := &initState{}
	if len(os.Args) > 1 && os.Args[1] == spareArg {
		s.spare = true
		s.loopbackDone = spareBoot(sigs, len(os.Args) > 2 && os.Args[2] == spareNewNet)
	}
	c, err := connFromFile(os.NewFile(3, "berth-ctl"))
	if err != nil {
		os.Exit(125)
	}
	c.wire = true // the owner is this binary: see conn.wire
	s.owner = c
	m, files, err := c.recv()
	if err != nil || m.Op != "init" || m.Config == nil || m.Host == nil {
		s.fail("receive config", fmt.Errorf("bad init message: %v", err))
	}
	s.cfg, s.host = m.Config, m.Host
	s.trace = openTracer(s.host.Trace, "init")
	s.trace.markAt(entered, "hook entered")
	s.trace.mark("config received")
	if s.host.StatusFD {
		s.statusFile, files = files[0], files[1:]
	}
	if s.host.ListenFD {
		s.listener, files = files[0], files[1:]
	}
	var stdio [3]*os.File
	for i := range stdio {
		if m.Stdio[i] && len(files) > 0 {
			stdio[i], files = files[0], files[1:]
		}
	}
	closeFiles(files)

	if !s.cfg.has(NamespacePID) {
		// Not PID 1: adopt orphans anyway, to reap them.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	if err := s.setup(stdio); err != nil {
		s.fail("setup", err)
	}

	s.trace.mark("setup done")
	// Wait for the owner to finish Prestart (cgroups, network).
	m, _, err = c.recv()
	if err != nil || m.Op != "go" {
		os.Exit(125) // the owner gave up
	}
	s.trace.mark("go received")
	if err := s.afterGo(); err != nil {
		s.fail("setup", err)
	}
	s.trace.mark("sealed")
	sv := newSupervisor(s, sigs)
	sv.run()
}

func (s *initState) setup(stdio [3]*os.File) error {
	cfg := s.cfg
	s.userns = cfg.has(NamespaceUser)
	s.pidns = cfg.has(NamespacePID)
	s.cgroupDeferred = cfg.has(NamespaceCgroup) && !s.host.NewCgroupNS
	s.lastCap = s.host.LastCap
	if s.lastCap <= 0 {
		s.lastCap = lastCap()
	}
	if cfg.Privileged {
		s.caps = allCaps(s.lastCap)
	} else {
		var err error
		if s.caps, err = capMask(cfg.capabilities(), s.lastCap); err != nil {
			return stepErr("capabilities", err)
		}
	}

	if cfg.has(NamespaceNet) && cfg.NetNS == "" && !s.loopbackDone {
		if err := loopbackUp(); err != nil {
			return stepErr("loopback up", err)
		}
	}
	if err := s.setupRootfs(); err != nil {
		return err
	}
	s.trace.mark("rootfs mounted")
	if h := cfg.hostname(); h != "" && cfg.has(NamespaceUTS) {
		if err := unix.Sethostname([]byte(h)); err != nil {
			return stepErr("sethostname", err)
		}
	}
	if err := pivotRoot(s.root); err != nil {
		return err
	}
	s.closeMounts()
	if err := setRlimits(cfg.Process.Rlimits); err != nil {
		return err
	}
	unix.Umask(0o022)

	sp, err := prepare(cfg.Process, nil)
	if err != nil {
		return err
	}
	if sp.tty {
		master, slave, err := openPTY()
		if err != nil {
			return stepErr("open pty", err)
		}
		if err := unix.Mount(slave.Name(), "/dev/console", "", unix.MS_BIND, ""); err != nil {
			return stepErr("bind /dev/console", os.NewSyscallError("mount", err))
		}
		sp.master = master
		sp.files = [3]*os.File{slave, slave, slave}
		closeFiles(stdio[:])
	} else {
		sp.files = stdio
	}
	s.mainSpec = sp

	if err := s.limit(); err != nil {
		return err
	}
	if !s.cgroupDeferred {
		return s.seal()
	}
	return nil
}

func (s *initState) afterGo() error {
	if s.cgroupDeferred {
		// Now that the owner has put us in the container's cgroups, a new
		// cgroup namespace has them as its root. unshare is per thread: this
		// is the main thread, the one processes are forked from.
		if s.cgBinds != nil {
			if err := s.bindCgroups("/sys/fs/cgroup"); err != nil {
				return err
			}
		}
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return stepErr("unshare cgroup namespace", os.NewSyscallError("unshare", err))
		}
		if s.cgBinds == nil && (!s.userns || len(s.host.CgroupV1) == 0 && s.cfg.has(NamespaceNet)) {
			if err := s.mountCgroups("/sys/fs/cgroup"); err != nil {
				return err
			}
		}
		return s.seal()
	}
	return nil
}

// limit and seal apply the container's security settings to the init itself,
// so that they hold for every process it starts: bounding set,
// no_new_privs, seccomp, and its own capabilities cut to the container's
// (plus what it needs to supervise: kill, setuid, setgid).
//
// It comes in two parts: limit (bounding set, no_new_privs), which leaves
// the init's own effective capabilities alone and is done before the owner
// says go, and seal (seccomp, capabilities), after the last mount.
func (s *initState) limit() error {
	if err := dropBounding(s.caps, s.lastCap); err != nil {
		return stepErr("capability bounding set", err)
	}
	if s.cfg.Process.NoNewPrivileges {
		if err := setNoNewPrivs(); err != nil {
			return stepErr("no_new_privs", err)
		}
	}
	return nil
}

func (s *initState) seal() error {
	if s.cfg.Seccomp != nil || s.host.SeccompProg != nil {
		if err := installSeccomp(s.host.SeccompProg, s.cfg.Seccomp, s.cfg.capabilities()); err != nil {
			return stepErr("seccomp", err)
		}
	}
	keep := s.caps | 1<<unix.CAP_KILL | 1<<unix.CAP_SETUID | 1<<unix.CAP_SETGID
	if err := setCaps(keep & allCaps(s.lastCap)); err != nil {
		return stepErr("capabilities", err)
	}
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	return nil
}

func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return stepErr("chdir rootfs", os.NewSyscallError("chdir", err))
	}
	// pivot_root(".", "."): the old root ends up stacked under the new one
	// and is detached right away; no directory in the image is needed.
	if err := unix.PivotRoot(".", "."); err != nil {
		return stepErr("pivot_root", os.NewSyscallError("pivot_root", err))
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return stepErr("pivot_root", os.NewSyscallError("mount", err))
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return stepErr("detach old root", os.NewSyscallError("umount2", err))
	}
	if err := unix.Chdir("/"); err != nil {
		return stepErr("chdir /", os.NewSyscallError("chdir", err))
	}
	return nil
}

// writeStatus records the exit status in the status file (ControlDir/status.json).
func (s *initState) writeStatus(st ExitStatus) {
	if s.statusFile == nil {
		return
	}
	_, _ = s.statusFile.WriteAt(appendStatusJSON(nil, st), 0)
}

// appendStatusJSON appends st as encoding/json writes it. It is written by
// hand because it runs just before the init exits, while the owner waits:
// the first use of encoding/json in a process builds its encoders, which
// costs more than the rest of the exit.
func appendStatusJSON(b []byte, st ExitStatus) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(st.Code), 10)
	if st.Signal != 0 {
		b = append(b, `,"signal":`...)
		b = strconv.AppendInt(b, int64(st.Signal), 10)
	}
	if st.OwnerGone {
		b = append(b, `,"ownerGone":true`...)
	}
	return append(b, '}')
}

// ---- supervisor ----

type proc struct {
	pid      int
	master   *os.File
	done     bool
	status   ExitStatus
	watchers []*watcher
	name     string
}

// watcher is a connection waiting for a process's exit status. ready is
// closed once the connection was told the process started, so the status
// never overtakes that message.
type watcher struct {
	c     *conn
	ready chan struct{}
}

func newWatcher(c *conn) *watcher { return &watcher{c: c, ready: make(chan struct{})} }

type spawnReq struct {
	sp    *spawnSpec
	w     *watcher
	reply chan spawnResult
}

type spawnResult struct {
	p   *proc
	err error
}

type supervisor struct {
	s       *initState
	sigs    chan os.Signal
	spawnCh chan spawnReq
	reapMu  chan struct{} // a lock that fork and wait4 both take
	main    *proc
	procs   map[int]*proc
}

func newSupervisor(s *initState, sigs chan os.Signal) *supervisor {
	sv := &supervisor{
		s:       s,
		sigs:    sigs,
		spawnCh: make(chan spawnReq),
		reapMu:  make(chan struct{}, 1),
		procs:   map[int]*proc{},
	}
	return sv
}

func (sv *supervisor) lock()   { sv.reapMu <- struct{}{} }
func (sv *supervisor) unlock() { <-sv.reapMu }

// spawn forks sp, with w watching it. It must run on the main thread.
func (sv *supervisor) spawn(sp *spawnSpec, w *watcher) (*proc, error) {
	files := make([]uintptr, 3)
	devNull := -1
	for i, f := range sp.files {
		if f != nil {
			files[i] = f.Fd()
			continue
		}
		if devNull < 0 {
			fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, stepErr("open /dev/null", os.NewSyscallError("open", err))
			}
			defer unix.Close(fd)
			devNull = fd
		}
		files[i] = uintptr(devNull)
	}
	attr := &syscall.ProcAttr{
		Dir: sp.dir, Env: sp.env, Files: files,
		Sys: &syscall.SysProcAttr{Credential: sp.cred, Setsid: true, Setctty: sp.tty, Ctty: 0},
	}
	sv.lock()
	pid, err := syscall.ForkExec(sp.path, sp.argv, attr)
	var p *proc
	if err == nil {
		p = &proc{pid: pid, master: sp.master, name: sp.argv[0], watchers: []*watcher{w}}
		sv.procs[pid] = p
	}
	sv.unlock()
	sp.closeChildFiles()
	if err != nil {
		if sp.master != nil {
			sp.master.Close()
		}
		return nil, execErr(sp.argv[0], err)
	}
	return p, nil
}

// started tells c that p runs: its pidfd (the receiver reads the pid in
// its own namespace from it), the supervisor's pidfd when self, and with a
// terminal the pty master.
func (sv *supervisor) started(c *conn, p *proc, self bool) error {
	m := &reply{Op: "started", Pid: p.pid}
	var files []*os.File
	if fd, err := unix.PidfdOpen(p.pid, 0); err == nil {
		pf := os.NewFile(uintptr(fd), "pidfd")
		defer pf.Close()
		files = append(files, pf)
		m.PidFD = true
	}
	if self {
		if fd, err := unix.PidfdOpen(os.Getpid(), 0); err == nil {
			pf := os.NewFile(uintptr(fd), "pidfd")
			defer pf.Close()
			files = append(files, pf)
			m.SelfFD = true
		}
	}
	if p.master != nil {
		files = append(files, p.master)
		m.Master = true
	}
	return c.send(m, files...)
}

func (sv *supervisor) run() {
	s := sv.s
	w := newWatcher(s.owner)
	p, err := sv.spawn(s.mainSpec, w)
	if err != nil {
		s.fail("exec", err)
	}
	sv.main = p
	s.trace.mark("process forked")
	_ = sv.started(s.owner, p, false)
	close(w.ready)

	time.AfterFunc(shrinkDelay, shrink)
	if s.spare {
		go func() { _ = wakeThreads("/proc/self/task") }()
	}
	// Registered only now that the process runs and the owner knows it (a
	// spare registered while it waited): a SIGCHLD before this is dropped,
	// but the reaper's first pass reaps whatever exited before it.
	signal.Notify(sv.sigs, unix.SIGCHLD)
	go sv.reaper()
	go sv.forwardSignals()
	go sv.serveConn(s.owner, true)
	if s.listener != nil {
		go sv.accept()
	}
	// The main thread forks every later process.
	for req := range sv.spawnCh {
		p, err := sv.spawn(req.sp, req.w)
		req.reply <- spawnResult{p, err}
	}
}

// reaper reaps every child of the init, its own and orphans, on each
// SIGCHLD. (A goroutine blocked in waitid would be cheaper per exit, but it
// holds the init's only P in a system call: whatever became runnable
// meanwhile, the exit status to send included, would wait for sysmon to
// take the P back, up to 10 ms once the runtime has been idle.)
func (sv *supervisor) reaper() {
	sv.reapAll()
	for range sv.sigs {
		sv.reapAll()
	}
}

func (sv *supervisor) reapAll() {
	for {
		sv.lock()
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			sv.unlock()
			continue
		}
		if pid <= 0 || err != nil {
			sv.unlock()
			return
		}
		p := sv.procs[pid]
		var watchers []*watcher
		if p != nil {
			delete(sv.procs, pid)
			p.done = true
			p.status = statusFromWait(ws)
			watchers = p.watchers
			p.watchers = nil
		}
		sv.unlock()
		if p == nil {
			continue // an orphan: reaped
		}
		go sv.notify(p, watchers)
	}
}

// notify sends p's exit status to its watchers and, for the main process,
// ends the container.
func (sv *supervisor) notify(p *proc, watchers []*watcher) {
	st := p.status
	for _, w := range watchers {
		<-w.ready
		_ = w.c.send(&reply{Op: "exit", Status: &st})
	}
	if p == sv.main {
		sv.s.trace.mark("process exited, status sent")
		sv.exit(st)
	}
	if p.master != nil {
		p.master.Close()
	}
}

// exit ends the container: PID 1's exit makes the kernel kill everything
// left in the PID namespace.
func (sv *supervisor) exit(st ExitStatus) {
	sv.s.writeStatus(st)
	if !sv.s.pidns {
		killDescendants()
	}
	os.Exit(st.Code & 0xff)
}

// killAll kills every process of the container and exits, when the owner is gone.
func (sv *supervisor) killAll() {
	if sv.s.pidns {
		_ = unix.Kill(-1, unix.SIGKILL) // as PID 1: everything in the namespace but us
	} else {
		killDescendants()
	}
	st := ExitStatus{Code: 137, Signal: unix.SIGKILL, OwnerGone: true}
	sv.s.writeStatus(st)
	os.Exit(137)
}

// forwardSignals passes the signals the init receives to the main process.
func (sv *supervisor) forwardSignals() {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT, unix.SIGALRM)
	for sig := range ch {
		_ = unix.Kill(sv.main.pid, sig.(syscall.Signal))
	}
}

func (sv *supervisor) accept() {
	l, err := pollable(sv.s.listener, "berth-listen")
	if err != nil {
		return
	}
	rc, err := l.SyscallConn()
	if err != nil {
		l.Close()
		return
	}
	for {
		c, err := acceptControl(rc)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		go sv.serveConn(c, false)
	}
}

// serveConn serves one control connection. Each connection is bound to at
// most one process (the main one for the owner and attach, an exec'd one).
func (sv *supervisor) serveConn(c *conn, owner bool) {
	var bound *proc
	if owner {
		bound = sv.main
	}
	for {
		m, files, err := c.recv()
		if errors.Is(err, errBadMessage) {
			continue // one bad packet; the connection is still good
		}
		if err != nil {
			// The peer is gone (end of file, reset, or the socket broke).
			if owner && !sv.s.cfg.Detached {
				sv.killAll()
			}
			sv.unwatch(c)
			c.Close()
			return
		}
		switch m.Op {
		case "conn":
			if len(files) == 1 {
				if nc, err := connFromFile(files[0]); err == nil {
					go sv.serveConn(nc, false)
				}
				files = nil
			}
		case "attach":
			bound = sv.main
			w := newWatcher(c)
			done, st := sv.watch(bound, w)
			_ = sv.started(c, bound, true)
			close(w.ready)
			if done {
				_ = c.send(&reply{Op: "exit", Status: &st})
			}
		case "exec":
			if bound != nil || m.Process == nil {
				_ = c.send(&reply{Op: "error", Err: toWire("exec", errors.New("connection already has a process"))})
				break
			}
			p, err := sv.exec(c, m, files)
			files = nil
			if err != nil {
				_ = c.send(&reply{Op: "error", Err: toWire("exec", err)})
				break
			}
			bound = p
		case "signal":
			if bound != nil {
				_ = unix.Kill(bound.pid, syscall.Signal(m.Sig))
			}
		case "resize":
			if bound != nil && bound.master != nil {
				_ = setWinsize(bound.master, m.Width, m.Height)
			}
		}
		closeFiles(files)
	}
}

// watch adds w to p's watchers, unless p has exited already: then it
// returns true and the status.
func (sv *supervisor) watch(p *proc, w *watcher) (bool, ExitStatus) {
	sv.lock()
	defer sv.unlock()
	if !p.done {
		p.watchers = append(p.watchers, w)
	}
	return p.done, p.status
}

func (sv *supervisor) unwatch(c *conn) {
	sv.lock()
	for _, p := range sv.procs {
		for i, w := range p.watchers {
			if w.c == c {
				p.watchers = append(p.watchers[:i], p.watchers[i+1:]...)
				break
			}
		}
	}
	sv.unlock()
}

func (sv *supervisor) exec(c *conn, m *message, files []*os.File) (*proc, error) {
	var stdio [3]*os.File
	for i := range stdio {
		if m.Stdio[i] && len(files) > 0 {
			stdio[i], files = files[0], files[1:]
		}
	}
	closeFiles(files)
	sp, err := prepare(*m.Process, &sv.s.cfg.Process)
	if err != nil {
		closeFiles(stdio[:])
		return nil, err
	}
	if sp.tty {
		closeFiles(stdio[:])
		master, slave, err := openPTY()
		if err != nil {
			return nil, stepErr("open pty", err)
		}
		sp.master = master
		sp.files = [3]*os.File{slave, slave, slave}
	} else {
		sp.files = stdio
	}
	w := newWatcher(c)
	reply := make(chan spawnResult, 1)
	sv.spawnCh <- spawnReq{sp, w, reply}
	r := <-reply
	if r.err != nil {
		return nil, r.err
	}
	p := r.p
	if err := sv.started(c, p, false); err != nil {
		// Nobody will ever wait for it (the client gave up): do not leave
		// it running unattended.
		_ = unix.Kill(p.pid, unix.SIGKILL)
	}
	close(w.ready)
	return p, nil
}

// killDescendants kills every descendant of the init, for a container
// without its own PID namespace (where kill(-1) would hit the host). As a
// child subreaper the init has adopted the orphans, so the tree is complete.
func killDescendants() {
	for round := 0; round < 3; round++ {
		queue := []int{os.Getpid()}
		found := false
		for len(queue) > 0 {
			pid := queue[0]
			queue = queue[1:]
			kids, _ := childrenOf(pid)
			for _, k := range kids {
				_ = unix.Kill(k, unix.SIGKILL)
				found = true
				queue = append(queue, k)
			}
		}
		if !found {
			return
		}
	}
}

// markCloseOnExec sets FD_CLOEXEC on every descriptor from min up.
func markCloseOnExec(min int) {
	if err := unix.CloseRange(uint(min), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= min {
			unix.CloseOnExec(fd)
		}
	}
}
