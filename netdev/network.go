//go:build linux

package netdev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/ids"
)

// NetworkConfig describes a bridge network to create.
type NetworkConfig struct {
	// Name is the network's name in this root. Required.
	Name string
	// Subnet is the network's IPv4 subnet. Zero: a free one from the
	// Manager's pools, overlapping no route of the host.
	Subnet netip.Prefix
	// Gateway is the bridge's address. Zero: the subnet's first address.
	Gateway netip.Addr
	// Bridge is the name of the bridge link. Zero: "berth-" and 9 hex
	// digits (berth0 for the default network, when free).
	Bridge string
	// MTU of the bridge and of endpoints. Zero: 1500.
	MTU int
	// Internal networks have no route out: their traffic never leaves the
	// bridge and no port is published from them.
	Internal bool
}

// Network is a bridge network.
type Network struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Subnet   netip.Prefix `json:"subnet"`
	Gateway  netip.Addr   `json:"gateway"`
	Bridge   string       `json:"bridge"`
	MTU      int          `json:"mtu"`
	Internal bool         `json:"internal,omitempty"`
	Created  time.Time    `json:"created"`
	// Endpoints lists the network's containers, ordered by name.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// CreateNetwork creates a network: its bridge with the gateway address, up,
// and its NAT and isolation rules. A name already used in this root gives
// errdefs.ErrAlreadyExists; a subnet or bridge name already used on the
// host (by berth or by a route) gives errdefs.ErrInUse.
func (m *Manager) CreateNetwork(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	if err := m.init(); err != nil {
		return nil, err
	}
	if !validName(cfg.Name) {
		return nil, fmt.Errorf("netdev: create network %q: bad name: %w", cfg.Name, errdefs.ErrInvalid)
	}
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return nil, err
	}
	defer rl.Unlock()
	return m.createNetworkLocked(ctx, cfg)
}

