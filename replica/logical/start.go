package logical

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/replica"
)

// start makes what the stream lacks, step by step, each recorded in the
// marker (or the record) before the next, so that a start that fails or
// is killed can be resumed or cleaned up; then it starts the background
// work.
func (e *env) start(ctx context.Context, f *facts) (_ *stream, err error) {
	m := f.marker
	if m == nil {
		// What an earlier start of this stream left that failed or was
		// killed before the target database carried its marker: only
		// what its record names.
		if f.record != nil {
			if err := e.cleanup(ctx, true, nil); err != nil {
				return nil, fmt.Errorf("remove what an earlier start of the stream left: %w", err)
			}
		}
		rec, err := e.createPublication(ctx)
		if err != nil {
			return nil, err
		}
		if err := e.setIdentityFull(ctx, f.noIdentity); err != nil {
			return nil, err
		}
		if f.targetExists {
			m = &marker{Stream: e.name, ID: e.spec.ID, Phase: markCreated}
			if err := e.writeMarker(ctx, m); err != nil {
				return nil, err
			}
		} else if m, err = e.createTargetDB(ctx, f, rec); err != nil {
			return nil, err
		}
	}
	s := &stream{e: e, m: m, started: time.Now()}
	s.phase, s.phaseAt = replica.PhaseSchema, s.started
	defer func() {
		if err != nil {
			s.closeResources()
		}
	}()
	if err := s.connect(ctx); err != nil {
		return nil, err
	}

	if m.Phase == markCreated {
		// Nothing restored yet: the keys wait for the copy (see
		// marker.KeysAfterCopy), written with the next phase.
		m.KeysAfterCopy = true
	}
	if m.Phase != markComplete {
		if err := s.dump(ctx); err != nil {
			return nil, err
		}
	}
	if m.Phase == markCreated {
		if err := s.restoreFirst(ctx); err != nil {
			return nil, err
		}
		m.Phase = markPreData
		if err := e.writeMarker(ctx, m); err != nil {
			return nil, err
		}
	}
	if m.Phase == markPreData {
		if err := s.createReplication(ctx); err != nil {
			return nil, err
		}
		m.Phase = markCopy
		if err := e.writeMarker(ctx, m); err != nil {
			return nil, err
		}
	}
	if err := s.checkReplication(ctx); err != nil {
		return nil, err
	}
	// Before the background work starts: no lock needed.
	switch m.Phase {
	case markIndexes:
		s.enterPhase(replica.PhaseIndexes)
	case markComplete:
		s.enterPhase(replica.PhaseStreaming)
	default:
		s.enterPhase(replica.PhaseCopy)
	}
	if m.OwnCopy && m.Phase == markCopy {
		s.copy = &copier{jobs: e.copyJobs, rangeSize: e.rangeSz}
	}
	s.startBackground(ctx)
	e.log.Info("logical: stream started", "phase", s.phase, "resumed", f.marker != nil)
	return s, nil
}

// connect opens the stream's pools and its held connection; the caller
// closes them (closeResources) when it fails.
func (s *stream) connect(ctx context.Context) (err error) {
	if s.src, err = newPool(ctx, s.e.srcDB); err != nil {
		return err
	}
	if s.tgt, err = newPool(ctx, s.e.tgtDB); err != nil {
		return err
	}
	if s.adm, err = newPool(ctx, s.e.srcAdmin); err != nil {
		return err
	}
	s.held, err = s.e.connectHeld(ctx)
	return err
}

// startBackground starts the background work (see run), which outlives
// ctx until the stream ends or is closed.
func (s *stream) startBackground(ctx context.Context) {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.bgDone = cancel, make(chan struct{})
	go s.run(bg)
}

func newPool(ctx context.Context, ci conninfo) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(ci.String())
	if err != nil {
		return nil, fmt.Errorf("connection string for %q is invalid", ci["dbname"])
	}
	setSessionParams(cfg.ConnConfig.RuntimeParams)
	cfg.MaxConns = 6
	cfg.MinConns = 0
	cfg.HealthCheckPeriod = 10 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %q at %s: %w", ci["dbname"], ci.Endpoint(), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %q at %s: %w", ci["dbname"], ci.Endpoint(), err)
	}
	return pool, nil
}

