package cutover

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RecordMeasurement implements MeasurementStore: one upsert, and the
// pair's measurements beyond the newest MeasurementsKeptPerPair deleted,
// in one transaction (through measurements_pair: its cost is what it
// deletes).
func (j *PostgresJournal) RecordMeasurement(ctx context.Context, m Measurement) error {
	detail, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("cutover: measurement of %q: %w", m.Move, err)
	}
	err = retryControl(ctx, nil, func() error {
		return pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+j.schema+`.measurements (move, kind, source, target, at, detail)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (move) DO UPDATE SET kind = excluded.kind, source = excluded.source,
					target = excluded.target, at = excluded.at, detail = excluded.detail`,
				m.Move, m.Kind, m.Source, m.Target, m.At, detail); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM `+j.schema+`.measurements WHERE source = $1 AND target = $2 AND at < (
				SELECT at FROM `+j.schema+`.measurements WHERE source = $1 AND target = $2
				ORDER BY at DESC OFFSET $3 - 1 LIMIT 1)`, m.Source, m.Target, MeasurementsKeptPerPair)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("cutover: record the measurement of %q: %w", m.Move, err)
	}
	return nil
}

// Measurements implements MeasurementStore: one index scan, newest
// first, that stops at Limit (measurements_pair for a pair,
// measurements_at for the fleet).
func (j *PostgresJournal) Measurements(ctx context.Context, opts *MeasurementsOpts) ([]Measurement, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	where, args := "true", []any{}
	if o.Source != "" || o.Target != "" {
		// Both, so that the pair's index serves; an empty one matches
		// nothing but runs to or from nowhere, which do not exist.
		where, args = "source = $1 AND target = $2", append(args, o.Source, o.Target)
	}
	if len(o.Kinds) > 0 {
		args = append(args, o.Kinds)
		where += fmt.Sprintf(" AND kind = ANY($%d)", len(args))
	}
	args = append(args, o.Limit)
	var out []Measurement
	err = retryControl(ctx, nil, func() error {
		rows, err := j.pool.Query(ctx, `SELECT detail FROM `+j.schema+`.measurements WHERE `+where+
			fmt.Sprintf(` ORDER BY at DESC LIMIT $%d`, len(args)), args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Measurement, error) {
			var m Measurement
			err := row.Scan(&m)
			return m, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cutover: read measurements: %w", err)
	}
	return out, nil
}
