package logical

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// The reverse of a stream carries the target database's writes back to
// the source database after a cutover switched to the target, so that the
// cutover can be reverted with nothing lost. It has a publication and a
// slot in the target database and a subscription in the source database,
// named "dcr_" and the stream ID's fold (see reverseName); its record is
// its publication's comment, as a stream's is (see ownership.go). It
// copies nothing: the source database holds the data as of the switch.
//
// PostgreSQL 15 has no origin filter on subscriptions, so what the reverse
// decodes must start exactly after the forward stream's last change and
// before the application's first write to the target. A cutover makes it
// in three calls, one per moment:
//
//  1. PrepareReverse, before the window: the publication (a publication
//     created after a slot is not found by a decoder reading earlier WAL),
//     then the slot (making one waits for every transaction open on the
//     target server, which no window can afford).
//  2. ReverseStart, in the window once the target applied the barrier
//     and before the switch: the target's WAL position, after every
//     change the forward stream applied and before the application's
//     first write (a read: the caller journals it), then
//     Provider.RecordReverseStart, after the switch and before Finish,
//     which records it for StartReverse to advance the slot to.
//  3. Provider.StartReverse, after the switch and after the forward
//     stream's Finish dropped its subscription: the subscription on the
//     source database, with copy_data = false, on that slot.
//
// The returned replica.Stream is the reverse: Barrier on the target,
// WaitFor on the source, SyncSequences from the target to the source,
// Verify, SnapshotTarget (of the source), Ready and FencePIDs (the
// target's sessions a fence of the target must spare), Finish and Abort
// (both drop the subscription, the slot and the publication and never a
// database). Its WAL guard watches the slot on the target while a handle
// is open; ReverseRetainedWAL reads the slot's retained WAL without one.

// reverseName names the reverse's publication, slot and subscription.
func reverseName(id string) string { return replica.ObjectName("dcr", id) }

// reverseSpec is the spec of the reverse of the stream spec describes:
// from the target database to the source database.
func reverseSpec(spec replica.Spec) replica.Spec {
	r := spec
	r.Source, r.SourceDatabase, r.SourceForTarget = spec.Target, spec.TargetDatabase, ""
	r.Target, r.TargetDatabase = spec.Source, spec.SourceDatabase
	return r
}

// reverseEnv is the env of the reverse of the stream spec describes.
func (p *Provider) reverseEnv(spec replica.Spec) (*env, error) {
	e, err := p.env(reverseSpec(spec))
	if err != nil {
		return nil, err
	}
	e.name, e.reverse = reverseName(spec.ID), true
	e.log = e.log.With("direction", "reverse")
	// The reverse's target is the source database, which a revert fences
	// never; its admin session still stays out of it.
	if e.tgtAdmin["dbname"] == e.spec.TargetDatabase {
		e.tgtAdmin = e.tgtAdmin.With("dbname", "postgres")
	}
	return e, nil
}

// reverseEnv is the env of this stream's reverse.
func (s *stream) reverseEnv() *env {
	r := *s.e
	r.spec = reverseSpec(s.e.spec)
	r.name, r.reverse = reverseName(s.e.spec.ID), true
	r.srcAdmin, r.srcDB, r.srcSub = s.e.tgtAdmin, s.e.tgtDB, withCredentials(s.e.tgtDB)
	r.tgtAdmin, r.tgtDB = s.e.srcAdmin, s.e.srcDB
	r.log = s.e.log.With("direction", "reverse")
	return &r
}

// PrepareReverse makes the reverse's publication in the target database,
// with its record, and its slot, noted in the record first, unless they
// exist. It changes nothing the forward stream or the application sees;
// call it before the window. Making a logical slot waits for the
// transactions that have written and are still open on the target server
// (any database), which is why it is made here and not in the window:
// the slot decodes from its creation, forward changes included, and
// ReverseStart then says from where the reverse applies. It is an optional
// capability of the stream, found by type assertion.
func (s *stream) PrepareReverse(ctx context.Context) error {
	if _, err := s.state(); err != nil {
		return err
	}
	e := s.reverseEnv()
	pub, err := e.readPublication(ctx, s.tgt)
	switch {
	case err != nil:
		return fmt.Errorf("logical: prepare reverse: %w", err)
	case pub.exists && pub.rec == nil:
		return fmt.Errorf("logical: prepare reverse: publication %s in target database %q is not this stream's reverse (its comment says otherwise): drop it or choose another stream ID",
			e.name, e.spec.SourceDatabase)
	case !pub.exists:
		if pub.rec, err = e.createPublication(ctx); err != nil {
			return fmt.Errorf("logical: prepare reverse: %w", err)
		}
	}
	if _, _, err := e.reverseSlot(ctx, s.tgt, pub.rec); err != nil {
		return fmt.Errorf("logical: prepare reverse: %w", err)
	}
	return nil
}