func (e *env) setIdentityFull(ctx context.Context, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	if !e.spec.SetReplicaIdentityFull {
		return fmt.Errorf("tables without replica identity: %s", strings.Join(tables, ", "))
	}
	conn, err := connect(ctx, e.srcDB, "source")
	if err != nil {
		return err
	}
	defer closeConn(conn)
	for _, t := range tables {
		// t is schema-qualified and quoted by quote_ident.
		if _, err := conn.Exec(ctx, "ALTER TABLE "+t+" REPLICA IDENTITY FULL"); err != nil {
			return fmt.Errorf("set REPLICA IDENTITY FULL on %s: %w", t, err)
		}
		e.log.Info("logical: set REPLICA IDENTITY FULL", "table", t)
	}
	return nil
}

// createTargetDB creates the target database so that it is the
// stream's from the moment it exists: the record notes the staging
// database (see stagingName) before it is created; it gets the marker,
// then the target database's name. A killed start leaves either nothing
// on the target, or the staging database, which the record names and
// cleanup drops, or the target database with its marker.
func (e *env) createTargetDB(ctx context.Context, f *facts, rec *record) (*marker, error) {
	src, err := connect(ctx, e.srcDB, "source")
	if err != nil {
		return nil, err
	}
	defer closeConn(src)
	staging := stagingName(e.spec.ID)
	rec.Database = staging
	if err := e.writeRecord(ctx, src, rec); err != nil {
		return nil, err
	}
	conn, err := connect(ctx, e.tgtAdmin, "target")
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	q, err := formatStatement(ctx, conn, "CREATE DATABASE %I TEMPLATE template0", staging)
	if err == nil {
		q, err = f.locale.createOptions(ctx, conn, q)
	}
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, q); err != nil {
		return nil, fmt.Errorf("create target database %q (as %q): %w", e.spec.TargetDatabase, staging, err)
	}
	if e.crashAt(crashDatabaseCreated) {
		return nil, errCrashed
	}
	m := &marker{Stream: e.name, ID: e.spec.ID, Created: true, Phase: markCreated}
	q, err = formatStatement(ctx, conn, "COMMENT ON DATABASE %I IS %L", staging, m.json())
	if err == nil {
		_, err = conn.Exec(ctx, q)
	}
	if err != nil {
		return nil, fmt.Errorf("mark target database %q (as %q): %w", e.spec.TargetDatabase, staging, err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(staging)+" RENAME TO "+ident(e.spec.TargetDatabase)); err != nil {
		if sqlState(err) == "42P04" { // duplicate_database
			err = fmt.Errorf("target database %q was created by someone else while the stream started: %w", e.spec.TargetDatabase, err)
		}
		return nil, fmt.Errorf("rename %q to the target database: %w", staging, err)
	}
	rec.Database, rec.Created = "", true
	if err := e.writeRecord(ctx, src, rec); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *stream) dump(ctx context.Context) error {
	dir, err := newDumpDir(s.e.name)
	if err != nil {
		return err
	}
	s.dumpDir = dir
	s.dumpFile = filepath.Join(dir, "schema.dump")
	before, err := fingerprint(ctx, s.src)
	if err != nil {
		return err
	}
	if err := dumpSchema(ctx, s.e.binDir, s.e.srcDB, s.dumpFile); err != nil {
		return err
	}
	after, err := fingerprint(ctx, s.src)
	if err != nil {
		return err
	}
	if err := driftError(before, after); err != nil {
		return fmt.Errorf("the schema changed while it was dumped: %w", err)
	}
	if s.m.Fingerprint == nil {
		s.m.Fingerprint = after
	}
	early, err := earlyObjects(ctx, s.src)
	if err != nil {
		return err
	}
	var keys map[string]bool
	if s.m.KeysAfterCopy {
		keys, early = early, nil
	}
	var rest []string
	s.firstList, rest, err = splitTOC(ctx, s.e.binDir, s.dumpFile, early)
	if err != nil {
		return err
	}
	deps, err := tableDeps(ctx, s.src)
	if err != nil {
		return err
	}
	for _, l := range rest {
		s.post = append(s.post, postItem{line: l, tables: deps[tocKey(l)], key: keys[tocKey(l)]})
	}
	s.postDone = make([]bool, len(s.post))
	return nil
}

