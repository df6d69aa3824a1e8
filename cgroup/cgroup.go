//go:build linux

package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthrt/berth/errdefs"
	"golang.org/x/sys/unix"
)

// DefaultParent is the group under which containers' groups are created
// when Config.Parent is empty.
const DefaultParent = "berth"

// Config says which group to create or open.
type Config struct {
	// Parent is the path of the parent group from the root of each
	// hierarchy, like Docker's --cgroup-parent with the cgroupfs driver:
	// "berth" (the default when empty) is /sys/fs/cgroup/<controller>/berth
	// on v1 and /sys/fs/cgroup/berth on v2. It is created when missing and
	// never removed by New or Delete (Cleanup removes it).
	Parent string
	// Name is the container's group, one path element (its id). Required.
	Name string
	// Resources are applied before any process joins. The zero value
	// means no limits, and Docker's default device rules.
	Resources Resources

	host *host // tests: another mount layout; nil is the real host
}

// Cgroup is one container's group, in every v1 hierarchy berth uses (and
// the unified one on a hybrid host), or in the v2 tree. Its methods are safe
// for concurrent use.
type Cgroup struct {
	h      *host
	parent string
	name   string
	// v1 maps a controller to this group's directory in its hierarchy.
	v1 map[string]string
	// dirs are every directory of the group: v1 ones then the unified one.
	dirs []string
	// v2 is the unified directory: the only one on v2, the companion on
	// hybrid, "" on v1-only hosts.
	v2 string
	// pds are the held parents of dirs, index for index, from New to the
	// end of Delete; nil for a group from Load. While they are held, the
	// group's files are opened relative to them (at).
	pds []*parentDir

	delMu   sync.Mutex // one Delete at a time: the last one releases pds
	mu      sync.Mutex
	res     Resources
	fd      int // O_PATH fd of v2 for CLONE_INTO_CGROUP; -1 when none
	devProg int // fd of the attached eBPF device program; -1 when none
	// devProgOwned: devProg is this group's own, not a shared one.
	devProgOwned bool
	fresh        bool // made by New, not Load: nothing to detach
	deleted      bool
	ooms         uint64 // last oom_kill count seen, kept after Delete
	stop         chan struct{}
}

// v2limits reports whether limits go to the unified tree.
func (h *host) v2limits() bool { return h.mode == Unified }

func cleanParent(p string) (string, error) {
	if p == "" {
		p = DefaultParent
	}
	c := path.Clean("/" + p)
	if c == "/" || strings.Contains(p, "..") {
		return "", fmt.Errorf("cgroup: parent %q: %w", p, errdefs.ErrInvalid)
	}
	return strings.TrimPrefix(c, "/"), nil
}

func checkName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00\n") {
		return fmt.Errorf("cgroup: name %q: want one path element: %w", n, errdefs.ErrInvalid)
	}
	return nil
}

func (cfg *Config) build() (*Cgroup, error) {
	h := cfg.host
	if h == nil {
		h = defaultHost()
	}
	if h.mode == Unavailable {
		return nil, fmt.Errorf("cgroup: no cgroup file system is mounted: %w", errdefs.ErrUnsupported)
	}
	parent, err := cleanParent(cfg.Parent)
	if err != nil {
		return nil, err
	}
	if err := checkName(cfg.Name); err != nil {
		return nil, err
	}
	c := &Cgroup{h: h, parent: parent, name: cfg.Name, fd: -1, devProg: -1, stop: make(chan struct{})}
	rel := filepath.Join(parent, cfg.Name)
	if !h.v2limits() {
		c.v1 = make(map[string]string, len(h.v1))
		for ctrl, mp := range h.v1 {
			c.v1[ctrl] = filepath.Join(mp, rel)
		}
		for _, mp := range h.v1dirs {
			c.dirs = append(c.dirs, filepath.Join(mp, rel))
		}
	}
	if h.unified != "" {
		c.v2 = filepath.Join(h.unified, rel)
		c.dirs = append(c.dirs, c.v2)
	}
	if len(c.dirs) == 0 {
		return nil, fmt.Errorf("cgroup: no cgroup hierarchy berth can use is mounted (mode %s): %w", h.mode, errdefs.ErrUnsupported)
	}
	return c, nil
}

