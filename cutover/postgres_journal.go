package cutover

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/internal/pgschema"
)

// SchemaDefault is the control database schema of the journal unless
// PostgresJournalConfig says otherwise; the same as the catalog's.
const SchemaDefault = "daisychain"

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
}

// PostgresJournalConfig configures a PostgresJournal; nil means defaults.
type PostgresJournalConfig struct {
	// Schema holds the journal's tables. Default SchemaDefault.
	Schema string
}

// PostgresJournal is a Journal in the control database. Each Append is
// one committed transaction, so an entry that Append returned survives a
// crash of this process or of the control database.
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
	schema := SchemaDefault
	if cfg != nil && cfg.Schema != "" {
		schema = cfg.Schema
	}
	if err := pgschema.Migrate(ctx, pool, schema, "journal", journalMigrations); err != nil {
		return nil, fmt.Errorf("cutover: %w", err)
	}
	return &PostgresJournal{pool: pool, schema: pgx.Identifier{schema}.Sanitize()}, nil
}

// Append implements Journal.
func (j *PostgresJournal) Append(ctx context.Context, e Entry) (Entry, error) {
	if e.Move == "" || e.Step == "" || e.Status == "" {
		return Entry{}, fmt.Errorf("cutover: journal entry needs a move, a step and a status: %+v", e)
	}
	err := pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		// The moves row serializes appends to one move and keeps the
		// list of open moves cheap to read.
		if _, err := tx.Exec(ctx, `INSERT INTO `+j.schema+`.moves (move, open) VALUES ($1, $2)
			ON CONFLICT (move) DO UPDATE SET open = excluded.open`, e.Move, !e.Step.terminal()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO `+j.schema+`.journal (move, seq, step, status, detail)
			SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4 FROM `+j.schema+`.journal WHERE move = $1
			RETURNING seq, at`, e.Move, string(e.Step), string(e.Status), nullJSON(e.Detail)).Scan(&e.Seq, &e.At)
	})
	if err != nil {
		return Entry{}, fmt.Errorf("cutover: journal %q %s %s: %w", e.Move, e.Step, e.Status, err)
	}
	return e, nil
}

func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// Entries implements Journal.
func (j *PostgresJournal) Entries(ctx context.Context, moveID string) ([]Entry, error) {
	rows, err := j.pool.Query(ctx, `SELECT move, seq, step, status, at, coalesce(detail::text, '')
		FROM `+j.schema+`.journal WHERE move = $1 ORDER BY seq`, moveID)
	if err != nil {
		return nil, fmt.Errorf("cutover: journal of %q: %w", moveID, err)
	}
	var out []Entry
	var step, status, detail string
	var e Entry
	_, err = pgx.ForEachRow(rows, []any{&e.Move, &e.Seq, &step, &status, &e.At, &detail}, func() error {
		e.Step, e.Status = Step(step), Status(status)
		e.Detail = nil
		if detail != "" {
			e.Detail = []byte(detail)
		}
		out = append(out, e)
		return nil
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
func (j *PostgresJournal) Open(ctx context.Context) ([]string, error) {
	rows, err := j.pool.Query(ctx, `SELECT move FROM `+j.schema+`.moves WHERE open ORDER BY started, move`)
	if err != nil {
		return nil, fmt.Errorf("cutover: open moves: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("cutover: open moves: %w", err)
	}
	return ids, nil
}
