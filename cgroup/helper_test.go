//go:build linux

package cgroup

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/testutil"
)

const helperEnv = "BERTH_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helperMain()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperMain is the child process the tests put in groups. It reads one
// command per line on stdin and answers one line on stdout.
func helperMain() {
	var keep [][]byte
	var counter atomic.Int64
	var stopCount func()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "alloc": // alloc MB: allocate and touch
			n, _ := strconv.Atoi(f[1])
			for i := 0; i < n; i++ {
				b := make([]byte, 1<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				keep = append(keep, b)
			}
			fmt.Println("ok")
		case "spin":
			go func() {
				for {
					counter.Add(1)
				}
			}()
			fmt.Println("ok")
		case "count": // count FILE: write a counter to FILE every 5 ms
			stop := make(chan struct{})
			stopped := make(chan struct{})
			stopCount = func() { close(stop); <-stopped }
			go func(p string) {
				defer close(stopped)
				for i := 0; ; i++ {
					// Write and rename: a freeze between a plain
					// WriteFile's truncate and write would leave the
					// file empty while frozen.
					os.WriteFile(p+".tmp", []byte(strconv.Itoa(i)), 0o644)
					os.Rename(p+".tmp", p)
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}(f[1])
			fmt.Println("ok")
		case "stopcount":
			if stopCount != nil {
				stopCount()
				stopCount = nil
			}
			fmt.Println("ok")
		case "open": // open PATH
			fd, err := syscall.Open(f[1], syscall.O_RDONLY, 0)
			if err != nil {
				fmt.Println(err.Error())
			} else {
				syscall.Close(fd)
				fmt.Println("ok")
			}
		case "cpus":
			b, _ := os.ReadFile("/proc/self/status")
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
					fmt.Println(strings.TrimSpace(v))
				}
			}
		case "dwrite": // dwrite PATH MB: O_DIRECT writes of 1 MB, answers the ms taken
			n, _ := strconv.Atoi(f[2])
			buf, err := syscall.Mmap(-1, 0, 1<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
			if err != nil {
				fmt.Println(err)
				continue
			}
			fd, err := syscall.Open(f[1], syscall.O_WRONLY|syscall.O_CREAT|syscall.O_DIRECT, 0o644)
			if err != nil {
				fmt.Println(err)
				continue
			}
			start := time.Now()
			for i := 0; i < n && err == nil; i++ {
				_, err = syscall.Write(fd, buf)
			}
			syscall.Fsync(fd)
			syscall.Close(fd)
			if err != nil {
				fmt.Println(err)
				continue
			}
			fmt.Println(time.Since(start).Milliseconds())
		case "cgroup":
			b, _ := os.ReadFile("/proc/self/cgroup")
			fmt.Println(strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ";"))
		default:
			fmt.Println("unknown", f[0])
		}
	}
	_ = keep
}

type helper struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  chan string
	done chan struct{}
	err  error // from Wait, valid after done
}

// startHelper starts the helper; cgroupFD >= 0 starts it inside that v2
// group with CLONE_INTO_CGROUP. Its end is registered with t.Cleanup.
func startHelper(t *testing.T, cgroupFD int) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GOMAXPROCS=2")
	cmd.Stderr = os.Stderr
	if cgroupFD >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgroupFD}
	}
	return runHelper(t, cmd)
}

func runHelper(t *testing.T, cmd *exec.Cmd) *helper {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, in: in, out: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.out <- sc.Text()
		}
		close(h.out)
	}()
	go func() {
		h.err = cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
	})
	return h
}

func (h *helper) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(h.in, line+"\n"); err != nil {
		t.Fatalf("helper: send %q: %v", line, err)
	}
}

// do sends a command and returns the answer, or "" and exited=true when
// the helper died first.
func (h *helper) do(t *testing.T, line string) (answer string, exited bool) {
	t.Helper()
	io.WriteString(h.in, line+"\n")
	select {
	case s, ok := <-h.out:
		if !ok {
			<-h.done
			return "", true
		}
		return s, false
	case <-time.After(30 * time.Second):
		t.Fatalf("helper: no answer to %q", line)
	}
	return "", false
}

func (h *helper) must(t *testing.T, line string) string {
	t.Helper()
	s, exited := h.do(t, line)
	if exited {
		t.Fatalf("helper: exited during %q: %v", line, h.err)
	}
	return s
}

func (h *helper) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-h.done:
		return h.err
	case <-time.After(d):
		t.Fatalf("helper %d did not exit in %v", h.cmd.Process.Pid, d)
	}
	return nil
}

func randomParent(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "berth-test-" + hex.EncodeToString(b)
}

// newTestGroup creates a group under a fresh berth-test-* parent on the
// real host; the group (after killing what is left in it) and the parent
// are removed at the end of the test.
func newTestGroup(t *testing.T, r Resources) *Cgroup {
	t.Helper()
	testutil.RequiresRoot(t)
	return newGroupOn(t, nil, r)
}

func newGroupOn(t *testing.T, h *host, r Resources) *Cgroup {
	t.Helper()
	parent := randomParent(t)
	if h == nil {
		h = defaultHost()
	}
	t.Cleanup(func() {
		if err := cleanup(h, parent, nil); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		assertNoDirs(t, h, parent)
	})
	c, err := New(context.Background(), Config{Parent: parent, Name: "c1", Resources: r, host: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Kill(ctx)
		if err := c.Delete(ctx); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
	return c
}

// assertNoDirs fails when a directory of parent survives in any hierarchy.
func assertNoDirs(t *testing.T, h *host, parent string) {
	t.Helper()
	for _, mp := range append(append([]string{}, h.v1dirs...), h.unified) {
		if mp == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(mp, parent)); err == nil {
			t.Errorf("%s survived the test", filepath.Join(mp, parent))
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// requireV1 skips (fails in CI) unless the host has v1 controllers.
func requireV1(t *testing.T, ctrls ...string) {
	t.Helper()
	testutil.RequiresRoot(t)
	h := defaultHost()
	for _, c := range ctrls {
		if h.mode == Unified || h.v1[c] == "" {
			t.Skipf("host has no v1 %s controller (mode %s)", c, h.mode)
		}
	}
}

func cancelCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
