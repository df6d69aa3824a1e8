package toolboxtest_test

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/testutil"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
)

func TestExtract(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	toolboxtest.Extract(t, dir, []imagebuild.File{
		imagebuild.Dir("ro", 0o555),
		imagebuild.Reg("ro/file", 0o4750, "x"),
		{Name: "ro/hard", Type: tar.TypeLink, Linkname: "ro/file"},
		imagebuild.Symlink("link", "ro/file"),
		{Name: "shared", Type: tar.TypeDir, Mode: 0o3777, Uid: 1000, Gid: 2000},
		{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "fifo", Type: tar.TypeFifo},
	})
	check := func(name string, mode os.FileMode, uid uint32) {
		t.Helper()
		st, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode || st.Sys().(*syscall.Stat_t).Uid != uid {
			t.Errorf("%s: %v uid %d, want %v uid %d", name, st.Mode(), st.Sys().(*syscall.Stat_t).Uid, mode, uid)
		}
	}
	check("ro", os.ModeDir|0o555, 0)
	check("ro/file", os.ModeSetuid|0o750, 0)
	check("shared", os.ModeDir|os.ModeSetgid|os.ModeSticky|0o777, 1000)
	check("dev/null", os.ModeDevice|os.ModeCharDevice|0o666, 0)
	check("fifo", os.ModeNamedPipe|0o600, 0)
	a, _ := os.Stat(filepath.Join(dir, "ro/file"))
	b, _ := os.Stat(filepath.Join(dir, "ro/hard"))
	if !os.SameFile(a, b) {
		t.Error("ro/hard is not a hard link of ro/file")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "link")); l != "ro/file" {
		t.Errorf("link -> %q", l)
	}
}

func TestBusyboxRootfs(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	toolboxtest.BusyboxRootfs(t, dir)
	cmd := exec.Command("/bin/sh", "-c", "echo $((6*7)) $(id -u tester)")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "42 1000\n" {
		t.Errorf("busybox sh: %q %v", out, err)
	}
}
