package logical

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// targetGiveUp bounds the target's part of a cleanup: a target that is
// down must not keep the slots on the source, which retain WAL, alive. A
// variable for the tests.
var targetGiveUp = 15 * time.Second

// targetState is what cleanup learned from the target.
type targetState struct {
	marker *marker // the stream's marker on the target database, if any
	exists bool    // the target database exists
}

func (e *env) readTarget(ctx context.Context) (targetState, error) {
	var t targetState
	err := retry(ctx, time.Minute, func() error {
		adm, err := connect(ctx, e.tgtAdmin, "target")
		if err != nil {
			return err
		}
		defer closeConn(adm)
		m, ex, err := e.readMarker(ctx, adm)
		t = targetState{marker: m, exists: ex}
		return err
	})
	if err != nil {
		return t, fmt.Errorf("read the stream's state on the target: %w", err)
	}
	return t, nil
}

// cleanup removes what the stream made (see ownership.go): its
// subscription (target), slots and publication (source), the staging
// database a killed start left, and either the target database
// (dropTarget, when the marker says the stream created it) or its marker.
// Each step tolerates what is already gone, so cleanup can be repeated.
//
// The source's part runs even when the target cannot be reached (within
// targetGiveUp): the error then says what is left on the target, and
// cleanup again, once it is back, removes it. The publication stays only
// when its record is the one thing that knows of a staging database on
// that target.
//
// held, if not nil, is a connection to the source tenant database that
// survives a fence; the record is read and the publication dropped
// through it when the database refuses connections. Without one, a
// fenced source keeps the publication (harmless without its slot: drop
// it, or call Abort or Finish again, once the database accepts
// connections), and a warning is logged.
func (e *env) cleanup(ctx context.Context, dropTarget bool, held *heldConn) error {
	tctx, cancel := context.WithTimeout(ctx, targetGiveUp)
	defer cancel()
	t, terr := e.readTarget(tctx)

	var pub publicationState
	perr := e.onSourceDB(ctx, held, func(q querier) (err error) {
		pub, err = e.readPublication(ctx, q)
		return err
	})
	if sqlState(perr) == "3D000" { // no source database, no publication
		perr = nil
	}
	own := ownedBy(t.marker, pub, perr == nil)

	if terr == nil && t.marker != nil {
		// A subscription can only be the stream's in a database the
		// marker makes the stream's.
		subOID := own.subOID
		if err := retry(tctx, time.Minute, func() error { return e.dropSubscription(tctx, &subOID) }); err != nil {
			terr = fmt.Errorf("drop subscription %s: %w", e.name, err)
		} else if own.subOID == 0 {
			own.subOID = subOID
		}
	}
	staging := ""
	if pub.rec != nil {
		staging = pub.rec.Database
	}
	if terr == nil && staging != "" {
		terr = e.dropStaging(tctx, staging)
	}
	if terr != nil && staging != "" {
		own.publication = false
	}
	var errs []error
	if err := e.dropSourceObjects(ctx, own, held); err != nil {
		errs = append(errs, err)
	}
	if terr != nil {
		return errors.Join(append(errs, e.leftOnTarget(terr, pub))...)
	}
	if !t.exists || t.marker == nil {
		return errors.Join(errs...)
	}
	err := retry(ctx, time.Minute, func() error {
		adm, err := connect(ctx, e.tgtAdmin, "target")
		if err != nil {
			return err
		}
		defer closeConn(adm)
		if dropTarget && t.marker.Created {
			_, err = adm.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(e.spec.TargetDatabase)+" WITH (FORCE)")
			if err == nil {
				e.log.Info("logical: target database dropped")
			}
			return err
		}
		m, _, err := e.readMarker(ctx, adm)
		if err != nil || m == nil {
			return err
		}
		_, err = adm.Exec(ctx, "COMMENT ON DATABASE "+ident(e.spec.TargetDatabase)+" IS NULL")
		return err
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("drop or unmark target database %q: %w", e.spec.TargetDatabase, err))
	}
	return errors.Join(errs...)
}

// leftOnTarget says what the stream may have left on a target that could
// not be reached, and how to remove it.
func (e *env) leftOnTarget(cause error, pub publicationState) error {
	sub := ident(e.name)
	db := "which Abort drops if this stream created it"
	if pub.rec != nil && pub.rec.Created {
		db = "which this stream created: Abort drops it"
	}
	staging := ""
	if pub.rec != nil && pub.rec.Database != "" {
		staging = fmt.Sprintf("; the staging database %q, whose record (publication %s on the source) stays until then", pub.rec.Database, e.name)
	}
	return fmt.Errorf("the target at %s: %w: left there: subscription %s in database %q, whose slot is gone from the source "+
		"(call Abort again once the target is back, or run there ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s), "+
		"and database %q, %s%s",
		e.tgtAdmin.Endpoint(), cause, e.name, e.spec.TargetDatabase, sub, sub, sub, e.spec.TargetDatabase, db, staging)
}

// dropStaging drops the staging database a killed start left on the
// target, unless it carries another stream's marker.
func (e *env) dropStaging(ctx context.Context, name string) error {
	err := retry(ctx, time.Minute, func() error {
		adm, err := connect(ctx, e.tgtAdmin, "target")
		if err != nil {
			return err
		}
		defer closeConn(adm)
		var comment *string
		err = adm.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, name).Scan(&comment)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if m, ok := parseMarker(deref(comment)); ok && m.Stream != e.name {
			return fmt.Errorf("database %q on the target belongs to stream %q", name, m.ID)
		}
		_, err = adm.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)")
		return err
	})
	if err != nil {
		return fmt.Errorf("drop the staging database %q: %w", name, err)
	}
	return nil
}

