//go:build linux

// Package mount describes mounts as data and performs them.
//
// The layer store returns a snapshot as []Mount; the container init performs
// them in order with All and, on failure, undoes what it did in reverse. A
// Mount says what the mount(2) call needs and nothing else, so it can be
// serialised (JSON) and sent to another process, which is how the container
// init receives its rootfs and bind mounts.
package mount

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one mount(2) call.
type Mount struct {
	// Type is the filesystem type: "overlay", "bind", "tmpfs", "proc", ...
	// "bind" (or an empty Type with a "bind"/"rbind" option) is a bind mount.
	Type string `json:"type,omitempty"`
	// Source is the device or host path; for overlay it is ignored ("overlay").
	Source string `json:"source,omitempty"`
	// Target is the mount point. A relative Target is taken relative to the
	// root passed to All.
	Target string `json:"target,omitempty"`
	// Options are fstab-style: flags such as "ro", "nosuid", "rbind",
	// "private" are turned into mount flags; the rest is passed as data.
	Options []string `json:"options,omitempty"`
}

// Error is a failed mount or unmount: it names the operation, source and
// target, and unwraps to the errno.
type Error struct {
	Op     string
	Source string
	Target string
	Err    error
}

func (e *Error) Error() string {
	if e.Source == "" {
		return fmt.Sprintf("%s %s: %v", e.Op, e.Target, e.Err)
	}
	return fmt.Sprintf("%s %s on %s: %v", e.Op, e.Source, e.Target, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// flagOption is the mount flag option o sets (or clears).
func flagOption(o string) (flag uintptr, clear, ok bool) {
	switch o {
	case "ro":
		return unix.MS_RDONLY, false, true
	case "rw":
		return unix.MS_RDONLY, true, true
	case "nosuid":
		return unix.MS_NOSUID, false, true
	case "suid":
		return unix.MS_NOSUID, true, true
	case "nodev":
		return unix.MS_NODEV, false, true
	case "dev":
		return unix.MS_NODEV, true, true
	case "noexec":
		return unix.MS_NOEXEC, false, true
	case "exec":
		return unix.MS_NOEXEC, true, true
	case "noatime":
		return unix.MS_NOATIME, false, true
	case "relatime":
		return unix.MS_RELATIME, false, true
	case "strictatime":
		return unix.MS_STRICTATIME, false, true
	case "nodiratime":
		return unix.MS_NODIRATIME, false, true
	case "bind":
		return unix.MS_BIND, false, true
	case "rbind":
		return unix.MS_BIND | unix.MS_REC, false, true
	case "remount":
		return unix.MS_REMOUNT, false, true
	}
	return 0, false, false
}

// propagationOption is the propagation flags of option o.
func propagationOption(o string) (uintptr, bool) {
	switch o {
	case "private":
		return unix.MS_PRIVATE, true
	case "rprivate":
		return unix.MS_PRIVATE | unix.MS_REC, true
	case "slave":
		return unix.MS_SLAVE, true
	case "rslave":
		return unix.MS_SLAVE | unix.MS_REC, true
	case "shared":
		return unix.MS_SHARED, true
	case "rshared":
		return unix.MS_SHARED | unix.MS_REC, true
	case "unbindable":
		return unix.MS_UNBINDABLE, true
	case "runbindable":
		return unix.MS_UNBINDABLE | unix.MS_REC, true
	}
	return 0, false
}

// ParseOptions splits options into mount flags, propagation flags and the
// data string passed to the filesystem.
func ParseOptions(options []string) (flags, propagation uintptr, data string) {
	var rest []string
	for _, o := range options {
		if f, clear, ok := flagOption(o); ok {
			if clear {
				flags &^= f
			} else {
				flags |= f
			}
			continue
		}
		if p, ok := propagationOption(o); ok {
			propagation |= p
			continue
		}
		rest = append(rest, o)
	}
	return flags, propagation, strings.Join(rest, ",")
}

// IsBind reports whether m is a bind mount.
func (m Mount) IsBind() bool {
	if m.Type == "bind" || m.Type == "rbind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// Mount performs m with its Target resolved under root ("" means use Target as is).
// A read-only bind mount is done in two steps (bind, then remount ro), as the
// kernel ignores MS_RDONLY on the first call.
func (m Mount) Mount(root string) error {
	target := m.Target
	if root != "" && !path.IsAbs(target) {
		target = path.Join(root, target)
	}
	flags, prop, data := ParseOptions(m.Options)
	typ := m.Type
	if m.IsBind() {
		typ = ""
		flags |= unix.MS_BIND
	}
	first := flags
	if m.IsBind() {
		// The kernel ignores these on the first bind call; remount below.
		first &^= unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	}
	if err := unix.Mount(m.Source, target, typ, first, data); err != nil {
		return &Error{Op: "mount", Source: m.Source, Target: target, Err: err}
	}
	if m.IsBind() && flags&(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC) != 0 {
		rf := unix.MS_REMOUNT | unix.MS_BIND | flags&(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_REC)
		if err := unix.Mount("", target, "", rf, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return &Error{Op: "remount", Target: target, Err: err}
		}
	}
	if prop != 0 {
		if err := unix.Mount("", target, "", prop, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return &Error{Op: "set propagation", Target: target, Err: err}
		}
	}
	return nil
}

// All performs mounts in order under root. If one fails, the ones already
// done are unmounted in reverse order and the error is returned.
func All(mounts []Mount, root string) error {
	for i, m := range mounts {
		if err := m.Mount(root); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = Unmount(resolve(mounts[j].Target, root), unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

func resolve(target, root string) string {
	if root != "" && !path.IsAbs(target) {
		return path.Join(root, target)
	}
	return target
}

// Unmount unmounts target, retrying on EINTR; a target that is not mounted
// (EINVAL) or does not exist is not an error.
func Unmount(target string, flags int) error {
	for {
		err := unix.Unmount(target, flags)
		switch {
		case err == nil, err == unix.EINVAL, err == unix.ENOENT:
			return nil
		case err == unix.EINTR:
			continue
		default:
			return &Error{Op: "unmount", Target: target, Err: err}
		}
	}
}

// UnmountAll unmounts target and every mount stacked on it.
func UnmountAll(target string, flags int) error {
	for {
		if err := unix.Unmount(target, flags); err != nil {
			if err == unix.EINVAL || err == unix.ENOENT {
				return nil
			}
			if err == unix.EINTR {
				continue
			}
			return &Error{Op: "unmount", Target: target, Err: err}
		}
	}
}

// MkdirTarget creates the mount point for m under root: a directory, or an
// empty file when the bind source is not a directory.
func MkdirTarget(m Mount, root string) error {
	target := resolve(m.Target, root)
	if m.IsBind() {
		if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() {
			if err := os.MkdirAll(path.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	}
	return os.MkdirAll(target, 0o755)
}
