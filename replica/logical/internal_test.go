package logical

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
)

func TestFingerprintSeesDDL(t *testing.T) {
	t.Parallel()
	inst := localpgtest.Start(t, nil)
	ctx := context.Background()
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	steps := []string{
		`CREATE TABLE "Tab ""X"" Ä" (id int PRIMARY KEY, v text)`,
		`ALTER TABLE "Tab ""X"" Ä" ADD COLUMN w int`,
		`ALTER TABLE "Tab ""X"" Ä" ALTER COLUMN v SET NOT NULL`,
		`CREATE INDEX i ON "Tab ""X"" Ä" (v)`,
		`CREATE TYPE mood AS ENUM ('a')`,
		`ALTER TYPE mood ADD VALUE 'b'`,
		`CREATE SCHEMA s2`,
		`CREATE VIEW s2.v AS SELECT 1 AS one`,
		`CREATE OR REPLACE VIEW s2.v AS SELECT 1 AS one, 2 AS two`,
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2'`,
		`ALTER TABLE "Tab ""X"" Ä" ADD CONSTRAINT c CHECK (id > 0)`,
		`CREATE SEQUENCE s2.seq`,
		`ALTER TABLE "Tab ""X"" Ä" REPLICA IDENTITY FULL`,
		`ALTER TABLE "Tab ""X"" Ä" ADD COLUMN "a long column name, longer than a name" text`,
		`ALTER TABLE "Tab ""X"" Ä" ADD COLUMN z int`, // beyond 63 bytes of the definition
	}
	prev, err := fingerprint(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range steps {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		now, err := fingerprint(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		err = driftError(prev, now)
		if !errors.Is(err, replica.ErrSchemaDrift) {
			t.Errorf("%s: not detected", q)
		} else {
			t.Logf("%s: %v", q, strings.TrimPrefix(err.Error(), replica.ErrSchemaDrift.Error()))
		}
		prev = now
	}
}

func TestConninfo(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p%40ss@h:5433/db%20x?sslmode=disable": `dbname='db x' host='h' password='p@ss' port='5433' sslmode='disable' user='u'`,
		`host=h port=1 dbname='a \'b\' c' password=x\ y`:    `dbname='a \'b\' c' host='h' password='x y' port='1'`,
		"postgresql://h1:1,h2:2/d":                          `dbname='d' host='h1,h2' port='1,2'`,
	} {
		ci, err := parseConninfo(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ci.String(); got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
		back, err := parseConninfo(ci.String())
		if err != nil || back.String() != want {
			t.Errorf("round trip of %s: %v %s", want, err, back)
		}
	}
	if _, err := parseConninfo("host='unterminated"); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestObjectName(t *testing.T) {
	seen := map[string]bool{}
	for _, id := range []string{"a", "A", `tenant "Größe"/1`, strings.Repeat("x", 200), strings.Repeat("x", 199) + "y", ""} {
		n := objectName(id)
		if len(n) > 63 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("%q -> %q is not a valid slot name", id, n)
		}
		if seen[n] {
			t.Errorf("%q -> %q collides", id, n)
		}
		seen[n] = true
	}
}

func TestPosition(t *testing.T) {
	p, err := replica.ParsePosition("16/B374D848")
	if err != nil || p.String() != "16/B374D848" || p != 0x16B374D848 {
		t.Errorf("%v %v", p, err)
	}
	if _, err := replica.ParsePosition("nope"); err == nil {
		t.Error("accepted nope")
	}
}
