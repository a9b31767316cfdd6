package logical

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// Creating a logical replication slot (the stream's own, and one per
// table of the initial copy) waits until every transaction that had
// written when it began has ended, in every database of the server. A
// transaction left open stalls the stream for as long.

// longTransactions lists the transactions on the server of q that have
// written and have been open for longer than olderThan, prepared ones
// too: what a new replication slot would wait for.
func longTransactions(ctx context.Context, q querier, olderThan time.Duration) ([]replica.Blocker, error) {
	rows, err := q.Query(ctx, `SELECT pid, coalesce(datname, '')::text, coalesce(application_name, ''), coalesce(state, ''),
			extract(epoch FROM now() - xact_start)::float8
		FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
			AND xact_start < now() - make_interval(secs => $1)
		UNION ALL
		SELECT 0, database::text, 'prepared transaction ' || quote_literal(gid), 'prepared', extract(epoch FROM now() - prepared)::float8
		FROM pg_prepared_xacts WHERE prepared < now() - make_interval(secs => $1)
		ORDER BY 5 DESC`, olderThan.Seconds())
	return collectBlockers(rows, err)
}

// slotBlockers lists the transactions that the WAL senders of the
// stream's slots (its own, and its table-sync slots) wait for while
// they create them.
func (s *stream) slotBlockers(ctx context.Context) ([]replica.Blocker, error) {
	rows, err := s.adm.Query(ctx, `SELECT DISTINCT bp.pid, coalesce(b.datname, '')::text,
			coalesce(b.application_name, CASE WHEN bp.pid = 0 THEN 'a prepared transaction (see pg_prepared_xacts)' ELSE '' END),
			coalesce(b.state, ''), coalesce(extract(epoch FROM now() - b.xact_start), 0)::float8
		FROM pg_stat_activity w
		CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
		LEFT JOIN pg_stat_activity b ON b.pid = bp.pid
		WHERE w.backend_type = 'walsender' AND (w.application_name = $1 OR w.application_name LIKE $2)
		ORDER BY 5 DESC`, s.e.name, syncSlotPattern(s.m.SubOID, s.m.TargetSystem))
	return collectBlockers(rows, err)
}

func collectBlockers(rows pgx.Rows, err error) ([]replica.Blocker, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []replica.Blocker
	for rows.Next() {
		var b replica.Blocker
		var age float64
		if err := rows.Scan(&b.PID, &b.Database, &b.Application, &b.State, &age); err != nil {
			return nil, err
		}
		b.Age = time.Duration(age * float64(time.Second))
		out = append(out, b)
	}
	return out, rows.Err()
}
