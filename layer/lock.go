//go:build unix

package layer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// flock is an advisory lock on a file. Unlike a plain flock, it survives the
// lock file being removed by its previous holder: after taking the lock it
// checks that the path still names the locked inode and starts over if not.
// That lets a holder delete per-item lock files (ingest, layer) when it is
// done, so they do not pile up.
type flock struct {
	f    *os.File
	path string
}

func lockFile(ctx context.Context, path string, exclusive bool) (*flock, error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	delay := time.Millisecond
	for {
		l, ok, err := tryLock(path, how)
		if err != nil {
			return nil, err
		}
		if ok {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 32*time.Millisecond {
			delay *= 2
		}
	}
}

// tryLockFile takes an exclusive lock without waiting; ok is false when
// another holder has it.
func tryLockFile(path string) (*flock, bool, error) {
	return tryLock(path, unix.LOCK_EX)
}

func tryLock(path string, how int) (*flock, bool, error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil && os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, false, err
			}
			f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
		}
		if err != nil {
			return nil, false, err
		}
		for {
			err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
			if err != unix.EINTR {
				break
			}
		}
		if err == unix.EWOULDBLOCK {
			f.Close()
			return nil, false, nil
		}
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("lock %s: %w", path, err)
		}
		// The previous holder may have removed the file between our open
		// and our flock: then we hold a lock nobody else can see.
		var a, b unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) == nil && unix.Stat(path, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
			return &flock{f: f, path: path}, true, nil
		}
		f.Close()
	}
}

// unlock releases the lock.
func (l *flock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// unlockRemove removes the lock file, then releases the lock. Only a holder
// of an exclusive lock may call it.
func (l *flock) unlockRemove() {
	if l != nil && l.f != nil {
		os.Remove(l.path)
		l.unlock()
	}
}
