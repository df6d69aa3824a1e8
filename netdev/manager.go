//go:build linux

package netdev

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/fsutil"
)

// DefaultNetwork is the name of the network an endpoint joins when its
// config names none. It is created on first use.
const DefaultNetwork = "berth0"

// DefaultRunDir is where host-wide state lives when Manager.RunDir is empty.
const DefaultRunDir = "/run/berth"

// DefaultTable is the nftables table used when Manager.Table is empty.
const DefaultTable = "berth"

// Pool is a range of addresses that networks created without a subnet are
// carved from: Base split into subnets of prefix length Size.
type Pool struct {
	Base netip.Prefix
	Size int
}

// DefaultPools returns Docker's default address pools, with 10.0.0.0/8 in
// /16 steps added last.
func DefaultPools() []Pool {
	return []Pool{
		{netip.MustParsePrefix("172.17.0.0/16"), 16},
		{netip.MustParsePrefix("172.18.0.0/15"), 16},
		{netip.MustParsePrefix("172.20.0.0/14"), 16},
		{netip.MustParsePrefix("172.24.0.0/13"), 16},
		{netip.MustParsePrefix("192.168.0.0/16"), 20},
		{netip.MustParsePrefix("10.0.0.0/8"), 16},
	}
}

// Manager creates networks and attaches containers to them. The zero value
// is not usable: Root must be set. Fields are read at the first method call
// and must not change afterwards. A Manager is safe for concurrent use, and
// several Managers (in one process or many) may share a root and a run
// directory.
type Manager struct {
	// Root is the per-root state directory: networks live in Root/networks.
	// Required.
	Root string
	// RunDir holds the host-wide state and its lock. Zero: DefaultRunDir.
	// Every Manager on a host should use the same RunDir (and Table), or
	// they cannot coordinate bridge names, subnets and host ports.
	RunDir string
	// Table is the nftables table (family ip) holding all rules. Zero:
	// DefaultTable.
	Table string
	// Pools are where subnets of networks created without one come from.
	// Zero: DefaultPools().
	Pools []Pool
	// DefaultSubnet is the subnet of the default network when it is
	// created (Docker's --bip). Zero: a free one from Pools.
	DefaultSubnet netip.Prefix
	// Logger receives debug and warning messages. Zero: silent.
	Logger *slog.Logger

	once    sync.Once
	initErr error
	host    *netlink.Handle
	hostNS  netns.NsHandle
	delH    chan *netlink.Handle // idle handles for background deletions
	bridges sync.Map             // bridge name -> ifindex, seen in this process
	boot    string
	self    owner

	// Veth pairs being deleted in the background by Detach.
	pendMu  sync.Mutex
	pending map[string]*pendingDel // by host link name
	wg      sync.WaitGroup
}

type pendingDel struct {
	network string
	netns   uint64
	done    chan struct{}
}

func (m *Manager) init() error {
	m.once.Do(func() {
		if m.Root == "" {
			m.initErr = fmt.Errorf("netdev: Manager.Root is empty: %w", errdefs.ErrInvalid)
			return
		}
		// The root is recorded host-wide as the owner of what it creates:
		// one spelling per directory.
		root, err := filepath.Abs(m.Root)
		if err != nil {
			m.initErr = fmt.Errorf("netdev: root %s: %w", m.Root, err)
			return
		}
		m.Root = root
		if m.RunDir == "" {
			m.RunDir = DefaultRunDir
		}
		if m.Table == "" {
			m.Table = DefaultTable
		}
		if len(m.Pools) == 0 {
			m.Pools = DefaultPools()
		}
		if m.Logger == nil {
			m.Logger = slog.New(slog.DiscardHandler)
		}
		var b []byte
		for _, d := range []string{m.netDir(), m.RunDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				m.initErr = fmt.Errorf("netdev: %w", err)
				return
			}
		}
		b, err = os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			m.initErr = fmt.Errorf("netdev: read boot id: %w", err)
			return
		}
		m.boot = strings.TrimSpace(string(b))
		m.self, err = m.ownerOf(os.Getpid())
		if err != nil {
			m.initErr = fmt.Errorf("netdev: %w", err)
			return
		}
		m.hostNS, err = netns.GetFromPath("/proc/self/ns/net")
		if err != nil {
			m.initErr = fmt.Errorf("netdev: open host network namespace: %w", err)
			return
		}
		m.host, err = netlink.NewHandleAt(m.hostNS, unix.NETLINK_ROUTE)
		if err != nil {
			m.hostNS.Close()
			m.initErr = fmt.Errorf("netdev: netlink handle: %w", err)
		}
		m.delH = make(chan *netlink.Handle, 4)
		// One idle deletion handle from the start (trimDelHandles keeps
		// one), so the descriptors a Manager holds do not depend on
		// whether a background deletion has happened yet.
		if m.initErr == nil {
			if h, err := netlink.NewHandleAt(m.hostNS, unix.NETLINK_ROUTE); err == nil {
				m.delH <- h
			}
		}
	})
	return m.initErr
}

