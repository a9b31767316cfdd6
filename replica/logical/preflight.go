package logical

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/internal/pgbin"
	"github.com/daisychain-db/daisychain/internal/slotwal"
	"github.com/daisychain-db/daisychain/replica"
)

// facts are what preflight learned that Start needs.
type facts struct {
	marker       *marker // the target database's stream marker, if this stream's
	record       *record // the stream's record on the source: an earlier start left it
	targetExists bool
	noIdentity   []string // tables without a replica identity, schema-qualified and quoted
	locale       dbLocale // the source database's
}

// preflight checks spec without changing anything. A resumed stream
// (the target database carries this stream's marker) skips the checks
// that only a new stream needs.
func (e *env) preflight(ctx context.Context) (*replica.PreflightReport, *facts) {
	r := &replica.PreflightReport{}
	f := &facts{}

	src, err := connect(ctx, e.srcDB, "source")
	if err != nil {
		r.Add("source connection", "%v: check Spec.Source and Spec.SourceDatabase", err)
	}
	defer closeConn(src)
	tgt, err := connect(ctx, e.tgtAdmin, "target")
	if err != nil {
		r.Add("target connection", "%v: check Spec.Target (it must name a database that exists, such as postgres)", err)
	}
	defer closeConn(tgt)

	// The target database: this stream's, absent, empty, or refused.
	aborted := false
	if tgt != nil {
		var comment *string
		err := tgt.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`,
			e.spec.TargetDatabase).Scan(&comment)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			r.Add("target database", "cannot read pg_database on the target: %v", err)
		default:
			f.targetExists = true
			if m, ok := parseMarker(deref(comment)); ok {
				if m.Stream != e.name {
					r.Add("target database", "target database %q belongs to another stream (%s): choose another TargetDatabase or abort that stream",
						e.spec.TargetDatabase, m.ID)
				} else if m.Phase == markAborted {
					aborted = true
					r.Add("stream", "stream %q was stopped by the WAL guard (%v): its replication is gone and target database %q is incomplete or stale: Abort the stream (Provider.Abort) and start it again",
						e.spec.ID, replica.ErrWALLimit, e.spec.TargetDatabase)
				} else {
					f.marker = m
				}
			}
		}
	}
	resume := f.marker != nil

	if tgt != nil {
		var super, createdb bool
		var major, maxWorkers, usedWorkers, retryMS int
		err := tgt.QueryRow(ctx, `SELECT r.rolsuper, r.rolcreatedb, current_setting('server_version_num')::int / 10000,
				current_setting('max_logical_replication_workers')::int,
				(SELECT count(*) FROM pg_stat_subscription)::int,
				(SELECT setting::int FROM pg_settings WHERE name = 'wal_retrieve_retry_interval')
			FROM pg_roles r WHERE r.rolname = current_user`).Scan(&super, &createdb, &major, &maxWorkers, &usedWorkers, &retryMS)
		if err != nil {
			r.Add("target privileges", "cannot read the target's settings: %v", err)
		} else {
			e.tgtMajor = major
			if !super {
				r.Add("target privileges", "the target role %q is not a superuser, which creating a subscription needs: connect as a superuser in Spec.Target", e.tgtAdmin["user"])
			}
			if !createdb && !super && !f.targetExists {
				r.Add("target privileges", "the target role may not create databases: GRANT it CREATEDB or create database %q (empty) first", e.spec.TargetDatabase)
			}
			if major < 16 && retryMS >= launcherPaceNote {
				r.Notes = append(r.Notes, fmt.Sprintf("the target's wal_retrieve_retry_interval is %s: before PostgreSQL 16 its logical replication launcher "+
					"starts the workers of new subscriptions at most once per that interval, so a move onto it may wait that long for its stream "+
					"(it paces a drain of small tenants): lower it (ALTER SYSTEM SET wal_retrieve_retry_interval = '200ms'; SELECT pg_reload_conf()), "+
					"which also makes a standby of that instance retry a failed WAL source sooner", time.Duration(retryMS)*time.Millisecond))
			}
			// The apply worker: the stream copies the data itself, without
			// table-sync workers.
			if need := 1; !resume && maxWorkers-usedWorkers < need {
				r.Add("target workers", "the target has %d free logical replication workers, the stream needs %d: raise max_logical_replication_workers (and max_worker_processes) and restart the target",
					maxWorkers-usedWorkers, need)
			}
		}
		if f.targetExists && !resume && !aborted {
			e.checkTargetEmpty(ctx, r)
		}
	}

	if src != nil {
		var walLevel string
		var super bool
		var major, freeSlots, freeSenders int
		err := src.QueryRow(ctx, `SELECT current_setting('wal_level'), r.rolsuper, current_setting('server_version_num')::int / 10000,
				current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int,
				current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)::int
			FROM pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &super, &major, &freeSlots, &freeSenders)
		if err != nil {
			r.Add("source settings", "cannot read the source's settings: %v", err)
		} else {
			e.srcMajor = major
			if walLevel != "logical" {
				r.Add("wal_level", "the source has wal_level=%s, logical replication needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical on the source and restart it", walLevel)
			}
			if !resume {
				e.checkSlotWALBound(ctx, src, r)
				e.checkLongTransactions(ctx, src, r)
			}
			if !super {
				r.Add("source privileges", "the source role %q is not a superuser, which a publication FOR ALL TABLES and reading every table need: connect as a superuser in Spec.Source", e.srcDB["user"])
			}
			if need := 1; !resume && freeSlots < need {
				r.Add("replication slots", "the source has %d free replication slots, the stream needs %d: raise max_replication_slots and restart, or drop unused slots",
					freeSlots, need)
			}
			// The slot's (the copy's connection that creates it and holds
			// its snapshot, then the subscription's), and the connection
			// that reads the source while it is fenced.
			if need := 2; !resume && freeSenders < need {
				r.Add("wal senders", "the source has %d free WAL senders, the stream needs %d: raise max_wal_senders and restart the source",
					freeSenders, need)
			}
			if e.tgtMajor != 0 && e.tgtMajor < major {
				r.Add("versions", "the target runs PostgreSQL %d, older than the source's %d: the schema may not restore; use a target of version %d or newer", e.tgtMajor, major, major)
			}
			if cm, err := pgbin.Major(ctx, e.binDir, "pg_dump"); err != nil {
				r.Add("pg_dump", "%v", err)
			} else if cm < major {
				r.Add("pg_dump", "pg_dump in %s is version %d, older than the source's %d: set Provider.BinDir to the binaries of version %d or newer", e.binDir, cm, major, major)
			}
		}
		e.checkSource(ctx, src, tgt, r, f)
		if !resume && !aborted {
			e.checkNames(ctx, src, r, f)
		}
	}
	if tgt != nil && !resume && !aborted {
		if err := e.probeSubscription(ctx, tgt); err != nil {
			r.Add("target reaches source", "the target server cannot connect to source database %q at %s as %q with the subscription's connection string: %v: "+
				"allow the target's address in the source's pg_hba.conf, supply the password (in Spec.SourceForTarget or Spec.Source, "+
				"or PGPASSWORD or a passfile where this process runs), or set Spec.SourceForTarget to an address the target reaches",
				e.spec.SourceDatabase, e.srcSub.Endpoint(), e.srcSub["user"], err)
		}
	}
	if src != nil && tgt != nil && e.spec.SourceDatabase == e.spec.TargetDatabase {
		// Copies of one data directory share the system identifier;
		// the postmaster's start time tells them apart.
		const q = `SELECT system_identifier::text || ' ' || pg_postmaster_start_time()::text FROM pg_control_system()`
		var a, b string
		if src.QueryRow(ctx, q).Scan(&a) == nil && tgt.QueryRow(ctx, q).Scan(&b) == nil && a == b {
			r.Add("target database", "source and target are the same database %q on the same server: choose another TargetDatabase", e.spec.TargetDatabase)
		}
	}
	return r, f
}

