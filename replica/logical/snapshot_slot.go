package logical

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jackc/pgx/v5/pgconn"
)

// exportedSlot is the stream's slot, created on a replication connection
// with its snapshot exported: the snapshot shows exactly what committed
// before the slot's consistent point, and the slot streams exactly what
// commits after it, so data copied in that snapshot and then the stream
// from the slot miss nothing and apply nothing twice. The snapshot lives
// as long as conn runs no other command and stays open: the copy's
// sessions import it (SET TRANSACTION SNAPSHOT) first, and conn is closed
// only once the copy is done.
type exportedSlot struct {
	conn     *pgconn.PgConn
	snapshot string // the exported snapshot's name
	lsn      string // the slot's consistent point
}

// createExportedSlot creates the stream's slot with CREATE_REPLICATION_SLOT
// ... (SNAPSHOT 'export') on a connection in WAL sender mode to the source
// tenant database. The connection's application_name is the slot's name,
// as a subscription's WAL sender's is, so that Progress names the
// transactions the creation waits for (see slotBlockers).
func (e *env) createExportedSlot(ctx context.Context) (*exportedSlot, error) {
	cfg, err := pgconn.ParseConfig(e.srcDB.String())
	if err != nil {
		return nil, errors.New("source connection string is invalid")
	}
	setSessionParams(cfg.RuntimeParams)
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = e.name
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to source database %q at %s in WAL sender mode: %w", e.srcDB["dbname"], e.srcDB.Endpoint(), err)
	}
	// The slot's name is made of [a-z0-9_] (objectName); the replication
	// grammar takes it quoted as an identifier.
	res, err := conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+ident(e.name)+" LOGICAL pgoutput (SNAPSHOT 'export')").ReadAll()
	if err == nil && (len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3) {
		err = errors.New("CREATE_REPLICATION_SLOT returned no snapshot")
	}
	if err != nil {
		closePgConn(ctx, conn)
		return nil, fmt.Errorf("create replication slot %s: %w", e.name, err)
	}
	row := res[0].Rows[0]
	return &exportedSlot{conn: conn, lsn: string(row[1]), snapshot: string(row[2])}, nil
}

// close ends the replication connection, and with it the exported
// snapshot; the slot stays.
func (x *exportedSlot) close(ctx context.Context) {
	if x != nil {
		closePgConn(ctx, x.conn)
	}
}

func closePgConn(ctx context.Context, conn *pgconn.PgConn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(cctx)
}

// resetTarget readies the target for a copy started over, after one that
// did not finish (in this process or one that died): a half-copied table
// must never be taken for done. The slot of the copy before is dropped
// (its snapshot died with its session, and a new slot and snapshot
// replace both), the foreign keys built meanwhile are dropped (the
// post-data restore builds them again, after the primary and unique keys
// they rest on, which it drops and builds again too), and every table to
// be copied is truncated. It holds postMu so that no post-data restore
// runs meanwhile.
func (s *stream) resetTarget(ctx context.Context, tables []string) error {
	s.postMu.Lock()
	defer s.postMu.Unlock()
	s.postStale = true
	rows, err := s.tgt.Query(ctx, `SELECT format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', co.conrelid::regclass, co.conname)
		FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
		WHERE co.contype = 'f' AND co.conparentid = 0 AND `+userSchemas)
	if err != nil {
		return fmt.Errorf("list the target's foreign keys: %w", err)
	}
	drops, err := collect[string](rows)
	if err != nil {
		return fmt.Errorf("list the target's foreign keys: %w", err)
	}
	for _, q := range drops {
		if _, err := s.tgt.Exec(ctx, q); err != nil {
			return fmt.Errorf("drop a foreign key on the target before the copy starts over: %w", err)
		}
	}
	if len(tables) == 0 {
		return nil
	}
	// Every name is schema-qualified and quoted by quote_ident. No
	// trigger of the target's fires, as none fires for the apply worker.
	err = pgx.BeginFunc(ctx, s.tgt, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(tables, ", "))
		return err
	})
	if err != nil {
		return fmt.Errorf("truncate the target's tables before the copy starts over: %w", err)
	}
	s.e.log.Info("logical: the target's tables were truncated for the copy to start over", "tables", len(tables))
	return nil
}