func (m *Manager) createNetworkLocked(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	if _, err := m.readNetState(cfg.Name); err == nil {
		return nil, fmt.Errorf("netdev: create network %s: %w", cfg.Name, errdefs.ErrAlreadyExists)
	}
	_ = removeState(m.netPath(cfg.Name)) // invalid leftovers
	wrap := func(err error) error { return fmt.Errorf("netdev: create network %s: %w", cfg.Name, err) }
	if cfg.Subnet.IsValid() && (!cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 30) {
		return nil, wrap(fmt.Errorf("subnet %s is not an IPv4 subnet with room for hosts: %w", cfg.Subnet, errdefs.ErrInvalid))
	}
	if cfg.Bridge != "" && (len(cfg.Bridge) > 15 || !validName(cfg.Bridge)) {
		return nil, wrap(fmt.Errorf("bridge name %q: %w", cfg.Bridge, errdefs.ErrInvalid))
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU < 68 || cfg.MTU > 65535 {
		return nil, wrap(fmt.Errorf("mtu %d: %w", cfg.MTU, errdefs.ErrInvalid))
	}

	hl, hs, err := m.lockHost(ctx)
	if err != nil {
		return nil, err
	}
	defer hl.Unlock()
	isDefault := cfg.Name == DefaultNetwork
	autoBridge := cfg.Bridge == ""
	if cfg.Bridge == "" {
		if isDefault && m.bridgeFree(hs, DefaultNetwork) {
			cfg.Bridge = DefaultNetwork
		} else {
			for cfg.Bridge == "" || !m.bridgeFree(hs, cfg.Bridge) {
				cfg.Bridge = "berth-" + randHex(9)
			}
		}
	} else if !m.bridgeFree(hs, cfg.Bridge) {
		return nil, wrap(fmt.Errorf("bridge %s: %w", cfg.Bridge, errdefs.ErrInUse))
	}
	used, err := m.usedPrefixes(hs)
	if err != nil {
		return nil, wrap(err)
	}
	if cfg.Subnet.IsValid() {
		cfg.Subnet = cfg.Subnet.Masked()
		for _, u := range used {
			if u.Overlaps(cfg.Subnet) {
				return nil, wrap(fmt.Errorf("subnet %s overlaps %s on this host: %w", cfg.Subnet, u, errdefs.ErrInUse))
			}
		}
	} else {
		cfg.Subnet, err = m.pickSubnet(used)
		if err != nil {
			return nil, wrap(err)
		}
	}
	if !cfg.Gateway.IsValid() {
		cfg.Gateway = cfg.Subnet.Addr().Next()
	} else if !hostAddr(cfg.Subnet, cfg.Gateway) {
		return nil, wrap(fmt.Errorf("gateway %s is not a host address of %s: %w", cfg.Gateway, cfg.Subnet, errdefs.ErrInvalid))
	}
	n := Network{
		ID:       ids.New(),
		Name:     cfg.Name,
		Subnet:   cfg.Subnet,
		Gateway:  cfg.Gateway,
		Bridge:   cfg.Bridge,
		MTU:      cfg.MTU,
		Internal: cfg.Internal,
		Created:  time.Now().UTC(),
	}
	created := false
	undo := func() {
		delete(hs.Networks, n.Bridge)
		if created {
			m.teardownBridge(n.Bridge)
		}
		_ = m.removeNetworkRules(n.Bridge)
		if len(hs.Networks) == 0 {
			m.deleteTable()
		}
		_ = m.saveHost(hs)
	}
	for attempt := 0; ; attempt++ {
		// Record the network host-wide first: if this process dies
		// half-way, Cleanup finds the bridge and rules through this record
		// (its root has no such network) and removes them.
		hs.Networks[n.Bridge] = &hostNet{Root: m.Root, Name: n.Name, ID: n.ID, Subnet: n.Subnet, Default: isDefault}
		if err := m.saveHost(hs); err != nil {
			return nil, err
		}
		created, err = m.setupBridge(&n)
		if err == nil {
			break
		}
		undo()
		if !autoBridge || !errors.Is(err, errdefs.ErrInUse) || attempt == 4 {
			return nil, wrap(err)
		}
		// Another program (with another run directory) took the name
		// between our check and our creation: take another.
		for n.Bridge == DefaultNetwork || !m.bridgeFree(hs, n.Bridge) {
			n.Bridge = "berth-" + randHex(9)
		}
	}
	if err := m.addNetworkRules(&n); err != nil {
		undo()
		return nil, wrap(err)
	}
	if err := m.saveNetDurable(&netState{Network: n, Endpoints: map[string]*epState{}}, true); err != nil {
		undo()
		return nil, err
	}
	m.Logger.Debug("netdev: network created", "name", n.Name, "bridge", n.Bridge, "subnet", n.Subnet)
	return &n, nil
}

// bridgeFree reports whether no berth network and no link uses name.
func (m *Manager) bridgeFree(hs *hostState, name string) bool {
	if _, ok := hs.Networks[name]; ok {
		return false
	}
	_, err := m.host.LinkByName(name)
	return isNotFound(err)
}

// usedPrefixes lists the host's routes (all tables, but not default
// routes), its addresses and every berth subnet.
func (m *Manager) usedPrefixes(hs *hostState) ([]netip.Prefix, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return m.host.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var used []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			used = append(used, p)
		}
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return m.host.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			used = append(used, p)
		}
	}
	for _, n := range hs.Networks {
		used = append(used, n.Subnet)
	}
	return used, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if !a.Is4() {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones).Masked(), true
}

