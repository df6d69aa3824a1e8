//go:build linux

// Package imageindex keeps the name -> manifest digest index of a berth root
// (<root>/images/index.json). Every change is a read-modify-write under an
// exclusive flock and an atomic rename, so processes sharing a root never
// lose each other's tags.
package imageindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/berthrt/berth/errdefs"
	"github.com/berthrt/berth/internal/fsutil"
	digest "github.com/opencontainers/go-digest"
)

// Entry is one name in the index.
type Entry struct {
	Name    string        `json:"name"`
	Digest  digest.Digest `json:"digest"`
	Created time.Time     `json:"created"`
}

// Index is the image index under a directory. The zero value is not usable.
type Index struct {
	dir string
}

// Open returns the index kept in dir (created if missing).
func Open(dir string) (*Index, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open image index: %w", err)
	}
	return &Index{dir: dir}, nil
}

func (x *Index) file() string { return filepath.Join(x.dir, "index.json") }

func (x *Index) read() (map[string]Entry, error) {
	b, err := os.ReadFile(x.file())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Entry{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]Entry{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image index %s is corrupt: %v: %w", x.file(), err, errdefs.ErrInvalid)
	}
	return m, nil
}

func (x *Index) write(m map[string]Entry) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(x.file(), b, 0o600)
}

// Update runs fn on the index under the exclusive lock and writes the result.
func (x *Index) Update(ctx context.Context, fn func(m map[string]Entry) error) error {
	l, err := fsutil.LockFile(ctx, filepath.Join(x.dir, "index.lock"))
	if err != nil {
		return err
	}
	defer l.Unlock()
	m, err := x.read()
	if err != nil {
		return err
	}
	if err := fn(m); err != nil {
		return err
	}
	return x.write(m)
}

// Set points name at dgst.
func (x *Index) Set(ctx context.Context, name string, dgst digest.Digest) error {
	return x.Update(ctx, func(m map[string]Entry) error {
		m[name] = Entry{Name: name, Digest: dgst, Created: time.Now().UTC()}
		return nil
	})
}

// Get returns the entry for name, or an error wrapping errdefs.ErrNotFound.
func (x *Index) Get(name string) (Entry, error) {
	m, err := x.read()
	if err != nil {
		return Entry{}, err
	}
	e, ok := m[name]
	if !ok {
		return Entry{}, fmt.Errorf("image %s: %w", name, errdefs.ErrNotFound)
	}
	return e, nil
}

// List returns every entry sorted by name.
func (x *Index) List() ([]Entry, error) {
	m, err := x.read()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes name; a missing name is errdefs.ErrNotFound.
func (x *Index) Delete(ctx context.Context, name string) error {
	return x.Update(ctx, func(m map[string]Entry) error {
		if _, ok := m[name]; !ok {
			return fmt.Errorf("image %s: %w", name, errdefs.ErrNotFound)
		}
		delete(m, name)
		return nil
	})
}
