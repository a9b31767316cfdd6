package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/internal/connstring"
	"github.com/daisychain-db/daisychain/internal/pgschema"
)

// SchemaDefault is the schema in the control database that holds
// daisychain's tables (the catalog's, the route table, the journal) unless
// a Config names another: one word for all of them, so that they default
// to one schema.
const SchemaDefault = "daisychain"

// catalogMigrations are the catalog's schema versions, in order. Never
// edit a released step; append.
var catalogMigrations = []string{
	`CREATE TABLE {{schema}}.instances (
		id            text PRIMARY KEY,
		admin         text NOT NULL,
		endpoint_host text NOT NULL,
		endpoint_port integer NOT NULL CHECK (endpoint_port BETWEEN 1 AND 65535),
		max_files     bigint NOT NULL DEFAULT 0 CHECK (max_files >= 0),
		max_tenants   bigint NOT NULL DEFAULT 0 CHECK (max_tenants >= 0),
		max_bytes     bigint NOT NULL DEFAULT 0 CHECK (max_bytes >= 0),
		created_at    timestamptz NOT NULL DEFAULT now(),
		updated_at    timestamptz NOT NULL DEFAULT now()
	);
	CREATE TABLE {{schema}}.tenants (
		id          text PRIMARY KEY,
		database    text NOT NULL,
		instance_id text NOT NULL REFERENCES {{schema}}.instances (id),
		created_at  timestamptz NOT NULL DEFAULT now(),
		updated_at  timestamptz NOT NULL DEFAULT now()
	);
	CREATE INDEX tenants_instance_id ON {{schema}}.tenants (instance_id, id);`,
}

// PostgresCatalogConfig configures a PostgresCatalog. A nil config means
// all defaults.
type PostgresCatalogConfig struct {
	// Schema holds the catalog's tables. Default SchemaDefault.
	Schema string

	// AdminPassword returns the password to add to an instance's Admin
	// connection string when it is read back. The catalog never stores
	// passwords: RegisterInstance strips them. Default nil: Admin is
	// returned without a password, and connections find it the way libpq
	// does (PGPASSWORD, the password file).
	AdminPassword func(ctx context.Context, instanceID string) (string, error)
}

// PostgresCatalog is a Catalog in the control database. It creates and
// upgrades its tables itself.
type PostgresCatalog struct {
	pool     *pgxpool.Pool
	schema   string // quoted
	password func(ctx context.Context, instanceID string) (string, error)
}

var _ Catalog = (*PostgresCatalog)(nil)

// NewPostgresCatalog returns a catalog kept in the database pool connects
// to, creating or upgrading its tables first. It is safe to call from
// several processes at once.
func NewPostgresCatalog(ctx context.Context, pool *pgxpool.Pool, cfg *PostgresCatalogConfig) (*PostgresCatalog, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: NewPostgresCatalog needs a pool", ErrInvalid)
	}
	var c PostgresCatalogConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Schema == "" {
		c.Schema = SchemaDefault
	}
	if err := pgschema.Migrate(ctx, pool, c.Schema, "catalog", catalogMigrations); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return &PostgresCatalog{pool: pool, schema: pgx.Identifier{c.Schema}.Sanitize(), password: c.AdminPassword}, nil
}

func (c *PostgresCatalog) table(name string) string { return c.schema + "." + name }

// RegisterInstance implements Catalog. The Admin connection string is
// stored without its password.
func (c *PostgresCatalog) RegisterInstance(ctx context.Context, inst Instance) error {
	if err := inst.validate(); err != nil {
		return err
	}
	admin, err := connstring.WithoutPassword(inst.Admin)
	if err != nil {
		return fmt.Errorf("%w: instance %q Admin: %v", ErrInvalid, inst.ID, err)
	}
	_, err = c.pool.Exec(ctx, `INSERT INTO `+c.table("instances")+`
		(id, admin, endpoint_host, endpoint_port, max_files, max_tenants, max_bytes)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET admin = excluded.admin,
			endpoint_host = excluded.endpoint_host, endpoint_port = excluded.endpoint_port,
			max_files = excluded.max_files, max_tenants = excluded.max_tenants,
			max_bytes = excluded.max_bytes, updated_at = now()`,
		inst.ID, admin, inst.Endpoint.Host, inst.Endpoint.Port,
		inst.Limits.MaxFiles, inst.Limits.MaxTenants, inst.Limits.MaxBytes)
	if err != nil {
		return fmt.Errorf("fleet: register instance %q: %w", inst.ID, err)
	}
	return nil
}

// UnregisterInstance implements Catalog. The tenants' foreign key refuses
// an instance that serves tenants, in the same statement, so a tenant
// added or assigned to it concurrently cannot be left pointing nowhere.
func (c *PostgresCatalog) UnregisterInstance(ctx context.Context, id string) error {
	tag, err := c.pool.Exec(ctx, `DELETE FROM `+c.table("instances")+` WHERE id = $1`, id)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23503": // foreign_key_violation
		var n int
		if qerr := c.pool.QueryRow(ctx, `SELECT count(*) FROM `+c.table("tenants")+` WHERE instance_id = $1`, id).Scan(&n); qerr != nil {
			return fmt.Errorf("%w: instance %q serves tenants: move them off first", ErrInstanceInUse, id)
		}
		return fmt.Errorf("%w: instance %q serves %d tenant(s): move them off first", ErrInstanceInUse, id, n)
	case err != nil:
		return fmt.Errorf("fleet: unregister instance %q: %w", id, err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("fleet: unregister: %w: %q", ErrInstanceNotFound, id)
	}
	return nil
}

const instanceColumns = `id, admin, endpoint_host, endpoint_port, max_files, max_tenants, max_bytes`

