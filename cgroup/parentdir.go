//go:build linux

package cgroup

import (
	"golang.org/x/sys/unix"
)

// A parentDir is a parent group's directory in one hierarchy, set up once
// per process (created, cpuset filled, v2 controllers enabled) and held
// open, so that a container's group is made, written and removed with
// mkdirat, openat and unlinkat relative to it: the kernel walks two path
// elements instead of six, which is a measurable part of a group's cost.
//
// The host keeps one per parent directory. Groups take a reference while
// they use the descriptor (from New to the end of Delete); Cleanup drops
// the entry when it removes the parent, and the descriptor is closed when
// its last user lets go, so a descriptor number is never used after close.
type parentDir struct {
	path    string
	fd      int
	refs    int  // guarded by host.mu
	dropped bool // no longer in host.parents; close at refs 0
}

// acquireParent returns the open parent directory dir, setting it up with
// ensure on first use in this process (or after it was dropped).
func (h *host) acquireParent(dir string, ensure func(string) error) (*parentDir, error) {
	h.mu.Lock()
	if p := h.parents[dir]; p != nil {
		p.refs++
		h.mu.Unlock()
		return p, nil
	}
	h.mu.Unlock()
	// Set up without the lock: the first New under a parent makes its
	// chain; concurrent ones do the same idempotent work.
	if err := ensure(dir); err != nil {
		return nil, err
	}
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.parents[dir]; p != nil { // another goroutine was faster
		unix.Close(fd)
		p.refs++
		return p, nil
	}
	if h.parents == nil {
		h.parents = map[string]*parentDir{}
	}
	p := &parentDir{path: dir, fd: fd, refs: 1}
	h.parents[dir] = p
	return p, nil
}

// releaseParent gives back a reference taken by acquireParent.
func (h *host) releaseParent(p *parentDir) {
	if p == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p.refs--
	if p.refs == 0 && p.dropped {
		unix.Close(p.fd)
	}
}

// dropParent forgets dir: it was removed (Cleanup), or found removed by
// someone else (a mkdirat under it failed with ENOENT). With only set, dir
// is forgotten only while only is its entry (not one made since). The next
// acquireParent sets it up again.
func (h *host) dropParent(dir string, only *parentDir) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.parents[dir]
	if p == nil || only != nil && p != only {
		return
	}
	delete(h.parents, dir)
	p.dropped = true
	if p.refs == 0 {
		unix.Close(p.fd)
	}
}