// New creates the group cfg names, applies cfg.Resources and returns it.
// No process is in it yet: start the container's first process with
// FD (v2, CLONE_INTO_CGROUP) or Add its pid before it runs user code.
// It fails with errdefs.ErrAlreadyExists when the group exists,
// errdefs.ErrInvalid when the resources are invalid, and
// errdefs.ErrUnsupported when the host lacks a needed controller. On
// failure nothing is left behind.
func New(ctx context.Context, cfg Config) (*Cgroup, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Resources.Validate(); err != nil {
		return nil, err
	}
	c, err := cfg.build()
	if err != nil {
		return nil, err
	}
	c.fresh = true
	c.pds = make([]*parentDir, len(c.dirs))
	for i := range c.dirs {
		if err := c.mkdir(i); err != nil {
			c.rmdirs()
			return nil, err
		}
	}
	if err := c.apply(&Resources{}, &cfg.Resources, true); err != nil {
		c.rmdirs()
		c.closeFDs()
		return nil, err
	}
	c.res = cfg.Resources
	if c.h.v2limits() {
		fd, err := unix.Open(c.v2, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			c.rmdirs()
			c.closeFDs()
			return nil, fmt.Errorf("cgroup: open %s: %w", c.v2, err)
		}
		c.fd = fd
	}
	return c, nil
}

// Load opens an existing group (created by New, maybe in another process)
// without changing it. cfg.Resources should be the ones the group has, so
// that a later Update writes only what changed; Load does not read them
// back. It fails with errdefs.ErrNotFound when the group does not exist.
func Load(cfg Config) (*Cgroup, error) {
	c, err := cfg.build()
	if err != nil {
		return nil, err
	}
	if !exists(c.dirs[0]) {
		return nil, fmt.Errorf("cgroup: %s: %w", c.dirs[0], errdefs.ErrNotFound)
	}
	c.res = cfg.Resources
	if c.h.v2limits() {
		if fd, err := unix.Open(c.v2, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			c.fd = fd
		}
	}
	return c, nil
}

// mkdir creates the group's directory dirs[i] under its held parent, and
// sets the parent up on first use in this process (even when someone else
// made it), so that work is done once.
func (c *Cgroup) mkdir(i int) error {
	d, pdir := c.dirs[i], filepath.Dir(c.dirs[i])
	p, err := c.h.acquireParent(pdir, c.ensureParent)
	if err != nil {
		return err
	}
	err = mkdirat(p.fd, c.name)
	if err == unix.ENOENT {
		// The parent was removed since this process set it up.
		c.h.dropParent(pdir, p)
		c.h.releaseParent(p)
		if p, err = c.h.acquireParent(pdir, c.ensureParent); err != nil {
			return err
		}
		err = mkdirat(p.fd, c.name)
	}
	if err == nil {
		c.pds[i] = p
		return nil
	}
	c.h.releaseParent(p)
	if err == unix.EEXIST {
		return fmt.Errorf("cgroup: create %s: %w", d, errdefs.ErrAlreadyExists)
	}
	return fmt.Errorf("cgroup: create %s: %w", d, err)
}

func mkdir(d string) error { return retryEINTR(func() error { return unix.Mkdir(d, 0o755) }) }
func rmdir(d string) error { return retryEINTR(func() error { return unix.Rmdir(d) }) }

func mkdirat(fd int, name string) error {
	return retryEINTR(func() error { return unix.Mkdirat(fd, name, 0o755) })
}

func rmdirat(fd int, name string) error {
	return retryEINTR(func() error { return unix.Unlinkat(fd, name, unix.AT_REMOVEDIR) })
}

// at returns where file of the group's directory dir is opened from: the
// held parent's descriptor and a path relative to it, or AT_FDCWD and the
// absolute path once the parents are released (or for a loaded group).
// Callers hold c.mu or c.delMu, or are New, so pds stay held meanwhile.
func (c *Cgroup) at(dir, file string) (int, string) {
	for i, d := range c.dirs {
		if d == dir && i < len(c.pds) && c.pds[i] != nil {
			return c.pds[i].fd, c.name + "/" + file
		}
	}
	return unix.AT_FDCWD, dir + "/" + file
}

// openWrite opens file of the group's directory dir for writing.
func (c *Cgroup) openWrite(dir, file string) (wfile, error) {
	fd, rel := c.at(dir, file)
	return openWriteAt(fd, rel, dir+"/"+file)
}

