package registryclient

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDependencies pins what the package may import outside the standard
// library: errdefs, go-digest and the image-spec types. No internal/
// package (registrytest and faultproxy are for tests only), no berth.
func TestDependencies(t *testing.T) {
	allowed := map[string]bool{
		"github.com/berthrt/berth/errdefs":                 true,
		"github.com/opencontainers/go-digest":              true,
		"github.com/opencontainers/image-spec/specs-go/v1": true,
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
		if f.Name.Name != "registryclient" {
			t.Errorf("%s: package %s", n, f.Name.Name)
		}
	}
}
