//go:build linux

package cgroup

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"sync"

	cgroups "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// Mode is how the host mounts cgroups.
type Mode int

const (
	// Unavailable: no cgroup file system is mounted.
	Unavailable Mode = iota
	// Legacy: cgroup v1 controllers only.
	Legacy
	// Hybrid: cgroup v1 controllers, plus a cgroup2 mount (usually at
	// /sys/fs/cgroup/unified) that holds no resource controllers. Limits go to
	// v1; the unified group is created too so that a container's cgroup
	// namespace and v2 events (populated, frozen) work.
	Hybrid
	// Unified: cgroup v2 only, every controller in one tree.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "v1"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "v2"
	}
	return "unavailable"
}

// v1Controllers are the v1 hierarchies a container group is created in, in
// the order they are written. Others (net_cls, perf_event, ...) are left
// alone: berth sets nothing there.
var v1Controllers = []string{"cpuset", "cpu", "cpuacct", "memory", "pids", "blkio", "hugetlb", "devices", "freezer"}

// v2Controllers are the controllers berth enables in subtree_control on a v2
// host, where the parent chain allows it.
var v2Controllers = []string{"cpuset", "cpu", "io", "memory", "pids", "hugetlb"}

// host is what the package knows about the cgroup file systems. It is
// computed once for the real /sys/fs/cgroup, and built by hand in tests to
// point the v2 code at the hybrid host's unified mount.
type host struct {
	mode Mode
	// v1 maps a controller to its hierarchy's mount point; co-mounted
	// controllers (cpu,cpuacct) share one.
	v1 map[string]string
	// v1dirs are the distinct mount points of v1, in v1Controllers order.
	v1dirs []string
	// unified is the cgroup2 mount point, "" when there is none.
	unified string
	// delegate: enable controllers in subtree_control of the parent chain
	// (v2 mode). Off when the v2 code runs on a hybrid host's unified mount.
	delegate bool
	// memsw: memory.memsw.* present (v1 swap accounting).
	memsw bool
	// blkioWeight is the v1 weight file: blkio.weight, blkio.bfq.weight or
	// "". Per-device weights go to the same name with _device appended.
	blkioWeight string
	// noDevices skips device rules (tests that map Resources into plain
	// directories, where no eBPF program can be attached).
	noDevices bool

	mu sync.Mutex
	// parents are the parent directories set up and held open by this
	// process, by path (parentdir.go).
	parents map[string]*parentDir
}

var (
	hostOnce sync.Once
	hostInfo *host
)

// HostMode reports how this host mounts cgroups. It is detected once per
// process.
func HostMode() Mode { return defaultHost().mode }

func defaultHost() *host {
	hostOnce.Do(func() {
		h := &host{v1: map[string]string{}}
		switch cgroups.Mode() {
		case cgroups.Unified:
			h.mode = Unified
		case cgroups.Hybrid:
			h.mode = Hybrid
		case cgroups.Legacy:
			h.mode = Legacy
		default:
			h.mode = Unavailable
		}
		v1, unified := readCgroupMounts("/proc/self/mountinfo")
		switch h.mode {
		case Unified:
			h.unified = "/sys/fs/cgroup"
			h.delegate = true
		case Hybrid:
			h.unified = unified
			if h.unified == "" {
				h.unified = "/sys/fs/cgroup/unified"
			}
			fallthrough
		case Legacy:
			h.setV1(v1)
		}
		hostInfo = h
	})
	return hostInfo
}

// setV1 records the v1 mounts and probes optional files once.
func (h *host) setV1(mounts map[string]string) {
	seen := map[string]bool{}
	for _, c := range v1Controllers {
		mp, ok := mounts[c]
		if !ok {
			continue
		}
		h.v1[c] = mp
		if !seen[mp] {
			seen[mp] = true
			h.v1dirs = append(h.v1dirs, mp)
		}
	}
	if mp, ok := h.v1["memory"]; ok {
		h.memsw = exists(filepath.Join(mp, "memory.memsw.limit_in_bytes"))
	}
	if mp, ok := h.v1["blkio"]; ok {
		// CFQ's weight files are on the root group; BFQ's are not (the
		// kernel makes them for child groups only), but its stat files are.
		switch {
		case exists(filepath.Join(mp, "blkio.weight")):
			h.blkioWeight = "blkio.weight"
		case exists(filepath.Join(mp, "blkio.bfq.weight")), exists(filepath.Join(mp, "blkio.bfq.io_service_bytes")):
			h.blkioWeight = "blkio.bfq.weight"
		}
	}
}

func exists(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil
}

// readCgroupMounts returns the v1 controller mount points and the first
// cgroup2 mount point listed in a mountinfo file.
func readCgroupMounts(path string) (v1 map[string]string, unified string) {
	v1 = map[string]string{}
	rootMount := map[string]bool{}
	f, err := os.Open(path)
	if err != nil {
		return v1, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf := strings.Fields(pre)
		qf := strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		mp := unescapeMount(pf[4])
		switch qf[0] {
		case "cgroup2":
			if unified == "" {
				unified = mp
			}
		case "cgroup":
			// Prefer a mount of the hierarchy root; take a sub-tree (a
			// container's view without a cgroup namespace) when that is all.
			for _, o := range strings.Split(qf[2], ",") {
				if _, dup := v1[o]; !dup || (pf[3] == "/" && !rootMount[o]) {
					v1[o] = mp
					rootMount[o] = pf[3] == "/"
				}
			}
		}
	}
	return v1, unified
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
