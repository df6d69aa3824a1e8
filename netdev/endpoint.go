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
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
)

// PortMapping publishes a container port on the host.
type PortMapping struct {
	// HostIP is the host address to publish on. Zero (or 0.0.0.0): every
	// address of the host, 127.0.0.1 included.
	HostIP netip.Addr `json:"hostIP,omitzero"`
	// HostPort is the host port. Zero: a free port chosen at Attach (from
	// net.ipv4.ip_local_port_range), reported in Endpoint.Ports.
	HostPort uint16 `json:"hostPort"`
	// ContainerPort is the port inside the container. Required.
	ContainerPort uint16 `json:"containerPort"`
	// Protocol is "tcp" or "udp". Zero: "tcp".
	Protocol string `json:"protocol"`
}

func (p PortMapping) String() string {
	h := "0.0.0.0"
	if p.HostIP.IsValid() {
		h = p.HostIP.String()
	}
	return fmt.Sprintf("%s:%d->%d/%s", h, p.HostPort, p.ContainerPort, p.Protocol)
}

// EndpointConfig describes a container's attachment to a network.
type EndpointConfig struct {
	// ContainerID identifies the container. Required; a container joins a
	// network once.
	ContainerID string
	// Network is the name of the network. Zero: DefaultNetwork, created on
	// first use.
	Network string
	// NetNSPath is the container's network namespace (a /proc/<pid>/ns/net
	// or a bind mount of one). Zero: Pid's.
	NetNSPath string
	// Pid is a process in the container. When set, the endpoint lives as
	// long as that process: Cleanup reclaims it once the process is gone.
	// Zero: the endpoint belongs to the calling process.
	Pid int
	// IP is a fixed address inside the network's subnet. Zero: the next
	// free one.
	IP netip.Addr
	// Name is the container's name, which the other containers of a
	// user-defined network resolve through their hosts file.
	Name string
	// Aliases are further names for the container on this network.
	Aliases []string
	// IfName is the interface's name in the container. Zero: eth0, or the
	// first free ethN.
	IfName string
	// MTU of the interface. Zero: the network's.
	MTU int
	// Ports are published on the host (not for internal networks).
	Ports []PortMapping

	// HostsPath is the container's /etc/hosts on the host side. When set,
	// netdev writes it now and rewrites it in place whenever a container
	// joins or leaves any network this container is on. Zero: the file is
	// the caller's business (see Hosts and Network.Endpoints).
	HostsPath string
	// Hostname is the container's host name, listed with its address in the
	// hosts file. Zero: Name.
	Hostname string
	// ExtraHosts are extra hosts file entries (--add-host).
	ExtraHosts []HostsEntry
}

// Endpoint is a container's interface on a network.
type Endpoint struct {
	ContainerID string           `json:"containerID"`
	Network     string           `json:"network"`
	Name        string           `json:"name,omitempty"`
	Aliases     []string         `json:"aliases,omitempty"`
	IfName      string           `json:"ifName"`     // in the container
	HostIfName  string           `json:"hostIfName"` // the veth end on the bridge
	Bridge      string           `json:"bridge"`
	IP          netip.Addr       `json:"ip"`
	Subnet      netip.Prefix     `json:"subnet"`
	Gateway     netip.Addr       `json:"gateway"`
	MAC         net.HardwareAddr `json:"mac"`
	MTU         int              `json:"mtu"`
	// Ports are the published ports, with the host ports chosen.
	Ports []PortMapping `json:"ports,omitempty"`
}

func (e *Endpoint) clone() *Endpoint {
	c := *e
	c.Aliases = slices.Clone(e.Aliases)
	c.MAC = slices.Clone(e.MAC)
	c.Ports = slices.Clone(e.Ports)
	return &c
}

// macFor derives a MAC address from an IPv4 address, as Docker does.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

func openNetNS(cfg *EndpointConfig) (netns.NsHandle, error) {
	path := cfg.NetNSPath
	if path == "" {
		if cfg.Pid <= 0 {
			return -1, fmt.Errorf("neither NetNSPath nor Pid given: %w", errdefs.ErrInvalid)
		}
		path = "/proc/" + strconv.Itoa(cfg.Pid) + "/ns/net"
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return -1, fmt.Errorf("network namespace %s: %w", path, errdefs.ErrNotFound)
		}
		return -1, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return ns, nil
}

