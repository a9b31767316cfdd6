package logical

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
)

// The initial copy is the stream's own (see doc.go, "The initial copy"):
// the slot is created with its snapshot exported, CopyJobs sessions
// import that snapshot and copy the tables, a large table in ranges of
// its blocks (TID range scans), each range piped from the source's COPY
// TO STDOUT into the target's COPY FROM STDIN; the subscription, created
// with copy_data = false and disabled, is enabled once every table is
// copied and its keys are built.

// copier is the state of the initial copy, shared by the goroutine that
// runs it (runCopy) with Progress and the post-data work (advance).
type copier struct {
	jobs      int
	rangeSize int64

	mu       sync.Mutex
	slotMade bool            // this attempt's slot exists
	planned  bool            // tables and ranges are known
	total    int             // tables to copy
	done     map[string]bool // tables copied whole in this attempt
	bytes    int64           // the tables' size on the source
	finished bool            // every table is copied
	err      error           // what stopped the copy for good
	copied   atomic.Int64    // bytes copied in this attempt
	rows     atomic.Int64    // rows copied in this attempt
}

// copyState is a copy of the copier's state.
type copyState struct {
	slotMade, planned, finished bool
	total                       int
	done                        map[string]bool
	bytes, copied, rows         int64
	err                         error
}

func (c *copier) state() copyState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyState{slotMade: c.slotMade, planned: c.planned, finished: c.finished, total: c.total,
		done: maps.Clone(c.done), bytes: c.bytes, copied: c.copied.Load(), rows: c.rows.Load(), err: c.err}
}

// copyTable is one table to copy.
type copyTable struct {
	name   string // schema-qualified, quoted
	cols   string // the columns copied (not generated ones), quoted, in order
	binary bool   // copied in binary format
	size   int64  // bytes on the source
	left   int    // ranges not copied yet (set by splitRanges, then under copier.mu)
}

// copyRange is a part of a table: its blocks [from, to), to the end when
// to is 0, or the whole table when not split.
type copyRange struct {
	t        *copyTable
	split    bool
	from, to int64
	bytes    int64 // its share of the table's size, for progress
}

func (r *copyRange) format() string {
	if r.t.binary {
		return "binary"
	}
	return "text"
}

// source is the COPY that reads the range on the source. A range is a
// TID range scan (PostgreSQL 14 and later); ONLY keeps the rows of an
// inheritance child out of its parent's copy, as COPY of a table does.
// The block numbers are integers this package computed.
func (r *copyRange) source() string {
	if !r.split {
		return fmt.Sprintf("COPY %s%s TO STDOUT (FORMAT %s)", r.t.name, columnList(r.t.cols), r.format())
	}
	where := fmt.Sprintf("ctid >= '(%d,0)'::tid", r.from)
	if r.to > 0 {
		where += fmt.Sprintf(" AND ctid < '(%d,0)'::tid", r.to)
	}
	return fmt.Sprintf("COPY (SELECT %s FROM ONLY %s WHERE %s) TO STDOUT (FORMAT %s)", r.t.cols, r.t.name, where, r.format())
}

// target is the COPY that writes the range on the target. A whole table
// is written FREEZE, after TRUNCATE ONLY in the same transaction (see
// copyRange): its rows arrive frozen and visible to all, so neither the
// index builds that read it next nor a later vacuum write its pages again.
func (r *copyRange) target() string {
	freeze := ""
	if !r.split {
		freeze = ", FREEZE"
	}
	return fmt.Sprintf("COPY %s%s FROM STDIN (FORMAT %s%s)", r.t.name, columnList(r.t.cols), r.format(), freeze)
}

func columnList(cols string) string {
	if cols == "" { // a table without columns
		return ""
	}
	return " (" + cols + ")"
}

// copyRetries bounds how often a copy that failed for a reason that may
// pass (a source or target restarting) starts over.
const copyRetries = 10

// runCopy runs the initial copy until it is done, fails for good, or
// ctx ends; each try after the first starts over from a new slot.
func (s *stream) runCopy(ctx context.Context, c *copier) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = time.Second, 30*time.Second, 0
	err := backoff.Retry(func() error {
		err := s.copyOnce(ctx, c)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if !transient(err) {
			return backoff.Permanent(err)
		}
		s.e.log.Warn("logical: the initial copy failed; it starts over from a new slot", "err", err)
		return err
	}, backoff.WithContext(backoff.WithMaxRetries(b, copyRetries), ctx))
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.finished = true
	case ctx.Err() == nil:
		c.err = fmt.Errorf("%w: %w", errCopyStopped, err)
	}
}

