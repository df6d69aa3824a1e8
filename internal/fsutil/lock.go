//go:build unix

package fsutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is an advisory lock (flock) on a file. The zero value is not
// usable; get one from LockFile, RLockFile or TryLockFile. The kernel
// releases it when the process dies, so a crashed owner never leaves it
// held.
//
// Unlike a plain flock it survives its file being removed by the previous
// holder (UnlockRemove): after taking the lock it checks that the path
// still names the locked inode and starts over if not. Per-item lock files
// can so be deleted when done with, and do not pile up.
type Lock struct {
	f    *os.File
	path string
}

// LockFile takes an exclusive lock on path (created, with its directory,
// if missing), waiting until it is free or ctx is done.
func LockFile(ctx context.Context, path string) (*Lock, error) {
	return lock(ctx, path, unix.LOCK_EX)
}

// RLockFile takes a shared lock on path.
func RLockFile(ctx context.Context, path string) (*Lock, error) {
	return lock(ctx, path, unix.LOCK_SH)
}

// TryLockFile takes an exclusive lock without waiting; ok is false when
// another holder has it.
func TryLockFile(path string) (l *Lock, ok bool, err error) {
	return tryLock(path, unix.LOCK_EX)
}

func lock(ctx context.Context, path string, how int) (*Lock, error) {
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

func tryLock(path string, how int) (*Lock, bool, error) {
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
			return &Lock{f: f, path: path}, true, nil
		}
		f.Close()
	}
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// UnlockRemove removes the lock file, then releases the lock. Only the
// holder of an exclusive lock may call it.
func (l *Lock) UnlockRemove() {
	if l != nil && l.f != nil {
		os.Remove(l.path)
		l.Unlock()
	}
}