// Attach connects a container to a network: a veth pair whose host end is
// on the bridge and whose other end, in the container's namespace, is
// named IfName, addressed, up, with a default route through the gateway
// (unless the namespace has one already) and loopback up; then its ports
// are published. A container already on the network gives
// errdefs.ErrAlreadyExists; a fixed address or host port already taken
// gives errdefs.ErrInUse. On error nothing is left behind.
func (m *Manager) Attach(ctx context.Context, cfg EndpointConfig) (*Endpoint, error) {
	if err := m.init(); err != nil {
		return nil, err
	}
	if cfg.Network == "" {
		cfg.Network = DefaultNetwork
	}
	wrap := func(err error) error {
		return fmt.Errorf("netdev: attach %s to network %s: %w", cfg.ContainerID, cfg.Network, err)
	}
	if cfg.ContainerID == "" || strings.ContainsAny(cfg.ContainerID, "/ \n") {
		return nil, wrap(fmt.Errorf("bad container id %q: %w", cfg.ContainerID, errdefs.ErrInvalid))
	}
	if !validName(cfg.Network) {
		return nil, wrap(fmt.Errorf("bad network name: %w", errdefs.ErrInvalid))
	}
	if cfg.IfName != "" && (len(cfg.IfName) > 15 || !validName(cfg.IfName)) {
		return nil, wrap(fmt.Errorf("bad interface name %q: %w", cfg.IfName, errdefs.ErrInvalid))
	}
	ports, err := normalizePorts(cfg.Ports)
	if err != nil {
		return nil, wrap(err)
	}
	own := m.self
	if cfg.Pid > 0 {
		if own, err = m.ownerOf(cfg.Pid); err != nil {
			return nil, wrap(fmt.Errorf("%v: %w", err, errdefs.ErrNotFound))
		}
	}

	ns, err := openNetNS(&cfg)
	if err != nil {
		return nil, wrap(err)
	}
	defer ns.Close()
	var st, hst unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return nil, wrap(fmt.Errorf("stat network namespace: %w", err))
	}
	if err := unix.Fstat(int(m.hostNS), &hst); err == nil && hst.Ino == st.Ino && hst.Dev == st.Dev {
		return nil, wrap(fmt.Errorf("the namespace is the host's own: %w", errdefs.ErrInvalid))
	}
	ch, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, wrap(fmt.Errorf("netlink handle in container namespace: %w", err))
	}
	defer ch.Close()
	var links []netlink.Link
	pendingHere := func(p *pendingDel) bool { return p.netns == st.Ino }
	if cfg.IfName == "" || m.hasPending(pendingHere) {
		if links, err = retryDump(ch.LinkList); err != nil {
			return nil, wrap(fmt.Errorf("list container links: %w", err))
		}
	}
	// A veth pair of this namespace that Detach is still deleting holds an
	// interface name: wait for it. (Namespace inode numbers are reused, so
	// a fresh namespace, with only lo, does not wait.)
	if len(links) > 1 && m.hasPending(pendingHere) {
		if err := m.waitPending(ctx, pendingHere); err != nil {
			return nil, wrap(err)
		}
		if links, err = retryDump(ch.LinkList); err != nil {
			return nil, wrap(fmt.Errorf("list container links: %w", err))
		}
	}
	if cfg.IfName == "" {
		for i := 0; cfg.IfName == ""; i++ {
			name := "eth" + strconv.Itoa(i)
			if !slices.ContainsFunc(links, func(l netlink.Link) bool { return l.Attrs().Name == name }) {
				cfg.IfName = name
			}
		}
	}

	// 1. Reserve the address (root lock).
	ep, n, hostsFiles, err := m.reserve(ctx, &cfg, own, st.Ino)
	if err != nil {
		return nil, wrap(err)
	}
	if n.Internal && len(ports) > 0 {
		m.release(ep)
		return nil, wrap(fmt.Errorf("internal network publishes no ports: %w", errdefs.ErrInvalid))
	}
	ok := false
	defer func() {
		if !ok {
			m.unwire(ep)
			if len(ep.Ports) > 0 {
				_ = m.unpublish(context.Background(), ep.Bridge, ep.HostIfName)
			}
			m.release(ep)
		}
	}()

	// 2. Wire the veth pair.
	loUp := slices.ContainsFunc(links, func(l netlink.Link) bool {
		return l.Attrs().Index == 1 && l.Attrs().Flags&net.FlagUp != 0
	})
	err = m.wire(ch, ns, n, ep, loUp)
	if errors.Is(err, errBridgeGone) {
		// Deleted behind our back (by hand, or by a reboot that kept the
		// root's state): make it again, with its rules.
		err = m.restore(ctx, n.Name)
		if err == nil {
			err = m.wire(ch, ns, n, ep, loUp)
		}
	}
	if err != nil {
		return nil, wrap(err)
	}

	// 3. Publish ports (host lock).
	if len(ports) > 0 {
		// Hairpin: the container may reach its own published port through
		// a host address; the reply then leaves by the port it came in.
		if err := m.host.LinkSetHairpin(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.HostIfName}}, true); err != nil {
			return nil, wrap(fmt.Errorf("hairpin mode on %s: %w", ep.HostIfName, err))
		}
		ep.Ports, err = m.publish(ctx, &cfg, ep, own, ports)
		if err != nil {
			return nil, wrap(err)
		}
		if err := m.update(ctx, ep); err != nil {
			return nil, wrap(err)
		}
	}
	ok = true
	if !hostsFiles {
		return ep.clone(), nil
	}
	if err := m.refreshHosts(ctx, ep.Network, ep); err != nil {
		m.Logger.Warn("netdev: hosts files", "network", ep.Network, "err", err)
	}
	return ep.clone(), nil
}

