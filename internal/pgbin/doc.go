// Package pgbin finds the directory of PostgreSQL's programs (initdb,
// postgres, pg_dump, pg_restore, pg_basebackup...), so that every package
// that runs them (localpg for servers, replica/logical for the schema
// copy) picks the same installation, and so the same major version, by
// one documented order. See Find.
package pgbin
