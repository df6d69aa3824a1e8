//go:build !unix

package toolboxtest

import "context"

// lockFile is a no-op where flock is missing: parallel builds race, and the
// rename into place keeps the cache consistent.
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }
