package cgroup

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDependencies pins what the package may import: the standard
// library, errdefs, x/sys and containerd's cgroups root package.
func TestDependencies(t *testing.T) {
	allowed := map[string]bool{
		"github.com/berthrt/berth/errdefs": true,
		"golang.org/x/sys/unix":            true,
		"github.com/containerd/cgroups/v3": true,
	}
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(strings.SplitN(p, "/", 2)[0], ".") && !allowed[p] {
				t.Errorf("%s imports %s", n, p)
			}
		}
	}
}
