// Package errdefs holds the fixed set of error kinds that every berth
// package wraps. Callers test for a kind with errors.Is; the message of the
// wrapping error says what was being done to what.
//
// Package berth re-exports these values (berth.ErrNotFound is
// errdefs.ErrNotFound), so a program that uses only a lower package, such as
// registryclient or layer, can still test error kinds without importing berth.
package errdefs

import "errors"

// The error kinds. Which kind a call returns is part of its API.
var (
	// ErrNotFound: the named object (image, blob, container, network, ...) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object of that name or digest exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInUse: the object is referenced by another one and cannot be removed.
	ErrInUse = errors.New("in use")
	// ErrInvalid: an argument, reference, manifest, tar or config is malformed.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnauthorized: the registry refused the credentials, or none were given.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnsupported: the host, the registry or the input needs a feature berth lacks.
	ErrUnsupported = errors.New("unsupported")
	// ErrDigestMismatch: content did not hash to the digest it was fetched by.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUnavailable: a remote or host resource failed in a way that may pass (5xx, reset, timeout).
	ErrUnavailable = errors.New("unavailable")
	// ErrNotRunning / ErrRunning: the container is not in the state the call needs.
	ErrNotRunning = errors.New("not running")
	ErrRunning    = errors.New("running")
)
