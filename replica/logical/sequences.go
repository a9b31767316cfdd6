package logical

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SyncSequences implements replica.Stream.
func (s *stream) SyncSequences(ctx context.Context) error {
	if _, err := s.state(); err != nil {
		return err
	}
	type seqVal struct {
		name   string
		last   int64
		called bool
	}
	var vals []seqVal
	err := s.readSource(ctx, func(q querier, _ int) error {
		vals = vals[:0]
		rows, err := q.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'S' AND `+userSchemas+` AND `+notExtensionMember("pg_class", "c.oid")+` ORDER BY 1`)
		seqs, err := collectErr[string](rows, err)
		if err != nil {
			return fmt.Errorf("list sequences: %w", err)
		}
		for _, seq := range seqs {
			v := seqVal{name: seq}
			// seq is quoted by quote_ident above.
			if err := q.QueryRow(ctx, "SELECT last_value, is_called FROM "+seq).Scan(&v.last, &v.called); err != nil {
				return fmt.Errorf("read sequence %s: %w", seq, err)
			}
			vals = append(vals, v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("logical: sync sequences: %w", err)
	}
	if len(vals) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, v := range vals {
		batch.Queue(`SELECT setval($1::regclass, $2, $3)`, v.name, v.last, v.called)
	}
	if err := s.tgt.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("logical: set sequences on the target: %w", err)
	}
	s.e.log.Info("logical: sequences synced", "count", len(vals))
	return nil
}
