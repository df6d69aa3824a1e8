//go:build linux

package netdev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/berthrt/berth/errdefs"
)

// Cleanup removes what dead owners left behind: endpoints of this root
// whose owner process is gone (their veth, published ports and address),
// host ports of any root whose owner is gone, and networks of any root
// whose root directory (or network) no longer exists (their bridge and
// rules). Live endpoints and networks are never touched.
func (m *Manager) Cleanup(ctx context.Context) error {
	if err := m.init(); err != nil {
		return err
	}
	var errs error
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return err
	}
	names, err := m.listNets()
	if err != nil {
		rl.Unlock()
		return err
	}
	var touched []string
	for _, name := range names {
		s, err := m.loadNet(name)
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		before := len(s.Endpoints)
		if err := m.reapEndpointsLocked(ctx, s); err != nil {
			errs = errors.Join(errs, err)
		}
		if len(s.Endpoints) != before {
			touched = append(touched, name)
		}
	}
	rl.Unlock()
	for _, name := range touched {
		if err := m.refreshHosts(ctx, name, nil); err != nil {
			errs = errors.Join(errs, err)
		}
	}

	hl, hs, err := m.lockHost(ctx)
	if err != nil {
		return errors.Join(errs, err)
	}
	defer hl.Unlock()
	for bridge, hn := range hs.Networks {
		if networkLives(hn) {
			continue
		}
		m.Logger.Debug("netdev: removing stale network", "bridge", bridge, "root", hn.Root, "name", hn.Name)
		if err := m.removeNetworkHostLocked(hs, bridge); err != nil {
			errs = errors.Join(errs, err)
		}
	}
	var dead []*hostPort
	for _, p := range hs.Ports {
		if !m.alive(p.Owner) {
			dead = append(dead, p)
		}
	}
	for _, p := range dead {
		if l, err := m.host.LinkByName(p.HostIfName); err == nil {
			if _, ok := l.(*netlink.Veth); ok {
				_ = m.host.LinkDel(l)
			}
		}
		if err := m.removePortRules(p.Bridge, p.HostIfName); err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		hs.Ports = slices.DeleteFunc(hs.Ports, func(q *hostPort) bool { return q == p })
	}
	if err := m.saveHost(hs); err != nil {
		errs = errors.Join(errs, err)
	}
	if errs != nil {
		return fmt.Errorf("netdev: cleanup: %w", errs)
	}
	return nil
}

// networkLives reports whether the root that created a network still has it.
func networkLives(hn *hostNet) bool {
	m := &Manager{Root: hn.Root}
	b, err := m.readNetState(hn.Name)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	var s netState
	if err := json.Unmarshal(b, &s); err != nil {
		return true // unreadable: keep, to be safe
	}
	return s.Network.ID == hn.ID
}

// reapEndpointsLocked removes the endpoints of s whose owner is gone and
// saves s. The caller holds the root lock.
func (m *Manager) reapEndpointsLocked(ctx context.Context, s *netState) error {
	var errs error
	for _, e := range s.Endpoints {
		if m.alive(e.Owner) {
			continue
		}
		m.Logger.Debug("netdev: reclaiming endpoint of a dead owner", "network", s.Network.Name, "container", e.ContainerID, "ip", e.IP)
		if err := m.removeEndpointLocked(ctx, s, e); err != nil {
			errs = errors.Join(errs, err)
		}
	}
	if errs != nil {
		return fmt.Errorf("reclaim endpoints of %s: %w: %w", s.Network.Name, errs, errdefs.ErrUnavailable)
	}
	return nil
}
