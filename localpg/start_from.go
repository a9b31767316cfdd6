package localpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// StartFrom creates and starts an instance whose data directory is made
// by fill instead of copied from localpg's initdb template: a standby
// made by pg_basebackup, or a restored backup. On error nothing is left
// behind: no process, no directory (whatever fill wrote included).
//
// fill gets the instance before its server runs. Its DataDir does not
// exist yet; the directory above it (Dir) belongs to the server's user,
// and Command runs PostgreSQL programs as that user, so that
//
//	inst.Command(ctx, "pg_basebackup", "-D", inst.DataDir(), "-R", ...)
//
// writes files the server can read. Until StartFrom returns, only Name,
// Dir, DataDir, SocketDir, LogPath, BinDir and Command are meaningful.
//
// After fill, StartFrom writes localpg's postgresql.conf (DefaultSettings,
// Config.Settings, the port and the socket directory) and pg_hba.conf over
// the ones fill left, and touches no other file: standby.signal,
// recovery.signal and postgresql.auto.conf (where pg_basebackup -R writes
// primary_conninfo and primary_slot_name) keep their effect. Settings in
// postgresql.auto.conf override postgresql.conf, as always. A standby
// needs max_connections, max_worker_processes, max_wal_senders,
// max_prepared_transactions and max_locks_per_transaction at least as
// high as its primary's: raise them in Config.Settings when the primary's
// are higher than DefaultSettings.
//
// It returns once the server accepts connections, as a primary or as a
// hot standby (hot_standby must stay on, its default).
//
// The roles are those of the data directory fill made: Config.Password is
// not set on the server (a standby cannot write). It only chooses
// authentication, as for Start (SCRAM over TCP when set, trust when
// empty), and goes into ConnString, which connects as SuperuserDefault:
// give the password that role has in the copied data, or use ConnStringAs.
func StartFrom(ctx context.Context, cfg *Config, fill func(ctx context.Context, inst *Instance) error) (*Instance, error) {
	if fill == nil {
		return nil, errors.New("localpg: StartFrom: fill is nil: pass the function that makes the data directory")
	}
	c, binDir, as, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	return build(c, binDir, as, "started from a filled data directory",
		func(inst *Instance) error { return inst.createFrom(ctx, fill) })
}

func (i *Instance) createFrom(ctx context.Context, fill func(ctx context.Context, inst *Instance) error) error {
	if err := os.Chmod(i.dir, 0o755); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if err := os.Mkdir(i.SocketDir(), 0o755); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	// Before fill: its programs run as the server's user and create
	// DataDir inside the instance's directory.
	if err := i.as.chownTree(i.dir); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if err := fill(ctx, i); err != nil {
		return fmt.Errorf("localpg: %s: fill the data directory: %w", i.cfg.Name, err)
	}
	if _, err := os.Stat(filepath.Join(i.DataDir(), "PG_VERSION")); err != nil {
		return fmt.Errorf("localpg: %s: fill left no data directory in %s (no PG_VERSION): "+
			"it must create DataDir, as pg_basebackup -D does", i.cfg.Name, i.DataDir())
	}
	hba := filepath.Join(i.DataDir(), "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(i.hba()), 0o600); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if err := i.as.chownTree(hba); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return i.startOnFreePort(ctx)
}