func (m *Manager) pickSubnet(used []netip.Prefix) (netip.Prefix, error) {
	for _, p := range m.Pools {
		if !p.Base.Addr().Is4() || p.Size < p.Base.Bits() || p.Size > 30 {
			continue
		}
		base := p.Base.Masked()
		step := uint32(1) << (32 - p.Size)
		count := uint64(1) << (p.Size - base.Bits())
		start := addrU32(base.Addr())
		for i := uint64(0); i < count; i++ {
			cand := netip.PrefixFrom(u32Addr(start+uint32(i)*step), p.Size)
			if !slices.ContainsFunc(used, cand.Overlaps) {
				return cand, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet in the address pools: %w", errdefs.ErrUnavailable)
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// hostAddr reports whether a is in p and is neither its network nor its
// broadcast address.
func hostAddr(p netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || !p.Contains(a) {
		return false
	}
	v, base := addrU32(a), addrU32(p.Masked().Addr())
	bcast := base | (1<<(32-p.Bits()) - 1)
	return v != base && v != bcast
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	b := a.As4()
	return &net.IPNet{IP: net.IP(b[:]), Mask: net.CIDRMask(bits, 32)}
}

// setupBridge creates (or completes, after a reboot) the bridge of n;
// created tells whether this call made the link.
func (m *Manager) setupBridge(n *Network) (created bool, err error) {
	br, err := m.host.LinkByName(n.Bridge)
	if isNotFound(err) {
		mac := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0}
		copy(mac[2:], n.Gateway.AsSlice())
		la := netlink.NewLinkAttrs()
		la.Name = n.Bridge
		la.MTU = n.MTU
		la.HardwareAddr = mac
		err = m.host.LinkAdd(&netlink.Bridge{LinkAttrs: la})
		if err != nil {
			if errors.Is(err, unix.EEXIST) {
				return false, fmt.Errorf("bridge %s: %w", n.Bridge, errdefs.ErrInUse)
			}
			return false, fmt.Errorf("add bridge %s: %w", n.Bridge, err)
		}
		created = true
		br, err = m.host.LinkByName(n.Bridge)
	}
	if err != nil {
		return created, fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return created, fmt.Errorf("link %s is a %s, not a bridge: %w", n.Bridge, br.Type(), errdefs.ErrInUse)
	}
	addr := &netlink.Addr{IPNet: ipNet(n.Gateway, n.Subnet.Bits())}
	if err := m.host.AddrReplace(br, addr); err != nil {
		return created, fmt.Errorf("address %s on %s: %w", addr.IPNet, n.Bridge, err)
	}
	// 127.0.0.1:port reaches published ports through DNAT in the output
	// chain: the kernel routes loopback-sourced packets out of the bridge
	// only with route_localnet (then masqueraded to the gateway address).
	if err := writeSysctl("/proc/sys/net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
		return created, err
	}
	if err := m.host.LinkSetUp(br); err != nil {
		return created, fmt.Errorf("set %s up: %w", n.Bridge, err)
	}
	if !n.Internal {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if err != nil || len(b) == 0 || b[0] != '1' {
			if err := writeSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
				return created, err
			}
		}
	}
	return created, nil
}

func (m *Manager) teardownBridge(name string) {
	m.bridges.Delete(name)
	br, err := m.host.LinkByName(name)
	if err != nil {
		return
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return
	}
	if err := m.host.LinkDel(br); err != nil && !isNotFound(err) {
		m.Logger.Warn("netdev: delete bridge", "bridge", name, "err", err)
	}
}

// Network returns the named network of this root with its endpoints, or
// an error wrapping errdefs.ErrNotFound.
func (m *Manager) Network(name string) (*Network, error) {
	s, err := m.lookupNet(name)
	if err != nil {
		return nil, err
	}
	return s.view(), nil
}

// lookupNet loads a network's state for a caller without the root lock:
// a name no network could have is not found.
func (m *Manager) lookupNet(name string) (*netState, error) {
	if err := m.init(); err != nil {
		return nil, err
	}
	if !validName(name) {
		return nil, fmt.Errorf("netdev: network %q: %w", name, errdefs.ErrNotFound)
	}
	return m.loadNet(name)
}

func (s *netState) view() *Network {
	n := s.Network
	n.Endpoints = nil
	for _, e := range s.Endpoints {
		n.Endpoints = append(n.Endpoints, *e.Endpoint.clone())
	}
	slices.SortFunc(n.Endpoints, func(a, b Endpoint) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		if a.ContainerID < b.ContainerID {
			return -1
		}
		return 1
	})
	return &n
}

// Networks returns this root's networks, ordered by name.
func (m *Manager) Networks() ([]*Network, error) {
	if err := m.init(); err != nil {
		return nil, err
	}
	names, err := m.listNets()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []*Network
	for _, name := range names {
		s, err := m.loadNet(name)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s.view())
	}
	return out, nil
}