// dropSubscription drops the subscription without touching the source
// (its slot may be gone, the source may be down, or a table-sync worker
// may be stuck there creating its slot): disable it, detach its slot,
// and point it nowhere, so that DROP SUBSCRIPTION does not connect to the
// source to drop the table-sync slots (and wait for them while they are
// in use); dropSourceObjects drops those. It records the subscription's
// OID for that.
func (e *env) dropSubscription(ctx context.Context, subOID *uint32) error {
	conn, err := connect(ctx, e.tgtDB, "target")
	if err != nil {
		if sqlState(err) == "3D000" { // database gone
			return nil
		}
		return err
	}
	defer closeConn(conn)
	var oid uint32
	err = conn.QueryRow(ctx, `SELECT oid FROM pg_subscription WHERE subname = $1
		AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, e.name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	*subOID = oid
	sub := ident(e.name)
	for _, q := range []string{"ALTER SUBSCRIPTION " + sub + " DISABLE",
		"ALTER SUBSCRIPTION " + sub + " SET (slot_name = NONE)",
		"ALTER SUBSCRIPTION " + sub + " CONNECTION " + nowhere,
		"DROP SUBSCRIPTION " + sub} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return err
		}
	}
	e.log.Info("logical: subscription dropped")
	return nil
}

// nowhere is a connection string that fails at once without a network
// round trip: a Unix socket directory that cannot exist.
const nowhere = `'host=/dev/null/daisychain-dropped dbname=none'`

// dropSourceObjects drops, of the stream's slot, the table-sync slots of
// its subscription and its publication, those own says are the stream's:
// the slots from the source's admin database (a slot can be dropped from
// any database), the publication in the tenant database (see cleanup for
// held). A slot still in use by a WAL sender that has not noticed the
// subscription is gone has its sender ended.
func (e *env) dropSourceObjects(ctx context.Context, own owned, held *heldConn) error {
	syncPattern := syncSlotPattern(own.subOID, own.targetSystem)
	tries := 0
	err := retry(ctx, time.Minute, func() error {
		conn, err := connect(ctx, e.srcAdmin, "source")
		if err != nil {
			return err
		}
		defer closeConn(conn)
		tries++
		const ours = `((slot_name = $1 AND $3) OR slot_name LIKE $2)`
		if tries > 3 {
			_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
				WHERE `+ours+` AND active_pid IS NOT NULL`, e.name, syncPattern, own.slot)
		}
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE `+ours,
			e.name, syncPattern, own.slot)
		if sqlState(err) == "42704" { // dropped concurrently
			return fmt.Errorf("%w: a slot was dropped concurrently", errTryAgain)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("drop the replication slots on the source: %w", err)
	}
	if !own.publication {
		return nil
	}
	err = e.onSourceDB(ctx, held, func(q querier) error {
		_, err := q.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident(e.name))
		return err
	})
	switch {
	case err == nil || sqlState(err) == "3D000":
		return nil
	case sqlState(err) == "55000" || errors.Is(err, errHeldGone):
		e.log.Warn("logical: the source database refuses connections (fenced?): its publication stays until Finish or Abort runs again after the fence",
			"publication", e.name)
		return nil
	}
	return fmt.Errorf("drop the publication on the source: %w", err)
}

// onSourceDB runs fn on a connection to the source tenant database or,
// when that fails (the database refuses connections: a fence), on held.
// fn must be repeatable.
func (e *env) onSourceDB(ctx context.Context, held *heldConn, fn func(q querier) error) error {
	err := retry(ctx, 10*time.Second, func() error {
		conn, err := connect(ctx, e.srcDB, "source")
		if err != nil {
			return err // fenced (55000) or gone (3D000) end the retries at once
		}
		defer closeConn(conn)
		return fn(conn)
	})
	if err == nil || held == nil || sqlState(err) == "3D000" {
		return err
	}
	if herr := held.run(fn); herr != nil {
		return errors.Join(err, herr)
	}
	return nil
}

// syncSlotPattern is the LIKE pattern of the table-sync slots of
// subscription subOID on the source (pg_<subid>_sync_<relid>_<sysid>,
// the target's system identifier when known); it matches nothing when
// subOID is 0 (not known).
func syncSlotPattern(subOID uint32, targetSystem string) string {
	if subOID == 0 {
		return "-"
	}
	if targetSystem == "" {
		return fmt.Sprintf("pg\\_%d\\_sync\\_%%", subOID)
	}
	return fmt.Sprintf("pg\\_%d\\_sync\\_%%\\_%s", subOID, targetSystem)
}

var errHeldGone = errors.New("the stream's WAL sender connection to the source is gone")

// heldConn gives cleanup the stream's held connection, used under its
// lock.
type heldConn struct{ s *stream }

func (s *stream) heldConn() *heldConn { return &heldConn{s} }

func (h *heldConn) run(fn func(q querier) error) error {
	h.s.heldMu.Lock()
	defer h.s.heldMu.Unlock()
	if h.s.held == nil || h.s.held.IsClosed() {
		return errHeldGone
	}
	return fn(h.s.held)
}