func (e *env) checkSource(ctx context.Context, src, tgt *pgx.Conn, r *replica.PreflightReport, f *facts) {
	noIdentity, err := tablesWithoutIdentity(ctx, src)
	if err != nil {
		r.Add("replica identity", "cannot list the source's tables: %v", err)
	} else if len(noIdentity) > 0 {
		f.noIdentity = noIdentity
		if e.spec.SetReplicaIdentityFull {
			r.Notes = append(r.Notes, "REPLICA IDENTITY FULL will be set on the source tables "+strings.Join(noIdentity, ", "))
		} else {
			r.Add("replica identity", "tables without a replica identity (no primary key), whose updates and deletes cannot be replicated: %s: add a primary key, or ALTER TABLE ... REPLICA IDENTITY USING INDEX or FULL, or set Options.SetReplicaIdentityFull",
				strings.Join(noIdentity, ", "))
		}
	}

	rows, err := src.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'u' AND `+userSchemas+` AND `+notExtensionMember("pg_class", "c.oid")+`
		ORDER BY 1`)
	unlogged, err := collectErr[string](rows, err)
	switch {
	case err != nil:
		r.Add("unlogged tables", "cannot list the source's unlogged tables: %v", err)
	case len(unlogged) > 0 && e.spec.SkipUnlogged:
		r.Notes = append(r.Notes, "unlogged tables are not replicated, they stay empty on the target: "+strings.Join(unlogged, ", "))
	case len(unlogged) > 0:
		r.Add("unlogged tables", "unlogged tables are not replicated: %s: make them logged (ALTER TABLE ... SET LOGGED) or set Options.SkipUnlogged",
			strings.Join(unlogged, ", "))
	}

	// A database that subscribes is being filled by another move (or a
	// replication someone set up): moving it now would copy a moving
	// target and leave its subscription behind.
	rows, err = src.Query(ctx, `SELECT quote_ident(subname) FROM pg_subscription
		WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1`)
	subs, err := collectErr[string](rows, err)
	switch {
	case err != nil:
		r.Add("subscriptions", "cannot list the source database's subscriptions: %v", err)
	case len(subs) > 0:
		r.Add("subscriptions", "source database %q has subscriptions of its own (%s): it is being filled by another move or replication: "+
			"let that finish (or drop them) before moving it", e.spec.SourceDatabase, strings.Join(subs, ", "))
	}

	var largeObjects int64
	if err := src.QueryRow(ctx, `SELECT count(*) FROM pg_largeobject_metadata`).Scan(&largeObjects); err != nil {
		r.Add("large objects", "cannot count large objects: %v", err)
	} else if largeObjects > 0 && !e.spec.AllowLargeObjects {
		r.Add("large objects", "the source database has %d large objects, which logical replication does not copy: move them into bytea columns, or set Options.AllowLargeObjects to go on without them", largeObjects)
	}

	if f.locale, err = readLocale(ctx, src, e.srcMajor, e.spec.SourceDatabase); err != nil {
		f.locale = dbLocale{}
		r.Add("encoding", "cannot read the source database's encoding and locale: %v", err)
	}

	if tgt == nil {
		return
	}
	// Extensions the tenant uses must be installable on the target.
	rows, err = src.Query(ctx, `SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1`)
	exts, err2 := collectErr[string](rows, err)
	if err2 != nil {
		r.Add("extensions", "cannot list the source's extensions: %v", err2)
	} else if len(exts) > 0 {
		rows, err := tgt.Query(ctx, `SELECT name FROM pg_available_extensions WHERE name = ANY($1)`, exts)
		avail, err := collectErr[string](rows, err)
		if err != nil {
			r.Add("extensions", "cannot list the target's available extensions: %v", err)
		} else if missing := minus(exts, avail); len(missing) > 0 {
			r.Add("extensions", "extensions the source database uses are not available on the target: %s: install their packages on the target server",
				strings.Join(missing, ", "))
		}
	}
	// Roles that own objects or hold privileges must exist on the target.
	if !e.spec.NoOwner {
		rows, err := src.Query(ctx, rolesQuery)
		roles, err := collectErr[string](rows, err)
		if err != nil {
			r.Add("roles", "cannot list the roles the source schema uses: %v", err)
		} else {
			rows, err := tgt.Query(ctx, `SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)`, roles)
			have, err := collectErr[string](rows, err)
			if err != nil {
				r.Add("roles", "cannot list the target's roles: %v", err)
			} else if missing := minus(roles, have); len(missing) > 0 {
				for i, m := range missing {
					missing[i] = ident(m)
				}
				r.Add("roles", "roles that own the source database or objects in it, hold privileges on it or in it, or have settings in it do not exist on the target: %s: create them on the target, or set Options.NoOwner",
					strings.Join(missing, ", "))
			}
		}
	}
	// Encoding and collation: an existing target must match; a new one is
	// created with the source's, which the target must support.
	if f.targetExists && f.locale.encoding != "" {
		if have, err := readLocale(ctx, tgt, e.tgtMajor, e.spec.TargetDatabase); err == nil && have != f.locale {
			r.Add("encoding", "the target database has %s; the source has %s: drop the target database so it is created to match", have, f.locale)
		}
	} else if why := f.locale.unsupported(e.tgtMajor); why != "" {
		r.Add("encoding", "%s", why)
	} else if f.locale.encoding != "" {
		for _, loc := range []string{f.locale.collate, f.locale.ctype} {
			if loc == "C" || loc == "POSIX" || loc == "" {
				continue
			}
			var ok bool
			norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "")) }
			rows, err := tgt.Query(ctx, `SELECT collcollate FROM pg_collation WHERE collcollate IS NOT NULL`)
			colls, err := collectErr[string](rows, err)
			if err != nil {
				continue
			}
			for _, c := range colls {
				if norm(c) == norm(loc) {
					ok = true
				}
			}
			if !ok {
				r.Add("encoding", "the source database uses locale %s, which the target server does not have: install the locale on the target (locale-gen) and restart it", loc)
				break
			}
		}
	}
}

// launcherPaceNote is the target's wal_retrieve_retry_interval, in
// milliseconds, from which preflight notes that it paces the start of new
// streams (PostgreSQL 15 and older): a move of a small tenant takes about
// a second, so a wait of a second or more is most of it.
const launcherPaceNote = 1000

// checkSlotWALBound requires max_slot_wal_keep_size on the source, unless
// Options.AllowUnboundedSlotWAL accepts that there is none.
func (e *env) checkSlotWALBound(ctx context.Context, src *pgx.Conn, r *replica.PreflightReport) {
	keepMB, err := slotwal.MaxKeepMB(ctx, src)
	if err != nil {
		r.Add("max_slot_wal_keep_size", "cannot read the source's max_slot_wal_keep_size: %v", err)
		return
	}
	switch {
	case keepMB < 0 && !e.spec.AllowUnboundedSlotWAL:
		// Twice the guard's limit: the guard acts first while it runs.
		suggest := max(2*(e.maxWAL>>20), 1024)
		r.Add("max_slot_wal_keep_size", "the source's max_slot_wal_keep_size is -1 (unlimited): the stream's WAL guard runs only while this process does, "+
			"and if the target stalls after it died, the stream's slot keeps WAL until the source's disk is full and the source stops: "+
			"bound it, above Options.MaxRetainedWAL, with room on the source's disk (ALTER SYSTEM SET max_slot_wal_keep_size = '%dMB'; SELECT pg_reload_conf()), "+
			"or set Options.AllowUnboundedSlotWAL (or Provider.AllowUnboundedSlotWAL) to accept the risk", suggest)
	case keepMB >= 0 && e.maxWAL > 0 && keepMB<<20 < e.maxWAL:
		r.Notes = append(r.Notes, fmt.Sprintf("the source's max_slot_wal_keep_size (%d MB) is below the stream's WAL limit (%d MB): "+
			"a stalled stream fails with replica.ErrSlotLost (its slot invalidated) before the guard stops it", keepMB, e.maxWAL>>20))
	}
}

// checkLongTransactions refuses to start while a transaction that would
// stall the stream (see blockers.go) has been open for longer than
// Options.LongTransactionLimit, unless Options.WaitForLongTransactions.
func (e *env) checkLongTransactions(ctx context.Context, src *pgx.Conn, r *replica.PreflightReport) {
	if e.spec.WaitForLongTransactions {
		return
	}
	limit := e.spec.LongTransactionLimit
	if limit == 0 {
		limit = replica.LongTransactionLimitDefault
	}
	long, err := longTransactions(ctx, src, limit)
	if err != nil {
		r.Add("long transactions", "cannot list the source's open transactions: %v", err)
		return
	}
	if len(long) == 0 {
		return
	}
	names := make([]string, len(long))
	for i, b := range long {
		names[i] = b.String()
	}
	r.Add("long transactions", "transactions open on the source server for longer than %s (Options.LongTransactionLimit, or Provider.LongTransactionLimit) would stall the stream, "+
		"whose replication slots wait for them to end: %s: commit or end them (SELECT pg_terminate_backend(pid)), "+
		"or set Options.WaitForLongTransactions (or Provider.WaitForLongTransactions) to start anyway and wait for them", limit, strings.Join(names, "; "))
}

// checkNames refuses a new stream whose publication or slot name is
// taken by something that is not the stream's: only the stream's record
// (see ownership.go) makes them its own, and then they are what an
// earlier start of it left.
func (e *env) checkNames(ctx context.Context, src *pgx.Conn, r *replica.PreflightReport, f *facts) {
	pub, err := e.readPublication(ctx, src)
	if err != nil {
		r.Add("publication", "%v", err)
		return
	}
	f.record = pub.rec
	if pub.exists && pub.rec == nil {
		r.Add("publication", "publication %s exists in source database %q and is not this stream's (its comment does not record stream %q): "+
			"drop it (DROP PUBLICATION %s) if nothing uses it, or choose another stream ID", e.name, e.spec.SourceDatabase, e.spec.ID, ident(e.name))
	}
	var n int
	if err := src.QueryRow(ctx, `SELECT count(*)::int FROM pg_replication_slots WHERE slot_name = $1`, e.name).Scan(&n); err != nil {
		r.Add("replication slots", "cannot list the source's replication slots: %v", err)
	} else if n > 0 && (pub.rec == nil || !pub.rec.Slot) {
		r.Add("replication slots", "replication slot %s exists on the source and is not this stream's (no record of the stream says it made it): "+
			"drop it (SELECT pg_drop_replication_slot('%s')) if nothing uses it, or choose another stream ID", e.name, e.name)
	}
}

func (e *env) checkTargetEmpty(ctx context.Context, r *replica.PreflightReport) {
	conn, err := connect(ctx, e.tgtDB, "target")
	if err != nil {
		r.Add("target database", "%v", err)
		return
	}
	defer closeConn(conn)
	var rels, schemas, exts int
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE `+userSchemas+`)::int,
		(SELECT count(*) FROM pg_namespace n WHERE `+userSchemas+` AND n.nspname <> 'public')::int,
		(SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')::int`).Scan(&rels, &schemas, &exts)
	if err != nil {
		r.Add("target database", "cannot inspect target database %q: %v", e.spec.TargetDatabase, err)
		return
	}
	if rels+schemas+exts > 0 {
		r.Add("target database", "target database %q at %s is not empty (%d relations, %d schemas, %d extensions) and a non-empty target is never written: drop it or choose another TargetDatabase",
			e.spec.TargetDatabase, e.tgtAdmin.Endpoint(), rels, schemas, exts)
	}
}