// reverseSlot makes the reverse's slot unless it exists, noting it in
// rec first, and returns its confirmed position, and whether it made it.
func (e *env) reverseSlot(ctx context.Context, tgt querier, rec *record) (string, bool, error) {
	var lsn *string
	err := tgt.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.name).Scan(&lsn)
	made := false
	switch {
	case err == nil && !rec.Slot:
		return "", false, fmt.Errorf("replication slot %s on the target is not this stream's reverse: drop it if nothing uses it", e.name)
	case errors.Is(err, pgx.ErrNoRows):
		if !rec.Slot {
			rec.Slot = true
			if err := e.writeRecord(ctx, tgt, rec); err != nil {
				return "", false, err
			}
		}
		made = true
		err = tgt.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, e.name).Scan(&lsn)
	}
	if err != nil {
		return "", false, fmt.Errorf("reverse slot %s on the target: %w", e.name, err)
	}
	if lsn == nil {
		return "", false, fmt.Errorf("reverse slot %s on the target has no position yet", e.name)
	}
	return *lsn, made, nil
}

// ReverseStart says where the reverse will start: the target's WAL
// insert position (the insert position, not the write one: the apply
// worker commits asynchronously, so its last commit may not be written
// yet). Call it in the window, once WaitFor(Barrier) has returned and
// before the application is let onto the target: every change the
// forward stream applied is before it, every write of the application
// after it. It is one read on a session the stream holds, and writes
// nothing: the caller keeps the position durable (a cutover journals it
// with its switch) until RecordReverseStart records it. It is an
// optional capability of the stream, found by type assertion.
func (s *stream) ReverseStart(ctx context.Context) (replica.Position, error) {
	if _, err := s.state(); err != nil {
		return 0, err
	}
	var lsn string
	if err := s.tgt.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("logical: the reverse's start: read the target's position: %w", err)
	}
	return replica.ParsePosition(lsn)
}

