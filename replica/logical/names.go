package logical

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/jackc/pgx/v5"
)

// objectName derives the name of the stream's publication, slot and
// subscription from its ID: "dc_", up to 40 characters of the ID folded
// to [a-z0-9_], "_" and 12 hex digits of the ID's SHA-256. It is a valid
// unquoted identifier and slot name of at most 56 bytes, and distinct IDs
// get distinct names.
func objectName(id string) string {
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
	return "dc_" + b.String() + "_" + hex.EncodeToString(sum[:6])
}

func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// marker is the stream's durable state, kept as the comment of the target
// database: what Start needs to resume (whether the stream created the
// database, how far it got, the schema fingerprint taken at start).
type marker struct {
	Stream      string            `json:"daisychain_stream"`
	ID          string            `json:"id"`
	Created     bool              `json:"created"`
	Phase       string            `json:"phase"`
	Fingerprint map[string]string `json:"fingerprint,omitempty"`
	// SubOID is the subscription's OID once it exists, so its
	// table-sync slots can be found on the source after it is gone.
	SubOID uint32 `json:"sub_oid,omitempty"`
}

// Marker phases.
const (
	markCreated  = "created"  // database created, schema not restored
	markPreData  = "predata"  // tables and primary keys restored
	markCopy     = "copy"     // subscription exists, initial copy running
	markIndexes  = "indexes"  // post-data restore started
	markComplete = "complete" // post-data restored: target schema complete
	markAborted  = "aborted"  // the WAL guard dropped the replication: Abort is all that is left
)

func parseMarker(comment string) (*marker, bool) {
	var m marker
	if comment == "" || json.Unmarshal([]byte(comment), &m) != nil || m.Stream == "" {
		return nil, false
	}
	return &m, true
}

func (m *marker) json() string {
	b, _ := json.Marshal(m)
	return string(b)
}