// writeFile writes v to file of the group's directory dir.
func (c *Cgroup) writeFile(dir, file, v string) error {
	f, err := c.openWrite(dir, file)
	if err != nil {
		return err
	}
	err = f.write(v)
	f.close()
	return err
}

// ensureParent creates the parent chain of a group in one hierarchy. On v1
// cpuset it fills cpuset.cpus and cpuset.mems from the level above (a new
// cpuset group starts empty) and sets cgroup.clone_children, so container
// groups inherit them without a write. On v2 it enables berth's controllers
// in subtree_control down the chain.
func (c *Cgroup) ensureParent(dir string) error {
	mount := c.mountOf(dir)
	rel, err := filepath.Rel(mount, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup: parent %s outside %s", dir, mount)
	}
	cur := mount
	isCpuset := mount == c.h.v1["cpuset"]
	isV2 := mount == c.h.unified
	if isV2 && c.h.delegate {
		if err := enableControllers(cur); err != nil {
			return err
		}
	}
	for _, el := range strings.Split(rel, "/") {
		next := filepath.Join(cur, el)
		if err := mkdir(next); err != nil && err != unix.EEXIST {
			return fmt.Errorf("cgroup: create %s: %w", next, err)
		}
		if isCpuset {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := readString(filepath.Join(next, f))
				if err != nil {
					return err
				}
				if v == "" {
					pv, err := readString(filepath.Join(cur, f))
					if err != nil {
						return err
					}
					if err := writeFile(next, f, pv); err != nil {
						return err
					}
				}
			}
			if err := writeFile(next, "cgroup.clone_children", "1"); err != nil {
				return err
			}
		}
		if isV2 && c.h.delegate {
			if err := enableControllers(next); err != nil {
				return err
			}
		}
		cur = next
	}
	return nil
}

