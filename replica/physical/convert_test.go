package physical_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// The whole conversion under writes to several tenant databases: every
// acknowledged write is on the promoted replica, which has the source's
// content exactly and takes writes; the source keeps no slot.
func TestConvertUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 5*time.Minute)
	const password = "src pw'x"
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Password: password})
	tenants := []string{"tenant_a", "tenant_b", `Tenant "C"`}
	for _, db := range tenants {
		newTenant(t, src, db, 20000)
	}
	var writers []*writer
	for _, db := range tenants {
		writers = append(writers, startWriter(t, src.ConnString(db), db))
	}

	conv := &physical.Converter{Replica: localpg.Config{BaseDir: baseDir(t)}}
	spec := replica.ConvertSpec{ID: "convert under writes", Source: src.ConnString("postgres")}
	st, err := conv.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	cv := st.(*physical.Conversion)
	t.Cleanup(func() {
		if inst := cv.LocalInstance(); inst != nil {
			if t.Failed() {
				t.Logf("replica log:\n%s", inst.Log())
			}
			inst.Close()
		}
	})
	if again, err := conv.Start(ctx, spec); err != nil || again != st {
		t.Errorf("second Start with the same ID: %v, %v; want the same conversion", again, err)
	}
	if err := st.Promote(ctx); !errors.Is(err, replica.ErrNotReady) {
		t.Errorf("Promote during the copy: %v, want ErrNotReady", err)
	}
	if err := waitCaughtUp(ctx, st, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := st.Promote(ctx); !errors.Is(err, replica.ErrNotReady) {
		t.Errorf("Promote before WaitFor: %v, want ErrNotReady", err)
	}
	if s := slots(t, src); !strings.Contains(s, cv.SlotName()) {
		t.Errorf("slots on the source %q, want %s while streaming", s, cv.SlotName())
	}
	for _, w := range writers {
		if w.n.Load() == 0 {
			t.Fatalf("writer of %s acknowledged nothing before the fence", w.db)
		}
	}

	// The fence, as Convert does it: every tenant database refuses
	// connections and its sessions are ended.
	inst := fleet.Instance{ID: "src", Admin: src.ConnString("postgres"), Endpoint: fleet.Endpoint{Host: localpg.Host, Port: src.Port()}}
	t0 := time.Now()
	for _, db := range tenants {
		if err := (cutover.DatabaseFence{}).Hold(ctx, cutover.FenceTarget{Tenant: fleet.Tenant{ID: db, Database: db, Instance: "src"}, Instance: inst}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range writers {
		if err := w.waitEnded(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pos, err := st.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := st.WaitFor(ctx, pos); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	if err := st.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("fence %s, wait for the barrier %s, promote %s; writes acknowledged: %d",
		t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond), acked(writers))
	if err := st.Promote(ctx); err != nil {
		t.Errorf("second Promote: %v", err)
	}
	if p, err := st.Progress(ctx); err != nil || p.Phase != replica.PhasePromoted {
		t.Errorf("progress after Promote: %+v, %v", p, err)
	}

	admin := st.AdminConnString()
	if st.Endpoint().Port == src.Port() || st.Endpoint().Port == 0 {
		t.Fatalf("replica endpoint %s", st.Endpoint())
	}
	if strings.Contains(st.Endpoint().String(), password) || strings.Contains(fmt.Sprint(spec), password) {
		t.Error("a printed form shows the password")
	}
	if got := queryString(t, admin, `SELECT pg_is_in_recovery()::text`); got != "false" {
		t.Errorf("replica in recovery after Promote: %s", got)
	}
	if got := queryString(t, admin, `SELECT current_setting('primary_conninfo') || current_setting('primary_slot_name')`); got != "" {
		t.Errorf("the promoted replica still has primary_conninfo or primary_slot_name: %q", got)
	}
	if s := slots(t, src); s != "" {
		t.Errorf("slots left on the source: %s", s)
	}
	// The database fence lives in the catalog (datallowconn), so the
	// replica inherited it: releasing it there is the cutover's last step.
	newInst := fleet.Instance{ID: "replica", Admin: admin, Endpoint: st.Endpoint()}
	for _, db := range tenants {
		if got := queryString(t, admin, `SELECT datallowconn::text FROM pg_database WHERE datname = $1`, db); got != "false" {
			t.Errorf("%s on the replica: datallowconn %s, want the fence copied (false)", db, got)
		}
		if err := (cutover.DatabaseFence{}).Release(ctx, cutover.FenceTarget{Tenant: fleet.Tenant{ID: db, Database: db, Instance: "replica"}, Instance: newInst}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range writers {
		db := w.db
		// The source stays fenced: the converter does not touch it.
		if got := queryString(t, src.ConnString("postgres"), `SELECT datallowconn::text FROM pg_database WHERE datname = $1`, db); got != "false" {
			t.Errorf("%s: the source database allows connections again (%s): the converter changed the fence", db, got)
		}
		execSQL(t, src.ConnString("postgres"), "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" WITH ALLOW_CONNECTIONS true")
		const sum = `SELECT count(*) || ' ' || md5(string_agg(id || ':' || n || ':' || payload, ',' ORDER BY id)) FROM acked`
		want := queryString(t, src.ConnString(db), sum)
		if got := queryString(t, withDatabase(admin, db), sum); got != want {
			t.Errorf("%s: replica %s, source %s", db, got, want)
		}
		present := queryString(t, withDatabase(admin, db), `SELECT string_agg(id::text, ',') FROM acked WHERE id > 20000`)
		ids := strings.Split(present, ",")
		missing := 0
		for _, id := range w.acked {
			if !slices.Contains(ids, fmt.Sprint(id)) {
				missing++
			}
		}
		if missing > 0 || len(w.acked) == 0 {
			t.Errorf("%s: %d of %d acknowledged writes missing on the replica", db, missing, len(w.acked))
		}
		execSQL(t, withDatabase(admin, db), `INSERT INTO acked (n) VALUES (0)`)
	}
}

func acked(ws []*writer) int {
	n := 0
	for _, w := range ws {
		n += len(w.acked)
	}
	return n
}

// Abort during the base backup and after it leaves nothing: no slot, no
// directory, no process; the ID can be started again.
func TestAbortLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	newTenant(t, src, "tenant", 100000) // about 20 MB
	dir := baseDir(t)
	// 5 MB/s: the copy takes a few seconds, so Abort finds it running.
	conv := &physical.Converter{Replica: localpg.Config{BaseDir: dir}, MaxRate: "5M"}
	spec := replica.ConvertSpec{ID: "abort", Source: src.ConnString("postgres")}

	st, err := conv.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := st.Progress(ctx)
		if err != nil || p.Err != nil {
			t.Fatal(err, p.Err)
		}
		if p.Phase != replica.PhaseCopy {
			t.Fatalf("the copy finished before Abort (%+v): MaxRate did not slow it", p)
		}
		if p.BytesCopied > 0 {
			if p.BytesTotal < p.BytesCopied {
				t.Errorf("progress %d of %d bytes", p.BytesCopied, p.BytesTotal)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(processesUnder(dir)) == 0 {
		t.Error("no pg_basebackup runs during the copy")
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, src, dir)
	if _, err := st.Progress(ctx); !errors.Is(err, replica.ErrClosed) {
		t.Errorf("Progress after Abort: %v, want ErrClosed", err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Errorf("second Abort: %v", err)
	}

	// Started again, streaming, then aborted.
	conv.MaxRate = ""
	st2, err := conv.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st2 == st {
		t.Fatal("Start after Abort returned the aborted conversion")
	}
	if err := waitCaughtUp(ctx, st2, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := st2.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, src, dir)
}

// A replica lost with its process leaves its slot on the source: Start
// with the same ID in a new Converter reuses it for a new base backup.
func TestStartReusesLeftSlot(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	src := localpgtest.Start(t, &localpg.Config{Name: "src"})
	newTenant(t, src, "tenant", 1000)
	dir := baseDir(t)
	spec := replica.ConvertSpec{ID: "crash", Source: src.ConnString("postgres")}
	first, err := (&physical.Converter{Replica: localpg.Config{BaseDir: dir}}).Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitCaughtUp(ctx, first, 1<<20); err != nil {
		t.Fatal(err)
	}
	slot := first.(*physical.Conversion).SlotName()
	// As if the process died: its replica dies with it.
	if err := first.(*physical.Conversion).LocalInstance().Kill(); err != nil {
		t.Fatal(err)
	}
	second, err := (&physical.Converter{Replica: localpg.Config{BaseDir: dir}}).Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitCaughtUp(ctx, second, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s := slots(t, src); s != slot {
		t.Errorf("slots %q, want only %s", s, slot)
	}
	execSQL(t, src.ConnString("tenant"), `INSERT INTO acked (n) VALUES (42)`)
	pos, err := second.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.WaitFor(ctx, pos); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, withDatabase(second.AdminConnString(), "tenant"), `SELECT count(*)::text FROM acked WHERE n = 42`); got != "1" {
		t.Errorf("the write before the barrier: %s rows on the replica, want 1", got)
	}
	if err := errors.Join(second.Abort(ctx), first.Abort(ctx)); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, src, dir)
}

// Bad sources fail Start with an error that says what to fix, shows no
// password, and leave nothing on the source or on disk.
func TestBadSourceLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 2*time.Minute)
	const password = "s3cret-pw"
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Password: password})
	execSQL(t, src.ConnString("postgres"), `CREATE ROLE plain LOGIN PASSWORD 's3cret-pw'`)
	dir := baseDir(t)
	conv := &physical.Converter{Replica: localpg.Config{BaseDir: dir}}
	closed := localpgtest.Start(t, nil)
	closedPort := closed.Port()
	closed.Close()
	cases := []struct {
		name, source string
		is           error
		want         string
	}{
		{"no server", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", password, closedPort), replica.ErrPreflight, "connection"},
		{"wrong password", src.ConnStringAs(localpg.SuperuserDefault, "wrong-"+password, "postgres"), replica.ErrPreflight, "password authentication failed"},
		{"no REPLICATION", src.ConnStringAs("plain", password, "postgres"), replica.ErrPreflight, "REPLICATION"},
		{"unparsable", "host=127.0.0.1 password='" + password, replica.ErrInvalidSpec, "not a valid connection string"},
		{"empty", "", replica.ErrInvalidSpec, "Source"},
	}
	for _, c := range cases {
		_, err := conv.Start(ctx, replica.ConvertSpec{ID: "bad " + c.name, Source: c.source})
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %v saying %q", c.name, err, c.is, c.want)
		}
		if err != nil && strings.Contains(err.Error(), password) {
			t.Errorf("%s: the error shows the password: %v", c.name, err)
		}
	}
	if _, err := conv.Start(ctx, replica.ConvertSpec{ID: "", Source: src.ConnString("postgres")}); !errors.Is(err, replica.ErrInvalidSpec) {
		t.Errorf("empty ID: %v", err)
	}
	// A source that keeps WAL for slots without bound: refused, unless
	// the Converter accepts it.
	execSQL(t, src.ConnString("postgres"), `ALTER SYSTEM SET max_slot_wal_keep_size = -1`, `SELECT pg_reload_conf()`)
	for queryString(t, src.ConnString("postgres"), `SHOW max_slot_wal_keep_size`) != "-1" {
		time.Sleep(10 * time.Millisecond)
	}
	_, err := conv.Start(ctx, replica.ConvertSpec{ID: "unbounded", Source: src.ConnString("postgres")})
	if !errors.Is(err, replica.ErrPreflight) || !strings.Contains(err.Error(), "max_slot_wal_keep_size") || !strings.Contains(err.Error(), "AllowUnboundedSlotWAL") {
		t.Errorf("unbounded slot WAL: %v, want ErrPreflight naming max_slot_wal_keep_size", err)
	}
	accepting := &physical.Converter{Replica: localpg.Config{BaseDir: dir}, AllowUnboundedSlotWAL: true}
	if report, err := accepting.Preflight(ctx, replica.ConvertSpec{ID: "unbounded", Source: src.ConnString("postgres")}); err != nil || !report.OK() {
		t.Errorf("unbounded slot WAL accepted: %v %v", err, report.Err())
	}
	bad := &physical.Converter{Replica: localpg.Config{BaseDir: dir}, MaxRate: "fast"}
	if _, err := bad.Start(ctx, replica.ConvertSpec{ID: "rate", Source: src.ConnString("postgres")}); !errors.Is(err, replica.ErrInvalidSpec) || !strings.Contains(err.Error(), "MaxRate") {
		t.Errorf("bad MaxRate: %v", err)
	}
	assertNothingLeft(t, src, dir)
}

// A replica that stops while the source writes: once the source has
// invalidated the conversion's slot (max_slot_wal_keep_size), WaitFor and
// Progress fail with ErrSlotLost instead of waiting.
func TestSlotLostFailsFast(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	src := localpgtest.Start(t, &localpg.Config{Name: "src", Settings: map[string]string{"max_slot_wal_keep_size": "1MB"}})
	newTenant(t, src, "tenant", 1000)
	dir := baseDir(t)
	conv := &physical.Converter{Replica: localpg.Config{BaseDir: dir}}
	cv, err := conv.Start(ctx, replica.ConvertSpec{ID: "lost", Source: src.ConnString("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cv.Abort(testCtx(t, time.Minute)) })
	if err := waitCaughtUp(ctx, cv, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := cv.(*physical.Conversion).LocalInstance().Stop(); err != nil {
		t.Fatal(err)
	}
	slot := cv.(*physical.Conversion).SlotName()
	for i := 0; queryString(t, src.ConnString("postgres"), `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, slot) != "lost"; i++ {
		if i == 20 {
			t.Fatal("the source did not invalidate the slot")
		}
		execSQL(t, src.ConnString("tenant"), `INSERT INTO acked (n) SELECT i FROM generate_series(1, 20000) i`,
			`SELECT pg_switch_wal()`, `CHECKPOINT`)
	}
	wctx := testCtx(t, 30*time.Second)
	pos, err := cv.Barrier(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cv.WaitFor(wctx, pos); !errors.Is(err, replica.ErrSlotLost) {
		t.Errorf("WaitFor with the slot lost: %v, want ErrSlotLost", err)
	}
	if p, err := cv.Progress(ctx); err != nil || !errors.Is(p.Err, replica.ErrSlotLost) {
		t.Errorf("Progress with the slot lost: %v %+v, want Err ErrSlotLost", err, p)
	}
}
