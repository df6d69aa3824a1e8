//go:build linux

package toolbox_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/toolbox"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	"golang.org/x/sys/unix"
)

// rootfs lays out a fresh toolbox rootfs for one test.
func rootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	toolboxtest.Rootfs(t, dir)
	return dir
}

type result struct {
	out, err string
	code     int
}

func run(t *testing.T, root, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "bin", args[0]), args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func TestRootfsLayout(t *testing.T) {
	root := rootfs(t)
	for _, a := range toolbox.Applets() {
		target, err := os.Readlink(filepath.Join(root, "bin", a))
		if err != nil || target != "toolbox" {
			t.Errorf("/bin/%s -> %q, %v", a, target, err)
		}
	}
	st, err := os.Stat(filepath.Join(root, "tmp"))
	if err != nil || st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("/tmp: %v %v", st.Mode(), err)
	}
	for _, d := range []string{"proc", "sys", "dev", "etc/passwd", "etc/group"} {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			t.Error(err)
		}
	}
}

func TestApplets(t *testing.T) {
	root := rootfs(t)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "f")
	tests := []struct {
		args  []string
		stdin string
		out   string // exact stdout, unless prefix is set
		code  int
	}{
		{[]string{"true"}, "", "", 0},
		{[]string{"false"}, "", "", 1},
		{[]string{"echo", "hello", "world"}, "", "hello world\n", 0},
		{[]string{"echo", "-n", "x"}, "", "x", 0},
		{[]string{"toolbox", "echo", "via", "toolbox"}, "", "via toolbox\n", 0},
		{[]string{"cat"}, "from stdin", "from stdin", 0},
		{[]string{"cat", filepath.Join(root, "etc/group")}, "", toolbox.Group, 0},
		{[]string{"exit", "42"}, "", "", 42},
		{[]string{"sleep", "0.01"}, "", "", 0},
		{[]string{"write", file, "some", "text"}, "", "", 0},
		{[]string{"cat", file}, "", "some text", 0},
		{[]string{"write", "-a", file, "!"}, "", "", 0},
		{[]string{"cat", file}, "", "some text!", 0},
		{[]string{"stat", file}, "", "type=file mode=0644 uid=" + itoa(os.Getuid()) + " gid=" + itoa(os.Getgid()) + " size=10\n", 0},
		{[]string{"mkdir", "-p", "-m", "0700", filepath.Join(tmp, "a/b")}, "", "", 0},
		{[]string{"stat", filepath.Join(tmp, "a/b")}, "", "type=dir mode=0700 uid=" + itoa(os.Getuid()) + " gid=" + itoa(os.Getgid()) + " size=", 0},
		{[]string{"touch", filepath.Join(tmp, "a/t")}, "", "", 0},
		{[]string{"ls", filepath.Join(tmp, "a")}, "", "b\nt\n", 0},
		{[]string{"ls", "-l", filepath.Join(tmp, "a/t")}, "", "-rw-r--r-- " + itoa(os.Getuid()) + " " + itoa(os.Getgid()) + " 0 " + filepath.Join(tmp, "a/t") + "\n", 0},
		{[]string{"rm", "-r", filepath.Join(tmp, "a")}, "", "", 0},
		{[]string{"rm", filepath.Join(tmp, "a")}, "", "", 1},
		{[]string{"rm", "-f", filepath.Join(tmp, "a")}, "", "", 0},
		{[]string{"stat", "/dev/null"}, "", "type=char mode=0666 uid=0 gid=0 size=0 rdev=1:3\n", 0},
		{[]string{"sha256sum"}, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n", 0},
		{[]string{"spew", "100"}, "", strings.Repeat("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk\n", 2)[:100], 0},
		{[]string{"memhog", "8"}, "", "allocated 8 MiB\n", 0},
		{[]string{"forkbomb", "5"}, "", "forked 5\n", 0},
		{[]string{"try", "no-such-op"}, "", "", 2},
		{[]string{"no-such-applet"}, "", "", 127},
	}
	for _, tc := range tests {
		args := tc.args
		if args[0] == "no-such-applet" {
			args = []string{"toolbox", "no-such-applet"}
		}
		r := run(t, root, tc.stdin, args...)
		if r.code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, r.code, tc.code, r.err)
		}
		if strings.HasSuffix(tc.out, "size=") {
			if !strings.HasPrefix(r.out, tc.out) {
				t.Errorf("%v: stdout %q, want prefix %q", tc.args, r.out, tc.out)
			}
		} else if r.out != tc.out {
			t.Errorf("%v: stdout %q, want %q", tc.args, r.out, tc.out)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// start runs a long-lived applet and returns it with a reader of its stdout,
// after its first line (servers print "listening on ADDR", signal handlers
// "ready").
func start(t *testing.T, root string, args ...string) (*exec.Cmd, *bufio.Reader, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "bin", args[0]), args[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return cmd, br, strings.TrimSpace(line)
}

func listenAddr(t *testing.T, line string) string {
	t.Helper()
	addr, ok := strings.CutPrefix(line, "listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	_, port, _ := net.SplitHostPort(addr)
	return "127.0.0.1:" + port
}

func TestNetworkApplets(t *testing.T) {
	root := rootfs(t)
	_, _, line := start(t, root, "http", "-addr", "127.0.0.1:0")
	addr := listenAddr(t, line)
	host, _ := os.Hostname()
	for path, want := range map[string]string{
		"/":              host + "\n",
		"/echo?msg=hi":   "hi",
		"/healthz":       "ok\n",
		"/status/204":    "",
		"/headers":       "Accept-Encoding: gzip\nUser-Agent: Go-http-client/1.1\n",
		"/no/such/thing": "404 page not found\n",
	} {
		r := run(t, root, "", "fetch", "http://"+addr+path)
		wantCode := 0
		if path == "/no/such/thing" {
			wantCode = 1
		}
		if r.out != want || r.code != wantCode {
			t.Errorf("fetch %s: %q exit %d, want %q exit %d (%s)", path, r.out, r.code, want, wantCode, r.err)
		}
	}

	_, _, line = start(t, root, "tcp-echo", "-addr", "127.0.0.1:0")
	r := run(t, root, "ping over tcp", "connect", listenAddr(t, line))
	if r.out != "ping over tcp" || r.code != 0 {
		t.Errorf("tcp: %+v", r)
	}

	_, _, line = start(t, root, "udp-echo", "-addr", "127.0.0.1:0")
	r = run(t, root, "ping over udp", "connect", "-udp", listenAddr(t, line))
	if r.out != "ping over udp" || r.code != 0 {
		t.Errorf("udp: %+v", r)
	}

	// A closed port: the error names the errno.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	r = run(t, root, "", "connect", closed)
	if r.code != 1 || !strings.Contains(r.err, "ECONNREFUSED") {
		t.Errorf("connect to closed port: %+v", r)
	}

	r = run(t, root, "", "resolve", "localhost")
	if r.code != 0 || !strings.Contains(r.out, "127.0.0.1") {
		t.Errorf("resolve localhost: %+v", r)
	}
	r = run(t, root, "", "addrs")
	if r.code != 0 || !strings.Contains(r.out, "lo ") || !strings.Contains(r.out, "127.0.0.1/8") {
		t.Errorf("addrs: %+v", r)
	}
}

func TestSignals(t *testing.T) {
	root := rootfs(t)
	cmd, out, line := start(t, root, "signals")
	if line != "ready" {
		t.Fatalf("first line %q", line)
	}
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGTERM} {
		cmd.Process.Signal(sig)
		line, err := out.ReadString('\n')
		if line != unix.SignalName(sig)+"\n" {
			t.Errorf("after %v, signals printed %q (%v)", sig, line, err)
		}
	}
	if rest, _ := io.ReadAll(out); len(rest) > 0 {
		t.Errorf("signals printed %q after SIGTERM", rest)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("signals exit: %v", err)
	}

	// ignore-term survives SIGTERM (sent by the kill applet), not SIGKILL.
	cmd, _, line = start(t, root, "ignore-term")
	if line != "ready" {
		t.Fatalf("first line %q", line)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if r := run(t, root, "", "kill", "-TERM", pid); r.code != 0 {
		t.Fatalf("kill: %+v", r)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("ignore-term exited on SIGTERM: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if r := run(t, root, "", "kill", "-9", pid); r.code != 0 {
		t.Fatalf("kill -9: %+v", r)
	}
	err := <-done
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("ignore-term after SIGKILL: %v", err)
	}
}

func TestInfoApplets(t *testing.T) {
	root := rootfs(t)
	r := run(t, root, "", "caps")
	for _, k := range []string{"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"} {
		if !strings.Contains(r.out, "\n"+k) && !strings.HasPrefix(r.out, k) {
			t.Errorf("caps lacks %s: %q", k, r.out)
		}
	}
	r = run(t, root, "", "mounts")
	if !strings.Contains(r.out, " / ") {
		t.Errorf("mounts: %q", r.out)
	}
	r = run(t, root, "", "ps")
	if !strings.Contains(r.out, "\n1 0 ") {
		t.Errorf("ps lacks pid 1: %q", r.out)
	}
	r = run(t, root, "", "spin", "0.05")
	if !strings.HasPrefix(r.out, "iterations ") {
		t.Errorf("spin: %+v", r)
	}
	if os.Geteuid() == 0 {
		// Not in a chroot, where the kernel refuses new user namespaces.
		if r := run(t, root, "", "try", "unshare-user"); r.out != "ok\n" {
			t.Errorf("try unshare-user as root: %+v", r)
		}
	}
	r = run(t, root, "", "id", "-u")
	if r.out != itoa(os.Geteuid())+"\n" {
		t.Errorf("id -u: %+v", r)
	}
}
