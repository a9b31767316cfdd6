package logical

import (
	"context"
	"fmt"
)

// dbLocale is a database's encoding and locale, which a database gets
// when it is created and keeps.
type dbLocale struct {
	encoding, collate, ctype string
	// provider is datlocprovider: "c" libc, "i" ICU (15), "b" builtin
	// (17); locale is the ICU or builtin provider's locale.
	provider, locale string
}

// readLocale reads the locale of database datname from a server of
// version major. The provider came in 15 with daticulocale; 17 renamed
// that column datlocale, which holds the builtin provider's locale too.
func readLocale(ctx context.Context, q querier, major int, datname string) (dbLocale, error) {
	var providerLocale string
	switch {
	case major >= 17:
		providerLocale = `datlocprovider::text, coalesce(datlocale, '')`
	case major >= 15:
		providerLocale = `datlocprovider::text, coalesce(daticulocale, '')`
	default:
		providerLocale = `'c', ''`
	}
	var l dbLocale
	err := q.QueryRow(ctx, `SELECT pg_encoding_to_char(encoding), datcollate, datctype, `+providerLocale+`
		FROM pg_database WHERE datname = $1`, datname).Scan(&l.encoding, &l.collate, &l.ctype, &l.provider, &l.locale)
	return l, err
}

func (l dbLocale) String() string {
	return fmt.Sprintf("encoding %s, collation %s, ctype %s, locale provider %s %s", l.encoding, l.collate, l.ctype, l.provider, l.locale)
}

// unsupported says why a server of version major cannot create a
// database with this locale, or "" when it can.
func (l dbLocale) unsupported(major int) string {
	switch {
	case l.provider == "i" && major < 15:
		return fmt.Sprintf("the source database uses the ICU locale %s as its default collation, which the target's PostgreSQL %d cannot: use a target of version 15 or newer",
			l.locale, major)
	case l.provider == "b" && major < 17:
		return fmt.Sprintf("the source database uses the builtin locale provider (%s), which the target's PostgreSQL %d does not have: use a target of version 17 or newer",
			l.locale, major)
	}
	return ""
}

// createOptions returns stmt, a CREATE DATABASE statement, with the
// options that give the database this locale.
func (l dbLocale) createOptions(ctx context.Context, q querier, stmt string) (string, error) {
	if l.encoding == "" {
		return stmt, nil
	}
	stmt, err := formatStatement(ctx, q, "%s ENCODING %L LC_COLLATE %L LC_CTYPE %L", stmt, l.encoding, l.collate, l.ctype)
	if err != nil {
		return "", err
	}
	switch l.provider {
	case "i":
		return formatStatement(ctx, q, "%s LOCALE_PROVIDER icu ICU_LOCALE %L", stmt, l.locale)
	case "b":
		return formatStatement(ctx, q, "%s LOCALE_PROVIDER builtin BUILTIN_LOCALE %L", stmt, l.locale)
	}
	return stmt, nil
}
