package logical

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/daisychain-db/daisychain/replica"
)

// CheckSchema implements replica.Stream.
func (s *stream) CheckSchema(ctx context.Context) error {
	if _, err := s.state(); err != nil {
		return err
	}
	var now map[string]string
	err := s.readSource(ctx, func(q querier, _ int) (err error) {
		now, err = fingerprint(ctx, q)
		return err
	})
	if err != nil {
		return fmt.Errorf("logical: %w", err)
	}
	return driftError(s.m.Fingerprint, now)
}

// fingerprintQuery lists the source schema's objects with their
// definitions; a change of any of them is drift.
var fingerprintQuery = `
SELECT 'schema ' || quote_ident(n.nspname), pg_get_userbyid(n.nspowner)::text
FROM pg_namespace n WHERE ` + userSchemas + ` AND ` + notExtensionMember("pg_namespace", "n.oid") + `
UNION ALL
SELECT 'extension ' || quote_ident(x.extname), x.extversion::text FROM pg_extension x
UNION ALL
SELECT 'relation ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text || ' ' || c.relreplident::text || ' ' || coalesce((
	SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
		|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		|| coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''), ', ' ORDER BY a.attnum)
	FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
	|| coalesce(' view ' || CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END, '')
	|| coalesce(' partition ' || pg_get_expr(c.relpartbound, c.oid), '')
	|| CASE WHEN c.relpersistence = 'u' THEN ' unlogged' ELSE '' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ` + userSchemas + ` AND ` + notExtensionMember("pg_class", "c.oid") + `
UNION ALL
SELECT 'constraint ' || coalesce(co.conrelid::regclass::text, co.contypid::regtype::text) || '.' || quote_ident(co.conname),
	pg_get_constraintdef(co.oid)
FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE ` + userSchemas + `
	AND ` + notExtensionMember("pg_constraint", "co.oid") + `
UNION ALL
SELECT 'index ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE ` + userSchemas + ` AND ` + notExtensionMember("pg_class", "c.oid") + `
UNION ALL
SELECT 'trigger ' || t.tgrelid::regclass::text || '.' || quote_ident(t.tgname), pg_get_triggerdef(t.oid)
FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT c.oid FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ` + userSchemas + `)
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text,
	p.prokind::text || ' ' || md5(coalesce(p.prosrc, '') || ' ' || pg_get_function_result(p.oid)::text || ' ' || p.provolatile::text)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ` + userSchemas + `
	AND ` + notExtensionMember("pg_proc", "p.oid") + `
UNION ALL
SELECT 'type ' || t.oid::regtype::text, t.typtype::text || ' ' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
	FROM pg_enum e WHERE e.enumtypid = t.oid), '')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd', 'c', 'r') AND ` + userSchemas + ` AND ` + notExtensionMember("pg_type", "t.oid") + `
	AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')`

// fingerprint returns each schema object's key with a hash of its
// definition.
func fingerprint(ctx context.Context, q querier) (map[string]string, error) {
	rows, err := q.Query(ctx, fingerprintQuery)
	if err != nil {
		return nil, fmt.Errorf("fingerprint the source schema: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var key, def string
		if err := rows.Scan(&key, &def); err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(def))
		out[key] = hex.EncodeToString(sum[:8])
	}
	return out, rows.Err()
}

// driftError compares fingerprints; nil when they are equal.
func driftError(then, now map[string]string) error {
	var changes []string
	for k, h := range now {
		switch old, ok := then[k]; {
		case !ok:
			changes = append(changes, "added "+k)
		case old != h:
			changes = append(changes, "changed "+k)
		}
	}
	for k := range then {
		if _, ok := now[k]; !ok {
			changes = append(changes, "dropped "+k)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	slices.Sort(changes)
	n := len(changes)
	if n > 20 {
		changes = append(changes[:20], fmt.Sprintf("and %d more", n-20))
	}
	return fmt.Errorf("%w: %s", replica.ErrSchemaDrift, strings.Join(changes, "; "))
}