// errCopyStopped marks the error that stopped the initial copy for good:
// the stream stops with it.
var errCopyStopped = errors.New("the initial copy stopped")

// copyOnce is one try of the initial copy, from a new slot.
func (s *stream) copyOnce(ctx context.Context, c *copier) error {
	c.mu.Lock()
	c.slotMade, c.planned, c.done, c.total, c.bytes = false, false, map[string]bool{}, 0, 0
	c.copied.Store(0)
	c.rows.Store(0)
	c.mu.Unlock()

	// The marker counts the tries: one before this one (in this process
	// or one that died) may have copied part of the data and left its
	// slot, whose snapshot is gone.
	s.mu.Lock()
	s.m.CopyAttempts++
	again := s.m.CopyAttempts > 1
	m := *s.m
	s.mu.Unlock()
	if err := s.e.writeMarker(ctx, &m); err != nil {
		return err
	}
	// A slot of the stream's name is the stream's (its record says so
	// since createReplication): a try before this one left it, or an
	// older version made it before the copy was the stream's own.
	if err := s.e.dropSourceObjects(ctx, owned{slot: true}, nil); err != nil {
		return err
	}
	t0 := time.Now()
	slot, err := s.e.createExportedSlot(ctx)
	if err != nil {
		return err
	}
	defer slot.close(ctx)
	c.mu.Lock()
	c.slotMade = true
	c.mu.Unlock()
	s.e.log.Info("logical: slot created with its snapshot exported", "consistent_point", slot.lsn, "took", time.Since(t0))

	// One session plans; as many more as there are ranges to copy, up
	// to CopyJobs, join it.
	sessions, err := s.openCopySessions(ctx, slot.snapshot, 1)
	defer func() { closeCopySessions(sessions) }()
	if err != nil {
		return err
	}
	tables, blockSize, err := s.planCopy(ctx, sessions[0].src)
	if err != nil {
		return err
	}
	ranges := splitRanges(tables, c.rangeSize, blockSize, s.e.srcMajor >= 14)
	more, err := s.openCopySessions(ctx, slot.snapshot, min(c.jobs, len(ranges))-1)
	sessions = append(sessions, more...)
	if err != nil {
		return err
	}
	if again {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.name
		}
		if err := s.resetTarget(ctx, names); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.planned, c.total = true, len(tables)
	for _, t := range tables {
		c.bytes += t.size
	}
	c.mu.Unlock()
	if err := c.copyRanges(ctx, sessions, ranges); err != nil {
		return err
	}
	s.e.log.Info("logical: initial copy done", "tables", len(tables), "ranges", len(ranges), "jobs", len(sessions),
		"took", time.Since(t0))
	return nil
}

// copySession is a pair of connections: the source's in a transaction
// with the slot's snapshot, the target's for COPY FROM.
type copySession struct {
	src, tgt *pgx.Conn
}

// copyParams are the copy sessions' settings, at startup: no timeout of
// the servers' or databases' cuts a long COPY or the source's open
// transaction short; on the target, no trigger (the post-data restore
// may have built some) or foreign key check fires, as for the apply
// worker.
var (
	copySourceParams = map[string]string{"statement_timeout": "0", "lock_timeout": "0",
		"idle_in_transaction_session_timeout": "0"}
	copyTargetParams = map[string]string{"statement_timeout": "0", "lock_timeout": "0",
		"idle_in_transaction_session_timeout": "0", "session_replication_role": "replica"}
)

