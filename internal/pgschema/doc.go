// Package pgschema creates and upgrades the tables daisychain keeps in the
// control database. Each component (catalog, flags, journal) has its own
// ordered list of migrations; the applied version of each is recorded, and
// migrations run under a transaction-scoped advisory lock, so several
// processes may call Migrate at once and each migration runs exactly once.
package pgschema