func normalizePorts(in []PortMapping) ([]PortMapping, error) {
	out := slices.Clone(in)
	for i := range out {
		p := &out[i]
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		p.Protocol = strings.ToLower(p.Protocol)
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return nil, fmt.Errorf("port %d: protocol %q: %w", p.ContainerPort, p.Protocol, errdefs.ErrUnsupported)
		}
		if p.ContainerPort == 0 {
			return nil, fmt.Errorf("port mapping without a container port: %w", errdefs.ErrInvalid)
		}
		if p.HostIP.IsValid() {
			p.HostIP = p.HostIP.Unmap()
			if !p.HostIP.Is4() {
				return nil, fmt.Errorf("host address %s: only IPv4: %w", p.HostIP, errdefs.ErrUnsupported)
			}
			if p.HostIP.IsUnspecified() {
				p.HostIP = netip.Addr{}
			}
		}
	}
	return out, nil
}

// reserve allocates the endpoint's address and records it.
func (m *Manager) reserve(ctx context.Context, cfg *EndpointConfig, own owner, nsIno uint64) (ep *epState, n *Network, hostsFiles bool, err error) {
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	defer rl.Unlock()
	s, err := m.ensureNetworkLocked(ctx, cfg.Network)
	if err != nil {
		return nil, nil, false, err
	}
	if _, ok := s.Endpoints[cfg.ContainerID]; ok {
		return nil, nil, false, fmt.Errorf("container already on the network: %w", errdefs.ErrAlreadyExists)
	}
	if _, known := m.bridges.Load(s.Network.Bridge); !known {
		// First use in this process: check that the bridge exists and that
		// the host state knows it (its rules go with that record), and
		// restore what is missing.
		_, err := m.host.LinkByName(s.Network.Bridge)
		missing := isNotFound(err)
		if !missing {
			hs, err := m.loadHost()
			if err != nil {
				return nil, nil, false, err
			}
			h := hs.Networks[s.Network.Bridge]
			missing = h == nil || h.ID != s.Network.ID
		}
		if missing {
			if err := m.restoreNetwork(ctx, &s.Network); err != nil {
				return nil, nil, false, err
			}
		}
	}
	hostsFiles = cfg.HostsPath != ""
	for _, e := range s.Endpoints {
		hostsFiles = hostsFiles || e.HostsPath != ""
	}
	n = &s.Network
	taken := make(map[netip.Addr]bool, len(s.Endpoints)+1)
	taken[n.Gateway] = true
	for _, e := range s.Endpoints {
		taken[e.IP] = true
	}
	ip := cfg.IP
	if ip.IsValid() {
		ip = ip.Unmap()
		if !hostAddr(n.Subnet, ip) {
			return nil, nil, false, fmt.Errorf("address %s is not a host address of %s: %w", ip, n.Subnet, errdefs.ErrInvalid)
		}
		if taken[ip] {
			return nil, nil, false, fmt.Errorf("address %s: %w", ip, errdefs.ErrInUse)
		}
	} else {
		// Round-robin from the last address handed out, so a freed address
		// is not reused at once.
		base := addrU32(n.Subnet.Masked().Addr())
		size := uint32(1) << (32 - n.Subnet.Bits())
		start := uint32(0)
		if s.Last.IsValid() && n.Subnet.Contains(s.Last) {
			start = addrU32(s.Last) - base
		}
		for i := uint32(1); i < size; i++ {
			off := (start + i) % size
			if off == 0 || off == size-1 {
				continue
			}
			if a := u32Addr(base + off); !taken[a] {
				ip = a
				break
			}
		}
		if !ip.IsValid() {
			return nil, nil, false, fmt.Errorf("no free address in %s: %w", n.Subnet, errdefs.ErrUnavailable)
		}
		s.Last = ip
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = n.MTU
	}
	host := "berth" + randHex(7)
	ep = &epState{
		Endpoint: Endpoint{
			ContainerID: cfg.ContainerID,
			Network:     n.Name,
			Name:        cfg.Name,
			Aliases:     slices.Clone(cfg.Aliases),
			IfName:      cfg.IfName,
			HostIfName:  host,
			Bridge:      n.Bridge,
			IP:          ip,
			Subnet:      n.Subnet,
			Gateway:     n.Gateway,
			MAC:         macFor(ip),
			MTU:         mtu,
		},
		Owner:      own,
		NetNS:      nsIno,
		HostsPath:  cfg.HostsPath,
		Hostname:   cfg.Hostname,
		ExtraHosts: slices.Clone(cfg.ExtraHosts),
	}
	s.Endpoints[cfg.ContainerID] = ep
	if err := m.saveNet(s); err != nil {
		return nil, nil, false, err
	}
	return ep, n, hostsFiles, nil
}

