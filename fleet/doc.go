// Package fleet holds daisychain's vocabulary and the catalog of where
// tenants live.
//
// An Instance is one PostgreSQL server with an admin connection for the
// library, the Endpoint applications use, and capacity Limits. A Tenant is
// one customer's database on an instance. The Catalog records which
// instance serves each tenant; it is the source of truth that survives
// restarts. Two implementations: MemoryCatalog, and PostgresCatalog in the
// control database, whose schema it creates and upgrades itself.
//
// MeasureInstance measures every database on a live instance: bytes,
// on-disk file count (relation files, forks and segments: the number that
// limits how full an instance may be before it can be converted) and
// activity, through one connection and two queries: pg_database_size over
// pg_database, pg_ls_dir of each database's directories, and
// pg_stat_database. Listing the data directory needs a superuser or
// EXECUTE on pg_ls_dir(text, boolean, boolean); without it the files are
// counted by connecting to each database, a few at a time
// (FileCountingPerDatabase), which cannot count a database that refuses
// connections. Table counts need that connection to each database too,
// so they are counted only when asked. MeasureUsage is the same measure
// restricted to the tenant databases.
package fleet
