package logical

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// What is the stream's is what its own records say it made, never what
// merely has the name it would give its objects. It keeps two records:
//
//   - the marker, the target database's comment (see marker), written
//     once the database is the stream's;
//   - the record, its publication's comment on the source, written in
//     the transaction that creates the publication, which is the first
//     thing a new stream makes. Before it makes anything else it notes it
//     there: the slot before it creates the slot, the staging database
//     before it creates that on the target.
//
// The record lets Abort drop the slots and the publication when the
// target cannot be reached; the marker lets Abort finish the target's
// part later, when the publication (and so the record) is gone.
type record struct {
	Stream string `json:"daisychain_stream"`
	ID     string `json:"id"`
	// Slot: the stream's slot is created, or about to be.
	Slot bool `json:"slot,omitempty"`
	// Database: the staging database (see stagingName) is being
	// created on the target; cleared once it is renamed to the target
	// database, whose marker then says the stream created it (Created).
	Database string `json:"database,omitempty"`
	Created  bool   `json:"created,omitempty"`
	// SubOID and TargetSystem name the subscription's table-sync slots
	// on the source (see syncSlotPattern).
	SubOID       uint32 `json:"sub_oid,omitempty"`
	TargetSystem string `json:"target_system,omitempty"`
	// From (a reverse's record only) is the target's position from which
	// the reverse applies: every change the forward stream applied is
	// before it, every write of the application after it. Its slot, made
	// before the window, is advanced to it before its subscription starts.
	From string `json:"from,omitempty"`
}

func (r *record) json() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// stagingName names the database a new stream creates on the target and
// marks before it renames it to the target database, so that a database
// without the marker is never the stream's unless it has this name and
// the record says the stream was creating it.
func stagingName(id string) string { return replica.ObjectName("dcdb", id) }

// publicationState is what the source says about the stream's
// publication.
type publicationState struct {
	exists bool
	rec    *record // the stream's record, when the comment is one
	// unmarked: the publication exists without a comment (a stream
	// started by an older version, which kept no record).
	unmarked bool
}

// readPublication reads the stream's publication and record in the
// source tenant database through q.
func (e *env) readPublication(ctx context.Context, q querier) (publicationState, error) {
	var comment *string
	err := q.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, e.name).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return publicationState{}, nil
	}
	if err != nil {
		return publicationState{}, fmt.Errorf("read publication %s on the source: %w", e.name, err)
	}
	p := publicationState{exists: true, unmarked: comment == nil || *comment == ""}
	var r record
	if !p.unmarked && json.Unmarshal([]byte(*comment), &r) == nil && r.Stream == e.name && r.ID == e.spec.ID {
		p.rec = &r
	}
	return p, nil
}

// writeRecord replaces the record (the publication's comment) through q.
func (e *env) writeRecord(ctx context.Context, q querier, r *record) error {
	stmt, err := formatStatement(ctx, q, "COMMENT ON PUBLICATION %I IS %L", e.name, r.json())
	if err == nil {
		_, err = q.Exec(ctx, stmt)
	}
	if err != nil {
		return fmt.Errorf("record the stream's state on publication %s: %w", e.name, err)
	}
	return nil
}

// createPublication creates the publication with the record as its
// comment, in one transaction: the record exists exactly when the
// publication does.
func (e *env) createPublication(ctx context.Context) (*record, error) {
	conn, err := connect(ctx, e.srcDB, "source")
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	r := &record{Stream: e.name, ID: e.spec.ID}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE PUBLICATION "+ident(e.name)+" FOR ALL TABLES"); err != nil {
			return fmt.Errorf("create publication %s: %w", e.name, err)
		}
		return e.writeRecord(ctx, tx, r)
	})
	return r, err
}

// owned is what cleanup may drop on the source: what the marker or the
// record says the stream made.
type owned struct {
	slot, publication bool
	subOID            uint32
	targetSystem      string
}

// ownedBy combines the marker (nil when absent or unreadable) and the
// publication's state (pubKnown false when it could not be read).
func ownedBy(m *marker, p publicationState, pubKnown bool) owned {
	var o owned
	if m != nil {
		o.slot = m.Slot || m.hadReplication()
		o.subOID, o.targetSystem = m.SubOID, m.TargetSystem
	}
	if pubKnown && p.rec != nil {
		o.slot = o.slot || p.rec.Slot
		o.publication = true
		if o.subOID == 0 {
			o.subOID, o.targetSystem = p.rec.SubOID, p.rec.TargetSystem
		}
	}
	// An older version kept no record: its publication is the stream's
	// when the marker says the stream got that far.
	if pubKnown && p.unmarked && m != nil && m.hadReplication() {
		o.publication = true
	}
	return o
}
