package cutover

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/pgschema"
)

var journalMigrations = []string{
	`CREATE TABLE {{schema}}.journal (
		move   text NOT NULL,
		seq    bigint NOT NULL,
		step   text NOT NULL,
		status text NOT NULL CHECK (status IN ('started', 'finished', 'failed')),
		at     timestamptz NOT NULL DEFAULT clock_timestamp(),
		detail jsonb,
		PRIMARY KEY (move, seq)
	);
	CREATE TABLE {{schema}}.moves (
		move     text PRIMARY KEY,
		open     boolean NOT NULL,
		started  timestamptz NOT NULL DEFAULT clock_timestamp()
	);
	CREATE INDEX moves_open ON {{schema}}.moves (started) WHERE open;`,
	// Kinds, and open by step and status together: journals written
	// before were kindless (a chain's begins with drain's chain_plan), and
	// a retire closed its move whatever its status.
	`ALTER TABLE {{schema}}.moves ADD COLUMN kind text NOT NULL DEFAULT 'move' CHECK (kind IN ('move', 'chain'));
	UPDATE {{schema}}.moves m SET kind = 'chain'
		WHERE EXISTS (SELECT 1 FROM {{schema}}.journal j WHERE j.move = m.move AND j.seq = 1 AND j.step = 'chain_plan');
	UPDATE {{schema}}.moves m SET open = NOT EXISTS (
		SELECT 1 FROM {{schema}}.journal j
		WHERE j.move = m.move AND j.status = 'finished' AND j.step IN ('done', 'rolled_back', 'retire')
		  AND j.seq = (SELECT max(seq) FROM {{schema}}.journal l WHERE l.move = m.move));`,
	// Drains and refills run as jobs (fleetjobs) journal as a kind of
	// their own.
	`ALTER TABLE {{schema}}.moves DROP CONSTRAINT moves_kind_check,
		ADD CONSTRAINT moves_kind_check CHECK (kind IN ('move', 'chain', 'drain'));`,
	// Recent lists the newest journals through this index, whatever the
	// length of the history.
	`CREATE INDEX moves_started ON {{schema}}.moves (started DESC, move DESC);`,
	// What runs measured, for the rate model (MeasurementStore): read
	// newest first, for an instance pair or for the fleet.
	`CREATE TABLE {{schema}}.measurements (
		move   text PRIMARY KEY,
		kind   text NOT NULL,
		source text NOT NULL,
		target text NOT NULL,
		at     timestamptz NOT NULL,
		detail jsonb NOT NULL
	);
	CREATE INDEX measurements_pair ON {{schema}}.measurements (source, target, at DESC);
	CREATE INDEX measurements_at ON {{schema}}.measurements (at DESC);`,
}

// PostgresJournalConfig configures a PostgresJournal; nil means defaults.
type PostgresJournalConfig struct {
	// Schema holds the journal's tables. Default fleet.SchemaDefault, the
	// catalog's.
	Schema string
}

// PostgresJournal is a Journal in the control database. Each Append is
// one committed transaction, so an entry that Append returned survives a
// crash of this process or of the control database. Appends and reads
// lost with their connection are retried on another (for up to 30 s);
// an append whose commit was cut off may then be
// written twice, which readers of a journal tolerate (a step's furthest
// status is what counts).
type PostgresJournal struct {
	pool   *pgxpool.Pool
	schema string // quoted
}

var _ Journal = (*PostgresJournal)(nil)

// NewPostgresJournal returns a journal in the database pool connects to,
// creating or upgrading its tables first.
func NewPostgresJournal(ctx context.Context, pool *pgxpool.Pool, cfg *PostgresJournalConfig) (*PostgresJournal, error) {
	if pool == nil {
		return nil, fmt.Errorf("cutover: NewPostgresJournal needs a pool")
	}
	schema := fleet.SchemaDefault
	if cfg != nil && cfg.Schema != "" {
		schema = cfg.Schema
	}
	if err := pgschema.Migrate(ctx, pool, schema, "journal", journalMigrations); err != nil {
		return nil, fmt.Errorf("cutover: %w", err)
	}
	return &PostgresJournal{pool: pool, schema: pgx.Identifier{schema}.Sanitize()}, nil
}

