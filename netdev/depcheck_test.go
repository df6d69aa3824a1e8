package netdev

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDependencies pins what netdev may import from this module: it sits
// under package berth and next to namespace and cgroup, and must not
// import any of them.
func TestDependencies(t *testing.T) {
	allowed := map[string]bool{
		"github.com/berthrt/berth/errdefs":         true,
		"github.com/berthrt/berth/internal/fsutil": true,
		"github.com/berthrt/berth/internal/ids":    true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/berthrt/berth") && !allowed[p] {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
