//go:build linux

package namespace

import "testing"

func TestMapIDs(t *testing.T) {
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Size: 1000}, {ContainerID: 1000, HostID: 5000, Size: 1}}
	for _, tc := range []struct{ container, host int }{{0, 100000}, {999, 100999}, {1000, 5000}, {1001, -1}} {
		if got := MapToHost(maps, tc.container); got != tc.host {
			t.Errorf("MapToHost(%d) = %d, want %d", tc.container, got, tc.host)
		}
		if tc.host >= 0 {
			if got := MapToContainer(maps, tc.host); got != tc.container {
				t.Errorf("MapToContainer(%d) = %d, want %d", tc.host, got, tc.container)
			}
		}
	}
	if got := MapToContainer(maps, 0); got != -1 {
		t.Errorf("MapToContainer(0) = %d, want -1", got)
	}
}
