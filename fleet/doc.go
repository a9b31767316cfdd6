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
// Usage measures tenant databases on a live instance: bytes, on-disk file
// count (relation files, forks and segments: the number that limits how
// full an instance may be before it can be converted), table count and
// activity.
package fleet
