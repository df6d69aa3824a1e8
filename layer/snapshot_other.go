//go:build unix && !linux

package layer

import "github.com/opencontainers/go-digest"

// Snapshots, Unpack and Apply need Linux; elsewhere the content store,
// references and GC work alone.
type snapState struct{}

func (s *Store) checkSnapshots() []Problem { return nil }

func (s *Store) addSnapshotRefs(map[string][]digest.Digest) {}
