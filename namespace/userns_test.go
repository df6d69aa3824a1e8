//go:build linux

package namespace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/mount"
	"golang.org/x/sys/unix"
)

func usernsConfig(t *testing.T, script string) *Config {
	cfg := newConfig(t, sh(script))
	cfg.Namespaces = append(append([]Namespace(nil), DefaultNamespaces...), NamespaceUser)
	cfg.UIDMappings = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	cfg.GIDMappings = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	cfg.MapRootfs = true
	return cfg
}

// TestMapRootfsOverlay: an overlay of layers owned by host root, with an
// opaque directory, in directories the container's root cannot reach,
// shows as owned by the container's root; what the container writes lands
// in the upper directory with the mapped host ids; Files and bind mounts
// from private directories arrive; nothing stays mounted on the host.
func TestMapRootfsOverlay(t *testing.T) {
	cfg := usernsConfig(t, `id -u; cat /proc/self/uid_map; stat -c %u:%g /etc/passwd / /opq; ls /opq | wc -l
touch /tmp/f && stat -c %u /tmp/f; echo more >> /etc/passwd; cat /etc/hostname; cat /data/in; touch /data/x 2>/dev/null || echo ro`)
	lower := cfg.RootDir // busybox rootfs, owned by host root
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(private, "top")
	for _, d := range []string{"top/opq", "upper", "work", "root", "data"} {
		if err := os.MkdirAll(filepath.Join(private, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(lower, "opq/hidden"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(top, "opq"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"hostname": "mapped\n", "data/in": "from host\n"} {
		if err := os.WriteFile(filepath.Join(private, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	upper := filepath.Join(private, "upper")
	cfg.RootDir = filepath.Join(private, "root")
	cfg.Rootfs = []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + top + ":" + lower, "upperdir=" + upper, "workdir=" + filepath.Join(private, "work"), "volatile",
	}}}
	cfg.Files = map[string]string{"/etc/hostname": filepath.Join(private, "hostname")}
	cfg.Mounts = []mount.Mount{{Type: "bind", Source: filepath.Join(private, "data"), Target: "/data", Options: []string{"rbind", "ro"}}}

	r := run(t, cfg, nil)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	want := []string{"0", "0 100000 65536", "0:0", "0:0", "0:0", "0", "0", "mapped", "from host", "ro"}
	if strings.Join(lines, "|") != strings.Join(want, "|") || r.status.Code != 0 {
		t.Errorf("got %q (exit %d), want %q (stderr %q)", lines, r.status.Code, want, r.stderr)
	}
	for _, p := range []string{upper + "/tmp/f", upper + "/etc/passwd", upper} {
		st, err := os.Stat(p)
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != 100000 || st.Sys().(*syscall.Stat_t).Gid != 100000 {
			t.Errorf("%s: want owner 100000:100000 on the host: %v", p, err)
		}
	}
	st, err := os.Stat(filepath.Join(lower, "etc/passwd"))
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 || st.Size() != 126 {
		t.Errorf("lower etc/passwd changed: %v %v", st, err)
	}
	assertNoMounts(t, private)
}

// TestMapRootfsBind: a plain rootfs directory owned by host root is
// idmapped as a whole.
func TestMapRootfsBind(t *testing.T) {
	cfg := usernsConfig(t, `id -u; stat -c %u /etc/passwd; touch /tmp/f && stat -c %u /tmp/f`)
	r := run(t, cfg, nil)
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != "0 0 0" {
		t.Errorf("got %q, want 0 0 0 (stderr %q)", got, r.stderr)
	}
	// Through the idmapped mount, the container's root writes host uid 0.
	st, err := os.Stat(filepath.Join(cfg.RootDir, "tmp/f"))
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("tmp/f: %v %v", st, err)
	}
}

func TestMapRootfsInvalid(t *testing.T) {
	cfg := newConfig(t, sh("true"))
	cfg.MapRootfs = true
	if _, err := Start(t.Context(), cfg, Stdio{}, StartOptions{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("MapRootfs without a user namespace: %v", err)
	}
	cfg = usernsConfig(t, "true")
	cfg.UIDMappings = []IDMap{{ContainerID: 1, HostID: 100000, Size: 65536}}
	if _, err := Start(t.Context(), cfg, Stdio{}, StartOptions{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("MapRootfs without root mapped: %v", err)
	}
}

// TestMapRootfsMissingLayer: a layer that cannot be opened fails the start
// with ErrNotFound, and leaves no init behind.
func TestMapRootfsMissingLayer(t *testing.T) {
	cfg := usernsConfig(t, "true")
	private := t.TempDir()
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(private, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lower := cfg.RootDir
	cfg.RootDir = filepath.Join(private, "root")
	cfg.Rootfs = []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(private, "gone") + ":" + lower, "upperdir=" + filepath.Join(private, "upper"), "workdir=" + filepath.Join(private, "work"),
	}}}
	before := childPids(t)
	_, err := Start(t.Context(), cfg, Stdio{}, StartOptions{})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
	if after := childPids(t); after != before {
		t.Errorf("children before %q, after %q", before, after)
	}
	assertNoMounts(t, private)
}

// childPids lists the children of this process (of all its threads).
func childPids(t *testing.T) string {
	kids, err := childrenOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(kids)
}
