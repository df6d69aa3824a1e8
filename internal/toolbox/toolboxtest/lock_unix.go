//go:build unix

package toolboxtest

import (
	"context"

	"github.com/berthrt/berth/internal/fsutil"
)

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	l, err := fsutil.LockFile(ctx, path)
	if err != nil {
		return nil, err
	}
	return func() { l.Unlock() }, nil
}
