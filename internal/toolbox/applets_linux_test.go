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