// RecordReverseStart records from, which ReverseStart said, on the
// reverse's record, where StartReverse advances the slot to, for the
// stream with spec's ID (spec is the forward stream's); called again (a
// resumed move), it keeps and returns the position recorded. Call it
// after the switch, before Finish drops the forward subscription, whose
// replication origin it checks from against: the end of the last
// transaction the forward stream applied (local_lsn, when the origin
// still knows it: a restart of the target forgets it) must not be after
// from. One connection to the target database, a read and a write.
func (p *Provider) RecordReverseStart(ctx context.Context, spec replica.Spec, from replica.Position) (replica.Position, error) {
	fwd, err := p.env(spec)
	if err != nil {
		return 0, err
	}
	e, err := p.reverseEnv(spec)
	if err != nil {
		return 0, err
	}
	conn, err := connect(ctx, e.srcDB, "target")
	if err != nil {
		return 0, fmt.Errorf("logical: record the reverse's start: %w", err)
	}
	defer closeConn(conn)
	pub, err := e.readPublication(ctx, conn)
	switch {
	case err != nil:
		return 0, fmt.Errorf("logical: record the reverse's start: %w", err)
	case pub.rec == nil || !pub.rec.Slot:
		return 0, fmt.Errorf("logical: record the reverse's start: the reverse's publication and slot %s are not in target database %q: call PrepareReverse before the window",
			e.name, e.spec.SourceDatabase)
	case pub.rec.From != "":
		return replica.ParsePosition(pub.rec.From)
	case from == 0:
		return 0, errors.New("logical: record the reverse's start: no position given")
	}
	// The origin of the forward subscription is named after its OID.
	var applied *string
	err = conn.QueryRow(ctx, `SELECT o.local_lsn::text FROM pg_subscription sub
		JOIN pg_replication_origin_status o ON o.external_id = 'pg_' || sub.oid
		WHERE sub.subname = $1 AND sub.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		fwd.name).Scan(&applied)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("logical: record the reverse's start: read the forward subscription's origin: %w", err)
	}
	if applied != nil {
		if pos, perr := replica.ParsePosition(*applied); perr == nil && pos > from {
			return 0, fmt.Errorf("logical: record the reverse's start: the forward stream applied a transaction ending at %s, after %s: the start was read before the forward stream was level with the fenced source",
				pos, from)
		}
	}
	pub.rec.From = from.String()
	if err := e.writeRecord(ctx, conn, pub.rec); err != nil {
		return 0, fmt.Errorf("logical: record the reverse's start: %w", err)
	}
	return from, nil
}

// StartReverse starts the reverse of the stream with spec's ID (spec is
// the forward stream's), or resumes it: it creates the subscription in
// the source database on the slot PrepareReverse made, unless it exists,
// and returns the reverse as a stream, streaming. The forward stream must
// be finished first (PostgreSQL 15 would send its changes back), and the
// source database must accept the admin's connections (a fence by
// privileges, not ALLOW_CONNECTIONS false: the subscription's apply
// worker connects there too). A reverse whose slot is gone is
// replica.ErrSlotLost.
func (p *Provider) StartReverse(ctx context.Context, spec replica.Spec) (replica.Stream, error) {
	e, err := p.reverseEnv(spec)
	if err != nil {
		return nil, err
	}
	s, err := e.startReverse(ctx)
	if err != nil {
		return nil, fmt.Errorf("logical: start the reverse of %s: %w", spec, err)
	}
	return s, nil
}

func (e *env) startReverse(ctx context.Context) (_ *stream, err error) {
	s := &stream{e: e, started: time.Now()}
	defer func() {
		if err != nil {
			s.closeResources()
		}
	}()
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	pub, err := e.readPublication(ctx, s.src)
	if err != nil {
		return nil, err
	}
	if pub.rec == nil || !pub.rec.Slot {
		return nil, fmt.Errorf("%w: the reverse's publication or slot was never made in database %q (the cutover made no reverse slot)",
			replica.ErrSlotLost, e.spec.SourceDatabase)
	}
	var slots int
	if err := s.adm.QueryRow(ctx, `SELECT count(*)::int FROM pg_replication_slots WHERE slot_name = $1`, e.name).Scan(&slots); err != nil {
		return nil, err
	}
	if slots == 0 {
		return nil, fmt.Errorf("%w: reverse slot %s is gone from the target", replica.ErrSlotLost, e.name)
	}
	m := &marker{Stream: e.name, ID: e.spec.ID, Phase: markComplete, Slot: true}
	if m.Fingerprint, err = fingerprint(ctx, s.tgt); err != nil {
		return nil, fmt.Errorf("the source database's schema: %w", err)
	}
	if err := e.advanceReverse(ctx, s, pub.rec); err != nil {
		return nil, err
	}
	subOID, err := e.reverseSubscription(ctx, s)
	if err != nil {
		return nil, err
	}
	if err := s.tgt.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&m.TargetSystem); err != nil {
		return nil, err
	}
	m.SubOID = subOID
	if pub.rec.SubOID != subOID {
		pub.rec.SubOID, pub.rec.TargetSystem = subOID, m.TargetSystem
		if err := e.writeRecord(ctx, s.src, pub.rec); err != nil {
			return nil, err
		}
	}
	s.m, s.phase = m, replica.PhaseStreaming
	s.startBackground(ctx)
	e.log.Info("logical: reverse stream started")
	return s, nil
}

// advanceReverse moves the reverse's slot, made before the window, past
// the changes the forward stream applied (to the position
// RecordReverseStart recorded), before its subscription first starts:
// they are on the source already, and would come back. Once the
// subscription exists it owns the slot's position, and this does
// nothing.
func (e *env) advanceReverse(ctx context.Context, s *stream, rec *record) error {
	var subs int
	if err := s.tgt.QueryRow(ctx, `SELECT count(*)::int FROM pg_subscription WHERE subname = $1
		AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, e.name).Scan(&subs); err != nil {
		return err
	}
	if subs > 0 {
		return nil
	}
	if rec.From == "" {
		return errors.New("the reverse's start was never recorded (RecordReverseStart, before the forward stream finished): its slot would send the forward stream's changes back")
	}
	// In the slot's database (the reverse's source): a logical slot is
	// advanced only from there.
	if _, err := s.src.Exec(ctx, `SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots
		WHERE slot_name = $1 AND confirmed_flush_lsn < $2::pg_lsn`, e.name, rec.From); err != nil {
		return fmt.Errorf("advance reverse slot %s past the forward stream's changes: %w", e.name, err)
	}
	return nil
}

// reverseSubscription creates the reverse's subscription in the source
// database unless it exists, enabled, and returns its OID.
func (e *env) reverseSubscription(ctx context.Context, s *stream) (uint32, error) {
	const find = `SELECT oid FROM pg_subscription WHERE subname = $1
		AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`
	var oid uint32
	err := s.tgt.QueryRow(ctx, find, e.name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		err = pgx.BeginFunc(ctx, s.tgt, func(tx pgx.Tx) error {
			stmt, err := formatStatement(ctx, tx, `CREATE SUBSCRIPTION %I CONNECTION %%L PUBLICATION %I
				WITH (create_slot = false, slot_name = %L, copy_data = false, enabled = true)`, e.name, e.name, e.name)
			if err != nil {
				return err
			}
			if strings.Count(stmt, "%") != 1 {
				panic("logical: a subscription's name holds '%'") // replica.ObjectName never makes one
			}
			return subscribe(ctx, tx, stmt, e.srcSub)
		})
		if err != nil {
			return 0, fmt.Errorf("create the reverse subscription in source database %q: %w", e.spec.TargetDatabase, err)
		}
		err = s.tgt.QueryRow(ctx, find, e.name).Scan(&oid)
	}
	if err != nil {
		return 0, err
	}
	var enabled bool
	if err := s.tgt.QueryRow(ctx, `SELECT subenabled FROM pg_subscription WHERE oid = $1`, oid).Scan(&enabled); err != nil {
		return 0, err
	}
	if !enabled {
		if _, err := s.tgt.Exec(ctx, "ALTER SUBSCRIPTION "+ident(e.name)+" ENABLE"); err != nil {
			return 0, err
		}
	}
	return oid, nil
}

