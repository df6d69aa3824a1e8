//go:build unix

// Package fsutil has the small file-system primitives every store in berth
// builds on: atomic writes (temporary name, fsync, rename) and advisory file
// locks (flock) that several processes sharing one root respect.
package fsutil

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically: readers see the old content or
// the new, never a mix, even after a crash of the host.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

// WriteFileVolatile is WriteFile without the fsyncs: atomic against a crash
// of the process (readers see old or new), but after a crash of the host
// the file may be empty. For state that does not outlive the host, such as
// a container's.
func WriteFileVolatile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, false)
}

func writeFile(path string, data []byte, perm os.FileMode, sync bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if !sync {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so a rename in it survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
