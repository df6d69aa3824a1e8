//go:build unix

package layer

import (
	"context"

	"github.com/berthrt/berth/internal/fsutil"
)

// lockFile takes fsutil's flock on path, exclusive or shared. Per-item lock
// files (ingest, layer, snapshot, ref owner) are removed by their holder
// with UnlockRemove when done, so they do not pile up.
func lockFile(ctx context.Context, path string, exclusive bool) (*fsutil.Lock, error) {
	if exclusive {
		return fsutil.LockFile(ctx, path)
	}
	return fsutil.RLockFile(ctx, path)
}
