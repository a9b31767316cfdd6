// Package pgbouncer makes a PgBouncer follow tenants' routes, so that any
// client that connects through it (a worker in another language, a cron
// job, a BI tool, psql) follows a move the way an application using
// flags.Router does: it waits while the route is paused, and its next
// transaction runs on the target.
//
// # Follower
//
// A Follower runs beside a PgBouncer (in a host process, or as the
// operator's command) for a list of tenants (Config.Tenants), and keeps
// the [databases] entries of a file it owns (Config.File) equal to their
// routes. The operator's pgbouncer.ini %includes that file, at its end:
//
//	[pgbouncer]
//	listen_port = 6432
//	auth_type = scram-sha-256
//	auth_file = /etc/pgbouncer/userlist.txt   ; or auth_query
//	admin_users = daisychain
//	pool_mode = transaction
//	%include /etc/pgbouncer/daisychain.ini
//
// Each entry is the tenant's PgBouncer database (its route's database
// name unless Config.Database says otherwise) pointing at the route's
// host, port and database, with Config.Options (such as pool_size); it
// never holds a password: PgBouncer authenticates as its operator set it
// up (auth_file, auth_query), and Config.Admin is never printed.
//
// It is level-triggered: each round reads the routes and compares them
// with the file and SHOW DATABASES (host, port, paused), then
//
//   - PAUSEs the database of a paused route (PAUSE returns once its
//     transactions in flight end; clients then wait in PgBouncer);
//   - when an entry differs from its route, rewrites the file atomically
//     (a temporary file in the same directory, synced, renamed) and
//     RELOADs, once for every entry that changed: a batch publish of
//     1,300 routes (a Convert's switch) is one write and one RELOAD, and
//     1,300 PAUSEs and RESUMEs, which the admin console takes one
//     database at a time;
//   - checks that SHOW DATABASES shows every entry where its route says
//     (ErrNotApplied if not: the file is not %included, or PgBouncer
//     refused it), and only then RESUMEs a database whose route is
//     unpaused: its clients are never let through to the old entry.
//
// It resumes only the pauses that are its own: those it made, and those
// of an entry it moved while paused (whoever paused it held its clients
// for that move, such as cutover.PgBouncerFence, which stays held after
// a move that switched). An operator's PAUSE of a database whose route
// does not move is left alone. Which pauses are its own is kept in
// memory: a Follower restarted while a database it paused is still
// paused, and whose route was unpaused meanwhile at the same endpoint (a
// move rolled back without a PgBouncerFence), leaves it paused until an
// operator RESUMEs it or the route moves.
//
// Rounds run at the start, on the provider's configuration-changed
// events that name the tenants (when the Resolver's client implements
// openfeature.IEventing, as *openfeature.Client does; flags.EventTenants
// reads them), and every ResyncInterval (ResyncIntervalDefault) as a
// safety net. A round that fails is reported (EventFailed, and the
// Logger) and tried again with backoff; a dropped admin console is
// connected again. Subscribe delivers the Follower's events without
// ever blocking it.
//
// With a Mover whose Fences are {cutover.PgBouncerFence,
// cutover.DatabaseFence}, a move looks like this from PgBouncer's side:
// the route is paused and the Follower PAUSEs the database; the fence's
// PAUSE finds it paused and waits until SHOW POOLS counts no active
// server connection; the database fence ends the pool's idle server
// connections to the source; the route is published to the target and
// the Follower points the entry there, RELOADs and RESUMEs. The held
// clients' transactions then run on the target.
//
// # Measured
//
// On a 2-core machine shared with other test runs, under the race
// detector (TestPgbenchThroughPgBouncerDuringAMove): pgbench through
// PgBouncer in transaction pooling, 4 clients for 15 s, across a move of
// its tenant (pgbench -i -s 1, 14 MB copied): 12,749 and 11,483
// transactions in two runs, 0 failed, every one of them in
// pgbench_history on the target; the move's window was 100 and 200 ms;
// in the second run the Follower held PgBouncer paused for 172 ms, and
// the worst one-second average latency pgbench reported was 18 ms.
//
// pgbench_history has no primary key, so the move's preflight refuses
// it (its updates and deletes could not be replicated): pgbench only
// inserts into it, and ALTER TABLE pgbench_history REPLICA IDENTITY FULL
// is what a user does.
//
// # Clients that bypass both the Router and PgBouncer
//
// A client that connects straight to the source database, neither
// through a flags.Router nor through a followed PgBouncer, is not held:
// it fails. Measured (TestClientBypassingRouterAndPgBouncer, the
// default DatabaseFence, pgbench with 4 persistent connections at the
// source and a probe that reconnects for every insert, 10 ms apart):
//
//   - until the fence it keeps writing to the source, in the window
//     too (the probe committed 71 inserts between the route's pause and
//     the fence), and every write it was told committed is on the
//     target (5,179 pgbench transactions, all on the target);
//   - at the fence its sessions are ended: pgbench's clients each failed
//     with "FATAL: terminating connection due to administrator command"
//     (SQLSTATE 57P01) and aborted, and pgbench exited with status 2
//     ("Run was aborted");
//   - from the fence on (the probe's first refusal came 0.5 ms after
//     the fence step started), a new connection is refused with SQLSTATE
//     55000, database "acme" is not currently accepting connections, and
//     so after the switch: all 50 attempts in the half second measured
//     after it were refused (a move without a reverse stream), and the
//     source copy stays fenced for the rollback period. With the reverse
//     stream (cutover's default), the source copy is fenced by
//     privileges once the stream starts: an application role is refused
//     with SQLSTATE 42501, permission denied for database "acme"; a
//     superuser connects, but its sessions there are read-only by
//     default (SQLSTATE 25006 on a write); the admin role is bound by
//     neither, so no application may connect as it. Such a client must
//     be pointed at the target by other means (its own configuration,
//     DNS).
//
// Such a client also lengthens the window: the quiesce step waits for
// a quiet spell on the source that a client writing without a break
// never leaves, so it lasts cutover.Config.QuiesceGrace (2 s by
// default): the window measured 2.15 s instead of 0.1 to 0.2 s. When
// no client of the tenant goes through a Router or a followed
// PgBouncer, set cutover.Config.NoRoutePause.
package pgbouncer
