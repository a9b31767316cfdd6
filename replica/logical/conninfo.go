package logical

import "github.com/daisychain-db/daisychain/internal/connstring"

// conninfo is a connection string as keyword/value pairs, so that a
// database or password can be replaced or removed.
type conninfo = connstring.Keywords

func parseConninfo(s string) (conninfo, error) { return connstring.Parse(s) }
