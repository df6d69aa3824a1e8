//go:build linux

package berth

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berthrt/berth/internal/ids"
	"github.com/berthrt/berth/namespace"
	"github.com/berthrt/berth/netdev"
)

// netPlan is how a container joins its networks; attach runs in Prestart.
type netPlan struct {
	c         *Container
	mode      string // "none", "host", "container", "bridge"
	networks  []string
	hostsPath string
	// extraHosts are the parsed --add-host entries.
	extraHosts []netdev.HostsEntry
	endpoints  []*netdev.Endpoint
}

// networkPlan sets the network fields of n and writes the container's
// /etc/hostname, /etc/hosts and /etc/resolv.conf.
func (c *Container) networkPlan(ctx context.Context, n *namespace.Config) (*netPlan, error) {
	cfg := &c.rec.Config
	p := &netPlan{c: c, hostsPath: filepath.Join(c.dir, "hosts")}
	mode := cfg.NetworkMode
	switch {
	case mode == "" || mode == "bridge" || mode == "default":
		p.mode = "bridge"
		p.networks = append([]string{netdev.DefaultNetwork}, cfg.Networks...)
	case mode == "none":
		p.mode = "none"
	case mode == "host":
		p.mode = "host"
		n.Namespaces = withoutNet(n.Namespaces)
	case strings.HasPrefix(mode, "container:"):
		other, err := c.rt.Container(ctx, strings.TrimPrefix(mode, "container:"))
		if err != nil {
			return nil, fmt.Errorf("network mode %s: %w", mode, err)
		}
		st := other.State()
		if !st.Running {
			return nil, fmt.Errorf("network mode %s: %w", mode, ErrNotRunning)
		}
		p.mode = "container"
		n.Namespaces = withoutNet(n.Namespaces)
		n.NetNS = "/proc/" + strconv.Itoa(st.Pid) + "/ns/net"
		p.hostsPath = filepath.Join(other.dir, "hosts")
	default:
		p.mode = "bridge"
		p.networks = append([]string{mode}, cfg.Networks...)
	}
	if err := c.writeNetFiles(p, n); err != nil {
		return nil, err
	}
	return p, nil
}

func withoutNet(ns []namespace.Namespace) []namespace.Namespace {
	if ns == nil {
		ns = namespace.DefaultNamespaces
	}
	var out []namespace.Namespace
	for _, x := range ns {
		if x != namespace.NamespaceNet {
			out = append(out, x)
		}
	}
	return out
}

func (c *Container) writeNetFiles(p *netPlan, n *namespace.Config) error {
	cfg := &c.rec.Config
	files := map[string]string{}
	hostname := filepath.Join(c.dir, "hostname")
	if err := os.WriteFile(hostname, []byte(n.Hostname+"\n"), 0o644); err != nil {
		return err
	}
	files["/etc/hostname"] = hostname

	resolv := filepath.Join(c.dir, "resolv.conf")
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	var rc []byte
	if p.mode == "host" && len(cfg.DNS) == 0 && len(cfg.DNSSearch) == 0 && len(cfg.DNSOptions) == 0 {
		rc = hostResolv
	} else {
		rc = netdev.ResolvConf(hostResolv, cfg.DNS, cfg.DNSSearch, cfg.DNSOptions)
	}
	if err := os.WriteFile(resolv, rc, 0o644); err != nil {
		return err
	}
	files["/etc/resolv.conf"] = resolv

	extra, err := parseExtraHosts(cfg.ExtraHosts)
	if err != nil {
		return err
	}
	p.extraHosts = extra
	switch p.mode {
	case "host":
		b, _ := os.ReadFile("/etc/hosts")
		b = append(b, netdev.Hosts(extra)...)
		if err := os.WriteFile(p.hostsPath, b, 0o644); err != nil {
			return err
		}
	case "container":
		// Shares the other container's hosts file.
	default:
		entries := append([]netdev.HostsEntry{}, extra...)
		if err := os.WriteFile(p.hostsPath, netdev.Hosts(append(entries, netdev.HostsEntry{IP: netip.MustParseAddr("127.0.0.1"), Names: []string{n.Hostname}})), 0o644); err != nil {
			return err
		}
	}
	files["/etc/hosts"] = p.hostsPath
	n.Files = files
	return nil
}

func parseExtraHosts(in []string) ([]netdev.HostsEntry, error) {
	var out []netdev.HostsEntry
	for _, h := range in {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			// IPv6 forms use '=' in newer Docker.
			name, ip, ok = strings.Cut(h, "=")
		}
		a, err := netip.ParseAddr(ip)
		if !ok || name == "" || err != nil {
			return nil, fmt.Errorf("add-host %q: want name:ip: %w", h, ErrInvalid)
		}
		out = append(out, netdev.HostsEntry{IP: a, Names: []string{name}})
	}
	return out, nil
}

// attach joins the container (its supervisor is pid) to its networks.
func (p *netPlan) attach(ctx context.Context, pid int) error {
	switch p.mode {
	case "none", "host", "container":
		// With "none", the init has set lo up itself.
		return nil
	}
	cfg := &p.c.rec.Config
	ports := p.c.rec.Ports
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = ids.Short(p.c.id)
	}
	for i, network := range p.networks {
		ec := netdev.EndpointConfig{
			ContainerID: p.c.id,
			Network:     network,
			Pid:         pid,
			Name:        cfg.Name,
			Aliases:     cfg.NetworkAliases,
			HostsPath:   p.hostsPath,
			Hostname:    hostname,
			ExtraHosts:  p.extraHosts,
		}
		if i == 0 {
			ec.Ports = ports
			if cfg.IP != "" {
				a, err := netip.ParseAddr(cfg.IP)
				if err != nil {
					return fmt.Errorf("ip %q: %w", cfg.IP, ErrInvalid)
				}
				ec.IP = a
			}
		}
		ep, err := p.c.rt.net.Attach(ctx, ec)
		if err != nil {
			return fmt.Errorf("network %s: %w", network, err)
		}
		p.endpoints = append(p.endpoints, ep)
	}
	return nil
}

func (p *netPlan) undo(ctx context.Context) {
	for _, ep := range p.endpoints {
		_ = p.c.rt.net.Detach(ctx, ep)
	}
	p.endpoints = nil
}

// publishedPorts are the ports a container publishes: cfg.Publish, and
// with PublishAll every port the image exposes, on a free host port.
func publishedPorts(img *Image, cfg *ContainerConfig) []PortMapping {
	ports := append([]PortMapping{}, cfg.Publish...)
	if !cfg.PublishAll {
		return ports
	}
	for _, e := range img.ExposedPorts() {
		port, proto, _ := strings.Cut(e, "/")
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			continue
		}
		ports = append(ports, PortMapping{ContainerPort: uint16(n), Protocol: cmp.Or(proto, "tcp")})
	}
	return ports
}
