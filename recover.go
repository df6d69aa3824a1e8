//go:build linux

package berth

import (
	"context"
	"github.com/berthrt/berth/cgroup"
)

// recover removes what a crashed owner of this root left: containers
// recorded as running whose supervisor is gone are marked exited and their
// cgroups and network endpoints removed; leftover empty cgroups and stale
// network state of dead owners go too.
func (rt *Runtime) recover(ctx context.Context) error {
	recs, err := rt.records()
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, r := range recs {
		if !r.State.Running {
			continue
		}
		c := &Container{rt: rt, id: r.ID, dir: rt.containerDir(r.ID), rec: r, cfg: r.Config}
		c.refresh(ctx, false)
		if c.State().Running {
			live[r.ID] = true
		}
	}
	// Only empty groups can be removed, so another root's running
	// containers under the same parent are safe.
	if err := cgroup.Cleanup(rt.cfg.CgroupParent, func(name string) bool { return live[name] }); err != nil {
		rt.log.Warn("cgroup cleanup", "err", err)
	}
	if err := rt.net.Cleanup(ctx); err != nil {
		rt.log.Warn("network cleanup", "err", err)
	}
	return nil
}
