package toolbox

import (
	"maps"
	"slices"
	"testing"
)

func TestAppletListMatchesTable(t *testing.T) {
	got := slices.Sorted(maps.Keys(table()))
	if !slices.Equal(got, applets) {
		t.Fatalf("table has %v\napplets lists %v", got, applets)
	}
	if !slices.IsSorted(applets) {
		t.Fatal("applets is not sorted")
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[uint32]string{
		0o100644: "-rw-r--r--",
		0o040755: "drwxr-xr-x",
		0o041777: "drwxrwxrwt",
		0o104755: "-rwsr-xr-x",
		0o102644: "-rw-r-Sr--",
		0o120777: "lrwxrwxrwx",
		0o020666: "crw-rw-rw-",
		0o010600: "prw-------",
	} {
		if got := modeString(m); got != want {
			t.Errorf("modeString(%o) = %s, want %s", m, got, want)
		}
	}
}
