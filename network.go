//go:build linux

package berth

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/berthrt/berth/netdev"
)

// NetworkConfig describes a user-defined bridge network.
type NetworkConfig struct {
	// Name of the network. Required.
	Name string
	// Subnet in CIDR form. Zero: a free private /16 (or smaller) that
	// overlaps no route of the host.
	Subnet string
	// Gateway address (the bridge's). Zero: the subnet's first address.
	Gateway string
	// Internal networks get no NAT to the outside.
	Internal bool
}

// Network is a bridge network.
type Network = netdev.Network

// CreateNetwork creates a user-defined network; its containers resolve each
// other by name and alias, and are isolated from other networks.
func (rt *Runtime) CreateNetwork(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	nc := netdev.NetworkConfig{Name: cfg.Name, Internal: cfg.Internal}
	if cfg.Subnet != "" {
		p, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil {
			return nil, fmt.Errorf("create network %s: subnet %q: %w", cfg.Name, cfg.Subnet, ErrInvalid)
		}
		nc.Subnet = p
	}
	if cfg.Gateway != "" {
		a, err := netip.ParseAddr(cfg.Gateway)
		if err != nil {
			return nil, fmt.Errorf("create network %s: gateway %q: %w", cfg.Name, cfg.Gateway, ErrInvalid)
		}
		nc.Gateway = a
	}
	return rt.net.CreateNetwork(ctx, nc)
}

// Network returns the network name.
func (rt *Runtime) Network(ctx context.Context, name string) (*Network, error) {
	return rt.net.Network(name)
}

// Networks lists the networks of this root.
func (rt *Runtime) Networks(ctx context.Context) ([]*Network, error) {
	return rt.net.Networks()
}

// RemoveNetwork removes a network; refused with ErrInUse while a container
// is attached.
func (rt *Runtime) RemoveNetwork(ctx context.Context, name string) error {
	return rt.net.RemoveNetwork(ctx, name)
}

// ConnectNetwork attaches the running container to one more network (a new
// interface, eth1, eth2, ...), reachable there by its name and aliases.
func (c *Container) ConnectNetwork(ctx context.Context, network string, aliases ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.rec.State.Running {
		return fmt.Errorf("connect %s to %s: %w", c.id[:12], network, ErrNotRunning)
	}
	for _, ep := range c.rec.Endpoints {
		if ep.Network == network {
			return fmt.Errorf("connect %s to %s: %w", c.id[:12], network, ErrAlreadyExists)
		}
	}
	hostname := c.rec.Config.Hostname
	if hostname == "" {
		hostname = c.id[:12]
	}
	ep, err := c.rt.net.Attach(ctx, netdev.EndpointConfig{
		ContainerID: c.id,
		Network:     network,
		Pid:         c.rec.State.Pid,
		Name:        c.rec.Config.Name,
		Aliases:     append(append([]string{}, c.rec.Config.NetworkAliases...), aliases...),
		HostsPath:   filepath.Join(c.dir, "hosts"),
		Hostname:    hostname,
	})
	if err != nil {
		return fmt.Errorf("connect %s to %s: %w", c.id[:12], network, err)
	}
	c.rec.Endpoints = append(c.rec.Endpoints, ep)
	return c.save()
}

// DisconnectNetwork detaches the running container from a network.
func (c *Container) DisconnectNetwork(ctx context.Context, network string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ep := range c.rec.Endpoints {
		if ep.Network != network {
			continue
		}
		if err := c.rt.net.Detach(ctx, ep); err != nil {
			return fmt.Errorf("disconnect %s from %s: %w", c.id[:12], network, err)
		}
		c.rec.Endpoints = append(c.rec.Endpoints[:i], c.rec.Endpoints[i+1:]...)
		return c.save()
	}
	return fmt.Errorf("disconnect %s from %s: %w", c.id[:12], network, ErrNotFound)
}
