//go:build linux

package netdev

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthrt/berth/internal/testutil"
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

// TestLegacyState: the first version's files (JSON replaced by rename) are
// read, and replaced by slots at the next write.
func TestLegacyState(t *testing.T) {
	testutil.RequiresRoot(t)
	m := &Manager{Root: t.TempDir(), RunDir: t.TempDir(), Table: "berth-t" + randHex(8)}
	if err := m.init(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	legacy := `{"network":{"id":"x","name":"old","subnet":"10.250.250.0/24","gateway":"10.250.250.1","bridge":"berth-legacy","mtu":1500,"created":"2026-11-30T09:55:00Z"},"endpoints":{}}`
	if err := os.WriteFile(filepath.Join(m.netDir(), "old.json"), []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	host := `{"boot":"` + m.boot + `","networks":{"berth-legacy":{"root":"` + m.Root + `","name":"old","id":"x","subnet":"10.250.250.0/24"}},"ports":[]}`
	if err := os.WriteFile(filepath.Join(m.RunDir, "state.json"), []byte(host), 0o600); err != nil {
		t.Fatal(err)
	}
	nets, err := m.Networks()
	if err != nil || len(nets) != 1 || nets[0].Name != "old" || nets[0].Bridge != "berth-legacy" {
		t.Fatalf("networks: %v %v", nets, err)
	}
	hs, err := m.loadHost()
	if err != nil || hs.Networks["berth-legacy"] == nil {
		t.Fatalf("host state: %+v %v", hs, err)
	}
	s, err := m.loadNet("old")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.saveNet(s); err != nil {
		t.Fatal(err)
	}
	if err := m.saveHost(hs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(m.netDir(), "old.json"), filepath.Join(m.RunDir, "state.json")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still there: %v", p, err)
		}
	}
	if n, err := m.Network("old"); err != nil || n.Subnet.String() != "10.250.250.0/24" {
		t.Fatalf("after rewrite: %v %v", n, err)
	}
}