// tablesWithoutIdentity lists the tables whose updates and deletes
// cannot be published: no primary key under the default identity, an
// identity index that is missing, or identity NOTHING.
func tablesWithoutIdentity(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND `+userSchemas+` AND `+notExtensionMember("pg_class", "c.oid")+`
		AND (c.relreplident = 'n'
			OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
			OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
		ORDER BY 1`)
	return collectErr[string](rows, err)
}

const rolesQuery = `SELECT DISTINCT r FROM (
	SELECT pg_get_userbyid(c.relowner)::text r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ` + userSchemas + `
	UNION SELECT pg_get_userbyid(n.nspowner)::text FROM pg_namespace n WHERE ` + userSchemas + `
	UNION SELECT pg_get_userbyid(p.proowner)::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ` + userSchemas + `
	UNION SELECT pg_get_userbyid(t.typowner)::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ` + userSchemas + `
	UNION SELECT pg_get_userbyid(a.grantee)::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
		aclexplode(c.relacl) a WHERE ` + userSchemas + ` AND a.grantee <> 0
	UNION SELECT pg_get_userbyid(a.grantee)::text FROM pg_namespace n, aclexplode(n.nspacl) a WHERE ` + userSchemas + ` AND a.grantee <> 0
	UNION SELECT pg_get_userbyid(d.datdba)::text FROM pg_database d WHERE d.datname = current_database()
	UNION SELECT pg_get_userbyid(a.grantee)::text FROM pg_database d, aclexplode(d.datacl) a
		WHERE d.datname = current_database() AND a.grantee <> 0
	UNION SELECT pg_get_userbyid(s.setrole)::text FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
		WHERE d.datname = current_database() AND s.setrole <> 0
) s ORDER BY 1`

func collectErr[T any](rows pgx.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return collect[T](rows)
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
