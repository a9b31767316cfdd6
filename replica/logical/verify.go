package logical

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/daisychain-db/daisychain/replica"
)

// tableSum is what Verify compares of one table.
type tableSum struct {
	rows int64
	sum  string // numeric text; "" at VerifyCounts
}

// Verify implements replica.Stream. Each table (plain and partition leaf
// tables) is read once on each side, source and target at the same time,
// several tables at once. The checksum is the sum over all rows of a
// 64-bit hash of the row's text form: independent of row order and
// physical layout, and it changes when any value of any row does. The
// text form does not depend on either server's defaults: every
// connection of the stream sets the settings it depends on (see
// sessionParams).
//
// Unlogged tables are left out with Options.SkipUnlogged (they are not
// replicated). Materialized views are left out: a materialized view
// holds its query's result as of its last refresh, the source's as of
// whenever it was refreshed there, the target's as of the end of the
// initial copy, so they differ whenever the source's is stale, and
// neither is wrong.
func (s *stream) Verify(ctx context.Context, level replica.VerifyLevel) error {
	if _, err := s.state(); err != nil {
		return err
	}
	if level == replica.VerifyOff {
		return nil
	}
	if level != replica.VerifyCounts && level != replica.VerifyChecksums {
		return fmt.Errorf("logical: verify: unknown level %s", level)
	}
	return s.readSource(ctx, func(src querier, parallel int) error {
		return verifyDatabases(ctx, src, s.tgt, level, parallel, s.e.spec.SkipUnlogged)
	})
}

// verifyDatabases compares the tables of src and tgt, parallel tables at
// a time (both must allow that many concurrent queries), the unlogged
// ones too unless skipUnlogged. A failed query is the error; differences
// are ErrVerifyMismatch.
func verifyDatabases(ctx context.Context, src, tgt querier, level replica.VerifyLevel, parallel int, skipUnlogged bool) error {
	rows, err := src.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND `+userSchemas+` AND `+notExtensionMember("pg_class", "c.oid")+`
		AND (c.relpersistence = 'p' OR NOT $1)
		ORDER BY pg_relation_size(c.oid) DESC`, skipUnlogged)
	tables, err := collectErr[string](rows, err)
	if err != nil {
		return fmt.Errorf("logical: verify: list tables: %w", err)
	}
	type result struct {
		table    string
		src, tgt tableSum
		err      error
	}
	results := make([]result, len(tables))
	work := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := &results[i]
				r.table = tables[i]
				var inner sync.WaitGroup
				var srcErr, tgtErr error
				inner.Add(2)
				go func() { defer inner.Done(); r.src, srcErr = sumTable(ctx, src, r.table, level) }()
				go func() { defer inner.Done(); r.tgt, tgtErr = sumTable(ctx, tgt, r.table, level) }()
				inner.Wait()
				if srcErr != nil {
					r.err = fmt.Errorf("source: %w", srcErr)
				} else if tgtErr != nil {
					r.err = fmt.Errorf("target: %w", tgtErr)
				}
			}
		}()
	}
	for i := range tables {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("logical: verify: %w", err)
	}
	var mismatches []string
	for _, r := range results {
		switch {
		case r.err != nil && sqlState(r.err) == "42P01": // missing on the target
			mismatches = append(mismatches, fmt.Sprintf("%s: %v", r.table, r.err))
		case r.err != nil:
			return fmt.Errorf("logical: verify %s: %w", r.table, r.err)
		case r.src.rows != r.tgt.rows:
			mismatches = append(mismatches, fmt.Sprintf("%s: %d rows on the source, %d on the target", r.table, r.src.rows, r.tgt.rows))
		case r.src.sum != r.tgt.sum:
			mismatches = append(mismatches, fmt.Sprintf("%s: checksums differ (%d rows on each side)", r.table, r.src.rows))
		}
	}
	if len(mismatches) > 0 {
		slices.Sort(mismatches)
		return fmt.Errorf("%w at level %s: %s", replica.ErrVerifyMismatch, level, strings.Join(mismatches, "; "))
	}
	return nil
}

// sumTable counts (and checksums) one table; table is quoted.
func sumTable(ctx context.Context, db querier, table string, level replica.VerifyLevel) (tableSum, error) {
	var t tableSum
	if level == replica.VerifyCounts {
		err := db.QueryRow(ctx, "SELECT count(*) FROM ONLY "+table).Scan(&t.rows)
		return t, err
	}
	err := db.QueryRow(ctx, "SELECT count(*), coalesce(sum(hashtextextended(ROW(dc_row.*)::text, 0)), 0)::text FROM ONLY "+
		table+" AS dc_row").Scan(&t.rows, &t.sum)
	return t, err
}
