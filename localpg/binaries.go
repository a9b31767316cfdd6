package localpg

import (
	"errors"
	"fmt"

	"github.com/daisychain-db/daisychain/internal/pgbin"
)

// ErrBinariesNotFound is returned when the PostgreSQL server binaries
// cannot be found. The error wrapping it says where it looked and how to
// install them.
var ErrBinariesNotFound = errors.New("localpg: PostgreSQL server binaries not found")

const installHint = "install the PostgreSQL server package " +
	"(Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; " +
	"macOS: brew install postgresql)"

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (initdb and postgres; pg_ctl, pg_dump, pg_restore and pg_basebackup are
// beside them in every packaging). It looks, in order, at explicit (if
// not empty), the directories of PATH (symbolic links followed), the
// output of `pg_config --bindir`, and the newest
// /usr/lib/postgresql/*/bin: the order replica/logical follows for
// pg_dump and pg_restore, so both use one installation.
func FindBinDir(explicit string) (string, error) {
	dir, err := pgbin.Find(explicit, "initdb", "postgres")
	var nf *pgbin.NotFoundError
	switch {
	case errors.As(err, &nf) && explicit != "":
		return "", fmt.Errorf("%w %s (Config.BinDir): %s", ErrBinariesNotFound, nf.Where, installHint)
	case errors.As(err, &nf):
		return "", fmt.Errorf("%w %s: %s or set Config.BinDir", ErrBinariesNotFound, nf.Where, installHint)
	case err != nil:
		return "", fmt.Errorf("localpg: %w", err)
	}
	return dir, nil
}
