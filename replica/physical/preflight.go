package physical

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/internal/slotwal"
	"github.com/daisychain-db/daisychain/replica"
)

// hotStandbyParams must be at least as high on a standby as on its
// primary, or the standby refuses to start.
var hotStandbyParams = []string{"max_connections", "max_worker_processes", "max_wal_senders",
	"max_prepared_transactions", "max_locks_per_transaction"}

// facts is what preflight learned about the source.
type facts struct {
	slotExists bool             // an inactive physical slot of this ID, left by an earlier attempt
	settings   map[string]int64 // hotStandbyParams on the source
}

// preflight checks everything the conversion needs on the source,
// changing nothing, and lists every problem.
func preflight(ctx context.Context, src *source, slot string, localMajor int, allowUnbounded bool) (*replica.PreflightReport, *facts) {
	r := &replica.PreflightReport{}
	f := &facts{settings: map[string]int64{}}
	conn, err := src.connect(ctx)
	if err != nil {
		r.Add("connection", "%v: fix Source", err)
		return r, f
	}
	defer closeConn(conn)

	var canReplicate, inRecovery bool
	var walLevel string
	var versionNum, maxSenders, senders, maxSlots, slots int
	err = conn.QueryRow(ctx, `SELECT r.rolsuper OR r.rolreplication, current_setting('wal_level'),
			current_setting('server_version_num')::int, pg_is_in_recovery(),
			current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_replication)::int,
			current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&canReplicate, &walLevel, &versionNum, &inRecovery,
		&maxSenders, &senders, &maxSlots, &slots)
	var keepMB int64
	if err == nil {
		keepMB, err = slotwal.MaxKeepMB(ctx, conn)
	}
	if err != nil {
		r.Add("connection", "read the source's settings: %v", err)
		return r, f
	}
	if keepMB < 0 && !allowUnbounded {
		r.Add("max_slot_wal_keep_size", "the source's max_slot_wal_keep_size is -1 (unlimited): if the replica stops, or this process dies "+
			"and leaves the conversion's slot, the source keeps WAL until its disk is full and it stops: bound it, with room on the source's "+
			"disk for the WAL written during the base backup and the cutover (ALTER SYSTEM SET max_slot_wal_keep_size = '16GB'; SELECT pg_reload_conf()), "+
			"or set Converter.AllowUnboundedSlotWAL to accept the risk")
	}
	if !canReplicate {
		r.Add("privileges", "role %q has neither REPLICATION nor SUPERUSER: ALTER ROLE %s REPLICATION, or use another role in Source",
			src.cfg.User, pgx.Identifier{src.cfg.User}.Sanitize())
	}
	if walLevel == "minimal" {
		r.Add("wal_level", "wal_level is minimal: set it to replica or logical in the source's postgresql.conf and restart it")
	}
	if inRecovery {
		r.Add("source", "the source is a standby: convert its primary")
	}
	if major := versionNum / 10000; major != localMajor {
		r.Add("version", "the source runs PostgreSQL %d and the local server binaries are %d: a physical replica needs the "+
			"same major version; install PostgreSQL %d and point Converter.Replica.BinDir at it", major, localMajor, major)
	}
	if free := maxSenders - senders; free < 2 {
		r.Add("max_wal_senders", "%d of %d WAL senders are free, the base backup needs 2: raise max_wal_senders on the source (restart)",
			max(free, 0), maxSenders)
	}

	var slotType string
	var activePID *int32
	switch err := conn.QueryRow(ctx, `SELECT slot_type, active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&slotType, &activePID); {
	case errors.Is(err, pgx.ErrNoRows):
		if slots >= maxSlots {
			r.Add("max_replication_slots", "all %d replication slots are in use: drop an unused one or raise max_replication_slots on the source (restart)", maxSlots)
		}
	case err != nil:
		r.Add("slot", "look for slot %s: %v", slot, err)
	case slotType != "physical":
		r.Add("slot", "a %s slot named %s exists on the source: this conversion ID is taken by something else; choose another ID", slotType, slot)
	case activePID != nil:
		r.Add("slot", "slot %s of this conversion ID is in use by process %d on the source: the conversion runs elsewhere; Abort it there, "+
			"or end that process", slot, *activePID)
	default:
		f.slotExists = true
		r.Notes = append(r.Notes, fmt.Sprintf("slot %s exists (an earlier attempt with this ID): it is reused", slot))
	}

	var spaces *string
	if err := conn.QueryRow(ctx, `SELECT string_agg(spcname, ', ' ORDER BY spcname) FROM pg_tablespace
		WHERE spcname NOT IN ('pg_default', 'pg_global')`).Scan(&spaces); err != nil {
		r.Add("tablespaces", "list tablespaces: %v", err)
	} else if spaces != nil {
		r.Add("tablespaces", "the source has tablespaces (%s): a local replica on the same machine would share their directories "+
			"with the source; move their objects to pg_default, or convert with another Converter", *spaces)
	}

	rows, err := conn.Query(ctx, `SELECT name, setting::int8 FROM pg_settings WHERE name = ANY($1)`, hotStandbyParams)
	if err == nil {
		var name string
		var v int64
		_, err = pgx.ForEachRow(rows, []any{&name, &v}, func() error { f.settings[name] = v; return nil })
	}
	if err != nil {
		r.Add("settings", "read %v: %v", hotStandbyParams, err)
	}

	// A replication connection is what pg_basebackup opens: it fails on
	// pg_hba.conf or a password where SQL connections pass.
	if err := checkReplicationConnection(ctx, src); err != nil {
		r.Add("replication connection", "%v: allow it in the source's pg_hba.conf (host replication <role> <address> ...)", err)
	}
	return r, f
}

func checkReplicationConnection(ctx context.Context, src *source) error {
	cfg := src.cfg.Copy()
	cfg.RuntimeParams["replication"] = "true"
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open a replication connection to %s: %w", src.endpoint, err)
	}
	defer closeConn(conn)
	if _, err := conn.PgConn().Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
		return fmt.Errorf("IDENTIFY_SYSTEM on a replication connection to %s: %w", src.endpoint, err)
	}
	return nil
}