// restoreFirst restores the tables with their primary keys and
// replica-identity indexes, in one transaction (all or nothing). A
// database that already has tables got them from an earlier try whose
// marker was not written.
func (s *stream) restoreFirst(ctx context.Context) error {
	var rels int
	if err := s.tgt.QueryRow(ctx, `SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+userSchemas).Scan(&rels); err != nil {
		return err
	}
	if rels > 0 {
		return nil
	}
	t0 := time.Now()
	err := pgTool(ctx, s.e.binDir, "pg_restore", s.e.tgtDB,
		restoreArgs(s.e.spec.NoOwner, s.firstList, s.dumpFile, "--single-transaction")...)
	if err != nil {
		return fmt.Errorf("restore tables and primary keys: %w", err)
	}
	s.e.log.Info("logical: tables and primary keys restored", "took", time.Since(t0))
	return nil
}

// createReplication creates the publication and the subscription, each
// unless it exists, and notes the slot in the record: the initial copy
// creates the slot (copy_parallel.go). The subscription is disabled
// until the copy is done.
func (s *stream) createReplication(ctx context.Context) error {
	name := s.e.name
	pub, err := s.e.readPublication(ctx, s.src)
	if err != nil {
		return err
	}
	rec := pub.rec
	switch {
	case !pub.exists:
		// A stream of an older version, or a publication dropped by
		// hand: made again, with the record.
		if rec, err = s.e.createPublication(ctx); err != nil {
			return err
		}
	case rec == nil && pub.unmarked:
		// A publication of an older version, which kept no record:
		// the marker makes this stream's target database, and with it
		// the publication, the stream's.
		rec = &record{Stream: name, ID: s.e.spec.ID, Created: s.m.Created}
		if err := s.e.writeRecord(ctx, s.src, rec); err != nil {
			return err
		}
	case rec == nil:
		return fmt.Errorf("publication %s on the source is not this stream's (its comment names another): drop it or choose another stream ID", name)
	}
	var n int
	if err := s.src.QueryRow(ctx, `SELECT count(*)::int FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&n); err != nil {
		return err
	}
	switch {
	case n == 0:
		// Noted before it is made: a start killed in between leaves a
		// record that names a slot that may not exist, never a slot
		// without a record.
		rec.Slot = true
		if err := s.e.writeRecord(ctx, s.src, rec); err != nil {
			return err
		}
	case !rec.Slot:
		return fmt.Errorf("replication slot %s on the source is not this stream's: drop it (SELECT pg_drop_replication_slot('%s')) if nothing uses it, or choose another stream ID", name, name)
	}
	s.m.Slot, s.m.OwnCopy = true, true
	var subOID uint32
	err = s.tgt.QueryRow(ctx, `SELECT oid FROM pg_subscription WHERE subname = $1
		AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, name).Scan(&subOID)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := s.createSubscription(ctx); err != nil {
			// The server's error does not repeat the connection string.
			return fmt.Errorf("create subscription: %w", err)
		}
		err = s.tgt.QueryRow(ctx, `SELECT oid FROM pg_subscription WHERE subname = $1
			AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, name).Scan(&subOID)
	}
	if err != nil {
		return err
	}
	var system string
	if err := s.tgt.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&system); err != nil {
		return err
	}
	s.m.SubOID, s.m.TargetSystem = subOID, system
	rec.SubOID, rec.TargetSystem = subOID, system
	return s.e.writeRecord(ctx, s.src, rec)
}

// checkReplication makes sure a resumed stream's slot and subscription
// exist, and that the subscription is enabled; during the stream's own
// copy, only that the subscription exists: the copy makes the slot
// again and enables the subscription once done.
func (s *stream) checkReplication(ctx context.Context) error {
	if s.m.OwnCopy && s.m.Phase == markCopy {
		var n int
		err := s.tgt.QueryRow(ctx, `SELECT count(*)::int FROM pg_subscription WHERE subname = $1
			AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, s.e.name).Scan(&n)
		if err == nil && n == 0 {
			err = errors.New("it is gone: abort the stream and start it again")
		}
		if err != nil {
			return fmt.Errorf("find subscription %s on the target: %w", s.e.name, err)
		}
		return nil
	}
	var slots int
	if err := s.src.QueryRow(ctx, `SELECT count(*)::int FROM pg_replication_slots WHERE slot_name = $1`, s.e.name).Scan(&slots); err != nil {
		return err
	}
	if slots == 0 {
		return fmt.Errorf("%w: slot %s is not on the source while subscription exists: abort the stream and start it again",
			replica.ErrSlotLost, s.e.name)
	}
	var enabled bool
	err := s.tgt.QueryRow(ctx, `SELECT subenabled FROM pg_subscription WHERE subname = $1
		AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, s.e.name).Scan(&enabled)
	if err != nil {
		return fmt.Errorf("find subscription %s on the target: %w", s.e.name, err)
	}
	if !enabled {
		if _, err := s.tgt.Exec(ctx, "ALTER SUBSCRIPTION "+ident(s.e.name)+" ENABLE"); err != nil {
			return err
		}
	}
	return nil
}
