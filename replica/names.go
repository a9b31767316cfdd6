package replica

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// ObjectName derives the name of a replication object (publication,
// slot, subscription) from a stream's or conversion's ID: prefix, "_", up
// to 40 characters of the ID folded to [a-z0-9_], "_" and 12 hex digits
// of the ID's SHA-256. With a short lowercase prefix it is a valid
// unquoted identifier and slot name of at most 63 bytes, and distinct IDs
// get distinct names.
func ObjectName(prefix, id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(id))
	return prefix + "_" + b.String() + "_" + hex.EncodeToString(sum[:6])
}