// restore recreates a network's bridge and rules.
func (m *Manager) restore(ctx context.Context, name string) error {
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return err
	}
	defer rl.Unlock()
	s, err := m.loadNet(name)
	if err != nil {
		return err
	}
	return m.restoreNetwork(ctx, &s.Network)
}

// release frees an endpoint's address record.
func (m *Manager) release(ep *epState) {
	rl, err := m.lockRoot(context.Background())
	if err != nil {
		m.Logger.Warn("netdev: release address", "ip", ep.IP, "err", err)
		return
	}
	defer rl.Unlock()
	s, err := m.loadNet(ep.Network)
	if err != nil {
		return
	}
	if cur, ok := s.Endpoints[ep.ContainerID]; ok && cur.HostIfName == ep.HostIfName {
		delete(s.Endpoints, ep.ContainerID)
		if err := m.saveNet(s); err != nil {
			m.Logger.Warn("netdev: release address", "ip", ep.IP, "err", err)
		}
	}
}

// update rewrites an endpoint's record (after its ports were chosen).
func (m *Manager) update(ctx context.Context, ep *epState) error {
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return err
	}
	defer rl.Unlock()
	s, err := m.loadNet(ep.Network)
	if err != nil {
		return err
	}
	cur, ok := s.Endpoints[ep.ContainerID]
	if !ok || cur.HostIfName != ep.HostIfName {
		return fmt.Errorf("endpoint removed concurrently: %w", errdefs.ErrNotFound)
	}
	s.Endpoints[ep.ContainerID] = ep
	return m.saveNet(s)
}

// errBridgeGone: a network's bridge was deleted behind berth's back.
var errBridgeGone = errors.New("bridge is gone")