// refusal is an Append refused for what is in the journal: final, never
// retried.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func isRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// Append implements Journal.
func (j *PostgresJournal) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	tries := 0
	var out Entry
	err := retryControl(ctx, isRefusal, func() error {
		tries++
		var err error
		out, err = j.append(ctx, e, tries > 1)
		return err
	})
	var r *refusal
	if errors.As(err, &r) {
		return Entry{}, r.err
	}
	if err != nil {
		return Entry{}, fmt.Errorf("cutover: journal %q %s %s: %w", e.Move, e.Step, e.Status, err)
	}
	return out, nil
}

// append is one try of Append; retried says an earlier try may have
// committed.
func (j *PostgresJournal) append(ctx context.Context, e Entry, retried bool) (Entry, error) {
	err := pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		// The moves row serializes appends to one move and keeps the
		// list of open moves cheap to read.
		var kind Kind
		var inserted bool
		if err := tx.QueryRow(ctx, `INSERT INTO `+j.schema+`.moves AS m (move, open, kind) VALUES ($1, $2, $3)
			ON CONFLICT (move) DO UPDATE SET open = excluded.open
			RETURNING m.kind, m.xmax = 0`, e.Move, !e.Terminal(), string(e.kind())).Scan(&kind, &inserted); err != nil {
			return err
		}
		switch {
		case !inserted && e.Seq == 1:
			var first, last Entry
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*), (array_agg(step ORDER BY seq))[1], (array_agg(status ORDER BY seq))[1],
				(array_agg(step ORDER BY seq DESC))[1], (array_agg(status ORDER BY seq DESC))[1], min(at)
				FROM `+j.schema+`.journal WHERE move = $1`, e.Move).Scan(&n, &first.Step, &first.Status, &last.Step, &last.Status, &first.At); err != nil {
				return err
			}
			if retried && n == 1 && first.Step == e.Step && first.Status == e.Status {
				// The earlier try committed: this entry is ours.
				e.Seq, e.At, e.Kind = 1, first.At, kind
				return errAlreadyAppended
			}
			last.Kind = kind
			return &refusal{usedError(e.Move, last)}
		case e.Kind != "" && e.Kind != kind:
			return &refusal{fmt.Errorf("cutover: journal entry of %q has kind %q, the journal is a %s's", e.Move, e.Kind, kind)}
		}
		e.Kind = kind
		return tx.QueryRow(ctx, `INSERT INTO `+j.schema+`.journal (move, seq, step, status, detail)
			SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4 FROM `+j.schema+`.journal WHERE move = $1
			RETURNING seq, at`, e.Move, string(e.Step), string(e.Status), nullJSON(e.Detail)).Scan(&e.Seq, &e.At)
	})
	if errors.Is(err, errAlreadyAppended) {
		return e, nil
	}
	return e, err
}

// errAlreadyAppended rolls back a retried first append that finds its
// earlier try committed.
var errAlreadyAppended = errors.New("already appended")

func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// Entries implements Journal.
func (j *PostgresJournal) Entries(ctx context.Context, moveID string) ([]Entry, error) {
	var out []Entry
	err := retryControl(ctx, nil, func() error {
		rows, err := j.pool.Query(ctx, `SELECT j.move, m.kind, j.seq, j.step, j.status, j.at, coalesce(j.detail::text, '')
			FROM `+j.schema+`.journal j JOIN `+j.schema+`.moves m USING (move) WHERE j.move = $1 ORDER BY j.seq`, moveID)
		if err != nil {
			return err
		}
		out = out[:0]
		var kind, step, status, detail string
		var e Entry
		_, err = pgx.ForEachRow(rows, []any{&e.Move, &kind, &e.Seq, &step, &status, &e.At, &detail}, func() error {
			e.Kind, e.Step, e.Status = Kind(kind), Step(step), Status(status)
			e.Detail = nil
			if detail != "" {
				e.Detail = []byte(detail)
			}
			out = append(out, e)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cutover: journal of %q: %w", moveID, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrMoveNotFound, moveID)
	}
	return out, nil
}

// Open implements Journal.
func (j *PostgresJournal) Open(ctx context.Context, kind Kind) ([]string, error) {
	var ids []string
	err := retryControl(ctx, nil, func() error {
		rows, err := j.pool.Query(ctx, `SELECT move FROM `+j.schema+`.moves WHERE open AND kind = $1 ORDER BY started, move`, string(kind))
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cutover: open %ss: %w", kind, err)
	}
	return ids, nil
}
