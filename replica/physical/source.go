package physical

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/internal/connstring"
	"github.com/daisychain-db/daisychain/internal/pgclose"
	"github.com/daisychain-db/daisychain/internal/pgretry"
	"github.com/daisychain-db/daisychain/replica"
)

// source is how the conversion reaches the source instance: the admin
// connection for SQL, and what pg_basebackup gets.
type source struct {
	cfg      *pgx.ConnConfig // admin database (never a tenant's: a fence may close those)
	endpoint string          // host:port, for messages
	// backupConnString is Source without its password, with the slot
	// name as application_name (which -R copies into primary_conninfo,
	// so the replica's WAL sender is findable on the source).
	backupConnString string
	password         string // handed to pg_basebackup in PGPASSWORD, never on its command line
}

func parseSource(s, appName string) (*source, error) {
	cfg, err := pgx.ParseConfig(s)
	if err != nil {
		// pgx's error may quote the string, which holds a password.
		return nil, fmt.Errorf("%w: Source is not a valid connection string (URL or key=value)", replica.ErrInvalidSpec)
	}
	if cfg.Database == "" {
		cfg.Database = "postgres"
	}
	kw, err := connstring.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: Source is not a valid connection string (URL or key=value)", replica.ErrInvalidSpec)
	}
	return &source{
		cfg:              cfg,
		endpoint:         fmt.Sprintf("%s:%d", cfg.Host, cfg.Port),
		backupConnString: kw.Without("password").With("application_name", appName).String(),
		password:         cfg.Password,
	}, nil
}

func (s *source) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the source at %s: %w", s.endpoint, err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) { pgclose.Conn(conn, 5*time.Second) }

// retry runs op until it succeeds, fails permanently, or maxElapsed or
// ctx ends, with exponential backoff between tries.
func retry(ctx context.Context, maxElapsed time.Duration, op func() error) error {
	return pgretry.Retry(ctx, maxElapsed, 20*time.Millisecond, pgretry.Transient, op)
}

// dropSlot drops the conversion's slot on the source; a slot that is
// gone is fine. The slot stays active for a moment after its replica
// stopped streaming (the WAL sender notices the end of the connection);
// after a few seconds the WAL sender is ended, since only this
// conversion's replica uses the slot and it is stopped or promoted.
func (s *source) dropSlot(ctx context.Context, slot string) error {
	start := time.Now()
	err := retry(ctx, time.Minute, func() error {
		conn, err := s.connect(ctx)
		if err != nil {
			return err
		}
		defer closeConn(conn)
		if time.Since(start) > 3*time.Second {
			if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
				WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot); err != nil {
				return err
			}
		}
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		return err
	})
	if err != nil {
		return fmt.Errorf("drop replication slot %s on the source at %s (it keeps WAL on the source until dropped: "+
			"call Abort or Promote again, or SELECT pg_drop_replication_slot('%s')): %w", slot, s.endpoint, slot, err)
	}
	return nil
}