// enableControllers turns on, in dir's subtree_control, those of berth's
// controllers that dir has and has not enabled yet.
func enableControllers(dir string) error {
	avail, err := readString(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	on, err := readString(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, f := range strings.Fields(on) {
		have[f] = true
	}
	// One controller per write: one the kernel refuses (a threaded
	// subtree, a controller held by another manager) must not keep the
	// others off. A missing controller shows later as ErrUnsupported when a
	// limit needs it.
	for _, f := range strings.Fields(avail) {
		if !have[f] && contains(v2Controllers, f) {
			writeFile(dir, "cgroup.subtree_control", "+"+f)
		}
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Cgroup) mountOf(dir string) string {
	best := ""
	for _, mp := range append(append([]string{}, c.h.v1dirs...), c.h.unified) {
		if mp != "" && (dir == mp || strings.HasPrefix(dir, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	return best
}

// apply writes the files that take the group from old to new resources.
func (c *Cgroup) apply(old, new *Resources, fresh bool) error {
	var ws []setting
	if c.h.v2limits() {
		ws = diffSettings(v2Settings(old), v2Settings(new))
	} else {
		ws = diffSettings(v1Settings(old, c.h), v1Settings(new, c.h))
		if c.h.blkioWeight == "" && c.v1["blkio"] != "" {
			if new.BlkioWeight != 0 {
				return fmt.Errorf("cgroup: --blkio-weight: the kernel has no blkio weight (no CFQ or BFQ): %w", errdefs.ErrUnsupported)
			}
			for _, d := range new.BlkioWeightDevice {
				if d.Weight != 0 {
					return fmt.Errorf("cgroup: --blkio-weight-device: the kernel has no blkio weight (no CFQ or BFQ): %w", errdefs.ErrUnsupported)
				}
			}
		}
	}
	var retry []setting
	for _, s := range ws {
		err := c.write(s)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EBUSY) {
			// Ordering constraints (memory.limit <= memsw, cfs quota vs
			// period): try again after the others.
			retry = append(retry, s)
			continue
		}
		if err != nil {
			return refused(s, err)
		}
	}
	for _, s := range retry {
		if err := c.write(s); err != nil {
			return refused(s, err)
		}
	}
	if (fresh || !sameDevices(old.Devices, new.Devices)) && !c.h.noDevices {
		if err := c.applyDevices(new.Devices, fresh); err != nil {
			return err
		}
	}
	return nil
}

// refused marks values the kernel rejects, which Validate cannot judge
// (cpus or memory nodes the host lacks, a limit below current use), as
// errdefs.ErrInvalid naming the flag, and a per-device weight for a device
// that no scheduler weighs (EOPNOTSUPP) as errdefs.ErrUnsupported.
func refused(s setting, err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) {
		return fmt.Errorf("cgroup: %s: the kernel refused %q: %w (%w)", flagFor(s), s.value, errdefs.ErrInvalid, err)
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("cgroup: %s: the kernel cannot apply %q to this device (its io scheduler does not weigh groups; BFQ does): %w (%w)", flagFor(s), s.value, errdefs.ErrUnsupported, err)
	}
	return err
}

// flagFor names the docker flag behind a setting's cgroup file, for errors.
func flagFor(s setting) string {
	file := s.file
	if s.key != "" && (file == "io.bfq.weight" || file == "io.weight") {
		return "--blkio-weight-device"
	}
	for _, m := range []struct{ prefix, flag string }{
		{"memory.memsw", "--memory-swap"}, {"memory.swap.", "--memory-swap"},
		{"memory.swappiness", "--memory-swappiness"}, {"memory.oom_control", "--oom-kill-disable"},
		{"memory.soft", "--memory-reservation"}, {"memory.low", "--memory-reservation"},
		{"memory.", "--memory"}, {"cpu.shares", "--cpu-shares"}, {"cpu.weight", "--cpu-shares"},
		{"cpu.", "--cpus/--cpu-quota/--cpu-period"}, {"cpuset.cpus", "--cpuset-cpus"},
		{"cpuset.mems", "--cpuset-mems"}, {"pids.", "--pids-limit"},
		{"blkio.throttle.read_bps", "--device-read-bps"}, {"blkio.throttle.write_bps", "--device-write-bps"},
		{"blkio.throttle.read_iops", "--device-read-iops"}, {"blkio.throttle.write_iops", "--device-write-iops"},
		{"io.max", "--device-read/write-bps/iops"}, {"blkio.weight_device", "--blkio-weight-device"},
		{"blkio.bfq.weight_device", "--blkio-weight-device"}, {"blkio.", "--blkio-weight"}, {"io.", "--blkio-weight"},
		{"hugetlb.", "hugetlb"},
	} {
		if strings.HasPrefix(file, m.prefix) {
			return m.flag
		}
	}
	return file
}

func (c *Cgroup) write(s setting) error {
	dir := c.v2
	if s.ctrl != "" {
		dir = c.v1[s.ctrl]
		if dir == "" {
			return fmt.Errorf("cgroup: %s: the %s controller is not mounted: %w", s.file, s.ctrl, errdefs.ErrUnsupported)
		}
	}
	v := s.value
	if v == resetParent {
		pv, err := readString(filepath.Join(filepath.Dir(dir), s.file))
		if err != nil {
			return err
		}
		v = pv
	}
	err := c.writeFile(dir, s.file, v)
	if err != nil && errors.Is(err, unix.ENOENT) {
		switch {
		case s.fallback != nil:
			return c.write(*s.fallback)
		case s.optional:
			return nil
		}
		return fmt.Errorf("cgroup: %s: the kernel lacks this control: %w", s.file, errdefs.ErrUnsupported)
	}
	return err
}

// sameDevices compares two rule sets, nil being DefaultDevices.
func sameDevices(a, b []DeviceRule) bool {
	if a == nil {
		a = DefaultDevices()
	}
	if b == nil {
		b = DefaultDevices()
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// applyDevices installs the device rules: v1 devices.deny/allow, or an
// eBPF program on the v2 directory.
func (c *Cgroup) applyDevices(rules []DeviceRule, fresh bool) error {
	if rules == nil {
		rules = DefaultDevices()
	}
	if dir := c.v1["devices"]; dir != "" && !c.h.v2limits() {
		allowAll := len(rules) == 1 && rules[0].Allow && rules[0].Type == 'a'
		if allowAll && fresh {
			return nil // inherited from the parent
		}
		if allowAll {
			return c.writeFile(dir, "devices.allow", "a")
		}
		// One open file per direction, one write per rule: the kernel
		// parses a single rule per write.
		allow, err := c.openWrite(dir, "devices.allow")
		if err != nil {
			return err
		}
		defer allow.close()
		deny, err := c.openWrite(dir, "devices.deny")
		if err != nil {
			return err
		}
		defer deny.close()
		if err := deny.write("a"); err != nil {
			return err
		}
		for _, r := range rules {
			f := deny
			if r.Allow {
				f = allow
			}
			vs := []string{r.String()}
			if r.Type == 'a' && accessBits(r.Access) != accAll {
				// The kernel reads "a" as the whole default, whatever the
				// access: a partial rule for all devices is one per type.
				vs = []string{"c *:* " + r.Access, "b *:* " + r.Access}
			}
			for _, v := range vs {
				if err := f.write(v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if c.h.v2limits() {
		return c.attachDeviceFilter(rules)
	}
	return nil
}

// Name returns the group's name (Config.Name).
func (c *Cgroup) Name() string { return c.name }

// Parent returns the parent's path from the hierarchy root, cleaned and
// without a leading slash ("berth").
func (c *Cgroup) Parent() string { return c.parent }

// Path is the group's path from the hierarchy root, as /proc/<pid>/cgroup
// shows it: "/berth/<name>".
func (c *Cgroup) Path() string { return "/" + c.parent + "/" + c.name }

// Mode is the host's cgroup mode the group lives in.
func (c *Cgroup) Mode() Mode { return c.h.mode }

// Resources returns the limits last applied.
func (c *Cgroup) Resources() Resources {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.res
}

// Add moves the process pid into the group, in every hierarchy.
func (c *Cgroup) Add(pid int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return fmt.Errorf("cgroup: add %d to %s: group deleted: %w", pid, c.Path(), errdefs.ErrNotFound)
	}
	p := strconv.Itoa(pid)
	for _, d := range c.dirs {
		if err := c.writeFile(d, "cgroup.procs", p); err != nil {
			return fmt.Errorf("cgroup: add %d: %w", pid, err)
		}
	}
	return nil
}

// FD returns a file descriptor of the group's v2 directory, for
// syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd} (clone3 with
// CLONE_INTO_CGROUP), so the container's first process starts inside the
// group. It stays valid until Delete. On v1 and hybrid hosts, where limits
// live in v1 hierarchies that CLONE_INTO_CGROUP does not reach, it returns
// -1 and errdefs.ErrUnsupported: use Add.
func (c *Cgroup) FD() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return -1, fmt.Errorf("cgroup: CLONE_INTO_CGROUP needs cgroup v2 (host is %s): %w", c.h.mode, errdefs.ErrUnsupported)
	}
	return c.fd, nil
}

// Update applies new limits to the group, processes and all: only the
// files whose values change are written. Fields left zero return to no
// limit.
func (c *Cgroup) Update(r Resources) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return fmt.Errorf("cgroup: update %s: group deleted: %w", c.Path(), errdefs.ErrNotFound)
	}
	old := c.res
	if err := c.apply(&old, &r, false); err != nil {
		return fmt.Errorf("cgroup: update %s: %w", c.Path(), err)
	}
	c.res = r
	return nil
}

// procsDir is the directory whose cgroup.procs lists the group's processes.
func (c *Cgroup) procsDir() string {
	if c.h.v2limits() {
		return c.v2
	}
	for _, ctrl := range []string{"pids", "memory", "freezer", "cpu"} {
		if d := c.v1[ctrl]; d != "" {
			return d
		}
	}
	return c.dirs[0]
}

// Procs returns the pids of the processes in the group and its sub-groups
// (a container may create some under its cgroup namespace).
func (c *Cgroup) Procs() ([]int, error) {
	var pids []int
	err := walkGroups(c.procsDir(), func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cgroup: procs of %s: %w", c.Path(), errdefs.ErrNotFound)
	}
	return pids, err
}

// walkGroups calls fn for dir and every group below it, children after
// their parent.
func walkGroups(dir string, fn func(string) error) error {
	if err := fn(dir); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := walkGroups(filepath.Join(dir, e.Name()), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the group from every hierarchy, sub-groups first. It
// waits, retrying with backoff, for the group to empty (processes to exit),
// until ctx is done; then it fails with errdefs.ErrInUse and the group
// stays. Delete does not kill: call Kill first. Deleting twice is not an
// error.
func (c *Cgroup) Delete(ctx context.Context) error {
	c.delMu.Lock()
	defer c.delMu.Unlock()
	c.mu.Lock()
	if c.deleted {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	// Wait without the lock, so Stats, OOMKilled and Resources answer.
	// The OOM counter is read before each try at the directory that holds
	// it: the last read is of the emptied group.
	oomDir := c.v2
	if d := c.v1["memory"]; d != "" {
		oomDir = d
	}
	var errs []error
	for i, d := range c.dirs {
		var before func()
		if d == oomDir {
			before = func() {
				n := c.readOOMKillsHeld()
				c.mu.Lock()
				c.ooms = max(c.ooms, n)
				c.mu.Unlock()
			}
		}
		if err := c.remove(ctx, i, before); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.deleted {
		c.deleted = true
		close(c.stop)
		c.closeFDs()
		c.releaseParents()
	}
	return nil
}

// remove removes the group's directory dirs[i]: one rmdir relative to the
// held parent when the group is empty, else removeGroup's wait.
func (c *Cgroup) remove(ctx context.Context, i int, before func()) error {
	if i < len(c.pds) && c.pds[i] != nil {
		if before != nil {
			before()
		}
		switch err := rmdirat(c.pds[i].fd, c.name); err {
		case nil, unix.ENOENT:
			return nil
		case unix.EBUSY, unix.ENOTEMPTY:
		default:
			return fmt.Errorf("cgroup: remove %s: %w", c.dirs[i], err)
		}
	}
	return removeGroup(ctx, c.dirs[i], before)
}

func (c *Cgroup) releaseParents() {
	for _, p := range c.pds {
		c.h.releaseParent(p)
	}
	c.pds = nil
}

func (c *Cgroup) closeFDs() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	c.closeProg()
}

// rmdirs removes the directories of a group being rolled back, and
// releases their parents.
func (c *Cgroup) rmdirs() {
	for _, p := range c.pds {
		if p != nil {
			rmdirat(p.fd, c.name)
		}
	}
	c.releaseParents()
}

// removeGroup removes dir and the groups below it, retrying while they
// are busy until ctx is done.
func removeGroup(ctx context.Context, dir string, before func()) error {
	wait := 200 * time.Microsecond
	for {
		if before != nil {
			before()
		}
		err := rmdir(dir)
		switch err {
		case nil, unix.ENOENT:
			return nil
		case unix.EBUSY, unix.ENOTEMPTY:
		default:
			return fmt.Errorf("cgroup: remove %s: %w", dir, err)
		}
		// Sub-groups first; then wait for the processes to go.
		ents, _ := os.ReadDir(dir)
		sub := false
		for _, e := range ents {
			if e.IsDir() {
				sub = true
				if err := removeGroup(ctx, filepath.Join(dir, e.Name()), nil); err != nil {
					return err
				}
			}
		}
		if sub {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cgroup: remove %s: still has processes: %w (%w)", dir, errdefs.ErrInUse, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// writeFile writes v to dir/name in one write(2), as cgroup files want.
func writeFile(dir, name, v string) error {
	p := dir + "/" + name
	f, err := openWriteAt(unix.AT_FDCWD, p, p)
	if err != nil {
		return err
	}
	err = f.write(v)
	f.close()
	return err
}

// Signals interrupt cgroup writes that reclaim memory
// (memory.limit_in_bytes below usage) with EINTR, and the Go runtime
// signals its threads for preemption: retry.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// wfile is a cgroup file open for several writes.
type wfile struct {
	fd   int
	path string
}

// openWriteAt opens rel, relative to the directory at, for writing; p is
// the file's absolute path, for errors.
func openWriteAt(at int, rel, p string) (wfile, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Openat(at, rel, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return wfile{}, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return wfile{fd, p}, nil
}

func (f wfile) write(v string) error {
	b := []byte(v)
	if err := retryEINTR(func() error { _, err := unix.Write(f.fd, b); return err }); err != nil {
		return &os.PathError{Op: "write " + strconv.Quote(v) + " to", Path: f.path, Err: err}
	}
	return nil
}

func (f wfile) close() { unix.Close(f.fd) }

// readString reads a small cgroup file, trimmed.
func readString(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
