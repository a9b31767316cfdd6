package logical

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

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
	// TargetSystem is the target's system identifier, the last part of
	// the names of the table-sync slots.
	TargetSystem string `json:"target_system,omitempty"`
	// Slot: the stream made its slot on the source.
	Slot bool `json:"slot,omitempty"`
	// OwnCopy: the stream copies the initial data itself, in the
	// snapshot of a slot it creates (copy_parallel.go); its subscription
	// (copy_data = false) is enabled once the copy is done. A marker of
	// an older version, whose subscription copies (copy_data = true),
	// has none.
	OwnCopy bool `json:"own_copy,omitempty"`
	// CopyAttempts counts the tries of the stream's own copy, each from
	// a new slot: a try finds one before it unfinished (its snapshot
	// died with its session), drops its slot and truncates its tables.
	CopyAttempts int `json:"copy_attempts,omitempty"`
	// KeysAfterCopy: the first restore left out the primary keys and
	// replica-identity indexes, which are built after each table's copy
	// and all before the subscription applies changes.
	KeysAfterCopy bool `json:"keys_after_copy,omitempty"`
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

// hadReplication reports whether the stream got as far as creating its
// slot and subscription (a marker of an older version has no Slot).
func (m *marker) hadReplication() bool {
	switch m.Phase {
	case markCopy, markIndexes, markComplete, markAborted:
		return true
	}
	return m.Slot
}

func (m *marker) json() string {
	b, _ := json.Marshal(m)
	return string(b)
}

// writeMarker records the stream's state as the target database's
// comment.
func (e *env) writeMarker(ctx context.Context, m *marker) error {
	return retry(ctx, 30*time.Second, func() error {
		conn, err := connect(ctx, e.tgtAdmin, "target")
		if err != nil {
			return err
		}
		defer closeConn(conn)
		q, err := formatStatement(ctx, conn, "COMMENT ON DATABASE %I IS %L", e.spec.TargetDatabase, m.json())
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, q)
		return err
	})
}

// readMarker returns the target database's marker for this stream, or
// nil when the database or the marker is absent.
func (e *env) readMarker(ctx context.Context, conn *pgx.Conn) (*marker, bool, error) {
	var comment *string
	err := conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`,
		e.spec.TargetDatabase).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	m, ok := parseMarker(deref(comment))
	if !ok || m.Stream != e.name {
		return nil, true, nil
	}
	return m, true, nil
}
