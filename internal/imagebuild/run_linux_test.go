package imagebuild_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestToolboxImageRuns builds an image around the real toolbox, unpacks it
// with umoci and runs applets chrooted into the rootfs.
func TestToolboxImageRuns(t *testing.T) {
	testutil.RequiresRoot(t)
	umoci := testutil.RequiresCommand(t, "umoci")
	b, err := imagebuild.Build(imagebuild.Image{
		Layers: []imagebuild.Layer{{Tar: imagebuild.LayerTar(imagebuild.Toolbox(toolboxtest.Bytes(t)))}},
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/toolbox", "true"}, Env: []string{"PATH=/bin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := imagebuild.WriteOCILayout(dir, "toolbox", b); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command(umoci, "unpack", "--image", dir+":toolbox", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	rootfs := filepath.Join(bundle, "rootfs")
	for _, tc := range []struct {
		cred *syscall.Credential
		args []string
		want string
	}{
		{nil, []string{"echo", "hi"}, "hi\n"},
		{&syscall.Credential{Uid: 1000, Gid: 1000, Groups: []uint32{2000}}, []string{"id"}, "uid=1000(tester) gid=1000(tester) groups=1000(tester),2000(extra)\n"},
		{nil, []string{"stat", "/home/tester"}, "type=dir mode=0755 uid=1000 gid=1000 size="},
		{nil, []string{"stat", "/tmp"}, "type=dir mode=1777 uid=0 gid=0 size="},
	} {
		cmd := exec.Command("/bin/"+tc.args[0], tc.args[1:]...)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: tc.cred}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), tc.want) {
			t.Errorf("%v: %q %v, want %q", tc.args, out, err, tc.want)
		}
	}
}

// TestBusyboxImageRuns unpacks the busybox image and runs its shell.
func TestBusyboxImageRuns(t *testing.T) {
	testutil.RequiresRoot(t)
	umoci := testutil.RequiresCommand(t, "umoci")
	b, err := imagebuild.Build(toolboxtest.BusyboxImage(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := imagebuild.WriteOCILayout(dir, "busybox", b); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command(umoci, "unpack", "--image", dir+":busybox", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	cmd := exec.Command("/bin/sh", "-c", "echo $((6*7)) $(id -un) $(cat /etc/hostname 2>/dev/null || echo none)")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: filepath.Join(bundle, "rootfs")}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "42 root none\n" {
		t.Errorf("busybox sh: %q %v", out, err)
	}
}
