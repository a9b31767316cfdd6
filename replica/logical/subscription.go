package logical

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// The subscription's connection string holds the source's password. A
// statement's text is visible to every pg_monitor member in
// pg_stat_activity.query while it runs, and may reach the server's log;
// a bound parameter is neither. So CREATE SUBSCRIPTION is never sent as
// text: a temporary function receives the statement, with a %L where the
// connection string goes, and the connection string as parameters, and
// runs it with EXECUTE. pg_stat_activity shows only the call with $1 and
// $2. With create_slot = false, CREATE SUBSCRIPTION may run inside a
// transaction and so inside a function.
//
// An error or warning inside EXECUTE carries the statement's text,
// password included, in its CONTEXT (sent to the client and written to
// the log): the function catches errors and raises them again with their
// SQLSTATE, message, detail and hint only, and the transaction logs no
// CONTEXT (log_error_verbosity = terse), nothing below an error, and
// sends the client nothing below an error.
//
// Once created, the connection string is in pg_subscription.subconninfo,
// which only superusers can read (PostgreSQL 15 revokes it from PUBLIC).
const subscribeFunction = `CREATE OR REPLACE FUNCTION pg_temp.dc_subscribe(stmt text, conninfo text) RETURNS void
LANGUAGE plpgsql AS $dc$
DECLARE
	detail text;
	hint text;
BEGIN
	EXECUTE format(stmt, conninfo);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM, DETAIL = detail, HINT = hint;
END
$dc$`

// quietSettings keep the transaction's statements, and the CONTEXT of
// what they raise, out of the server's log whatever its logging
// settings, even when one fails, and out of
// pg_stat_statements where it is loaded (setting a parameter of a module
// that is not loaded is harmless). One string, sent with the simple
// protocol: one round trip. The server may log this string itself (it
// decides before it runs it), which holds nothing secret.
const quietSettings = `SET LOCAL log_statement = 'none';
SET LOCAL log_min_error_statement = 'panic';
SET LOCAL log_min_duration_statement = -1;
SET LOCAL log_min_duration_sample = -1;
SET LOCAL log_parameter_max_length = 0;
SET LOCAL log_parameter_max_length_on_error = 0;
SET LOCAL log_error_verbosity = terse;
SET LOCAL log_min_messages = error;
SET LOCAL client_min_messages = error;
SET LOCAL pg_stat_statements.track_utility = off`

// subscribe runs stmt, a CREATE SUBSCRIPTION built by formatStatement
// with "%%L" where the connection string goes, with ci as its connection
// string, in tx (see subscribeFunction). stmt must hold no other '%'.
func subscribe(ctx context.Context, tx pgx.Tx, stmt string, ci conninfo) error {
	if _, err := tx.Exec(ctx, quietSettings, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, subscribeFunction); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_temp.dc_subscribe($1, $2)`, stmt, ci.String()); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DROP FUNCTION pg_temp.dc_subscribe(text, text)`)
	return err
}

// createSubscription creates the stream's subscription on the slot the
// stream makes on the source (create_slot = false: source and target may
// be the same server), without a copy of its own (copy_data = false) and
// disabled: the stream copies the data, and enables it once done.
func (s *stream) createSubscription(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.tgt, func(tx pgx.Tx) error {
		stmt, err := formatStatement(ctx, tx, `CREATE SUBSCRIPTION %I CONNECTION %%L PUBLICATION %I
			WITH (create_slot = false, slot_name = %L, copy_data = false, enabled = false)`, s.e.name, s.e.name, s.e.name)
		if err != nil {
			return err
		}
		if strings.Count(stmt, "%") != 1 {
			panic("logical: a subscription's name holds '%'") // objectName never makes one
		}
		return subscribe(ctx, tx, stmt, s.e.srcSub)
	})
}

// probeSubscription checks that the target server reaches the source with
// the subscription's connection string, changing nothing: CREATE
// SUBSCRIPTION with connect = true connects to the source (and reads the
// tables of its publication, which must not exist: each table would have
// to exist on the target); with create_slot = false, enabled = false and
// slot_name = NONE it makes nothing there, and its transaction on the
// target is rolled back. It runs in the target's maintenance database.
func (e *env) probeSubscription(ctx context.Context, tgt *pgx.Conn) error {
	tx, err := tgt.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	stmt, err := formatStatement(ctx, tx, `CREATE SUBSCRIPTION %I CONNECTION %%L PUBLICATION %I
		WITH (connect = true, create_slot = false, enabled = false, slot_name = NONE, copy_data = false)`,
		replica.ObjectName("dcprobe", e.spec.ID), replica.ObjectName("dcprobe", e.spec.ID))
	if err != nil {
		return err
	}
	return subscribe(ctx, tx, stmt, e.srcSub)
}
