package pgbouncer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/internal/pgbadmin"
)

// dbState is a row of SHOW DATABASES: where the entry points, and
// whether it is paused.
type dbState struct {
	endpoint string // host:port/database, as endpointOf
	paused   bool
}

// connectConsole connects to the admin console.
func connectConsole(ctx context.Context, admin string) (*pgx.Conn, error) {
	conn, err := pgbadmin.Connect(ctx, admin)
	if errors.Is(err, pgbadmin.ErrConnString) {
		return nil, errors.New("Config.Admin is not a valid connection string")
	}
	return conn, err
}

// showDatabases reads SHOW DATABASES.
func showDatabases(ctx context.Context, conn *pgx.Conn) (map[string]dbState, error) {
	out := map[string]dbState{}
	err := pgbadmin.Show(ctx, conn, "SHOW DATABASES", []string{"name", "host", "port", "database", "paused"}, func(v []string) {
		out[v[0]] = dbState{endpoint: fmt.Sprintf("%s:%s/%s", v[1], v[2], v[3]), paused: v[4] == "1"}
	})
	return out, err
}