// AbortReverse removes the reverse of the stream with spec's ID (spec is
// the forward stream's) without a handle: its subscription in the source
// database, and the slot and publication in the target database that its
// record names (when the target database refuses connections, the slot
// by its name, and the publication stays there, harmless without it). It
// drops no database. What is gone already is no error, so it can be
// repeated.
func (p *Provider) AbortReverse(ctx context.Context, spec replica.Spec) error {
	e, err := p.reverseEnv(spec)
	if err != nil {
		return err
	}
	if err := e.cleanupReverse(ctx, nil); err != nil {
		return fmt.Errorf("logical: abort the reverse of %s: %w", spec, err)
	}
	return nil
}

// ReverseRetainedWAL reads the WAL the target retains for the reverse
// slot of the stream with spec's ID (spec is the forward stream's), and
// whether the slot exists; a slot the target invalidated is
// replica.ErrSlotLost. It changes nothing.
func (p *Provider) ReverseRetainedWAL(ctx context.Context, spec replica.Spec) (bytes int64, exists bool, err error) {
	e, err := p.reverseEnv(spec)
	if err != nil {
		return 0, false, err
	}
	conn, err := connect(ctx, e.srcAdmin, "target")
	if err != nil {
		return 0, false, fmt.Errorf("logical: reverse retained WAL: %w", err)
	}
	defer closeConn(conn)
	var retained *int64
	var walStatus *string
	err = conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - restart_lsn)::int8, wal_status FROM pg_replication_slots WHERE slot_name = $1`,
		e.name).Scan(&retained, &walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("logical: reverse retained WAL: %w", err)
	}
	s := &stream{e: e}
	if err := s.slotLost(walStatus); err != nil {
		return 0, true, err
	}
	if retained == nil {
		return 0, true, nil
	}
	return *retained, true, nil
}

// cleanupReverse drops the reverse's subscription in the source database
// (named by the stream ID: no other stream makes a "dcr_" one), then the
// slot and the publication its record names in the target database
// (through held when that database refuses connections; without held,
// the slot by its name, and the publication stays). The slot and the
// publication go even when the source cannot be reached; the error then
// says what is left there.
func (e *env) cleanupReverse(ctx context.Context, held *heldConn) error {
	var pub publicationState
	perr := e.onSourceDB(ctx, held, func(q querier) (err error) {
		pub, err = e.readPublication(ctx, q)
		return err
	})
	// A target database that refuses connections (a revert's fence
	// there, before the database is dropped) hides the record: the slot
	// is dropped by its name, which only this reverse gives a slot, and
	// the publication stays with the database.
	fenced := sqlState(perr) == "55000"
	if sqlState(perr) == "3D000" {
		perr = nil
	}
	if perr != nil && !fenced {
		return fmt.Errorf("read the reverse's record in target database %q: %w", e.spec.SourceDatabase, perr)
	}
	// The slot goes even when the source database cannot be reached
	// (within targetGiveUp): it retains WAL on the serving instance.
	var subOID uint32
	sctx, cancel := context.WithTimeout(ctx, targetGiveUp)
	serr := retry(sctx, time.Minute, func() error { return e.dropSubscription(sctx, &subOID) })
	cancel()
	if sqlState(serr) == "55000" {
		// The source database refuses connections: the apply worker
		// could never have run there, and the subscription is made
		// only once it accepts them (see StartReverse).
		serr = nil
	}
	if serr != nil {
		sub := ident(e.name)
		serr = fmt.Errorf("drop the reverse subscription %s in source database %q at %s: %w: it is left there, its slot gone "+
			"(call AbortReverse again once it is back, or run there ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s)",
			e.name, e.spec.TargetDatabase, e.tgtAdmin.Endpoint(), serr, sub, sub, sub)
	}
	own := owned{subOID: subOID, slot: fenced}
	if pub.rec != nil {
		own.slot, own.publication = pub.rec.Slot, true
	}
	if err := e.dropSourceObjects(ctx, own, held); err != nil {
		return errors.Join(serr, err)
	}
	if serr != nil {
		return serr
	}
	e.log.Info("logical: reverse stream removed")
	return nil
}
