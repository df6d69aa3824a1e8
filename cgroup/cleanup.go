//go:build linux

package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Cleanup removes the groups under parent that a crashed owner left
// behind: every child group whose name keep rejects (nil keep rejects all)
// is removed if it is empty, in every hierarchy. Groups that still hold
// processes are left alone; Cleanup never kills. With a nil keep, parent
// itself is removed too when it ends up empty (what a test's t.Cleanup
// wants); otherwise it stays for the next New. An empty parent means
// DefaultParent.
func Cleanup(parent string, keep func(name string) bool) error {
	return cleanup(defaultHost(), parent, keep)
}

func cleanup(h *host, parent string, keep func(string) bool) error {
	p, err := cleanParent(parent)
	if err != nil {
		return err
	}
	var mounts []string
	if h.mode != Unified {
		mounts = append(mounts, h.v1dirs...)
	}
	if h.unified != "" {
		mounts = append(mounts, h.unified)
	}
	var errs []error
	for _, mp := range mounts {
		dir := filepath.Join(mp, p)
		ents, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || (keep != nil && keep(e.Name())) {
				continue
			}
			if err := removeIfEmpty(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
		if keep == nil {
			switch err := rmdir(dir); err {
			case nil, unix.ENOENT:
				h.dropParent(dir, nil)
			case unix.EBUSY, unix.ENOTEMPTY:
			default:
				errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", dir, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeIfEmpty removes a group tree that holds no processes.
func removeIfEmpty(dir string) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no waiting: a busy group is not stale
	err := removeGroup(ctx, dir, nil)
	if err != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
