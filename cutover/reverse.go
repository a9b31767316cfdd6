package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/replica"
)

// The steps of a move that make its reverse stream (see revert.go for
// the design): one before the window, one in it, one after the forward
// stream ended.

// reverseWanted says whether a new move makes a reverse stream: a tenant
// move, not turned off, whose Provider can.
func (m *Mover) reverseWanted() bool {
	_, ok := m.cfg.Provider.(ReverseProvider)
	return !m.cfg.NoReverse && ok
}

// reverseDetail is StepReversePrepare's finished detail.
type reverseDetail struct {
	// Connect lists who could connect to the source database before the
	// move: the grants a Revert gives back.
	Connect []string `json:"connect"`
}

// prepareReverse reads who may connect to the source database, and
// makes the reverse's publication in the target database.
func (c *streamCopy) prepareReverse(ctx context.Context) (any, error) {
	maker, ok := c.stream.(ReverseMaker)
	if !ok {
		return nil, fmt.Errorf("the stream (%T) cannot make its reverse (no PrepareReverse): set Config.NoReverse", c.stream)
	}
	conn, err := connectAdmin(ctx, c.r.src, c.r.p.Database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	grantees, err := connectGrantees(ctx, conn, c.r.p.Database)
	if err != nil {
		return nil, err
	}
	c.reversePrepared = true
	if err := maker.PrepareReverse(ctx); err != nil {
		return nil, err
	}
	c.grantees = grantees
	return reverseDetail{Connect: grantees}, nil
}

// readReverseStart reads where the reverse starts: in the window, once
// the target applied the barrier, before the switch, whose started entry
// journals it (switchRecord). One read; nothing is written here.
func (c *streamCopy) readReverseStart(ctx context.Context) (any, error) {
	pos, err := c.stream.(ReverseMaker).ReverseStart(ctx)
	c.reverseFrom = pos
	return nil, err
}

// recordReverseStart records where the reverse starts with the
// Provider: after the switch (so outside the window), before the forward
// stream is finished.
func (c *streamCopy) recordReverseStart(ctx context.Context) (replica.Position, error) {
	rp, ok := c.r.m.cfg.Provider.(ReverseProvider)
	if !ok {
		return 0, fmt.Errorf("the Provider (%T) made a reverse stream but cannot record where it starts", c.r.m.cfg.Provider)
	}
	pos, err := rp.RecordReverseStart(ctx, c.spec(), c.reverseFrom)
	if err != nil {
		return 0, fmt.Errorf("record where the reverse starts: %w", err)
	}
	return pos, nil
}

// switchDetail is the switch's started entry: where a reverse starts,
// read in the window (see readReverseStart).
type switchDetail struct {
	ReverseFrom string `json:"reverse_from,omitempty"`
}

// switchRecord is the switch's started detail.
func (r *run) switchRecord() (any, error) {
	if sc, ok := r.copy.(*streamCopy); ok && sc.reverseFrom != 0 {
		return switchDetail{ReverseFrom: sc.reverseFrom.String()}, nil
	}
	return nil, nil
}

// journaledReverseFrom reads where the reverse starts from the switch's
// started entry; 0 when the run did not journal one (it had not switched,
// or was journaled before positions were).
func journaledReverseFrom(entries []Entry) (replica.Position, error) {
	for _, e := range entries {
		if e.Step == StepSwitch && e.Status == StatusStarted && len(e.Detail) > 0 {
			var d switchDetail
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				return 0, fmt.Errorf("the journaled %s detail is unreadable: %w", StepSwitch, err)
			}
			if d.ReverseFrom != "" {
				return replica.ParsePosition(d.ReverseFrom)
			}
		}
	}
	return 0, nil
}

// startReverse fences the source copy by privileges and starts the
// reverse: after the switch, once the forward stream is finished (its
// subscription gone, so that nothing the reverse applies comes back).
func (c *streamCopy) startReverse(ctx context.Context) (any, error) {
	if c.r.m.cfg.NoReverse {
		// Resumed by a mover that makes no reverse streams (the way out
		// for a move whose reverse cannot start: its source instance is
		// lost, say): the move ends without one, the source copy fenced
		// as the window left it.
		if err := c.abortReverse(ctx); err != nil {
			return nil, err
		}
		return map[string]string{"skipped": reverseSkipped}, nil
	}
	if err := fenceByPrivileges(ctx, c.r.src, c.r.p.Database); err != nil {
		return nil, err
	}
	s, err := c.r.m.cfg.Provider.(ReverseProvider).StartReverse(ctx, c.spec())
	if err != nil {
		return nil, err
	}
	_ = s.Close() // the reverse runs in the servers; a Revert opens it again
	c.r.rep.Reverse = true
	return map[string]any{"revoked_connect": c.grantees}, nil
}

// reverseSkipped is StepReverse's detail when a move ended without its
// reverse stream.
const reverseSkipped = "Config.NoReverse when the move was resumed"

// abortReverse removes the reverse, if the run may have begun it: before
// the stream is aborted, whose target database cannot be dropped while
// the reverse's slot is in it.
func (c *streamCopy) abortReverse(ctx context.Context) error {
	if !c.reversePrepared {
		return nil
	}
	rp, ok := c.r.m.cfg.Provider.(ReverseProvider)
	if !ok {
		return fmt.Errorf("the Provider (%T) made a reverse stream but cannot remove it now", c.r.m.cfg.Provider)
	}
	if err := rp.AbortReverse(ctx, c.spec()); err != nil {
		return fmt.Errorf("remove the reverse stream: %w", err)
	}
	return nil
}

