package physical

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// slotName derives the name of the conversion's physical replication slot
// on the source from its ID: "dcp_", up to 40 characters of the ID folded
// to [a-z0-9_], "_" and 12 hex digits of the ID's SHA-256. It is a valid
// slot name (at most 57 bytes of [a-z0-9_]), distinct for distinct IDs,
// and serves as the replica's application_name on the source too.
func slotName(id string) string {
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
	return "dcp_" + b.String() + "_" + hex.EncodeToString(sum[:6])
}
