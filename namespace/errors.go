//go:build linux

package namespace

import (
	"errors"
	"fmt"
	"syscall"
)

// ExitStatus is how a container's process ended.
type ExitStatus struct {
	// Code is the exit code, or 128+n when the process was killed by
	// signal n (as a shell and `docker run` report it).
	Code int `json:"code"`
	// Signal is the signal that killed the process, 0 if it exited.
	Signal syscall.Signal `json:"signal,omitempty"`
	// OwnerGone is set when the supervisor killed the container because its
	// owner's control connection closed (the owner died or closed it).
	OwnerGone bool `json:"ownerGone,omitempty"`
}

func (s ExitStatus) String() string {
	if s.Signal != 0 {
		return fmt.Sprintf("killed by signal %d (%v), exit code %d", int(s.Signal), s.Signal, s.Code)
	}
	return fmt.Sprintf("exit code %d", s.Code)
}

func statusFromWait(ws syscall.WaitStatus) ExitStatus {
	switch {
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus()}
	case ws.Signaled():
		return ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
	}
	return ExitStatus{Code: 255}
}

// SetupError is a failure of the container's init before the process ran
// (or of the exec of a process). Step names what was being done ("mount
// /proc", "pivot_root", "exec", ...); Err unwraps to the errno when there is
// one, so errors.Is(err, fs.ErrNotExist) works.
type SetupError struct {
	ID   string // container id, if known
	Step string
	Err  error
	// Code is the exit status a shell (and docker run) gives this failure:
	// 127 when the command was not found, 126 when it could not be
	// executed, 125 for every other setup failure.
	Code int
}

func (e *SetupError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("container %s: %s: %v", e.ID, e.Step, e.Err)
	}
	return fmt.Sprintf("container init: %s: %v", e.Step, e.Err)
}

func (e *SetupError) Unwrap() error { return e.Err }

// ExitCode returns Code (so the error can be turned into a process exit status).
func (e *SetupError) ExitCode() int { return e.Code }

// wireError is a SetupError on the wire.
type wireError struct {
	Step  string `json:"step"`
	Msg   string `json:"msg"`
	Errno int    `json:"errno,omitempty"`
	Code  int    `json:"code"`
}

func toWire(step string, err error) *wireError {
	w := &wireError{Step: step, Msg: err.Error(), Code: 125}
	var en syscall.Errno
	if errors.As(err, &en) {
		w.Errno = int(en)
	}
	var se *SetupError
	if errors.As(err, &se) {
		w.Step, w.Code = se.Step, se.Code
		w.Msg = se.Err.Error()
	}
	return w
}

type errnoMsg struct {
	msg   string
	errno syscall.Errno
}

func (e *errnoMsg) Error() string { return e.msg }
func (e *errnoMsg) Unwrap() error { return e.errno }

func (w *wireError) err(id string) error {
	var inner error
	if w.Errno != 0 {
		inner = &errnoMsg{msg: w.Msg, errno: syscall.Errno(w.Errno)}
	} else {
		inner = errors.New(w.Msg)
	}
	return &SetupError{ID: id, Step: w.Step, Err: inner, Code: w.Code}
}

func stepErr(step string, err error) error {
	if err == nil {
		return nil
	}
	var se *SetupError
	if errors.As(err, &se) {
		return err
	}
	return &SetupError{Step: step, Err: err, Code: 125}
}
