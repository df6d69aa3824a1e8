//go:build unix && !linux

package layer

// Snapshots, Unpack and Apply need Linux; elsewhere the content store,
// references and GC work alone.
type snapState struct{}

func (s *Store) checkSnapshots() []Problem { return nil }
