package berth

import (
	"fmt"

	"github.com/berthrt/berth/errdefs"
)

// The error kinds every berth call wraps; test them with errors.Is. They are
// the same values as package errdefs, so errors from the lower packages
// (registryclient, layer, ...) match them too.
var (
	ErrNotFound       = errdefs.ErrNotFound
	ErrAlreadyExists  = errdefs.ErrAlreadyExists
	ErrInUse          = errdefs.ErrInUse
	ErrInvalid        = errdefs.ErrInvalid
	ErrUnauthorized   = errdefs.ErrUnauthorized
	ErrUnsupported    = errdefs.ErrUnsupported
	ErrDigestMismatch = errdefs.ErrDigestMismatch
	ErrUnavailable    = errdefs.ErrUnavailable
	ErrNotRunning     = errdefs.ErrNotRunning
	ErrRunning        = errdefs.ErrRunning
)

// ExitError is returned by Runtime.Run (and by Container.Wait's caller
// helpers) when the container's process did not exit 0, like
// exec.ExitError.
type ExitError struct {
	// Code is the exit status, 128+n when killed by signal n.
	Code int
	// OOMKilled is true when the kernel's OOM killer ended the container.
	OOMKilled bool
}

func (e *ExitError) Error() string {
	if e.OOMKilled {
		return fmt.Sprintf("container exited with status %d (OOM killed)", e.Code)
	}
	return fmt.Sprintf("container exited with status %d", e.Code)
}