// openCopySessions opens n copy sessions, each source connection in a
// REPEATABLE READ, READ ONLY transaction with the exported snapshot. It
// returns what it opened even on error, for the caller to close.
func (s *stream) openCopySessions(ctx context.Context, snapshot string, n int) ([]copySession, error) {
	var out []copySession
	for range n {
		src, err := connectWith(ctx, s.e.srcDB, "source", copySourceParams)
		if err != nil {
			return out, err
		}
		out = append(out, copySession{src: src})
		// SET TRANSACTION SNAPSHOT must come first in the transaction,
		// before any query: the statement is built before BEGIN.
		set, err := formatStatement(ctx, src, "SET TRANSACTION SNAPSHOT %L", snapshot)
		if err != nil {
			return out, err
		}
		if _, err := src.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return out, err
		}
		if _, err := src.Exec(ctx, set); err != nil {
			return out, fmt.Errorf("import the slot's snapshot: %w", err)
		}
		if out[len(out)-1].tgt, err = connectWith(ctx, s.e.tgtDB, "target", copyTargetParams); err != nil {
			return out, err
		}
	}
	return out, nil
}

func closeCopySessions(sessions []copySession) {
	for _, cs := range sessions {
		closeConn(cs.src) // ends its transaction
		closeConn(cs.tgt)
	}
}

// connectWith is connect with more startup parameters.
func connectWith(ctx context.Context, ci conninfo, what string, params map[string]string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(ci.String())
	if err != nil {
		return nil, fmt.Errorf("%s connection string is invalid", what)
	}
	setSessionParams(cfg.RuntimeParams)
	maps.Copy(cfg.RuntimeParams, params)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s database %q at %s: %w", what, ci["dbname"], ci.Endpoint(), err)
	}
	return conn, nil
}

// planQuery lists, in the snapshot, the tables the publication
// publishes (what a subscription would copy: permanent tables, the
// leaves of partitioned ones), with their columns and size, and whether
// every column's type has binary I/O that is the same on any server of
// the same major version: built-in types (through domains and arrays)
// and enums (sent by label). Anything else (a composite, an extension's
// type, aclitem, which has no binary I/O) is copied as text.
const planQuery = `SELECT quote_ident(pt.schemaname) || '.' || quote_ident(pt.tablename),
	coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), ''),
	pg_relation_size(c.oid),
	(WITH RECURSIVE walk(typ) AS (
		SELECT a.atttypid FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		UNION
		SELECT x.typ FROM walk w JOIN pg_type t ON t.oid = w.typ
		CROSS JOIN LATERAL unnest(ARRAY[t.typbasetype, t.typelem]) AS x(typ) WHERE x.typ <> 0)
	SELECT coalesce(bool_and(t.typtype IN ('d', 'e') OR (t.typnamespace = 'pg_catalog'::regnamespace
		AND t.typtype <> 'c' AND t.typsend::oid <> 0 AND t.typreceive::oid <> 0)), true)
	FROM walk w JOIN pg_type t ON t.oid = w.typ)
FROM pg_publication_tables pt
JOIN pg_namespace n ON n.nspname = pt.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
WHERE pt.pubname = $1
ORDER BY 3 DESC, 1`

// planCopy lists the tables to copy, largest first, through src (in
// the snapshot), and the source's block size. Binary format needs the
// same major version on both sides.
func (s *stream) planCopy(ctx context.Context, src *pgx.Conn) (_ []*copyTable, blockSize int64, _ error) {
	rows, err := src.Query(ctx, planQuery, s.e.name)
	if err != nil {
		return nil, 0, fmt.Errorf("list the tables to copy: %w", err)
	}
	sameMajor := s.e.srcMajor != 0 && s.e.srcMajor == s.e.tgtMajor
	var out []*copyTable
	for rows.Next() {
		t := &copyTable{}
		if err := rows.Scan(&t.name, &t.cols, &t.size, &t.binary); err != nil {
			rows.Close()
			return nil, 0, err
		}
		t.binary = t.binary && sameMajor
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list the tables to copy: %w", err)
	}
	if err := src.QueryRow(ctx, `SELECT current_setting('block_size')::int8`).Scan(&blockSize); err != nil {
		return nil, 0, err
	}
	return out, blockSize, nil
}

