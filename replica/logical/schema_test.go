package logical_test

import (
	"strings"
	"testing"
	"time"

	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
)

// Materialized views populated on the source are populated on the target
// when the stream streams (the schema dump creates them empty), one that
// reads another included; one that is not populated on the source stays
// so.
func TestMaterializedViews(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 1000)
	execSQL(t, src, "t",
		`CREATE MATERIALIZED VIEW "Umsatz je Kunde" AS SELECT kunde, sum(amount) AS total, count(*) AS n FROM orders GROUP BY kunde`,
		`CREATE UNIQUE INDEX ON "Umsatz je Kunde" (kunde)`,
		`CREATE MATERIALIZED VIEW top AS SELECT kunde, total FROM "Umsatz je Kunde" WHERE n >= 10`,
		`CREATE MATERIALIZED VIEW never_refreshed AS SELECT count(*) FROM orders WITH NO DATA`)
	startStreaming(t, spec("matviews", src, "t", dst, "t"))
	const populated = `SELECT string_agg(relname || '=' || relispopulated, ' ' ORDER BY relname) FROM pg_class WHERE relkind = 'm'`
	if s, d := queryValue[string](t, src, "t", populated), queryValue[string](t, dst, "t", populated); s != d {
		t.Errorf("populated: source %s, target %s", s, d)
	}
	for _, mv := range []string{`"Umsatz je Kunde"`, "top"} {
		q := `SELECT count(*) || ' rows, ' || coalesce(sum(hashtext(m::text)), 0) FROM ` + mv + ` m`
		s, d := queryValue[string](t, src, "t", q), queryValue[string](t, dst, "t", q)
		if s != d || strings.HasPrefix(s, "0 rows") {
			t.Errorf("%s: source %s, target %s", mv, s, d)
		}
	}
}

// A post-data object that cannot be restored on the target stops the
// stream with pg_restore's error, which Progress reports, instead of
// being retried for ever. Here: an index on a function that reads a
// table by a name pg_restore's empty search_path does not find.
func TestPostDataFailureIsReported(t *testing.T) {
	t.Parallel()
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	dst := localpgtest.Start(t, &localpg.Config{Name: "dst"})
	createTenant(t, src, "t", 100)
	execSQL(t, src, "t",
		`CREATE TABLE rates (id int PRIMARY KEY, factor int)`,
		`INSERT INTO rates VALUES (1, 2)`,
		`CREATE FUNCTION scaled(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * (SELECT factor FROM rates WHERE id = 1)'`,
		`CREATE INDEX orders_scaled ON orders (scaled(kunde::int))`)
	ctx := testCtx(t, 2*time.Minute)
	st, err := provider.Start(ctx, spec("post-data fails", src, "t", dst, "t"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := st.Progress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Err != nil {
			t.Log(p.Err)
			if !strings.Contains(p.Err.Error(), "pg_restore") || !strings.Contains(p.Err.Error(), `"rates" does not exist`) ||
				p.Phase == replica.PhaseStreaming {
				t.Errorf("progress %+v: want pg_restore's error about rates, not streaming", p)
			}
			break
		}
		if p.Phase == replica.PhaseStreaming {
			t.Fatal("the stream streams without the index")
		}
		if ctx.Err() != nil {
			t.Fatalf("no error reported; last progress %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := st.WaitFor(ctx, 1); err == nil || !strings.Contains(err.Error(), "pg_restore") {
		t.Errorf("WaitFor on the failed stream: %v", err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoReplicationObjects(t, src, "t")
	assertNoReplicationObjects(t, dst)
	if databaseExists(t, dst, "t") {
		t.Error("Abort left the target database the stream created")
	}
}
