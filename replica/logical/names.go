package logical

import (
	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/replica"
)

// objectName names the stream's publication, slot and subscription:
// replica.ObjectName with prefix "dc", at most 56 bytes.
func objectName(id string) string { return replica.ObjectName("dc", id) }

func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }
