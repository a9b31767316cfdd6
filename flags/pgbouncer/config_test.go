package pgbouncer_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/flags/pgbouncer"
	"github.com/daisychain-db/daisychain/fleet"
)

// TestConfigRefusals: each bad field is refused with an error that names
// it and what to fix, and wraps ErrInvalidConfig (and fleet.ErrInvalid);
// a password in Admin never shows.
func TestConfigRefusals(t *testing.T) {
	t.Parallel()
	m := newMemoryRoutes(t, 15432, 25432, "acme")
	dir := t.TempDir()
	good := func() *pgbouncer.Config {
		return &pgbouncer.Config{Resolver: m.resolver, Admin: "postgres://admin:s3cret-pw@127.0.0.1:6432/pgbouncer",
			File: filepath.Join(dir, "databases.ini"), Tenants: []string{"acme"}}
	}
	if _, err := pgbouncer.New(good()); err != nil {
		t.Fatalf("a good config refused: %v", err)
	}
	cases := []struct {
		name string
		edit func(*pgbouncer.Config)
		want string
	}{
		{"no resolver", func(c *pgbouncer.Config) { c.Resolver = nil }, "Config.Resolver is nil"},
		{"no admin", func(c *pgbouncer.Config) { c.Admin = "" }, "Config.Admin is empty"},
		{"bad admin", func(c *pgbouncer.Config) { c.Admin = "postgres://admin:s3cret-pw@127.0.0.1:notaport/pgbouncer" }, "Config.Admin is not a valid connection string"},
		{"not the console", func(c *pgbouncer.Config) { c.Admin = "postgres://admin:s3cret-pw@127.0.0.1:6432/acme" }, `names database "acme"`},
		{"no file", func(c *pgbouncer.Config) { c.File = "" }, "Config.File is empty"},
		{"no directory", func(c *pgbouncer.Config) { c.File = filepath.Join(dir, "absent", "databases.ini") }, "its directory does not exist"},
		{"file is a directory", func(c *pgbouncer.Config) { c.File = dir }, "is not a regular file"},
		{"no tenants", func(c *pgbouncer.Config) { c.Tenants = nil }, "Config.Tenants is empty"},
		{"tenant twice", func(c *pgbouncer.Config) { c.Tenants = []string{"acme", "acme"} }, `lists "acme" twice`},
		{"empty tenant", func(c *pgbouncer.Config) { c.Tenants = []string{""} }, "Config.Tenants[0] is empty"},
		{"password option", func(c *pgbouncer.Config) { c.Options = map[string]string{"password": "x"} }, "passwords stay out of the file"},
		{"host option", func(c *pgbouncer.Config) { c.Options = map[string]string{"host": "x"} }, "sets host: the route sets it"},
		{"bad option key", func(c *pgbouncer.Config) { c.Options = map[string]string{"Pool Size": "4"} }, "is not a PgBouncer setting name"},
		{"bad option value", func(c *pgbouncer.Config) { c.Options = map[string]string{"pool_size": "4\n[pgbouncer]"} }, "without control characters"},
	}
	for _, tc := range cases {
		c := good()
		tc.edit(c)
		_, err := pgbouncer.New(c)
		switch {
		case !errors.Is(err, pgbouncer.ErrInvalidConfig) || !errors.Is(err, fleet.ErrInvalid):
			t.Errorf("%s: %v, want ErrInvalidConfig", tc.name, err)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		case strings.Contains(err.Error(), "s3cret-pw"):
			t.Errorf("%s: the error shows Admin's password: %v", tc.name, err)
		}
	}
	if _, err := pgbouncer.New(nil); !errors.Is(err, pgbouncer.ErrInvalidConfig) {
		t.Errorf("New(nil): %v, want ErrInvalidConfig", err)
	}
}
