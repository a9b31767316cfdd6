package logical

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// refreshMatviews populates the target's materialized views that are
// populated on the source: pg_dump --schema-only creates them WITH NO
// DATA, and logical replication does not carry them. Each is computed
// from the target's tables, which the initial copy has filled. They go
// in creation order, and those that fail (one that reads another not yet
// populated) again after the others, until a pass populates none.
func (s *stream) refreshMatviews(ctx context.Context) error {
	var views []string
	err := s.readSource(ctx, func(q querier, _ int) (err error) {
		rows, err := q.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'm' AND c.relispopulated AND `+userSchemas+` AND `+notExtensionMember("pg_class", "c.oid")+`
			ORDER BY c.oid`)
		views, err = collectErr[string](rows, err)
		return err
	})
	if err != nil {
		return fmt.Errorf("list the source's materialized views: %w", err)
	}
	t0 := time.Now()
	for pending := views; len(pending) > 0; {
		var failed []string
		var errs []error
		for _, v := range pending {
			// v is quoted by quote_ident above.
			if _, err := s.tgt.Exec(ctx, "REFRESH MATERIALIZED VIEW "+v); err != nil {
				if transient(err) || ctx.Err() != nil {
					return err
				}
				failed = append(failed, v)
				errs = append(errs, fmt.Errorf("%s: %w", v, err))
			}
		}
		if len(failed) == len(pending) {
			return fmt.Errorf("refresh materialized views on the target: %w", errors.Join(errs...))
		}
		pending = failed
	}
	if len(views) > 0 {
		s.e.log.Info("logical: materialized views refreshed", "count", len(views), "took", time.Since(t0))
	}
	return nil
}
