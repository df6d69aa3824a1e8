//go:build linux

package namespace

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPTYOpen(t *testing.T) {
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()

	// The name is the slave's path: the init bind-mounts it onto
	// /dev/console, so it must be the very terminal the fd is.
	num, ok := strings.CutPrefix(slave.Name(), "/dev/pts/")
	if _, err := strconv.ParseUint(num, 10, 32); !ok || err != nil {
		t.Fatalf("slave name %q, want /dev/pts/N", slave.Name())
	}
	var byFD, byName unix.Stat_t
	if err := unix.Fstat(int(slave.Fd()), &byFD); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(slave.Name(), &byName); err != nil {
		t.Fatal(err)
	}
	if byFD.Rdev != byName.Rdev {
		t.Errorf("%s is device %#x, the slave fd %#x", slave.Name(), byName.Rdev, byFD.Rdev)
	}

	for _, f := range []*os.File{master, slave} {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fd&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s is not close-on-exec", f.Name())
		}
		// Blocking: the slave becomes a process's stdio, and the master is
		// read with plain blocking reads wherever it is passed to.
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fl&unix.O_NONBLOCK != 0 {
			t.Errorf("%s is non-blocking", f.Name())
		}
	}
}

func TestPTYSlaveToMaster(t *testing.T) {
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()

	if _, err := slave.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	// Output processing (ONLCR) turns the newline into CR LF.
	want := []byte("hello\r\n")
	got := make(chan []byte, 1)
	go func() {
		var b []byte
		buf := make([]byte, 64)
		for len(b) < len(want) {
			n, err := master.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- b
	}()
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Errorf("master read %q, want %q", b, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing read from the master")
	}
}

func TestPTYWinsize(t *testing.T) {
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()

	if err := setWinsize(master, 132, 43); err != nil {
		t.Fatal(err)
	}
	ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Col != 132 || ws.Row != 43 {
		t.Errorf("slave window %dx%d, want 132x43", ws.Col, ws.Row)
	}

	f, err := os.CreateTemp(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := setWinsize(f, 80, 24); err == nil {
		t.Error("setWinsize on a regular file succeeded")
	}
}
