package berth

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDependenciesPointDown pins what each lower package may import from
// this module: the lower packages never import berth or each other sideways,
// so each is usable on its own.
func TestDependenciesPointDown(t *testing.T) {
	const mod = "github.com/berthrt/berth"
	allowed := map[string][]string{
		"errdefs":        {},
		"mount":          {},
		"registryclient": {"errdefs", "internal/"},
		"layer":          {"errdefs", "mount", "internal/"},
		"namespace":      {"errdefs", "mount", "namespace/", "internal/"},
		"cgroup":         {"errdefs", "internal/"},
		"netdev":         {"errdefs", "internal/"},
	}
	for dir, ok := range allowed {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if !strings.HasPrefix(p, mod) {
					continue
				}
				rel := strings.TrimPrefix(strings.TrimPrefix(p, mod), "/")
				if rel == "" || !permitted(rel, dir, ok) {
					t.Errorf("%s imports %s: %s may only import %v of this module", path, p, dir, ok)
				}
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

func permitted(rel, self string, ok []string) bool {
	if rel == self || strings.HasPrefix(rel, self+"/") {
		return true
	}
	for _, a := range ok {
		if rel == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(rel, a)) {
			return true
		}
	}
	return false
}
