//go:build linux

package namespace

import (
	"reflect"
	"testing"
)

func TestCleanMappings(t *testing.T) {
	smaps := []byte(`00400000-00800000 r-xp 00000000 fe:00 42 /bin/x
Size:               4096 kB
Anonymous:             0 kB
00800000-00900000 r--p 00400000 fe:00 42 /bin/x
Size:               1024 kB
Anonymous:             8 kB
00900000-00a00000 r--p 00500000 fe:00 42 /bin/x
Anonymous:             0 kB
00a00000-00b00000 rw-p 00600000 fe:00 42 /bin/x
Anonymous:             0 kB
00b00000-00c00000 r-xp 00000000 fe:00 43 /lib/other.so
Anonymous:             0 kB
7f000000-7f001000 r--p 00000000 00:00 0 
Anonymous:             0 kB
`)
	got := cleanMappings(smaps, 42)
	want := [][2]uintptr{{0x400000, 0x800000}, {0x900000, 0xa00000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %x, want %x", got, want)
	}
}
