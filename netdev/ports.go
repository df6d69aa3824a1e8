//go:build linux

package netdev

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
)

// portRange reads net.ipv4.ip_local_port_range, where random host ports
// come from (as in Docker).
func portRange() (lo, hi uint16) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	a, err1 := strconv.ParseUint(f[0], 10, 16)
	z, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || a == 0 || z < a {
		return lo, hi
	}
	return uint16(a), uint16(z)
}

func overlaps(a, b netip.Addr) bool {
	return !a.IsValid() || !b.IsValid() || a == b
}

// portTaken reports whether berth has published proto/port on an address
// overlapping ip.
func portTaken(hs *hostState, proto string, ip netip.Addr, port uint16) bool {
	return slices.ContainsFunc(hs.Ports, func(p *hostPort) bool {
		return p.Proto == proto && p.Port == port && overlaps(p.HostIP, ip)
	})
}

// bindable checks that no socket of the host holds proto/ip:port, by
// binding it for a moment.
func bindable(proto string, ip netip.Addr, port uint16) error {
	host := "0.0.0.0"
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// publish chooses the host ports, records them host-wide and installs the
// DNAT rules, all under the host lock.
func (m *Manager) publish(ctx context.Context, cfg *EndpointConfig, ep *epState, own owner, ports []PortMapping) ([]PortMapping, error) {
	hl, hs, err := m.lockHost(ctx)
	if err != nil {
		return nil, err
	}
	defer hl.Unlock()
	lo, hi := portRange()
	out := slices.Clone(ports)
	for i := range out {
		p := &out[i]
		if p.HostPort != 0 {
			if portTaken(hs, p.Protocol, p.HostIP, p.HostPort) {
				return nil, fmt.Errorf("host port %s: published by another container: %w", p, errdefs.ErrInUse)
			}
			if err := bindable(p.Protocol, p.HostIP, p.HostPort); err != nil {
				if errors.Is(err, unix.EADDRINUSE) {
					return nil, fmt.Errorf("host port %s: %w", p, errdefs.ErrInUse)
				}
				return nil, fmt.Errorf("host port %s: %v: %w", p, err, errdefs.ErrInvalid)
			}
		} else {
			n := int(hi-lo) + 1
			start := rand.IntN(n)
			for j := 0; j < n; j++ {
				port := lo + uint16((start+j)%n)
				if portTaken(hs, p.Protocol, p.HostIP, port) || bindable(p.Protocol, p.HostIP, port) != nil {
					continue
				}
				p.HostPort = port
				break
			}
			if p.HostPort == 0 {
				return nil, fmt.Errorf("no free host port for %s: %w", p, errdefs.ErrUnavailable)
			}
		}
		hp := &hostPort{Proto: p.Protocol, HostIP: p.HostIP, Port: p.HostPort, Bridge: ep.Bridge,
			HostIfName: ep.HostIfName, Root: m.Root, ContainerID: cfg.ContainerID, Owner: own}
		hs.Ports = append(hs.Ports, hp)
	}
	// Record the ports before the rules exist, so that a crash in between
	// leaves a record Cleanup can follow to the rules.
	if err := m.saveHost(hs); err != nil {
		return nil, err
	}
	if err := m.addPortRules(ep.Bridge, ep.HostIfName, ep.IP, out); err != nil {
		hs.Ports = slices.DeleteFunc(hs.Ports, func(p *hostPort) bool { return p.Bridge == ep.Bridge && p.HostIfName == ep.HostIfName })
		_ = m.saveHost(hs)
		return nil, err
	}
	m.forgetUDP(out)
	return out, nil
}

// unpublish removes an endpoint's DNAT rules and host ports.
func (m *Manager) unpublish(ctx context.Context, bridge, veth string) error {
	hl, hs, err := m.lockHost(ctx)
	if err != nil {
		return err
	}
	defer hl.Unlock()
	if err := m.removePortRules(bridge, veth); err != nil {
		return err
	}
	var gone []PortMapping
	hs.Ports = slices.DeleteFunc(hs.Ports, func(p *hostPort) bool {
		if p.Bridge == bridge && p.HostIfName == veth {
			gone = append(gone, PortMapping{HostIP: p.HostIP, HostPort: p.Port, Protocol: p.Proto})
			return true
		}
		return false
	})
	m.forgetUDP(gone)
	return m.saveHost(hs)
}

// forgetUDP deletes the conntrack entries of UDP host ports that were just
// published or unpublished, as Docker does: a UDP "connection" tracked
// before the change would keep its old translation (or none) for as long
// as packets keep coming.
func (m *Manager) forgetUDP(ports []PortMapping) {
	var filters []netlink.CustomConntrackFilter
	for _, p := range ports {
		if p.Protocol != "udp" {
			continue
		}
		f := &netlink.ConntrackFilter{}
		if f.AddProtocol(unix.IPPROTO_UDP) != nil || f.AddPort(netlink.ConntrackOrigDstPort, p.HostPort) != nil {
			continue
		}
		filters = append(filters, f)
	}
	if len(filters) == 0 {
		return
	}
	h, err := netlink.NewHandleAt(m.hostNS, unix.NETLINK_NETFILTER)
	if err != nil {
		m.Logger.Warn("netdev: conntrack handle", "err", err)
		return
	}
	defer h.Close()
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		m.Logger.Debug("netdev: delete UDP conntrack entries", "err", err)
	}
}
