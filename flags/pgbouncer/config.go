package pgbouncer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/sentinel"
)

// ResyncIntervalDefault is how often a Follower reads every route and
// PgBouncer's state again, whatever the events said, unless
// Config.ResyncInterval says otherwise: the safety net for a lost event.
const ResyncIntervalDefault = 30 * time.Second

// ErrInvalidConfig: New was given a Config it cannot work with; the error
// names each field and what to fix, and nothing was touched. It is also
// fleet.ErrInvalid under errors.Is.
var ErrInvalidConfig = sentinel.New("pgbouncer: invalid config", fleet.ErrInvalid)

// Config configures a Follower. Resolver, Admin, File and Tenants are
// required; every other field has a documented default.
type Config struct {
	// Resolver reads the tenants' routes. Required. When its Client
	// implements openfeature.IEventing (an *openfeature.Client does), the
	// provider's configuration-changed events that name a tenant of
	// Tenants wake the Follower at once; otherwise it follows the routes
	// every ResyncInterval.
	Resolver *flags.Resolver

	// Admin is a connection string to PgBouncer's admin console (database
	// "pgbouncer") as one of its admin_users. Required. It is never
	// printed; prefer a password from the environment or .pgpass.
	Admin string

	// File is the path of the file the Follower owns and rewrites: a
	// [databases] section with one entry per tenant, which the
	// operator's pgbouncer.ini %includes (at its end: the file opens
	// with its own [databases] header). Required; its directory must
	// exist. Anything else written in it is overwritten. It holds no
	// password: authentication stays PgBouncer's (auth_file,
	// auth_query).
	File string

	// Tenants are the IDs of the tenants this PgBouncer serves, one
	// entry each. Required, without duplicates.
	Tenants []string

	// Database names a tenant's database in PgBouncer's [databases]
	// (what its clients put in their connection strings), given its
	// route. Default nil: the route's database name.
	Database func(tenantID string, r flags.Route) string

	// Options are written into every entry after host, port and dbname,
	// such as {"pool_size": "20"} (PgBouncer's per-database settings).
	// Keys are lower-case setting names; host, port, dbname and password
	// are refused (the first three come from the route, and passwords
	// stay out of the file). Default: none.
	Options map[string]string

	// ResyncInterval is how often every route is read again and PgBouncer
	// brought level with them, besides the events and the start.
	// Default ResyncIntervalDefault; negative: only on events and at the
	// start.
	ResyncInterval time.Duration

	// Logger receives what the Follower changes (Info) and its failures
	// (Warn). Default: discarded.
	Logger *slog.Logger
}

// optionKey is a PgBouncer per-database setting name.
var optionKey = regexp.MustCompile(`^[a-z][a-z_]*$`)

// validate refuses what New cannot work with, naming each field.
func (c *Config) validate() error {
	if c == nil {
		return fmt.Errorf("%w: New needs a Config with Resolver, Admin, File and Tenants", ErrInvalidConfig)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Resolver == nil {
		bad("Config.Resolver is nil: set the *flags.Resolver that reads the routes")
	}
	if c.Admin == "" {
		bad("Config.Admin is empty: set a connection string to PgBouncer's admin console (database pgbouncer)")
	} else if cfg, err := pgx.ParseConfig(c.Admin); err != nil {
		bad("Config.Admin is not a valid connection string") // the string may hold a password
	} else if cfg.Database != "pgbouncer" {
		bad("Config.Admin names database %q: the admin console is database pgbouncer", cfg.Database)
	}
	if c.File == "" {
		bad("Config.File is empty: set the path of the [databases] file pgbouncer.ini %%includes")
	} else if st, err := os.Stat(filepath.Dir(c.File)); err != nil || !st.IsDir() {
		bad("Config.File %q: its directory does not exist", c.File)
	} else if st, err := os.Stat(c.File); err == nil && !st.Mode().IsRegular() {
		bad("Config.File %q is not a regular file", c.File)
	}
	if len(c.Tenants) == 0 {
		bad("Config.Tenants is empty: list the IDs of the tenants this PgBouncer serves")
	}
	seen := map[string]bool{}
	for i, t := range c.Tenants {
		switch {
		case t == "":
			bad("Config.Tenants[%d] is empty", i)
		case seen[t]:
			bad("Config.Tenants lists %q twice", t)
		}
		seen[t] = true
	}
	for k, v := range c.Options {
		switch {
		case !optionKey.MatchString(k):
			bad("Config.Options key %q is not a PgBouncer setting name (lower case letters and _)", k)
		case k == "host" || k == "port" || k == "dbname":
			bad("Config.Options sets %s: the route sets it", k)
		case k == "password":
			bad("Config.Options sets password: passwords stay out of the file (use PgBouncer's auth_file or auth_query)")
		case strings.ContainsFunc(v, isControl) || v == "":
			bad("Config.Options[%q] must be a non-empty value without control characters", k)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
