//go:build unix

package fsutil

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, s := range []string{"one", "two"} {
		if err := WriteFile(p, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != s {
			t.Fatalf("read %q %v, want %q", b, err, s)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestLockExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	var mu sync.Mutex
	inside := 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := LockFile(ctx, p)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			if inside != 1 {
				t.Error("two holders of an exclusive lock")
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			l.Unlock()
		}()
	}
	wg.Wait()
}

func TestLockHonoursContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, err := LockFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if _, ok, err := TryLockFile(p); ok || err != nil {
		t.Fatalf("TryLockFile on a held lock: ok %v err %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := LockFile(ctx, p); err == nil {
		t.Fatal("lock taken twice")
	}
}
