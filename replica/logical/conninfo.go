package logical

import (
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daisychain-db/daisychain/internal/connstring"
)

// conninfo is a connection string as keyword/value pairs, so that a
// database or password can be replaced or removed.
type conninfo = connstring.Keywords

func parseConninfo(s string) (conninfo, error) { return connstring.Parse(s) }

// withCredentials completes the subscription's connection string with
// what this process would use and the target server would not find on
// its own: the user, password, host and port that pgx resolves from the
// environment (PGUSER, PGPASSWORD, PGHOST, PGPORT) and the passfile
// (PGPASSFILE or ~/.pgpass), unless the string names them. The target
// server's libpq runs with the server's environment, not this process's.
func withCredentials(ci conninfo) conninfo {
	cfg, err := pgconn.ParseConfig(ci.String())
	if err != nil {
		return ci // the connections of the stream fail with a clearer error
	}
	for key, value := range map[string]string{"user": cfg.User, "password": cfg.Password, "host": cfg.Host, "port": strconv.Itoa(int(cfg.Port))} {
		if _, ok := ci[key]; !ok && value != "" && value != "0" {
			ci = ci.With(key, value)
		}
	}
	return ci
}
