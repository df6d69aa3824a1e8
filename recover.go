//go:build linux

package berth

import (
	"context"
	"os"
	"path/filepath"

	"github.com/berthrt/berth/cgroup"
	"github.com/berthrt/berth/internal/fsutil"
	"github.com/berthrt/berth/layer"
)

// recover removes what a crashed owner of this root left: containers
// recorded as running whose supervisor is gone are marked exited and their
// cgroups and network endpoints removed; leftover empty cgroups and stale
// network state of dead owners go too.
func (rt *Runtime) recover(ctx context.Context) error {
	if err := rt.removeHalfCreated(ctx); err != nil {
		rt.log.Warn("remove half-created containers", "err", err)
	}
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

// removeHalfCreated removes container directories without a readable
// record: a Create that crashed before it finished (or a host crash that
// lost an unsynced record). Create holds names.lock throughout, so no
// Create is in progress while this holds it.
func (rt *Runtime) removeHalfCreated(ctx context.Context) error {
	lock, err := fsutil.LockFile(ctx, filepath.Join(rt.cfg.Root, "containers", "names.lock"))
	if err != nil {
		return err
	}
	defer lock.Unlock()
	ents, err := os.ReadDir(filepath.Join(rt.cfg.Root, "containers"))
	if err != nil {
		return err
	}
	var snap layer.Snapshotter
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := rt.readRecord(e.Name()); err == nil {
			continue
		}
		if snap == nil {
			if snap, err = rt.store.Snapshotter(); err != nil {
				return err
			}
		}
		id := e.Name()
		rt.log.Info("removing half-created container", "container", id)
		_ = snap.Remove(ctx, id)
		_ = rt.store.Unref(ctx, "container:"+id)
		_ = os.RemoveAll(rt.containerDir(id))
	}
	return nil
}
