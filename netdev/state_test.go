//go:build linux

package netdev

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateSlots(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x")
	if _, err := readState(base); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty: %v", err)
	}
	for i, v := range []string{`{"v":1}`, `{"v":2,"long":"` + strings.Repeat("x", 100) + `"}`, `{"v":3}`} {
		if err := writeState(base, []byte(v), i == 0); err != nil {
			t.Fatal(err)
		}
		got, err := readState(base)
		if err != nil || string(got) != v {
			t.Fatalf("after write %d: %q %v", i, got, err)
		}
	}
	// Slot a holds v3, b v2. A torn write in a (a crash while writing v3)
	// leaves the previous version readable.
	b, _ := os.ReadFile(base + ".a")
	if err := os.WriteFile(base+".a", b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readState(base); err != nil || !strings.HasPrefix(string(got), `{"v":2`) {
		t.Fatalf("after torn write: %q %v", got, err)
	}
	// The next write goes to the broken slot and wins.
	if err := writeState(base, []byte(`{"v":4}`), false); err != nil {
		t.Fatal(err)
	}
	if got, err := readState(base); err != nil || string(got) != `{"v":4}` {
		t.Fatalf("after repair: %q %v", got, err)
	}
	if err := removeState(base); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(base); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after remove: %v", err)
	}
}
