//go:build linux

package namespace

import (
	"errors"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Spare inits.
//
// Most of a cold start goes by before the init has read its config: the
// clone of the namespaces, the exec of this binary and the Go runtime's
// start-up (about 11 ms of the 30 ms of a `true` where berth is measured).
// None of that depends on the config. With StartOptions.Spare, Start keeps
// one init of the namespace set it just used started ahead of need: booted,
// blocked on its control socket, its mount tree a slave of the owner's so
// that host mounts and unmounts still reach it. The next start with that
// set sends its config to the spare instead of spawning an init, and
// starts the next spare once its own process runs.
//
// A spare is the owner's child in the owner's cgroups until it is taken;
// the owner then moves it into the container's. Memory it touched while
// booting stays charged where it was (the kernel does not move charges).
// A spare idle for spareIdle ends, DiscardSpares ends them all, and like
// any init a spare ends when its owner does (its control socket closes).

// spareIdle is how long a spare waits to be taken before it ends.
var spareIdle = 10 * time.Second

// spareArg is the init's argv[1] when it starts as a spare; argv[2] is
// spareNewNet when its network namespace is new.
const (
	spareArg    = "spare"
	spareNewNet = "newnet"
)

// spareInit is a spawned init waiting for its "init" message.
type spareInit struct {
	proc  *os.Process
	owner *conn
	timer *time.Timer
}

// end kills the spare (our child, by its pid) and reaps it.
func (sp *spareInit) end() {
	sp.owner.Close()
	_ = sp.proc.Kill()
	_, _ = sp.proc.Wait()
}

func init() { spares.filled.L = &spares.mu }

// spares are the process's spare inits, one per namespace set (clone flags).
var spares struct {
	mu      sync.Mutex
	idle    map[uintptr]*spareInit
	filling map[uintptr]bool
	gen     int         // DiscardSpares bumps it: a fill of an older generation ends its spare
	fills   map[int]int // fills under way, by generation
	filled  sync.Cond   // signalled when a fill ends; L is &mu
}

// spareFlags says whether a start of cfg may use a spare, and the key of
// its spares: the clone flags without a cgroup namespace, which a spare
// makes later. Starts that join a network namespace or map ids in a user
// namespace need an init made for them.
func spareFlags(cfg *Config, flags uintptr, opts StartOptions) (uintptr, bool) {
	if !opts.Spare || cfg.NetNS != "" || flags&unix.CLONE_NEWUSER != 0 {
		return 0, false
	}
	return flags &^ unix.CLONE_NEWCGROUP, true
}

// takeSpare returns the spare of flags, if one is ready.
func takeSpare(flags uintptr) *spareInit {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	sp := spares.idle[flags]
	if sp == nil {
		return nil
	}
	delete(spares.idle, flags)
	sp.timer.Stop()
	return sp
}

// fillSpare starts, in the background, a spare of flags unless one is
// ready or starting.
func fillSpare(flags uintptr) {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	if spares.idle[flags] != nil || spares.filling[flags] {
		return
	}
	if spares.filling == nil {
		spares.filling = map[uintptr]bool{}
	}
	spares.filling[flags] = true
	if spares.fills == nil {
		spares.fills = map[int]int{}
	}
	spares.fills[spares.gen]++
	gen := spares.gen
	go func() {
		defer fillDone(gen)
		// Spawned from a thread of the idle class, the spare and every
		// thread it makes boot only on CPU time nobody else wants: its
		// boot would otherwise compete with the container just started.
		// The thread is never unlocked, so it ends with this goroutine.
		runtime.LockOSThread()
		if err := setSched(0, unix.SCHED_IDLE); err != nil {
			keepSpare(flags, gen, nil)
			return
		}
		proc, owner, err := spawnInit(flags, nil, -1, true)
		if err != nil {
			keepSpare(flags, gen, nil)
			return
		}
		sp := &spareInit{proc: proc, owner: owner}
		if !keepSpare(flags, gen, sp) {
			sp.end()
		}
	}()
}

func fillDone(gen int) {
	spares.mu.Lock()
	if spares.fills[gen]--; spares.fills[gen] == 0 {
		delete(spares.fills, gen)
	}
	spares.mu.Unlock()
	spares.filled.Broadcast()
}

// keepSpare ends a fill of flags: sp (nil when the spawn failed) becomes
// the spare unless DiscardSpares ran since the fill began.
func keepSpare(flags uintptr, gen int, sp *spareInit) bool {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	delete(spares.filling, flags)
	if sp == nil || gen != spares.gen || spares.idle[flags] != nil {
		return false
	}
	if spares.idle == nil {
		spares.idle = map[uintptr]*spareInit{}
	}
	spares.idle[flags] = sp
	sp.timer = time.AfterFunc(spareIdle, func() { expireSpare(flags, sp) })
	return true
}

// expireSpare ends sp if it is still flags' spare.
func expireSpare(flags uintptr, sp *spareInit) {
	spares.mu.Lock()
	if spares.idle[flags] != sp {
		spares.mu.Unlock()
		return
	}
	delete(spares.idle, flags)
	spares.mu.Unlock()
	sp.end()
}

// DiscardSpares ends the spare inits that Start keeps (StartOptions.Spare),
// and waits for them to be gone. A later Start with Spare makes new ones.
func DiscardSpares() {
	spares.mu.Lock()
	spares.gen++
	idle := spares.idle
	spares.idle = nil
	// A fill under way sees the new generation and ends its spare itself.
	// Only fills begun before count: new ones may start meanwhile.
	for olderFills() {
		spares.filled.Wait()
	}
	spares.mu.Unlock()
	for _, sp := range idle {
		sp.timer.Stop()
		sp.end()
	}
}

// olderFills reports whether a fill begun before the current generation is
// under way. spares.mu is held.
func olderFills() bool {
	for gen := range spares.fills {
		if gen < spares.gen {
			return true
		}
	}
	return false
}

// spareBoot is the part of a spare's set-up that needs no config, done
// while it waits:
//   - the mount tree becomes a slave of the owner's, which keeps it current
//     (mounts and unmounts on the host reach it) and sends nothing back;
//   - lo is set up when its network namespace is new (newNet); it reports
//     whether it did;
//   - SIGCHLD is registered on sigs now rather than once the process runs
//     (os/signal's first use is costly). The reaper reads sigs only once
//     the container's process runs. Signals that are forwarded to the
//     container's process are not registered: until then, they end the
//     spare as they would any process.
func spareBoot(sigs chan<- os.Signal, newNet bool) (loopback bool) {
	_ = unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "")
	signal.Notify(sigs, unix.SIGCHLD)
	return newNet && loopbackUp() == nil
}

// setSched sets the scheduling policy of thread tid (0: the calling one).
func setSched(tid, policy int) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(policy)}
	if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
		return os.NewSyscallError("sched_setattr", err)
	}
	return nil
}

// wake returns every thread of the spare to the normal scheduling class,
// before it is given work.
func (sp *spareInit) wake() error {
	return wakeThreads("/proc/" + strconv.Itoa(sp.proc.Pid) + "/task")
}

// wakeThreads returns every thread listed in the /proc task directory dir
// to the normal scheduling class. A thread the spare makes while the list
// is read may be missed: the init runs it once more on itself after its
// process started (see supervisor.run).
func wakeThreads(dir string) error {
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := setSched(tid, unix.SCHED_NORMAL); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}

// joinCgroupFD moves pid into the cgroup v2 directory open as fd: a spare
// was not cloned into its container's group.
func joinCgroupFD(fd, pid int) error {
	f, err := unix.Openat(fd, "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open cgroup.procs", err)
	}
	defer unix.Close(f)
	if _, err := unix.Write(f, []byte(strconv.Itoa(pid))); err != nil {
		return os.NewSyscallError("write cgroup.procs", err)
	}
	return nil
}
