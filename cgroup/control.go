//go:build linux

package cgroup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthrt/berth/errdefs"
	"golang.org/x/sys/unix"
)

// freezer returns the directory and kind (1 or 2) of the group's freezer.
func (c *Cgroup) freezer() (string, int, error) {
	if d := c.v1["freezer"]; d != "" {
		return d, 1, nil
	}
	if c.v2 != "" && exists(filepath.Join(c.v2, "cgroup.freeze")) {
		return c.v2, 2, nil
	}
	return "", 0, fmt.Errorf("cgroup: %s: no freezer: %w", c.Path(), errdefs.ErrUnsupported)
}

// Freeze stops every process of the group (docker pause) and waits until
// the kernel reports the group frozen, or ctx is done (then it thaws
// again and returns ctx's error).
func (c *Cgroup) Freeze(ctx context.Context) error { return c.setFrozen(ctx, true) }

// Thaw resumes the processes Freeze stopped (docker unpause).
func (c *Cgroup) Thaw(ctx context.Context) error { return c.setFrozen(ctx, false) }

func (c *Cgroup) setFrozen(ctx context.Context, on bool) error {
	dir, kind, err := c.freezer()
	if err != nil {
		return err
	}
	var file, val, stateFile, want string
	if kind == 1 {
		file, stateFile = "freezer.state", "freezer.state"
		val, want = "THAWED", "THAWED"
		if on {
			val, want = "FROZEN", "FROZEN"
		}
	} else {
		file, stateFile = "cgroup.freeze", "cgroup.events"
		val, want = "0", "frozen 0"
		if on {
			val, want = "1", "frozen 1"
		}
	}
	wait := 100 * time.Microsecond
	for {
		// v1 may stay FREEZING while a task is in an uninterruptible
		// sleep; writing FROZEN again retries the tasks that missed it.
		if err := writeFile(dir, file, val); err != nil {
			return fmt.Errorf("cgroup: freeze %s: %w", c.Path(), err)
		}
		st, err := os.ReadFile(filepath.Join(dir, stateFile))
		if err != nil {
			return fmt.Errorf("cgroup: freeze %s: %w", c.Path(), err)
		}
		if kind == 1 && strings.TrimSpace(string(st)) == want || kind == 2 && hasLine(st, want) {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if on {
				c.setFrozen(context.Background(), false)
			}
			return fmt.Errorf("cgroup: freeze %s: %w", c.Path(), ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

func hasLine(b []byte, line string) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		if string(bytes.TrimSpace(l)) == line {
			return true
		}
	}
	return false
}

// Frozen reports whether the group is frozen (paused).
func (c *Cgroup) Frozen() (bool, error) {
	dir, kind, err := c.freezer()
	if err != nil {
		return false, err
	}
	if kind == 1 {
		s, err := readString(filepath.Join(dir, "freezer.state"))
		return s == "FROZEN", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	return hasLine(b, "frozen 1"), err
}

// Kill sends SIGKILL to every process in the group and its sub-groups: v2
// cgroup.kill where the kernel has it (also the unified group of a hybrid
// host), then a walk of cgroup.procs until no process is left that has not
// been signalled. Processes are signalled through pidfds checked to still
// be in the group, so a recycled pid is never hit. On v1 the group is
// frozen during a walk, so nothing forks past it. Kill does not wait for
// the processes to be reaped: Delete does.
func (c *Cgroup) Kill(ctx context.Context) error {
	if c.v2 != "" {
		if err := writeFile(c.v2, "cgroup.kill", "1"); err == nil && c.h.v2limits() {
			return nil
		}
	}
	frozen := false
	if c.v1["freezer"] != "" {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		frozen = c.Freeze(fctx) == nil
		cancel()
	}
	signalled := map[int]bool{}
	wait := 100 * time.Microsecond
	var lastErr error
	for {
		pids, err := c.Procs()
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil
			}
			return err
		}
		fresh := 0
		for _, p := range pids {
			if signalled[p] {
				continue
			}
			fresh++
			signalled[p] = true
			if err := c.killPid(p); err != nil {
				lastErr = err
			}
		}
		if frozen {
			c.Thaw(context.Background())
			frozen = false
		}
		if fresh == 0 {
			return lastErr
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cgroup: kill %s: %w", c.Path(), ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}

// killPid sends SIGKILL to pid if it is (still) in the group.
func (c *Cgroup) killPid(pid int) error {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if err == unix.ESRCH {
			return nil
		}
		if err == unix.ENOSYS {
			return unix.Kill(pid, unix.SIGKILL)
		}
		return fmt.Errorf("cgroup: pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pfd)
	// The pidfd pins the process: if it is in the group now, it is ours.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil // gone
	}
	mine := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		// A suffix, not equality: without a cgroup namespace a container's
		// view of a hierarchy starts below the root (/docker/<id>/berth/x).
		if len(parts) == 3 && (strings.HasSuffix(parts[2], c.Path()) || strings.Contains(parts[2], c.Path()+"/")) {
			mine = true
			break
		}
	}
	if !mine {
		return nil
	}
	if err := unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("cgroup: kill %d: %w", pid, err)
	}
	return nil
}

// OOMKilled reports whether the kernel's OOM killer has killed a process
// of the group (v1 memory.oom_control, v2 memory.events oom_kill). The
// answer is kept after Delete, so ask it after the container exits.
func (c *Cgroup) OOMKilled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.deleted {
		c.ooms = max(c.ooms, c.readOOMKillsHeld())
	}
	return c.ooms > 0
}

// oomFile is the file that counts the group's OOM kills, and its
// directory; "" when there is none.
func (c *Cgroup) oomFile() (dir, file string) {
	if d := c.v1["memory"]; d != "" && !c.h.v2limits() {
		return d, "memory.oom_control"
	}
	if c.v2 != "" {
		return c.v2, "memory.events"
	}
	return "", ""
}

// readOOMKills reads the oom_kill counter; 0 when there is none.
func (c *Cgroup) readOOMKills() uint64 {
	dir, file := c.oomFile()
	if dir == "" {
		return 0
	}
	return readKey(unix.AT_FDCWD, dir+"/"+file, "oom_kill")
}

// readOOMKillsHeld is readOOMKills relative to the held parent; the caller
// holds c.mu or c.delMu (see at).
func (c *Cgroup) readOOMKillsHeld() uint64 {
	dir, file := c.oomFile()
	if dir == "" {
		return 0
	}
	fd, rel := c.at(dir, file)
	return readKey(fd, rel, "oom_kill")
}

// readKey returns the number after key in a small "key value" per line
// file, 0 when it cannot be read. One open, read and close: os.ReadFile
// would also stat the file, read again to find the end, and register the
// pollable cgroup file with the runtime's epoll.
func readKey(at int, rel, key string) uint64 {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Openat(at, rel, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	// memory.oom_control and memory.events are under 200 bytes, and a
	// seq file returns all that fits in one read.
	var buf [512]byte
	var n int
	if err := retryEINTR(func() (err error) { n, err = unix.Read(fd, buf[:]); return err }); err != nil {
		return 0
	}
	return keyValue(buf[:n], key)
}

// keyValue returns the number after key in a "key value" per line file.
func keyValue(b []byte, key string) uint64 {
	for _, l := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(l, []byte(" "))
		if ok && string(k) == key {
			n, _ := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}

// OOMEvents returns a channel that receives the group's total count of
// OOM kills each time it grows. It is closed when ctx is done or the group
// is deleted. v1 listens on memory.oom_control through an eventfd
// registered in cgroup.event_control; v2 watches memory.events with
// inotify.
func (c *Cgroup) OOMEvents(ctx context.Context) (<-chan uint64, error) {
	var f *os.File
	var err error
	if d := c.v1["memory"]; d != "" && !c.h.v2limits() {
		f, err = oomEventFD(d)
	} else if c.v2 != "" {
		f, err = inotifyFD(filepath.Join(c.v2, "memory.events"))
	} else {
		err = fmt.Errorf("no memory controller: %w", errdefs.ErrUnsupported)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup: oom events of %s: %w", c.Path(), err)
	}
	ch := make(chan uint64, 1)
	seen := c.readOOMKills()
	quit := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-c.stop:
		case <-quit:
		}
		f.Close()
	}()
	go func() {
		defer close(ch)
		defer close(quit)
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			// v1 signals when the OOM starts, before the kill is counted.
			n := c.readOOMKills()
			for i := 0; n <= seen && i < 50 && exists(c.dirs[0]); i++ {
				time.Sleep(2 * time.Millisecond)
				n = c.readOOMKills()
			}
			if n > seen {
				seen = n
				c.mu.Lock()
				c.ooms = max(c.ooms, n)
				c.mu.Unlock()
				select {
				case ch <- n:
				case <-ctx.Done():
					return
				case <-c.stop:
					return
				}
			}
			if !exists(c.dirs[0]) {
				return
			}
		}
	}()
	return ch, nil
}

// oomEventFD registers an eventfd for dir's memory.oom_control.
func oomEventFD(dir string) (*os.File, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	ofd, err := unix.Open(filepath.Join(dir, "memory.oom_control"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(efd)
		return nil, err
	}
	defer unix.Close(ofd) // the kernel holds its own reference once registered
	if err := writeFile(dir, "cgroup.event_control", fmt.Sprintf("%d %d", efd, ofd)); err != nil {
		unix.Close(efd)
		return nil, err
	}
	return os.NewFile(uintptr(efd), "oom-eventfd"), nil
}

// inotifyFD watches p for modification.
func inotifyFD(p string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, p, unix.IN_MODIFY|unix.IN_DELETE_SELF); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "inotify"), nil
}
