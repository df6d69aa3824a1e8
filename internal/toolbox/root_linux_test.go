package toolbox_test

import (
	"bytes"
	"os/exec"
	"syscall"
	"testing"

	"github.com/berthrt/berth/internal/testutil"
)

// chrootRun runs an applet chrooted into root with the given credentials,
// the way a container would see it.
func chrootRun(t *testing.T, root string, cred *syscall.Credential, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("/bin/"+args[0], args[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/bin", "HOME=/home/tester"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), 0
}

func TestChrootedAsUser(t *testing.T) {
	testutil.RequiresRoot(t)
	root := rootfs(t)
	tester := &syscall.Credential{Uid: 1000, Gid: 1000, Groups: []uint32{2000}}

	if out, _ := chrootRun(t, root, tester, "id"); out != "uid=1000(tester) gid=1000(tester) groups=1000(tester),2000(extra)\n" {
		t.Errorf("id as tester: %q", out)
	}
	if out, _ := chrootRun(t, root, &syscall.Credential{Uid: 4242, Gid: 0}, "id"); out != "uid=4242 gid=0(root) groups=0(root)\n" {
		t.Errorf("id as 4242: %q", out)
	}
	if out, _ := chrootRun(t, root, tester, "id", "-Gn"); out != "tester extra\n" {
		t.Errorf("id -Gn: %q", out)
	}
	if out, _ := chrootRun(t, root, nil, "id"); out != "uid=0(root) gid=0(root) groups=0(root)\n" {
		t.Errorf("id as root: %q", out)
	}
	if out, _ := chrootRun(t, root, nil, "ls", "/etc"); out != "group\npasswd\n" {
		t.Errorf("ls /etc: %q", out)
	}

	// An unprivileged user is refused what root may do.
	for _, op := range []string{"mount", "chroot", "sethostname", "mknod", "mknod-open", "setuid-root", "unshare-mnt"} {
		out, code := chrootRun(t, root, tester, "try", op)
		if out != "EPERM\n" || code != 1 {
			t.Errorf("try %s as tester: %q exit %d, want EPERM", op, out, code)
		}
	}
	for _, op := range []string{"mount", "chroot", "unshare-mnt"} {
		out, code := chrootRun(t, root, nil, "try", op)
		if out != "ok\n" || code != 0 {
			t.Errorf("try %s as root: %q exit %d, want ok", op, out, code)
		}
	}
	if out, _ := chrootRun(t, root, tester, "try", "open-rw", "/etc/passwd"); out != "EACCES\n" {
		t.Errorf("try open-rw /etc/passwd as tester: %q", out)
	}
}
