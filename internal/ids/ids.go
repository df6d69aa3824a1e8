// Package ids makes container and object identifiers.
package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a random 64-hex-digit identifier, like Docker's container ids.
func New() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Short returns the first 12 hex digits of id, Docker's short form.
func Short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