// splitRanges cuts each table larger than rangeSize into ranges of
// rangeSize (when canSplit: TID range scans need PostgreSQL 14), the last
// open-ended: rows the table gained after its size was read are past the
// snapshot, and the scan skips them. Tables come largest first, each
// table's ranges together, so that the sessions finish tables one after
// another and their indexes can be built while the copy goes on.
func splitRanges(tables []*copyTable, rangeSize, blockSize int64, canSplit bool) []*copyRange {
	per := max(rangeSize/blockSize, 1)
	var out []*copyRange
	for _, t := range tables {
		blocks := t.size / blockSize
		if !canSplit || blocks <= per {
			t.left = 1
			out = append(out, &copyRange{t: t, bytes: t.size})
			continue
		}
		n := (blocks + per - 1) / per
		t.left = int(n)
		for i := range n {
			r := &copyRange{t: t, split: true, from: i * per, bytes: per * blockSize}
			if i < n-1 {
				r.to = (i + 1) * per
			} else {
				r.bytes = t.size - r.from*blockSize
			}
			out = append(out, r)
		}
	}
	return out
}

// copyRanges copies the ranges with one worker per session, in order;
// the first error stops every worker.
func (c *copier) copyRanges(ctx context.Context, sessions []copySession, ranges []*copyRange) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ranges) || ctx.Err() != nil {
					return
				}
				if err := c.copyRange(ctx, cs, ranges[i]); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// errTargetFailed ends the source's side of a range whose target side
// failed: the target's error is the one to report.
var errTargetFailed = errors.New("the target's COPY failed")

// copyRange pipes one range from the source's COPY TO STDOUT into the
// target's COPY FROM STDIN, in one transaction on the target: a range
// is on the target whole or not at all. A whole table is truncated
// first, in that transaction, which COPY FREEZE needs; nothing else
// touches it meanwhile: its indexes, constraints and triggers (foreign
// keys to and from it included) are built once it is copied, and the
// subscription applies nothing before every table is.
func (c *copier) copyRange(ctx context.Context, cs copySession, r *copyRange) error {
	if !r.split {
		// The name is schema-qualified and quoted by quote_ident.
		if err := cs.tgt.PgConn().Exec(ctx, "BEGIN; TRUNCATE ONLY "+r.t.name).Close(); err != nil {
			return fmt.Errorf("truncate %s on the target before its copy: %w", r.t.name, err)
		}
	}
	if err := c.pipeRange(ctx, cs, r); err != nil {
		if !r.split {
			_ = cs.tgt.PgConn().Exec(ctx, "ROLLBACK").Close()
		}
		return err
	}
	if !r.split {
		if err := cs.tgt.PgConn().Exec(ctx, "COMMIT").Close(); err != nil {
			return fmt.Errorf("commit the copy of %s on the target: %w", r.t.name, err)
		}
	}
	c.mu.Lock()
	r.t.left--
	if r.t.left == 0 {
		c.done[r.t.name] = true
	}
	c.mu.Unlock()
	return nil
}

// pipeRange is the COPY of copyRange.
func (c *copier) pipeRange(ctx context.Context, cs copySession, r *copyRange) error {
	pr, pw := io.Pipe()
	srcDone := make(chan error, 1)
	var counted int64
	go func() {
		// The source sends a message per row: writes are gathered so
		// that the pipe hands the target whole buffers.
		bw := bufio.NewWriterSize(&progressWriter{w: pw, limit: r.bytes, n: &counted, total: &c.copied}, 256<<10)
		_, err := cs.src.PgConn().CopyTo(ctx, bw, r.source())
		if err == nil {
			err = bw.Flush()
		}
		_ = pw.CloseWithError(err)
		srcDone <- err
	}()
	tag, tgtErr := cs.tgt.PgConn().CopyFrom(ctx, pr, r.target())
	if tgtErr != nil {
		_ = pr.CloseWithError(errTargetFailed)
	}
	srcErr := <-srcDone
	switch {
	case srcErr != nil && !errors.Is(srcErr, errTargetFailed):
		return fmt.Errorf("copy %s from the source: %w", r.t.name, srcErr)
	case tgtErr != nil:
		return fmt.Errorf("copy %s into the target: %w", r.t.name, tgtErr)
	}
	c.copied.Add(r.bytes - counted)
	c.rows.Add(tag.RowsAffected())
	return nil
}

// progressWriter counts the bytes written through it into total, up to
// limit for one range (the COPY stream and the heap differ in size).
type progressWriter struct {
	w     io.Writer
	limit int64
	n     *int64
	total *atomic.Int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if add := min(int64(n), p.limit-*p.n); add > 0 {
		*p.n += add
		p.total.Add(add)
	}
	return n, err
}