// Close waits for the veth deletions that Detach started in the
// background and releases the Manager's netlink handle. Networks and
// endpoints stay.
func (m *Manager) Close() error {
	m.wg.Wait()
	if m.host != nil {
		m.host.Close()
		m.hostNS.Close()
		for {
			select {
			case h := <-m.delH:
				h.Close()
				continue
			default:
			}
			break
		}
	}
	return nil
}

// delHandle returns a netlink handle for a background deletion. A
// deletion holds its handle for the kernel's whole RCU wait, so it must
// not share the handle Attach uses.
func (m *Manager) delHandle() (*netlink.Handle, error) {
	select {
	case h := <-m.delH:
		return h, nil
	default:
		return netlink.NewHandleAt(m.hostNS, unix.NETLINK_ROUTE)
	}
}

func (m *Manager) putDelHandle(h *netlink.Handle) {
	select {
	case m.delH <- h:
	default:
		h.Close()
	}
}

// trimDelHandles closes the idle deletion handles but one, once no
// deletion is pending: a burst of concurrent deletions needs several, the
// steady state one, and a long-running owner's open files should not
// depend on how concurrent its past was.
func (m *Manager) trimDelHandles() {
	for len(m.delH) > 1 {
		select {
		case h := <-m.delH:
			h.Close()
		default:
			return
		}
	}
}

// hasPending reports whether a background deletion matches.
func (m *Manager) hasPending(match func(*pendingDel) bool) bool {
	m.pendMu.Lock()
	defer m.pendMu.Unlock()
	for _, p := range m.pending {
		if match(p) {
			return true
		}
	}
	return false
}

