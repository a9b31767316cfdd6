package logical

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/replica"
)

// targetSnapshot is the target database's state held for VerifySnapshot:
// a REPEATABLE READ transaction kept open on a connection of the pool.
type targetSnapshot struct {
	id   string
	conn *pgxpool.Conn
	tx   pgx.Tx
}

// SnapshotTarget takes a snapshot of the target database and holds it,
// for VerifySnapshot to compare with the source once the application
// writes to the target again. A cutover takes it in its window, after
// WaitFor(Barrier): it costs two round trips on a connection the stream
// already has open, whatever the size of the data, so the strongest
// verification costs the window nothing. The snapshot is a REPEATABLE
// READ, READ ONLY transaction on the target, its snapshot exported (the
// ID returned); it holds back vacuum on the target until VerifySnapshot,
// Finish, Abort or Close ends it, and a new SnapshotTarget ends the one
// before. It is an optional capability of the stream, found by type
// assertion:
//
//	interface {
//		SnapshotTarget(ctx context.Context) (string, error)
//		VerifySnapshot(ctx context.Context, snapshot string, level replica.VerifyLevel) error
//	}
func (s *stream) SnapshotTarget(ctx context.Context) (string, error) {
	if _, err := s.state(); err != nil {
		return "", err
	}
	s.endSnapshot(ctx)
	conn, err := s.tgt.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("logical: snapshot of the target: %w", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Release()
		return "", fmt.Errorf("logical: snapshot of the target: %w", err)
	}
	var id string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		conn.Release()
		return "", fmt.Errorf("logical: snapshot of the target: %w", err)
	}
	s.snapMu.Lock()
	s.snap = &targetSnapshot{id: id, conn: conn, tx: tx}
	s.snapMu.Unlock()
	return id, nil
}

// VerifySnapshot compares the source database with the target as of the
// snapshot SnapshotTarget took, at level, as Verify compares them (see
// Verify): the target read in the snapshot's transaction, the source
// through the connection the stream holds, which a fence spares (see
// FencePIDs) and the fenced source cannot change under. A cutover calls
// it after its switch, before Finish, whatever the size of the data: the
// application is not waiting. Differences are ErrVerifyMismatch naming
// the tables. It ends the snapshot; a snapshot that is not the one held
// (ended, or taken by another handle of the stream) is an error.
func (s *stream) VerifySnapshot(ctx context.Context, snapshot string, level replica.VerifyLevel) error {
	if _, err := s.state(); err != nil {
		return err
	}
	if level != replica.VerifyCounts && level != replica.VerifyChecksums && level != replica.VerifyOff {
		return fmt.Errorf("logical: verify: unknown level %s", level)
	}
	s.snapMu.Lock()
	snap := s.snap
	s.snapMu.Unlock()
	if snap == nil || snap.id != snapshot {
		return fmt.Errorf("logical: verify: snapshot %q is not held by this stream (ended, or taken by another handle)", snapshot)
	}
	defer s.endSnapshot(ctx)
	if level == replica.VerifyOff {
		return nil
	}
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held == nil || s.held.IsClosed() {
		return errors.New("logical: verify: the stream's connection to the source is gone, so the frozen source cannot be read")
	}
	return verifyDatabases(ctx, s.held, snap.tx, level, 1, s.e.spec.SkipUnlogged)
}

// endSnapshot ends the snapshot held, if any.
func (s *stream) endSnapshot(ctx context.Context) {
	s.snapMu.Lock()
	snap := s.snap
	s.snap = nil
	s.snapMu.Unlock()
	if snap != nil {
		_ = snap.tx.Rollback(context.WithoutCancel(ctx))
		snap.conn.Release()
	}
}
