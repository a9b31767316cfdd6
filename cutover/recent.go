package cutover

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecentLimitDefault is how many journals Recent lists when
// RecentOpts.Limit is 0.
const RecentLimitDefault = 20

// RecentLister is an optional capability of a Journal, found by type
// assertion: the newest journals, open or over, for an operator's status.
// PostgresJournal and MemoryJournal have it. Its cost grows with what it
// returns, not with the journal's history.
type RecentLister interface {
	// Recent lists journals newest first (by when their first entry was
	// written), at most opts.Limit of them.
	Recent(ctx context.Context, opts *RecentOpts) ([]Journaled, error)
}

// RecentOpts bounds Recent; nil means the defaults.
type RecentOpts struct {
	// Limit is the most journals listed. Default RecentLimitDefault;
	// negative is refused.
	Limit int
	// Since, if set, leaves out journals begun before it.
	Since time.Time
	// Kind, if set, lists journals of that kind only.
	Kind Kind
}

// Journaled is one journal as Recent lists it; Journal.Entries has its
// steps.
type Journaled struct {
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Started is when its first entry was written.
	Started time.Time `json:"started"`
	// Open is true until its last entry is Terminal.
	Open bool `json:"open"`
}

func (o *RecentOpts) withDefaults() (RecentOpts, error) {
	var out RecentOpts
	if o != nil {
		out = *o
	}
	if out.Limit < 0 {
		return out, fmt.Errorf("%w: RecentOpts.Limit is %d: it must not be negative (0 means %d)", ErrInvalidConfig, out.Limit, RecentLimitDefault)
	}
	switch out.Kind {
	case "", KindMove, KindChain, KindDrain:
	default:
		return out, fmt.Errorf("%w: RecentOpts.Kind %q is not a kind (want %q, %q, %q or empty for all)", ErrInvalidConfig, out.Kind, KindMove, KindChain, KindDrain)
	}
	if out.Limit == 0 {
		out.Limit = RecentLimitDefault
	}
	return out, nil
}

var (
	_ RecentLister = (*MemoryJournal)(nil)
	_ RecentLister = (*PostgresJournal)(nil)
)

// Recent implements RecentLister.
func (j *MemoryJournal) Recent(_ context.Context, opts *RecentOpts) ([]Journaled, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Journaled
	// order is by first append, so the newest are at its end.
	for i := len(j.order) - 1; i >= 0 && len(out) < o.Limit; i-- {
		es := j.entries[j.order[i]]
		if es[0].At.Before(o.Since) {
			break
		}
		if o.Kind != "" && es[0].Kind != o.Kind {
			continue
		}
		out = append(out, Journaled{ID: j.order[i], Kind: es[0].Kind, Started: es[0].At, Open: !es[len(es)-1].Terminal()})
	}
	return out, nil
}

// Recent implements RecentLister: one index scan of the moves table
// (moves_started), newest first, that stops at Limit.
func (j *PostgresJournal) Recent(ctx context.Context, opts *RecentOpts) ([]Journaled, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var since any
	if !o.Since.IsZero() {
		since = o.Since
	}
	var out []Journaled
	err = retryControl(ctx, nil, func() error {
		rows, err := j.pool.Query(ctx, `SELECT move, kind, started, open FROM `+j.schema+`.moves
			WHERE ($1::timestamptz IS NULL OR started >= $1) AND ($2 = '' OR kind = $2)
			ORDER BY started DESC, move DESC LIMIT $3`, since, string(o.Kind), o.Limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Journaled, error) {
			var r Journaled
			var kind string
			err := row.Scan(&r.ID, &kind, &r.Started, &r.Open)
			r.Kind = Kind(kind)
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cutover: recent journals: %w", err)
	}
	return out, nil
}
