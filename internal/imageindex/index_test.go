//go:build linux

package imageindex

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/berthrt/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
)

func TestSetGetListDelete(t *testing.T) {
	x, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := digest.FromString("m")
	if err := x.Set(ctx, "docker.io/library/a:1", d); err != nil {
		t.Fatal(err)
	}
	e, err := x.Get("docker.io/library/a:1")
	if err != nil || e.Digest != d {
		t.Fatalf("get: %+v %v", e, err)
	}
	if _, err := x.Get("nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing name: %v", err)
	}
	if err := x.Delete(ctx, "docker.io/library/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := x.Delete(ctx, "docker.io/library/a:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// Concurrent writers through separate handles (as separate processes
// would) lose no name.
func TestConcurrentSetsKeepEveryName(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := Open(dir)
			if err != nil {
				t.Error(err)
				return
			}
			if err := x.Set(ctx, fmt.Sprintf("n%d", i), digest.FromString(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	x, _ := Open(dir)
	l, err := x.List()
	if err != nil || len(l) != 20 {
		t.Fatalf("list: %d entries, %v", len(l), err)
	}
}
