//go:build linux

package berth_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrt/berth"
)

var usernsMaps = []berth.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}

// TestUsernsMappedRoot runs the toolbox image with its ids mapped: the
// container's root is host uid 100000, the image's files (host uid 0 in the
// layer) are the container root's, and a file the container creates is
// stored in the writable layer as host uid 100000.
func TestUsernsMappedRoot(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	mapped := func(cmd ...string) berth.ContainerConfig {
		return berth.ContainerConfig{Image: img, Cmd: cmd, UIDMappings: usernsMaps, GIDMappings: usernsMaps}
	}
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"id", "-u"}, "0"},
		{[]string{"cat", "/proc/self/uid_map"}, "0 100000 65536"},
		{[]string{"cat", "/proc/self/gid_map"}, "0 100000 65536"},
		{[]string{"stat", "/etc/passwd"}, "type=file mode=0644 uid=0 gid=0 "},
		{[]string{"stat", "/"}, "type=dir mode=0755 uid=0 gid=0"},
	} {
		out, _, err := run(t, rt, mapped(tc.cmd...))
		got := strings.Join(strings.Fields(out), " ")
		if err != nil || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q (%v), want %q", tc.cmd, got, err, tc.want)
		}
	}

	// A bridge network and the default files (/etc/hosts, ...) work too.
	cfg := mapped("touch", "/tmp/f")
	cfg.NetworkMode = "bridge"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := rt.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Wait(ctx); err != nil || st.ExitCode != 0 {
		t.Fatalf("touch /tmp/f: %+v %v", st, err)
	}
	// The runtime's root is a sibling of this test's other temporary dirs.
	uppers, _ := filepath.Glob(filepath.Join(filepath.Dir(t.TempDir()), "*", "snapshots", c.ID(), "upper"))
	if len(uppers) != 1 {
		t.Fatalf("upper directory of %s: found %q", c.ID(), uppers)
	}
	st, err := os.Stat(filepath.Join(uppers[0], "tmp", "f"))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 100000 || s.Gid != 100000 {
		t.Errorf("/tmp/f is %d:%d on the host, want 100000:100000", s.Uid, s.Gid)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestUsernsExecAndBind: an exec'd process is in the user namespace too,
// a volume and a bind mount from a private host directory arrive, and a
// read-only rootfs and a terminal work.
func TestUsernsExecAndBind(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	host := t.TempDir() // 0700, out of reach of the container's root by path
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from host"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"cat", "/data/in"},
		UIDMappings: usernsMaps, GIDMappings: usernsMaps,
		Mounts: []berth.Mount{{Source: host, Target: "/data", ReadOnly: true}, {Source: "uservol", Target: "/vol"}}})
	if err != nil || out != "from host" {
		t.Fatalf("bind mount: %q %v", out, err)
	}

	_, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"touch", "/x"}, ReadOnlyRootfs: true,
		UIDMappings: usernsMaps, GIDMappings: usernsMaps})
	if err == nil {
		t.Error("touch on a read-only rootfs succeeded")
	}
	out, _, err = run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"isatty"}, TTY: true,
		UIDMappings: usernsMaps, GIDMappings: usernsMaps})
	if err != nil || !strings.Contains(out, "stdout=tty") {
		t.Errorf("tty: %q %v", out, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := rt.Create(ctx, berth.ContainerConfig{Image: img, Cmd: []string{"sleep", "100"}, NetworkMode: "none",
		UIDMappings: usernsMaps, GIDMappings: usernsMaps})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(context.Background(), berth.DeleteOptions{Force: true})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	p, err := c.Exec(ctx, berth.ExecConfig{Cmd: []string{"cat", "/proc/self/uid_map"}, Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(buf.String()), " "); got != "0 100000 65536" {
		t.Errorf("exec: uid_map %q", got)
	}
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUsernsMapValidation(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	for _, tc := range []struct {
		name       string
		uids, gids []berth.IDMap
		field      string
	}{
		{"root unmapped", []berth.IDMap{{ContainerID: 1, HostID: 100000, Size: 65536}}, usernsMaps, "UIDMappings"},
		{"gid root unmapped", usernsMaps, []berth.IDMap{{ContainerID: 1000, HostID: 100000, Size: 10}}, "GIDMappings"},
		{"uids only", usernsMaps, nil, "UIDMappings"},
		{"gids only", nil, usernsMaps, "GIDMappings"},
		{"zero size", []berth.IDMap{{ContainerID: 0, HostID: 100000, Size: 0}}, usernsMaps, "UIDMappings"},
		{"negative", usernsMaps, []berth.IDMap{{ContainerID: 0, HostID: -1, Size: 10}}, "GIDMappings"},
		{"container overlap", []berth.IDMap{{ContainerID: 0, HostID: 100000, Size: 10}, {ContainerID: 5, HostID: 200000, Size: 10}}, usernsMaps, "UIDMappings"},
		{"host overlap", []berth.IDMap{{ContainerID: 0, HostID: 100000, Size: 10}, {ContainerID: 10, HostID: 100005, Size: 10}}, usernsMaps, "UIDMappings"},
		{"beyond 32 bits", []berth.IDMap{{ContainerID: 0, HostID: 1<<32 - 10, Size: 65536}}, usernsMaps, "UIDMappings"},
	} {
		_, err := rt.Create(context.Background(), berth.ContainerConfig{Image: img, UIDMappings: tc.uids, GIDMappings: tc.gids})
		if !errors.Is(err, berth.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: got %v, want ErrInvalid naming %s", tc.name, err, tc.field)
		}
	}
	_, err := rt.Create(context.Background(), berth.ContainerConfig{Image: img, Privileged: true, UIDMappings: usernsMaps, GIDMappings: usernsMaps})
	if !errors.Is(err, berth.ErrInvalid) || !strings.Contains(err.Error(), "Privileged") {
		t.Errorf("privileged with maps: got %v, want ErrInvalid naming Privileged", err)
	}
}

// TestUsernsCopySnapshot: with the copy snapshotter the rootfs is one
// directory, idmapped as a whole: the image's files are the container
// root's, and what it writes is stored as the ids it has inside.
func TestUsernsCopySnapshot(t *testing.T) {
	rt := newRuntimeWith(t, berth.Config{Snapshotter: "copy"})
	img := toolboxImage(t, rt)
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"id", "-u"}, "0"},
		{[]string{"stat", "/etc/passwd"}, "type=file mode=0644 uid=0 gid=0 "},
		{[]string{"touch", "/tmp/f"}, ""},
	} {
		out, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: tc.cmd, UIDMappings: usernsMaps, GIDMappings: usernsMaps})
		if got := strings.Join(strings.Fields(out), " "); err != nil || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q (%v), want %q", tc.cmd, got, err, tc.want)
		}
	}
}

