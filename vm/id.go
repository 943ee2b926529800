package vm

import (
	"crypto/rand"
	"encoding/hex"
)

// newID returns a random ID of idLen hex digits.
func newID() string {
	var b [idLen / 2]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return hex.EncodeToString(b[:])
}
