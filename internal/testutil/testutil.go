// Package testutil has helpers shared by berth's own tests.
package testutil

import (
	"os"
	"testing"
)

// RequiresRoot marks a test that needs root. Under CI (CI=true), where root
// is always present, a missing root is a failure, not a skip: a test that
// cannot fail there proves nothing.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("test requires root, and CI always runs as root")
	}
	t.Skip("test requires root")
}

// RequiresCommand fails (under CI) or skips the test when the named program
// is not on PATH; .ci/run installs every program the tests use.
func RequiresCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := lookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("test requires %s, which .ci/run should have installed: %v", name, err)
	}
	t.Skipf("test requires %s: %v", name, err)
	return ""
}