func (c *PostgresCatalog) scanInstance(ctx context.Context, row pgx.Row) (Instance, error) {
	var i Instance
	if err := row.Scan(&i.ID, &i.Admin, &i.Endpoint.Host, &i.Endpoint.Port,
		&i.Limits.MaxFiles, &i.Limits.MaxTenants, &i.Limits.MaxBytes); err != nil {
		return Instance{}, err
	}
	if c.password == nil {
		return i, nil
	}
	pw, err := c.password(ctx, i.ID)
	if err != nil {
		return Instance{}, fmt.Errorf("fleet: AdminPassword for instance %q: %w", i.ID, err)
	}
	if i.Admin, err = connstring.WithPassword(i.Admin, pw); err != nil {
		return Instance{}, fmt.Errorf("fleet: instance %q Admin: %w", i.ID, err)
	}
	return i, nil
}

// Instances implements Catalog.
func (c *PostgresCatalog) Instances(ctx context.Context) ([]Instance, error) {
	rows, err := c.pool.Query(ctx, `SELECT `+instanceColumns+` FROM `+c.table("instances")+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("fleet: list instances: %w", err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		inst, err := c.scanInstance(ctx, rows)
		if err != nil {
			return nil, fmt.Errorf("fleet: list instances: %w", err)
		}
		out = append(out, inst)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet: list instances: %w", err)
	}
	return out, nil
}

// Instance implements Catalog.
func (c *PostgresCatalog) Instance(ctx context.Context, id string) (Instance, error) {
	inst, err := c.scanInstance(ctx, c.pool.QueryRow(ctx,
		`SELECT `+instanceColumns+` FROM `+c.table("instances")+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Instance{}, fmt.Errorf("%w: %q", ErrInstanceNotFound, id)
	}
	if err != nil {
		return Instance{}, fmt.Errorf("fleet: instance %q: %w", id, err)
	}
	return inst, nil
}

// AddTenant implements Catalog.
func (c *PostgresCatalog) AddTenant(ctx context.Context, t Tenant) error {
	if err := t.validate(); err != nil {
		return err
	}
	_, err := c.pool.Exec(ctx, `INSERT INTO `+c.table("tenants")+` (id, database, instance_id)
		VALUES ($1, $2, $3)`, t.ID, t.Database, t.Instance)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return fmt.Errorf("%w: %q", ErrTenantExists, t.ID)
	case errors.As(err, &pgErr) && pgErr.Code == "23503": // foreign_key_violation
		return fmt.Errorf("fleet: add tenant %q: %w: %q", t.ID, ErrInstanceNotFound, t.Instance)
	default:
		return fmt.Errorf("fleet: add tenant %q: %w", t.ID, err)
	}
}

// Tenants implements Catalog.
func (c *PostgresCatalog) Tenants(ctx context.Context, instanceID string) ([]Tenant, error) {
	// One statement, so an unknown instance and an empty one are told
	// apart consistently.
	rows, err := c.pool.Query(ctx, `SELECT i.id, t.id, t.database
		FROM `+c.table("instances")+` i
		LEFT JOIN `+c.table("tenants")+` t ON t.instance_id = i.id
		WHERE i.id = $1 ORDER BY t.id`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("fleet: tenants of %q: %w", instanceID, err)
	}
	defer rows.Close()
	found := false
	var out []Tenant
	for rows.Next() {
		var inst string
		var id, db *string
		if err := rows.Scan(&inst, &id, &db); err != nil {
			return nil, fmt.Errorf("fleet: tenants of %q: %w", instanceID, err)
		}
		found = true
		if id != nil {
			out = append(out, Tenant{ID: *id, Database: *db, Instance: inst})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet: tenants of %q: %w", instanceID, err)
	}
	if !found {
		return nil, fmt.Errorf("%w: %q", ErrInstanceNotFound, instanceID)
	}
	return out, nil
}

// Locate implements Catalog.
func (c *PostgresCatalog) Locate(ctx context.Context, tenantID string) (Tenant, error) {
	var t Tenant
	err := c.pool.QueryRow(ctx, `SELECT id, database, instance_id FROM `+c.table("tenants")+
		` WHERE id = $1`, tenantID).Scan(&t.ID, &t.Database, &t.Instance)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: %q", ErrTenantNotFound, tenantID)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("fleet: locate tenant %q: %w", tenantID, err)
	}
	return t, nil
}

// Assign implements Catalog. It is one statement: the foreign key refuses
// an unknown instance, and the From condition is checked in the same row
// update, so concurrent movers cannot both win.
func (c *PostgresCatalog) Assign(ctx context.Context, tenantID, instanceID string, opts *AssignOpts) error {
	from := ""
	if opts != nil {
		from = opts.From
	}
	var previous string
	err := c.pool.QueryRow(ctx, `WITH cur AS (
			SELECT id, instance_id FROM `+c.table("tenants")+` WHERE id = $1 FOR UPDATE)
		UPDATE `+c.table("tenants")+` t SET instance_id = $2, updated_at = now()
		FROM cur WHERE t.id = cur.id AND ($3 = '' OR cur.instance_id = $3)
		RETURNING cur.instance_id`, tenantID, instanceID, from).Scan(&previous)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "23503":
		return fmt.Errorf("fleet: assign tenant %q: %w: %q", tenantID, ErrInstanceNotFound, instanceID)
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("fleet: assign tenant %q: %w", tenantID, err)
	}
	// Nothing updated: say why.
	t, err := c.Locate(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("fleet: assign: %w", err)
	}
	return fmt.Errorf("%w: tenant %q is on %q, not %q", ErrAssignConflict, tenantID, t.Instance, from)
}