// reverseCapacity lists, read-only, what the reverse stream would lack
// once the move is done: a replication slot and WAL senders on the target
// (its slot's, and a Revert's session to the fenced target), and a
// logical replication worker on the source (its subscription's apply
// worker). Each held by a done move until it is retired or reverted.
func (r *run) reverseCapacity(ctx context.Context) []string {
	var problems []string
	check := func(inst fleet.Instance, query, format string) {
		conn, err := connectAdmin(ctx, inst, r.p.Database)
		if err != nil {
			problems = append(problems, fmt.Sprintf("reverse stream: %v", err))
			return
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var free, max int
		if err := conn.QueryRow(ctx, query).Scan(&free, &max); err != nil {
			problems = append(problems, fmt.Sprintf("reverse stream: %s: %v", inst.ID, err))
			return
		}
		if free < 1 {
			problems = append(problems, fmt.Sprintf(format, inst.ID, max)+": raise it, retire done moves, or set Config.NoReverse")
		}
	}
	check(r.tgt, `SELECT least(current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
			current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication) - 1),
		least(current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int)`,
		"reverse stream: target %s has no replication slot or no two WAL senders free (max_replication_slots, max_wal_senders: %d at most)")
	check(r.src, `SELECT current_setting('max_logical_replication_workers')::int - (SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL),
		current_setting('max_logical_replication_workers')::int`,
		"reverse stream: source %s has no logical replication worker free (max_logical_replication_workers %d)")
	return problems
}

// earlierReverse lists, read-only, the reverse slots of earlier moves in
// the source database: the tenant came here by a move that is neither
// retired nor reverted, and a logical slot keeps its database from being
// dropped, so this move could never be retired.
func (r *run) earlierReverse(ctx context.Context) []string {
	conn, err := connectAdmin(ctx, r.src, r.p.Database)
	if err != nil {
		return []string{fmt.Sprintf("reverse streams: %v", err)}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT slot_name::text FROM pg_replication_slots
		WHERE database = $1 AND slot_name LIKE 'dcr\_%' ORDER BY 1`, r.p.Database)
	slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
	switch {
	case err != nil:
		return []string{fmt.Sprintf("reverse streams: %s: %v", r.src.ID, err)}
	case len(slots) > 0:
		return []string{fmt.Sprintf("source database %q on %s holds the reverse slot %s of the move that brought the tenant here: Retire that move (or Revert it) first",
			r.p.Database, r.src.ID, joinFirst(slots, 3))}
	}
	return nil
}

// reverseStreamsOn lists, read-only, the reverse streams that an
// instance to be converted takes part in: the slots of moves into it (a
// replica does not carry logical slots, so they would end there, and the
// old instance would keep their WAL) and the subscriptions of moves out of
// it (a replica carries those, and once promoted would apply from the same
// slots as the old instance). Retire or Revert those moves first.
func reverseStreamsOn(ctx context.Context, inst fleet.Instance) []string {
	conn, err := connectAdmin(ctx, inst)
	if err != nil {
		return []string{fmt.Sprintf("reverse streams: %v", err)}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var slots, subs []string
	err = conn.QueryRow(ctx, `SELECT
		ARRAY(SELECT slot_name::text FROM pg_replication_slots WHERE slot_name LIKE 'dcr\_%' ORDER BY 1),
		ARRAY(SELECT subname::text FROM pg_subscription WHERE subname LIKE 'dcr\_%' ORDER BY 1)`).Scan(&slots, &subs)
	if err != nil {
		return []string{fmt.Sprintf("reverse streams: %s: %v", inst.ID, err)}
	}
	var problems []string
	if len(slots) > 0 {
		problems = append(problems, fmt.Sprintf("%s holds the reverse slots of %d move(s) into it (%s): Retire or Revert them first (a replica does not carry logical slots)",
			inst.ID, len(slots), joinFirst(slots, 3)))
	}
	if len(subs) > 0 {
		problems = append(problems, fmt.Sprintf("%s holds the reverse subscriptions of %d move(s) out of it (%s): Retire or Revert them first (a promoted replica would apply from their slots too)",
			inst.ID, len(subs), joinFirst(subs, 3)))
	}
	return problems
}

// journaledGrantees reads who could connect to the source database
// before the move, from StepReversePrepare's detail.
func journaledGrantees(entries []Entry) ([]string, error) {
	for _, e := range entries {
		if e.Step == StepReversePrepare && e.Status == StatusFinished {
			var d reverseDetail
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				return nil, fmt.Errorf("the journaled %s detail is unreadable: %w", StepReversePrepare, err)
			}
			return d.Connect, nil
		}
	}
	return nil, errors.New("the journal has no finished " + string(StepReversePrepare))
}

// reverseOf is the forward stream's spec of a move, as its Revert,
// Retire and guard name its reverse.
func reverseOf(p plan, src, tgt string) replica.Spec {
	return replica.Spec{ID: p.Move, Source: src, SourceDatabase: p.Database, Target: tgt, TargetDatabase: p.Database}
}
