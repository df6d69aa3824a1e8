//go:build linux

package netdev

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/berthrt/berth/errdefs"
)

// refreshHosts rewrites the hosts files of the containers on network (all
// of them, for a user-defined network) and of self's container.
func (m *Manager) refreshHosts(ctx context.Context, network string, self *epState) error {
	all := network != DefaultNetwork
	if !all && (self == nil || self.HostsPath == "") {
		return nil
	}
	rl, err := m.lockRoot(ctx)
	if err != nil {
		return err
	}
	defer rl.Unlock()
	names, err := m.listNets()
	if err != nil {
		return err
	}
	states := map[string]*netState{}
	byContainer := map[string][]*epState{}
	for _, name := range names {
		s, err := m.loadNet(name)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		states[name] = s
		for _, e := range s.Endpoints {
			byContainer[e.ContainerID] = append(byContainer[e.ContainerID], e)
		}
	}
	targets := map[string]*epState{}
	if self != nil && self.HostsPath != "" {
		targets[self.ContainerID] = self
	}
	if s := states[network]; all && s != nil {
		for id, e := range s.Endpoints {
			if e.HostsPath != "" {
				targets[id] = e
			}
		}
	}
	var errs error
	for id, t := range targets {
		eps := byContainer[id]
		slices.SortFunc(eps, func(a, b *epState) int {
			if a.Network < b.Network {
				return -1
			}
			return 1
		})
		if len(eps) > 0 {
			t = eps[0]
		}
		var entries []HostsEntry
		if len(eps) > 0 {
			host := t.Hostname
			if host == "" {
				host = t.Name
			}
			entries = append(entries, HostsEntry{IP: eps[0].IP, Names: []string{host, t.Name}})
		}
		entries = append(entries, t.ExtraHosts...)
		for _, e := range eps {
			if e.Network == DefaultNetwork {
				continue
			}
			s := states[e.Network]
			peers := make([]*epState, 0, len(s.Endpoints))
			for _, o := range s.Endpoints {
				if o.ContainerID != id {
					peers = append(peers, o)
				}
			}
			slices.SortFunc(peers, func(a, b *epState) int {
				if a.Name < b.Name {
					return -1
				}
				return 1
			})
			for _, o := range peers {
				entries = append(entries, HostsEntry{IP: o.IP, Names: append([]string{o.Name}, o.Aliases...)})
			}
		}
		if err := rewriteInPlace(t.HostsPath, Hosts(entries)); err != nil {
			errs = errors.Join(errs, err)
		}
	}
	return errs
}

// rewriteInPlace replaces a file's content without replacing the file: it
// is the target of a bind mount in the container, which a rename would
// detach from it.
func rewriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("hosts file: %w", err)
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("hosts file %s: %w", path, err)
	}
	return nil
}
