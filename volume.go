//go:build linux

package berth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func validVolumeName(name string) error {
	if !volumeNameRE.MatchString(name) {
		return fmt.Errorf("volume name %q: want [a-zA-Z0-9][a-zA-Z0-9_.-]*: %w", name, ErrInvalid)
	}
	return nil
}

// Volume is a named volume: a directory under <root>/volumes/<name>/_data
// that outlives the containers mounting it.
type Volume struct {
	Name       string
	Mountpoint string
}

// volumeDir returns the data directory of the volume name, creating it on
// first use. A volume created here for a container with id maps belongs
// to the host ids of the container's root (uid, gid; -1 for unmapped), so
// that its root can write there, as under Docker's userns-remap; a volume
// that exists keeps its owner.
func (rt *Runtime) volumeDir(ctx context.Context, name string, uid, gid int) (string, error) {
	v, created, err := rt.createVolume(name)
	if err != nil {
		return "", err
	}
	if created && uid >= 0 && gid >= 0 {
		if err := os.Chown(v.Mountpoint, uid, gid); err != nil {
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
	}
	return v.Mountpoint, nil
}

// CreateVolume creates the volume name, or returns it when it exists.
func (rt *Runtime) CreateVolume(ctx context.Context, name string) (*Volume, error) {
	v, _, err := rt.createVolume(name)
	return v, err
}

// createVolume is CreateVolume, saying whether it made the volume.
func (rt *Runtime) createVolume(name string) (*Volume, bool, error) {
	if err := validVolumeName(name); err != nil {
		return nil, false, err
	}
	dir := filepath.Join(rt.cfg.Root, "volumes", name, "_data")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	err := os.Mkdir(dir, 0o755)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	return &Volume{Name: name, Mountpoint: dir}, err == nil, nil
}

// Volumes lists the named volumes.
func (rt *Runtime) Volumes(ctx context.Context) ([]*Volume, error) {
	ents, err := os.ReadDir(filepath.Join(rt.cfg.Root, "volumes"))
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, &Volume{Name: e.Name(), Mountpoint: filepath.Join(rt.cfg.Root, "volumes", e.Name(), "_data")})
		}
	}
	return out, nil
}

// RemoveVolume removes a volume; refused with ErrInUse while a container
// (of this root) mounts it.
func (rt *Runtime) RemoveVolume(ctx context.Context, name string) error {
	if err := validVolumeName(name); err != nil {
		return err
	}
	recs, err := rt.records()
	if err != nil {
		return err
	}
	for _, r := range recs {
		for _, m := range r.Config.Mounts {
			if mountType(m) == "volume" && m.Source == name {
				return fmt.Errorf("remove volume %s: used by container %s: %w", name, r.ID[:12], ErrInUse)
			}
		}
	}
	dir := filepath.Join(rt.cfg.Root, "volumes", name)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, ErrNotFound)
	}
	return os.RemoveAll(dir)
}