// TestUsernsCommitExportVolume: what a mapped container writes is stored
// with host ids, but Commit and Export give back the ids the container saw
// (the committed image runs the same without maps), and a volume the
// mapped container creates belongs to its root.
func TestUsernsCommitExportVolume(t *testing.T) {
	rt := newRuntime(t)
	img := toolboxImage(t, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	step := func(img *berth.Image, user, ref string, cmd ...string) (*berth.Container, *berth.Image) {
		t.Helper()
		c, err := rt.Create(ctx, berth.ContainerConfig{Image: img, Cmd: cmd, User: user, NetworkMode: "none",
			UIDMappings: usernsMaps, GIDMappings: usernsMaps})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), berth.DeleteOptions{Force: true}) })
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := c.Wait(ctx); err != nil || st.ExitCode != 0 {
			t.Fatalf("%q as %q: %+v %v", cmd, user, st, err)
		}
		out, err := c.Commit(ctx, berth.CommitOptions{Ref: ref})
		if err != nil {
			t.Fatal(err)
		}
		return c, out
	}
	_, first := step(img, "", "berth-test/userns-commit:1", "touch", "/tmp/by-root")
	c, second := step(first, "1000:1000", "berth-test/userns-commit:2", "touch", "/tmp/by-1000")
	for _, tc := range []struct{ path, want string }{
		{"/tmp/by-root", "uid=0 gid=0"},
		{"/tmp/by-1000", "uid=1000 gid=1000"},
	} {
		out, _, err := run(t, rt, berth.ContainerConfig{Image: second, Cmd: []string{"stat", tc.path}})
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("committed image, unmapped: stat %s: %q %v, want %q", tc.path, out, err, tc.want)
		}
	}

	var tarball bytes.Buffer
	if err := c.Export(ctx, &tarball); err != nil {
		t.Fatal(err)
	}
	owners := map[string]string{}
	tr := tar.NewReader(&tarball)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		owners[strings.TrimPrefix(hdr.Name, "./")] = fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid)
	}
	for p, want := range map[string]string{"tmp/by-root": "0:0", "tmp/by-1000": "1000:1000", "etc/passwd": "0:0"} {
		if owners[p] != want {
			t.Errorf("export: %s is %q, want %q", p, owners[p], want)
		}
	}

	// A volume made for a mapped container is its root's.
	if _, _, err := run(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"touch", "/vol/x"},
		UIDMappings: usernsMaps, GIDMappings: usernsMaps,
		Mounts: []berth.Mount{{Source: "usernsvol", Target: "/vol"}}}); err != nil {
		t.Fatalf("write to a new volume as mapped root: %v", err)
	}
	v, err := rt.CreateVolume(ctx, "usernsvol")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(v.Mountpoint, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 100000 || s.Gid != 100000 {
		t.Errorf("volume file is %d:%d on the host, want 100000:100000", s.Uid, s.Gid)
	}
}