// wire creates the veth pair with its far end directly in the container's
// namespace under its final name, and configures that end.
func (m *Manager) wire(ch *netlink.Handle, ns netns.NsHandle, n *Network, ep *epState, loUp bool) error {
	brIndex, cached := m.bridges.Load(n.Bridge)
	if !cached {
		br, err := m.host.LinkByName(n.Bridge)
		if isNotFound(err) {
			return errBridgeGone
		}
		if err != nil {
			return fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
		if _, ok := br.(*netlink.Bridge); !ok {
			return fmt.Errorf("link %s is not a bridge: %w", n.Bridge, errdefs.ErrInvalid)
		}
		brIndex = br.Attrs().Index
		m.bridges.Store(n.Bridge, brIndex)
	}
	la := netlink.NewLinkAttrs()
	la.Name = ep.HostIfName
	la.MTU = ep.MTU
	la.MasterIndex = brIndex.(int)
	la.Flags = net.FlagUp
	veth := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         ep.IfName,
		PeerNamespace:    netlink.NsFd(ns),
		PeerHardwareAddr: ep.MAC,
		PeerMTU:          uint32(ep.MTU),
	}
	if err := m.host.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add veth %s/%s: %s exists: %w", ep.HostIfName, ep.IfName, ep.IfName, errdefs.ErrAlreadyExists)
		}
		if cached {
			// The bridge may have been removed (and made again): look it
			// up. The kernel may have kept the pair it made before failing
			// to enslave it.
			m.unwire(ep)
			m.bridges.Delete(n.Bridge)
			return m.wire(ch, ns, n, ep, loUp)
		}
		return fmt.Errorf("add veth %s/%s: %w", ep.HostIfName, ep.IfName, err)
	}
	link, err := ch.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("container link %s: %w", ep.IfName, err)
	}
	addr := &netlink.Addr{IPNet: ipNet(ep.IP, ep.Subnet.Bits())}
	if err := ch.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr.IPNet, ep.IfName, err)
	}
	if err := ch.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", ep.IfName, err)
	}
	// Loopback is always ifindex 1.
	if !loUp {
		if err := ch.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}}); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	gw := ep.Gateway.As4()
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IP(gw[:]), Scope: netlink.SCOPE_UNIVERSE}
	if err := ch.RouteAdd(route); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("default route via %s: %w", ep.Gateway, err)
	}
	m.waitOperUp(ch, link.Attrs().Index, ep.HostIfName, la.MasterIndex)
	return nil
}

// waitOperUp waits until both ends of a new veth pair are operationally
// up. The kernel applies a carrier change (and swaps a device's "noop"
// queue, which drops every packet, for a real one) asynchronously, in its
// link-watch work, which waits for the RTNL lock: on a busy host the first
// packets (an ARP request, a SYN) would be dropped for up to a second.
//
// The bridge itself gets its carrier from its first port the same way, so
// it is waited for too (packets from the host to the container go through it).
func (m *Manager) waitOperUp(ch *netlink.Handle, peerIndex int, hostName string, bridgeIndex int) {
	deadline := time.Now().Add(2 * time.Second)
	delay := 50 * time.Microsecond
	for {
		up := func(h *netlink.Handle, index int, name string) bool {
			var l netlink.Link
			var err error
			if name != "" {
				l, err = h.LinkByName(name)
			} else {
				l, err = h.LinkByIndex(index)
			}
			return err == nil && l.Attrs().OperState == netlink.OperUp
		}
		if up(ch, peerIndex, "") && up(m.host, 0, hostName) && up(m.host, bridgeIndex, "") {
			return
		}
		if time.Now().After(deadline) {
			m.Logger.Warn("netdev: veth pair not up after 2s", "link", hostName)
			return
		}
		time.Sleep(delay)
		if delay < 5*time.Millisecond {
			delay *= 2
		}
	}
}

// unwire deletes the host end of the veth pair, which deletes both ends.
func (m *Manager) unwire(ep *epState) {
	l, err := m.host.LinkByName(ep.HostIfName)
	if err != nil {
		return
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return
	}
	if err := m.host.LinkDel(l); err != nil && !isNotFound(err) {
		m.Logger.Warn("netdev: delete veth", "link", ep.HostIfName, "err", err)
	}
}

