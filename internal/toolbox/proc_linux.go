package toolbox

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parseSignal reads "TERM", "SIGTERM", "-TERM", "15" or "-15".
func parseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimPrefix(s, "-")
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	up := strings.ToUpper(s)
	if !strings.HasPrefix(up, "SIG") {
		up = "SIG" + up
	}
	if sig := unix.SignalNum(up); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "SIG" + strconv.Itoa(int(sig))
}

// killApplet: kill [-SIG] PID... (SIGTERM by default).
func killApplet(e *env, args []string) int {
	a := args[1:]
	sig := syscall.SIGTERM
	if len(a) > 0 && strings.HasPrefix(a[0], "-") {
		s, err := parseSignal(a[0])
		if err != nil {
			return e.fail("kill", err)
		}
		sig, a = s, a[1:]
	}
	if len(a) == 0 {
		return e.usage("kill", "[-SIG] PID...")
	}
	code := 0
	for _, p := range a {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return e.usage("kill", "[-SIG] PID...")
		}
		if err := unix.Kill(pid, sig); err != nil {
			fmt.Fprintf(e.stderr, "kill %d: %s\n", pid, errnoName(err))
			code = 1
		}
	}
	return code
}

// ignoreTermApplet ignores SIGTERM, prints "ready" and sleeps forever.
func ignoreTermApplet(e *env, args []string) int {
	signal.Ignore(syscall.SIGTERM)
	fmt.Fprintln(e.stdout, "ready")
	for {
		time.Sleep(time.Hour)
	}
}

// signalsApplet catches every catchable signal, prints "ready", then prints
// the name of each signal it receives ("SIGUSR1"); it exits 0 after SIGTERM
// or SIGINT.
func signalsApplet(e *env, args []string) int {
	ch := make(chan os.Signal, 64)
	signal.Notify(ch)
	fmt.Fprintln(e.stdout, "ready")
	for s := range ch {
		sig, ok := s.(syscall.Signal)
		if !ok {
			continue
		}
		if sig == syscall.SIGURG || sig == syscall.SIGCHLD || sig == syscall.SIGPIPE {
			continue // the Go runtime's own preemption and child signals
		}
		fmt.Fprintln(e.stdout, signalName(sig))
		if sig == syscall.SIGTERM || sig == syscall.SIGINT {
			return 0
		}
	}
	return 0
}

// memhogApplet allocates MB mebibytes, touching every page, prints
// "allocated MB MiB", then holds the memory for SECONDS (default 0).
func memhogApplet(e *env, args []string) int {
	if len(args) < 2 || len(args) > 3 {
		return e.usage("memhog", "MB [SECONDS]")
	}
	mb, err := strconv.Atoi(args[1])
	if err != nil || mb < 0 {
		return e.usage("memhog", "MB [SECONDS]")
	}
	var hold time.Duration
	if len(args) == 3 {
		if hold, err = parseSeconds(args[2]); err != nil {
			return e.fail("memhog", err)
		}
	}
	chunks := make([][]byte, 0, mb)
	for range mb {
		c := make([]byte, 1<<20)
		for i := 0; i < len(c); i += 4096 {
			c[i] = 1
		}
		chunks = append(chunks, c)
	}
	fmt.Fprintf(e.stdout, "allocated %d MiB\n", len(chunks))
	time.Sleep(hold)
	runtime.KeepAlive(chunks)
	return 0
}

// spinApplet busy-loops for SECONDS and prints "iterations N".
func spinApplet(e *env, args []string) int {
	if len(args) != 2 {
		return e.usage("spin", "SECONDS")
	}
	d, err := parseSeconds(args[1])
	if err != nil {
		return e.fail("spin", err)
	}
	end := time.Now().Add(d)
	var n uint64
	for {
		for range 1 << 14 {
			n++
		}
		if time.Now().After(end) {
			break
		}
	}
	fmt.Fprintf(e.stdout, "iterations %d\n", n)
	return 0
}

// forkbombApplet forks up to N children (single-threaded, blocked in ppoll,
// killed with their parent) and prints "forked K"; when a fork fails first
// it also prints "error ERRNO" and exits 1. Then it kills and reaps them.
func forkbombApplet(e *env, args []string) int {
	if len(args) != 2 {
		return e.usage("forkbomb", "N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 {
		return e.usage("forkbomb", "N")
	}
	runtime.LockOSThread() // the children's PDEATHSIG follows this thread
	defer runtime.UnlockOSThread()
	var pids []int
	var ferr syscall.Errno
	for len(pids) < n {
		pid, errno := rawForkBlock()
		if errno != 0 {
			ferr = errno
			break
		}
		pids = append(pids, pid)
	}
	fmt.Fprintf(e.stdout, "forked %d\n", len(pids))
	if ferr != 0 {
		fmt.Fprintf(e.stdout, "error %s\n", errnoName(ferr))
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	for _, pid := range pids {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
	}
	if ferr != 0 {
		return 1
	}
	return 0
}

// orphanApplet starts N children ("sleep SECONDS", default 0.2) and exits
// at once without waiting, printing their pids: they are re-parented to the
// container's PID 1 (or a subreaper), which must reap them.
func orphanApplet(e *env, args []string) int {
	if len(args) < 2 || len(args) > 3 {
		return e.usage("orphan", "N [SECONDS]")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 {
		return e.usage("orphan", "N [SECONDS]")
	}
	secs := "0.2"
	if len(args) == 3 {
		secs = args[2]
	}
	for range n {
		cmd := exec.Command("/proc/self/exe", "sleep", secs)
		cmd.Args[0] = "sleep"
		if err := cmd.Start(); err != nil {
			return e.fail("orphan", err)
		}
		fmt.Fprintln(e.stdout, cmd.Process.Pid)
		cmd.Process.Release()
	}
	return 0
}

// psApplet prints "PID PPID STATE COMMAND" for every process in /proc.
func psApplet(e *env, args []string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return e.fail("ps", err)
	}
	var pids []int
	for _, d := range ents {
		if pid, err := strconv.Atoi(d.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	fmt.Fprintln(e.stdout, "PID PPID STATE COMMAND")
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		comm := s[j+1 : i]
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		if cmd == "" {
			cmd = "[" + comm + "]"
		}
		fmt.Fprintf(e.stdout, "%d %s %s %s\n", pid, f[1], f[0], cmd)
	}
	return 0
}
