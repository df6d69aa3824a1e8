//go:build linux

package seccomp

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/internal/testutil"
)

// Tests that install a filter do it in a child: the test binary re-executed
// with childEnv naming the function to run. The filter cannot be removed,
// so the test process itself must never get one.
const childEnv = "BERTH_SECCOMP_TEST_CHILD"

const addrNoRandomize = 0x0040000 // ADDR_NO_RANDOMIZE, linux/personality.h

var children = map[string]func() error{
	"errno":    childErrno,
	"default":  childDefault,
	"nonnp":    childNoNNP,
	"sysadmin": childSysAdmin,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		f, ok := children[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child %q\n", name)
			os.Exit(2)
		}
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("child ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(t *testing.T, name string, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+name)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "child ok") {
		t.Fatalf("child %s: %v\n%s", name, err, out)
	}
}

// setNoNewPrivs locks the goroutine to its thread and sets no_new_privs
// there, as the kernel requires of an unprivileged installer.
func setNoNewPrivs() error {
	runtime.LockOSThread()
	return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
}

func TestInstallErrno(t *testing.T) {
	runChild(t, "errno", "DIR="+t.TempDir())
}

func childErrno() error {
	// A thread that exists before the filter must get it too (TSYNC).
	ready, check, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		runtime.LockOSThread()
		close(ready)
		<-check
		var u unix.Utsname
		done <- unix.Uname(&u)
	}()
	<-ready
	if err := setNoNewPrivs(); err != nil {
		return err
	}
	p := &Profile{
		DefaultAction: ActAllow,
		Flags:         []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"},
		Syscalls: []Syscall{
			{Names: []string{"uname"}, Action: ActErrno, ErrnoRet: new(uint(unix.EOPNOTSUPP))},
			{Names: []string{"mkdir", "mkdirat"}, Action: ActErrno, ErrnoRet: new(uint(unix.EROFS))},
			{Names: []string{"getppid"}, Action: ActErrno, ErrnoRet: new(uint(unix.EPERM)), Args: []Arg{{Index: 0, Value: 7, Op: OpEqualTo}}},
		},
	}
	if err := Install(p, nil); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("uname: %v, want EOPNOTSUPP", err)
	}
	if err := os.Mkdir(filepath.Join(os.Getenv("DIR"), "d"), 0o755); !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("mkdir: %v, want EROFS", err)
	}
	if os.Getpid() <= 0 {
		return fmt.Errorf("getpid failed")
	}
	// getppid takes no argument; the register holds what we pass.
	if _, _, e := unix.RawSyscall(unix.SYS_GETPPID, 7, 0, 0); e != unix.EPERM {
		return fmt.Errorf("getppid(7): %v, want EPERM", e)
	}
	if r, _, e := unix.RawSyscall(unix.SYS_GETPPID, 8, 0, 0); e != 0 || r == 0 {
		return fmt.Errorf("getppid(8): %v", e)
	}
	close(check)
	if err := <-done; !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("uname on another thread: %v, want EOPNOTSUPP", err)
	}
	return nil
}

func TestInstallDefault(t *testing.T) {
	runChild(t, "default", "DIR="+t.TempDir())
}

func childDefault() error {
	if err := setNoNewPrivs(); err != nil {
		return err
	}
	if err := Install(DefaultProfile(), dockerCaps); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	if !strings.Contains(string(status), "\nSeccomp:\t2\n") || !strings.Contains(string(status), "\nNoNewPrivs:\t1\n") {
		return fmt.Errorf("/proc/self/status does not show filter mode and no_new_privs:\n%s", status)
	}
	if err := unix.Unshare(unix.CLONE_NEWUSER); !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("unshare(CLONE_NEWUSER): %v, want EPERM", err)
	}
	if unix.Getpid() != os.Getpid() || unix.Getpid() <= 0 {
		return fmt.Errorf("getpid")
	}
	dir := os.Getenv("DIR")
	if err := unix.Mount("none", dir, "tmpfs", 0, ""); !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("mount: %v, want EPERM", err)
	}
	if _, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0); !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("keyctl: %v, want EPERM", err)
	}
	if _, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0); !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("socket(AF_VSOCK): %v, want EPERM", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_UNIX): %v", err)
	}
	unix.Close(fd)
	if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0); e != 0 {
		return fmt.Errorf("personality(query): %v", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, addrNoRandomize, 0, 0); e != unix.EPERM {
		return fmt.Errorf("personality(ADDR_NO_RANDOMIZE): %v, want EPERM", e)
	}
	// Ordinary work still runs: files, threads, and a child process.
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		return err
	}
	errc := make(chan error)
	for range 4 {
		go func() {
			runtime.LockOSThread() // forces new threads: clone without namespace flags
			_, err := os.ReadFile(filepath.Join(dir, "f"))
			errc <- err
		}()
	}
	for range 4 {
		if err := <-errc; err != nil {
			return err
		}
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		if out, err := exec.Command(sh, "-c", "echo hi").Output(); err != nil || string(out) != "hi\n" {
			return fmt.Errorf("sh under the default profile: %q %v", out, err)
		}
	}
	return nil
}

// TestInstallNeedsNoNewPrivs checks the kernel's rule when the caller has
// neither no_new_privs nor CAP_SYS_ADMIN.
func TestInstallNeedsNoNewPrivs(t *testing.T) {
	runChild(t, "nonnp")
}

func childNoNNP() error {
	// Drop CAP_SYS_ADMIN from this thread's effective set (a no-op for
	// an unprivileged user).
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return err
	}
	caps[0].Effective &^= 1 << unix.CAP_SYS_ADMIN
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return err
	}
	err := Install(DefaultProfile(), nil)
	if !errors.Is(err, unix.EACCES) {
		return fmt.Errorf("install without no_new_privs or CAP_SYS_ADMIN: %v, want EACCES", err)
	}
	return nil
}

// TestInstallWithSysAdmin is the container init's way: still holding
// CAP_SYS_ADMIN, without no_new_privs, which stays off.
func TestInstallWithSysAdmin(t *testing.T) {
	testutil.RequiresRoot(t)
	runChild(t, "sysadmin")
}

func childSysAdmin() error {
	prog, err := Compile(DefaultProfile(), runtime.GOARCH, dockerCaps)
	if err != nil {
		return err
	}
	if err := InstallFilter(prog); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || nnp != 0 {
		return fmt.Errorf("no_new_privs is %d (%v), want 0", nnp, err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("unshare(CLONE_NEWNS) as root: %v, want EPERM", err)
	}
	return nil
}

func TestInstallFilterInvalid(t *testing.T) {
	if err := InstallFilter(nil); err == nil {
		t.Error("empty program installed")
	}
}