// Endpoint returns a container's endpoint on a network, or an error
// wrapping errdefs.ErrNotFound.
func (m *Manager) Endpoint(network, containerID string) (*Endpoint, error) {
	s, err := m.lookupNet(network)
	if err != nil {
		return nil, err
	}
	e, ok := s.Endpoints[containerID]
	if !ok {
		return nil, fmt.Errorf("netdev: container %s on network %s: %w", containerID, network, errdefs.ErrNotFound)
	}
	return e.Endpoint.clone(), nil
}

// Detach disconnects a container from a network. When it returns, the
// endpoint is cut off (the host end of its veth pair is down, so the pair
// carries nothing and the bridge has forgotten its address), its ports are
// unpublished, its address is free and its names are gone from the hosts
// files. The veth pair itself is deleted in the background, because the
// kernel takes 10-20 ms to delete a link (RCU grace periods). Close waits
// for these deletions; RemoveNetwork, and an Attach to the same namespace,
// wait for theirs. Detaching an endpoint that is gone already gives an
// error wrapping errdefs.ErrNotFound.
func (m *Manager) Detach(ctx context.Context, ep *Endpoint) error {
	if err := m.init(); err != nil {
		return err
	}
	if ep == nil || !validName(ep.Network) {
		return fmt.Errorf("netdev: detach: no endpoint: %w", errdefs.ErrInvalid)
	}
	wrap := func(err error) error {
		return fmt.Errorf("netdev: detach %s from %s: %w", ep.ContainerID, ep.Network, err)
	}
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return err
	}
	s, err := m.loadNet(ep.Network)
	if err != nil {
		rl.Unlock()
		return wrap(err)
	}
	cur, ok := s.Endpoints[ep.ContainerID]
	if !ok {
		rl.Unlock()
		return wrap(errdefs.ErrNotFound)
	}
	link, lerr := m.host.LinkByName(cur.HostIfName)
	if lerr == nil {
		if _, ok := link.(*netlink.Veth); !ok {
			link = nil
		} else if err := m.host.LinkSetDown(link); err != nil && !isNotFound(err) {
			m.Logger.Warn("netdev: set veth down", "link", cur.HostIfName, "err", err)
		}
	}
	if len(cur.Ports) > 0 {
		if err := m.unpublish(ctx, cur.Bridge, cur.HostIfName); err != nil {
			rl.Unlock()
			return wrap(err)
		}
	}
	delete(s.Endpoints, ep.ContainerID)
	hostsFiles := cur.HostsPath != ""
	for _, e := range s.Endpoints {
		hostsFiles = hostsFiles || e.HostsPath != ""
	}
	err = m.saveNet(s)
	rl.Unlock()
	if err != nil {
		return wrap(err)
	}
	if lerr == nil && link != nil {
		m.deleteLater(link, cur)
	}
	if hostsFiles {
		if err := m.refreshHosts(ctx, ep.Network, cur); err != nil {
			m.Logger.Warn("netdev: hosts files", "network", ep.Network, "err", err)
		}
	}
	return nil
}

// deleteLater deletes a veth pair in the background.
func (m *Manager) deleteLater(link netlink.Link, ep *epState) {
	p := &pendingDel{network: ep.Network, netns: ep.NetNS, done: make(chan struct{})}
	m.pendMu.Lock()
	if m.pending == nil {
		m.pending = map[string]*pendingDel{}
	}
	m.pending[ep.HostIfName] = p
	m.pendMu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		h, err := m.delHandle()
		if err == nil {
			err = h.LinkDel(link)
			m.putDelHandle(h)
		}
		if err != nil && !isNotFound(err) {
			m.Logger.Warn("netdev: delete veth", "link", ep.HostIfName, "err", err)
		}
		m.pendMu.Lock()
		delete(m.pending, ep.HostIfName)
		idle := len(m.pending) == 0
		m.pendMu.Unlock()
		if idle {
			m.trimDelHandles()
		}
		close(p.done)
	}()
}

// removeEndpointLocked undoes an endpoint synchronously and saves s. It
// looks for published ports even when the record lists none (its owner may
// have died while publishing). The caller holds the root lock.
func (m *Manager) removeEndpointLocked(ctx context.Context, s *netState, ep *epState) error {
	m.unwire(ep)
	if err := m.unpublish(ctx, ep.Bridge, ep.HostIfName); err != nil {
		return err
	}
	delete(s.Endpoints, ep.ContainerID)
	return m.saveNet(s)
}