// RemoveNetwork deletes a network: its bridge, rules and state. Endpoints
// whose owner is gone are reclaimed first; if live ones remain the call
// fails with errdefs.ErrInUse.
func (m *Manager) RemoveNetwork(ctx context.Context, name string) error {
	if err := m.init(); err != nil {
		return err
	}
	if !validName(name) {
		return fmt.Errorf("netdev: remove network %q: %w", name, errdefs.ErrNotFound)
	}
	if err := m.waitPending(ctx, func(p *pendingDel) bool { return p.network == name }); err != nil {
		return fmt.Errorf("netdev: remove network %s: %w", name, err)
	}
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return err
	}
	defer rl.Unlock()
	s, err := m.loadNet(name)
	if err != nil {
		return err
	}
	if err := m.reapEndpointsLocked(ctx, s); err != nil {
		return err
	}
	if len(s.Endpoints) > 0 {
		return fmt.Errorf("netdev: remove network %s: %d endpoints attached: %w", name, len(s.Endpoints), errdefs.ErrInUse)
	}
	hl, hs, err := m.lockHost(ctx)
	if err != nil {
		return err
	}
	defer hl.Unlock()
	// Only what this root made: a bridge whose host record names another
	// root (or none) is left alone.
	if h, ok := hs.Networks[s.Network.Bridge]; ok && h.Root == m.Root && h.ID == s.Network.ID {
		if err := m.removeNetworkHostLocked(hs, s.Network.Bridge); err != nil {
			return fmt.Errorf("netdev: remove network %s: %w", name, err)
		}
		if err := m.saveHost(hs); err != nil {
			return err
		}
	} else {
		m.Logger.Warn("netdev: network's bridge not recorded as this root's; leaving it", "network", name, "bridge", s.Network.Bridge)
	}
	if err := m.removeNetState(name); err != nil {
		return fmt.Errorf("netdev: remove network %s: %w", name, err)
	}
	return nil
}

// removeNetworkHostLocked removes the bridge, its rules and its host ports
// from the kernel and from hs (not yet saved). The caller holds the host lock.
func (m *Manager) removeNetworkHostLocked(hs *hostState, bridge string) error {
	if err := m.removeNetworkRules(bridge); err != nil {
		return err
	}
	m.teardownBridge(bridge)
	delete(hs.Networks, bridge)
	hs.Ports = slices.DeleteFunc(hs.Ports, func(p *hostPort) bool { return p.Bridge == bridge })
	if len(hs.Networks) == 0 {
		m.deleteTable()
	}
	return nil
}

// ensureNetwork returns the network's state, creating the default network
// on first use. The caller holds the root lock.
func (m *Manager) ensureNetworkLocked(ctx context.Context, name string) (*netState, error) {
	s, err := m.loadNet(name)
	if errors.Is(err, errdefs.ErrNotFound) && name == DefaultNetwork {
		if _, err := m.createNetworkLocked(ctx, NetworkConfig{Name: DefaultNetwork, Subnet: m.DefaultSubnet}); err != nil {
			return nil, err
		}
		return m.loadNet(name)
	}
	return s, err
}

// restoreNetwork recreates the bridge and rules of a network whose bridge
// is gone (after a reboot, or removed by hand). The caller holds the root lock.
func (m *Manager) restoreNetwork(ctx context.Context, n *Network) error {
	hl, hs, err := m.lockHost(ctx)
	if err != nil {
		return err
	}
	defer hl.Unlock()
	if h, ok := hs.Networks[n.Bridge]; ok && (h.Root != m.Root || h.ID != n.ID) {
		return fmt.Errorf("netdev: network %s: bridge %s now belongs to %s: %w", n.Name, n.Bridge, h.Root, errdefs.ErrInUse)
	}
	for b, h := range hs.Networks {
		if b != n.Bridge && h.Subnet.Overlaps(n.Subnet) {
			return fmt.Errorf("netdev: network %s: subnet %s now used by %s: %w", n.Name, n.Subnet, b, errdefs.ErrInUse)
		}
	}
	if _, err := m.setupBridge(n); err != nil {
		return fmt.Errorf("netdev: restore network %s: %w", n.Name, err)
	}
	_ = m.removeNetworkRules(n.Bridge)
	if err := m.addNetworkRules(n); err != nil {
		return fmt.Errorf("netdev: restore network %s: %w", n.Name, err)
	}
	hs.Networks[n.Bridge] = &hostNet{Root: m.Root, Name: n.Name, ID: n.ID, Subnet: n.Subnet, Default: n.Name == DefaultNetwork}
	return m.saveHost(hs)
}
