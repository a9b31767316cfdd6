package pgschema_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/daisychain-db/daisychain/internal/pgschema"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	conn, err := inst.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const schema = `Odd "schema"`
	v1 := []string{`CREATE TABLE {{schema}}.things (id int PRIMARY KEY)`}
	v2 := append(v1, `ALTER TABLE {{schema}}.things ADD COLUMN name text`)

	for _, steps := range [][]string{v1, v1, v2, v2} {
		if err := pgschema.Migrate(ctx, conn, schema, "things", steps); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO "Odd ""schema""".things (id, name) VALUES (1, 'x')`); err != nil {
		t.Fatalf("table after v2: %v", err)
	}
	// An older library meeting a newer schema refuses and changes nothing.
	err = pgschema.Migrate(ctx, conn, schema, "things", v1)
	if err == nil || !strings.Contains(err.Error(), "upgrade daisychain") {
		t.Errorf("older steps on a newer schema: %v", err)
	}
	// A failing step rolls the whole migration back.
	bad := append(v2, `CREATE TABLE {{schema}}.more (id int)`, `SELECT no_such_function()`)
	if err := pgschema.Migrate(ctx, conn, schema, "things", bad); err == nil {
		t.Fatal("a failing step succeeded")
	}
	var more bool
	var version int
	if err := conn.QueryRow(ctx, `SELECT to_regclass('"Odd ""schema""".more') IS NOT NULL,
		(SELECT version FROM "Odd ""schema""".schema_version WHERE component = 'things')`).Scan(&more, &version); err != nil {
		t.Fatal(err)
	}
	if more || version != 2 {
		t.Errorf("after a failed migration: table created=%v version=%d, want false and 2", more, version)
	}
}
