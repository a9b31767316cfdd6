package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/localpg/localpgtest"
)

// newPostgresCatalog returns a catalog in a fresh control database.
func newPostgresCatalog(t *testing.T, inst *localpg.Instance, db string, cfg *fleet.PostgresCatalogConfig) (*fleet.PostgresCatalog, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	localpgtest.CreateDatabase(t, inst, db)
	pool, err := pgxpool.New(ctx, inst.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cat, err := fleet.NewPostgresCatalog(ctx, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cat, pool
}

func TestCatalogContract(t *testing.T) {
	t.Parallel()
	inst := localpgtest.Start(t, &localpg.Config{Name: "control", Password: "control-pw"})
	impls := map[string]func(t *testing.T) fleet.Catalog{
		"memory": func(*testing.T) fleet.Catalog { return fleet.NewMemoryCatalog() },
		"postgres": func(t *testing.T) fleet.Catalog {
			cat, _ := newPostgresCatalog(t, inst, "control_"+strings.ReplaceAll(t.Name()[len("TestCatalogContract/"):], "/", "_"), nil)
			return cat
		},
	}
	for name, newCatalog := range impls {
		t.Run(name, func(t *testing.T) {
			t.Run("assign", func(t *testing.T) { testAssign(t, newCatalog(t)) })
			t.Run("bad input changes nothing", func(t *testing.T) { testBadInput(t, newCatalog(t)) })
			t.Run("concurrent assign with From", func(t *testing.T) { testConcurrentAssign(t, newCatalog(t)) })
			t.Run("unregister", func(t *testing.T) { testUnregister(t, newCatalog(t)) })
		})
	}
}

func instance(id string, port int) fleet.Instance {
	return fleet.Instance{
		ID:       id,
		Admin:    fmt.Sprintf("postgres://admin@127.0.0.1:%d/postgres", port),
		Endpoint: fleet.Endpoint{Host: "127.0.0.1", Port: port},
		Limits:   fleet.Limits{MaxFiles: 1000, MaxTenants: 10},
	}
}

func mustRegister(t *testing.T, cat fleet.Catalog, insts ...fleet.Instance) {
	t.Helper()
	for _, i := range insts {
		if err := cat.RegisterInstance(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
}

func testAssign(t *testing.T, cat fleet.Catalog) {
	ctx := context.Background()
	mustRegister(t, cat, instance("b", 5433), instance("a", 5432))
	insts, err := cat.Instances(ctx)
	if err != nil || len(insts) != 2 || insts[0].ID != "a" || insts[1].Limits.MaxFiles != 1000 {
		t.Fatalf("Instances = %v, %v", insts, err)
	}
	for _, id := range []string{"t2", "t1", "t3"} {
		if err := cat.AddTenant(ctx, fleet.Tenant{ID: id, Database: "db_" + id, Instance: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.Assign(ctx, "t2", "b", &fleet.AssignOpts{From: "a"}); err != nil {
		t.Fatal(err)
	}
	got, err := cat.Locate(ctx, "t2")
	if err != nil || got != (fleet.Tenant{ID: "t2", Database: "db_t2", Instance: "b"}) {
		t.Fatalf("Locate(t2) = %+v, %v", got, err)
	}
	onA, err := cat.Tenants(ctx, "a")
	if err != nil || len(onA) != 2 || onA[0].ID != "t1" || onA[1].ID != "t3" {
		t.Fatalf("Tenants(a) = %+v, %v", onA, err)
	}
	onB, err := cat.Tenants(ctx, "b")
	if err != nil || len(onB) != 1 {
		t.Fatalf("Tenants(b) = %+v, %v", onB, err)
	}
	// Assign without From is unconditional.
	if err := cat.Assign(ctx, "t2", "a", nil); err != nil {
		t.Fatal(err)
	}
	// Re-registering updates the instance.
	upd := instance("b", 6000)
	mustRegister(t, cat, upd)
	if got, err := cat.Instance(ctx, "b"); err != nil || got.Endpoint.Port != 6000 {
		t.Fatalf("Instance(b) after update = %v, %v", got, err)
	}
}

func testBadInput(t *testing.T, cat fleet.Catalog) {
	ctx := context.Background()
	mustRegister(t, cat, instance("a", 5432), instance("b", 5433))
	if err := cat.AddTenant(ctx, fleet.Tenant{ID: "t1", Database: "db1", Instance: "a"}); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"Instance(unknown)", second(cat.Instance(ctx, "nope")), fleet.ErrInstanceNotFound},
		{"Locate(unknown)", second(cat.Locate(ctx, "nope")), fleet.ErrTenantNotFound},
		{"Tenants(unknown)", second(cat.Tenants(ctx, "nope")), fleet.ErrInstanceNotFound},
		{"AddTenant on unknown instance", cat.AddTenant(ctx, fleet.Tenant{ID: "t9", Database: "d", Instance: "nope"}), fleet.ErrInstanceNotFound},
		{"AddTenant twice", cat.AddTenant(ctx, fleet.Tenant{ID: "t1", Database: "db1", Instance: "b"}), fleet.ErrTenantExists},
		{"AddTenant without database", cat.AddTenant(ctx, fleet.Tenant{ID: "t8", Instance: "a"}), fleet.ErrInvalid},
		{"Assign unknown tenant", cat.Assign(ctx, "nope", "a", nil), fleet.ErrTenantNotFound},
		{"Assign to unknown instance", cat.Assign(ctx, "t1", "nope", nil), fleet.ErrInstanceNotFound},
		{"Assign from wrong instance", cat.Assign(ctx, "t1", "b", &fleet.AssignOpts{From: "b"}), fleet.ErrAssignConflict},
		{"RegisterInstance without endpoint", cat.RegisterInstance(ctx, fleet.Instance{ID: "c", Admin: "host=x"}), fleet.ErrInvalid},
		{"RegisterInstance without ID", cat.RegisterInstance(ctx, fleet.Instance{Admin: "host=x", Endpoint: fleet.Endpoint{Host: "x", Port: 1}}), fleet.ErrInvalid},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, c.err, c.want)
		}
	}
	// Nothing was half-written.
	got, err := cat.Locate(ctx, "t1")
	if err != nil || got.Instance != "a" {
		t.Errorf("t1 after refused changes: %+v, %v", got, err)
	}
	insts, _ := cat.Instances(ctx)
	if len(insts) != 2 {
		t.Errorf("instances after refused registrations: %v", insts)
	}
	if _, err := cat.Locate(ctx, "t9"); !errors.Is(err, fleet.ErrTenantNotFound) {
		t.Errorf("t9 exists after a refused AddTenant: %v", err)
	}
}

// testConcurrentAssign moves one tenant from a to b from many goroutines
// at once: exactly one may win.
func testConcurrentAssign(t *testing.T, cat fleet.Catalog) {
	ctx := context.Background()
	mustRegister(t, cat, instance("a", 5432), instance("b", 5433))
	if err := cat.AddTenant(ctx, fleet.Tenant{ID: "t", Database: "d", Instance: "a"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make(chan error, 8)
	for range 8 {
		wg.Go(func() { results <- cat.Assign(ctx, "t", "b", &fleet.AssignOpts{From: "a"}) })
	}
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, fleet.ErrAssignConflict):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d movers won, want exactly 1", won)
	}
}

// testUnregister: an instance that serves tenants is refused and kept;
// an empty one goes, and with it every way to place or assign a tenant
// there.
func testUnregister(t *testing.T, cat fleet.Catalog) {
	ctx := context.Background()
	mustRegister(t, cat, instance("a", 5432), instance("b", 5433))
	if err := cat.AddTenant(ctx, fleet.Tenant{ID: "t1", Database: "db1", Instance: "a"}); err != nil {
		t.Fatal(err)
	}
	err := cat.UnregisterInstance(ctx, "a")
	if !errors.Is(err, fleet.ErrInstanceInUse) || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), "1 tenant") {
		t.Errorf("UnregisterInstance of an instance with a tenant: %v, want ErrInstanceInUse naming it and its 1 tenant", err)
	}
	if _, err := cat.Instance(ctx, "a"); err != nil {
		t.Errorf("a refused UnregisterInstance removed the instance: %v", err)
	}
	if tn, err := cat.Locate(ctx, "t1"); err != nil || tn.Instance != "a" {
		t.Errorf("a refused UnregisterInstance changed the tenant: %+v, %v", tn, err)
	}
	if err := cat.UnregisterInstance(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Instance(ctx, "b"); !errors.Is(err, fleet.ErrInstanceNotFound) {
		t.Errorf("Instance(b) after UnregisterInstance: %v, want ErrInstanceNotFound", err)
	}
	if insts, _ := cat.Instances(ctx); len(insts) != 1 || insts[0].ID != "a" {
		t.Errorf("Instances after UnregisterInstance(b): %v", insts)
	}
	if err := cat.Assign(ctx, "t1", "b", nil); !errors.Is(err, fleet.ErrInstanceNotFound) {
		t.Errorf("Assign to an unregistered instance: %v, want ErrInstanceNotFound", err)
	}
	if err := cat.UnregisterInstance(ctx, "b"); !errors.Is(err, fleet.ErrInstanceNotFound) {
		t.Errorf("UnregisterInstance twice: %v, want ErrInstanceNotFound", err)
	}
	// Registered again, it is empty and can take the tenant.
	mustRegister(t, cat, instance("b", 5433))
	if err := cat.Assign(ctx, "t1", "b", &fleet.AssignOpts{From: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := cat.UnregisterInstance(ctx, "a"); err != nil {
		t.Errorf("UnregisterInstance of an instance its tenant left: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestPostgresCatalogNeverStoresPasswords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	var asked []string
	cat, pool := newPostgresCatalog(t, inst, "control", &fleet.PostgresCatalogConfig{
		Schema: "Fleet Catalog",
		AdminPassword: func(_ context.Context, id string) (string, error) {
			asked = append(asked, id)
			return "from-vault", nil
		},
	})
	in := instance("a", 5432)
	in.Admin = "postgres://admin:hunter2@127.0.0.1:5432/postgres?sslmode=disable"
	mustRegister(t, cat, in)
	var stored string
	if err := pool.QueryRow(ctx, `SELECT admin FROM "Fleet Catalog".instances`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, "hunter2") {
		t.Fatalf("stored admin connection string holds the password: %s", stored)
	}
	got, err := cat.Instance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Admin != "postgres://admin:from-vault@127.0.0.1:5432/postgres?sslmode=disable" {
		t.Errorf("Admin read back = %q", localpg.Redact(got.Admin))
	}
	if len(asked) != 1 || asked[0] != "a" {
		t.Errorf("AdminPassword asked for %v", asked)
	}
	if s := fmt.Sprintf("%v %+v %s", got, got, got); strings.Contains(s, "from-vault") {
		t.Errorf("printing an Instance shows its password: %s", s)
	}
}

// TestPostgresCatalogConcurrentCreation creates the schema from many
// goroutines, each with its own connection, at once.
func TestPostgresCatalogConcurrentCreation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst := localpgtest.Start(t, nil)
	localpgtest.CreateDatabase(t, inst, "control")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			pool, err := pgxpool.New(ctx, inst.ConnString("control"))
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			cat, err := fleet.NewPostgresCatalog(ctx, pool, nil)
			if err != nil {
				errs <- err
				return
			}
			_, err = cat.Instances(ctx)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	conn, err := inst.Connect(ctx, "control")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var version int
	if err := conn.QueryRow(ctx, `SELECT version FROM daisychain.schema_version WHERE component = 'catalog'`).Scan(&version); err != nil || version != 1 {
		t.Errorf("catalog schema version = %d, %v; want 1", version, err)
	}
}
