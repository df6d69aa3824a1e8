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

// TestDependenciesPointDown pins what each lower package may import, so
// each is usable on its own: of this module (never berth, never a sibling
// sideways), and where a package promises a small footprint, of other
// modules too. This is the one dependency pin of the module.
func TestDependenciesPointDown(t *testing.T) {
	const mod = "github.com/berthrt/berth"
	rules := map[string]struct {
		module   []string // paths of this module ("x/" allows a subtree)
		external []string // other modules; nil allows any
	}{
		"errdefs":        {module: []string{}, external: []string{}},
		"mount":          {module: []string{}},
		"registryclient": {module: []string{"errdefs"}, external: []string{"github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec/specs-go/v1"}},
		"layer":          {module: []string{"errdefs", "mount", "internal/"}},
		"namespace":      {module: []string{"errdefs", "mount", "namespace/", "internal/"}},
		"cgroup":         {module: []string{"errdefs"}, external: []string{"golang.org/x/sys/unix", "github.com/containerd/cgroups/v3"}},
		"netdev":         {module: []string{"errdefs", "internal/fsutil", "internal/ids"}},
	}
	for dir, rule := range rules {
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
				switch {
				case strings.HasPrefix(p, mod):
					rel := strings.TrimPrefix(strings.TrimPrefix(p, mod), "/")
					if rel == "" || !permitted(rel, dir, rule.module) {
						t.Errorf("%s imports %s: %s may only import %v of this module", path, p, dir, rule.module)
					}
				case rule.external != nil && strings.Contains(strings.SplitN(p, "/", 2)[0], ".") && !permitted(p, "", rule.external):
					t.Errorf("%s imports %s: %s may only import %v outside the standard library", path, p, dir, rule.external)
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
	if self != "" && (rel == self || strings.HasPrefix(rel, self+"/")) {
		return true
	}
	for _, a := range ok {
		if rel == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(rel, a)) {
			return true
		}
	}
	return false
}