// waitPending waits until no background deletion matching match is left.
func (m *Manager) waitPending(ctx context.Context, match func(*pendingDel) bool) error {
	for {
		var ch chan struct{}
		m.pendMu.Lock()
		for _, p := range m.pending {
			if match(p) {
				ch = p.done
				break
			}
		}
		m.pendMu.Unlock()
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (m *Manager) netDir() string { return filepath.Join(m.Root, "networks") }

func (m *Manager) lockRoot(ctx context.Context) (*fsutil.Lock, error) {
	l, err := fsutil.LockFile(ctx, filepath.Join(m.netDir(), ".lock"))
	if err != nil {
		return nil, fmt.Errorf("netdev: lock root networks: %w", err)
	}
	return l, nil
}

// lockHost takes the host lock and loads the host state under it. The
// caller unlocks.
func (m *Manager) lockHost(ctx context.Context) (*fsutil.Lock, *hostState, error) {
	l, err := fsutil.LockFile(ctx, filepath.Join(m.RunDir, "lock"))
	if err != nil {
		return nil, nil, fmt.Errorf("netdev: lock host network state: %w", err)
	}
	hs, err := m.loadHost()
	if err != nil {
		l.Unlock()
		return nil, nil, err
	}
	return l, hs, nil
}

// owner identifies a process across pid reuse and reboots.
type owner struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
	Boot  string `json:"boot"`
}

// procStart returns the start time of pid in clock ticks since boot.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func (m *Manager) ownerOf(pid int) (owner, error) {
	st, err := procStart(pid)
	if err != nil {
		return owner{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return owner{Pid: pid, Start: st, Boot: m.boot}, nil
}

// alive reports whether the owner process still runs.
func (m *Manager) alive(o owner) bool {
	if o.Pid <= 0 || o.Boot != m.boot {
		return false
	}
	st, err := procStart(o.Pid)
	return err == nil && st == o.Start
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// ---- per-root state ----

// netState is one network's file, Root/networks/<name>.json: its config and
// its address allocations (one per endpoint).
type netState struct {
	Network   Network             `json:"network"`
	Last      netip.Addr          `json:"last,omitzero"`
	Endpoints map[string]*epState `json:"endpoints"`
}

// epState is an endpoint's record: the allocation of its address, plus what
// is needed to undo it and to write hosts files.
type epState struct {
	Endpoint
	Owner      owner        `json:"owner"`
	NetNS      uint64       `json:"netns,omitempty"` // inode of the container's namespace
	HostsPath  string       `json:"hostsPath,omitempty"`
	Hostname   string       `json:"hostname,omitempty"`
	ExtraHosts []HostsEntry `json:"extraHosts,omitempty"`
}

func validName(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// netPath is the base of a network's state slots (see writeState).
func (m *Manager) netPath(name string) string { return filepath.Join(m.netDir(), name+".net") }

// legacyNetPath is where the first version of netdev kept a network's
// state (a JSON file replaced by rename); it is read when no slot exists
// and removed at the next write.
func (m *Manager) legacyNetPath(name string) string { return filepath.Join(m.netDir(), name+".json") }

// readNetState returns a network's stored state.
func (m *Manager) readNetState(name string) ([]byte, error) {
	b, err := readState(m.netPath(name))
	if errors.Is(err, os.ErrNotExist) {
		if lb, lerr := os.ReadFile(m.legacyNetPath(name)); lerr == nil {
			return lb, nil
		}
	}
	return b, err
}

// removeNetState deletes a network's stored state.
func (m *Manager) removeNetState(name string) error {
	err := removeState(m.netPath(name))
	if lerr := os.Remove(m.legacyNetPath(name)); lerr != nil && !errors.Is(lerr, os.ErrNotExist) {
		err = errors.Join(err, lerr)
	}
	return err
}

func (m *Manager) loadNet(name string) (*netState, error) {
	b, err := m.readNetState(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netdev: network %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("netdev: network %s: %w", name, err)
	}
	var s netState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("netdev: network %s: corrupt state: %v: %w", name, err, errdefs.ErrInvalid)
	}
	if s.Endpoints == nil {
		s.Endpoints = map[string]*epState{}
	}
	return &s, nil
}

func (m *Manager) saveNet(s *netState) error { return m.saveNetDurable(s, false) }

func (m *Manager) saveNetDurable(s *netState, durable bool) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := writeState(m.netPath(s.Network.Name), b, durable); err != nil {
		return fmt.Errorf("netdev: save network %s: %w", s.Network.Name, err)
	}
	os.Remove(m.legacyNetPath(s.Network.Name))
	return nil
}

// listNets returns the names of this root's networks.
func (m *Manager) listNets() ([]string, error) {
	ents, err := os.ReadDir(m.netDir())
	if err != nil {
		return nil, fmt.Errorf("netdev: list networks: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		for _, suf := range []string{".net.a", ".net.b", ".json"} {
			if name, ok := strings.CutSuffix(n, suf); ok && !strings.HasPrefix(n, ".") && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names, nil
}

// ---- host-wide state ----

// hostState is RunDir/state.json.
type hostState struct {
	Boot     string              `json:"boot"`
	Networks map[string]*hostNet `json:"networks"` // by bridge name
	Ports    []*hostPort         `json:"ports"`
}

type hostNet struct {
	Root    string       `json:"root"`
	Name    string       `json:"name"`
	ID      string       `json:"id"`
	Subnet  netip.Prefix `json:"subnet"`
	Default bool         `json:"default,omitempty"`
}

type hostPort struct {
	Proto       string     `json:"proto"`
	HostIP      netip.Addr `json:"hostIP"`
	Port        uint16     `json:"port"`
	Bridge      string     `json:"bridge"`
	HostIfName  string     `json:"hostIfName"`
	Root        string     `json:"root"`
	ContainerID string     `json:"containerID"`
	Owner       owner      `json:"owner"`
}

// hostPath is the base of the host state's slots (see writeState).
func (m *Manager) hostPath() string { return filepath.Join(m.RunDir, "host") }

func (m *Manager) loadHost() (*hostState, error) {
	s := &hostState{}
	b, err := readState(m.hostPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netdev: host state: %w", err)
	}
	if err == nil {
		if err := json.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("netdev: host state %s: %v: %w", m.hostPath(), err, errdefs.ErrInvalid)
		}
	}
	if s.Boot != m.boot {
		// Written before a reboot: every link and rule it names is gone.
		s = &hostState{Boot: m.boot}
	}
	if s.Networks == nil {
		s.Networks = map[string]*hostNet{}
	}
	// The first version's file, merged in until the next save removes it.
	if lb, err := os.ReadFile(filepath.Join(m.RunDir, "state.json")); err == nil {
		var old hostState
		if json.Unmarshal(lb, &old) == nil && old.Boot == m.boot {
			for br, n := range old.Networks {
				if _, ok := s.Networks[br]; !ok {
					s.Networks[br] = n
				}
			}
			s.Ports = append(s.Ports, old.Ports...)
		}
	}
	return s, nil
}

func (m *Manager) saveHost(s *hostState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := writeState(m.hostPath(), b, false); err != nil {
		return fmt.Errorf("netdev: save host state: %w", err)
	}
	os.Remove(filepath.Join(m.RunDir, "state.json"))
	return nil
}

// retryDump runs a netlink dump again while the kernel reports that it was
// interrupted by a concurrent change (the result would be inconsistent).
func retryDump[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < 20 {
			continue
		}
		return v, err
	}
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

func writeSysctl(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("netdev: sysctl %s=%s: %w", strings.TrimPrefix(path, "/proc/sys/"), value, err)
	}
	return nil
}
