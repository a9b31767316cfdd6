package cutovertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/daisychain-db/daisychain/cutover"
	"github.com/daisychain-db/daisychain/flags"
	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/localpg"
	"github.com/daisychain-db/daisychain/replica"
	"github.com/daisychain-db/daisychain/replica/physical"
)

// FleetConfig configures a Fleet; nil means defaults.
type FleetConfig struct {
	// Instances names the tenant instances to start. Default
	// ["pg-a", "pg-b"].
	Instances []string
	// Limits of every tenant instance. Default: none.
	Limits fleet.Limits
	// Logger for the instances. Default: discarded.
	Logger *slog.Logger
}

// Fleet is a control instance and tenant instances, with the control
// database's catalog, journal and route table, and an application Router
// that reads routes through a PostgreSQL provider of its own (as another
// process would).
type Fleet struct {
	*Control
	ControlInstance *localpg.Instance
	Instances       map[string]*localpg.Instance
	Router          *flags.Router // the application's

	appRoutes *flags.PostgresProvider

	// converter converts the fleet's instances into local replicas,
	// which Close stops.
	converter *physical.Converter
}

// Converter returns a converter of the fleet's instances into local
// streaming replicas (replica/physical), whose replicas Close stops.
func (f *Fleet) Converter() replica.Converter { return f.converter }

// LocalConverter returns a converter like Fleet.Converter's, of its
// own: for a process that attaches with OpenControl.
func LocalConverter() *physical.Converter {
	// The replica's roles and passwords are the source's; a password in
	// its config makes localpg authenticate TCP with SCRAM, not trust.
	return &physical.Converter{Replica: localpg.Config{Name: "converted", Password: "(the source's)", Settings: instanceSettings}}
}

// ReplicaInstance returns the local instance of a converted replica
// whose endpoint port is port, or nil.
func (f *Fleet) ReplicaInstance(port int) *localpg.Instance {
	for _, c := range f.converter.Conversions() {
		if inst := c.LocalInstance(); inst != nil && inst.Port() == port {
			return inst
		}
	}
	return nil
}

// Control is what a mover needs of the control database: catalog,
// journal, route publisher and resolver. OpenControl attaches to the
// control database of a running Fleet, from another process.
type Control struct {
	URL       string
	Catalog   *fleet.PostgresCatalog
	Journal   *cutover.PostgresJournal
	Publisher *flags.PostgresProvider // the mover's: publishes, and reads for Routes
	Routes    *flags.Resolver         // the mover's view of routes

	pool *pgxpool.Pool
	apis []*openfeature.EvaluationAPI
}

// OpenControl connects to a Fleet's control database (its URL). Close it.
func OpenControl(ctx context.Context, url string) (_ *Control, err error) {
	c := &Control{URL: url}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if c.pool, err = pgxpool.New(ctx, url); err != nil {
		return nil, err
	}
	if c.Catalog, err = fleet.NewPostgresCatalog(ctx, c.pool, &fleet.PostgresCatalogConfig{
		AdminPassword: func(_ context.Context, id string) (string, error) { return passwordOf(id), nil },
	}); err != nil {
		return nil, err
	}
	if c.Journal, err = cutover.NewPostgresJournal(ctx, c.pool, nil); err != nil {
		return nil, err
	}
	if c.Publisher, err = flags.NewPostgresProvider(ctx, url, &flags.PostgresConfig{Catalog: c.Catalog}); err != nil {
		return nil, err
	}
	client, err := c.client(ctx, c.Publisher)
	if err != nil {
		return nil, err
	}
	c.Routes, err = flags.NewResolver(client, c.Catalog, nil)
	return c, err
}

// Close disconnects.
func (c *Control) Close() error {
	var errs []error
	for _, api := range c.apis {
		errs = append(errs, api.Shutdown(context.Background()))
	}
	if c.Publisher != nil {
		c.Publisher.Close()
	}
	if c.pool != nil {
		c.pool.Close()
	}
	return errors.Join(errs...)
}

// passwordOf is the superuser password of a Fleet's instance: real
// authentication, and a secret that must never show in output. A
// converted replica keeps its source's roles, so instance "pg-a.1" (the
// naming ConvertedID gives) has pg-a's password.
func passwordOf(name string) string {
	base, _, _ := strings.Cut(name, ".")
	return "pw-" + base + "-secret"
}

// instanceSettings bound the WAL a replication slot may keep, as the
// streams' and the converter's preflights require of a source.
var instanceSettings = map[string]string{"max_slot_wal_keep_size": "16GB"}

// ConvertedID names the n-th converted replica of an instance.
func ConvertedID(instance string, n int) string {
	base, _, _ := strings.Cut(instance, ".")
	return fmt.Sprintf("%s.%d", base, n)
}

// StartFleet starts the instances and wires everything. On error nothing
// is left running.
func StartFleet(ctx context.Context, cfg *FleetConfig) (_ *Fleet, err error) {
	var c FleetConfig
	if cfg != nil {
		c = *cfg
	}
	if len(c.Instances) == 0 {
		c.Instances = []string{"pg-a", "pg-b"}
	}
	f := &Fleet{Instances: map[string]*localpg.Instance{}, converter: LocalConverter()}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close())
		}
	}()
	start := func(name string) (*localpg.Instance, error) {
		return localpg.Start(ctx, &localpg.Config{Name: name, Password: passwordOf(name), Logger: c.Logger, Settings: instanceSettings})
	}
	if f.ControlInstance, err = start("control"); err != nil {
		return nil, err
	}
	for _, name := range c.Instances {
		inst, err := start(name)
		if err != nil {
			return nil, err
		}
		f.Instances[name] = inst
	}
	if err = f.ControlInstance.CreateDatabase(ctx, "daisychain"); err != nil {
		return nil, err
	}
	if f.Control, err = OpenControl(ctx, f.ControlInstance.ConnString("daisychain")); err != nil {
		return nil, err
	}
	for _, name := range c.Instances {
		inst := f.Instances[name]
		if err = f.Catalog.RegisterInstance(ctx, fleet.Instance{
			ID: name, Admin: inst.ConnString("postgres"),
			Endpoint: fleet.Endpoint{Host: localpg.Host, Port: inst.Port()}, Limits: c.Limits,
		}); err != nil {
			return nil, err
		}
	}
	if f.appRoutes, err = flags.NewPostgresProvider(ctx, f.URL, nil); err != nil {
		return nil, err
	}
	appClient, err := f.client(ctx, f.appRoutes)
	if err != nil {
		return nil, err
	}
	appResolver, err := flags.NewResolver(appClient, f.Catalog, nil)
	if err != nil {
		return nil, err
	}
	f.Router, err = flags.NewRouter(&flags.RouterConfig{Resolver: appResolver, PoolConfig: f.poolConfig})
	return f, err
}

func (c *Control) client(ctx context.Context, p openfeature.FeatureProvider) (*openfeature.Client, error) {
	api := isolated.NewAPI()
	c.apis = append(c.apis, api)
	if err := api.SetProviderAndWait(ctx, p); err != nil {
		return nil, err
	}
	return api.NewClient(), nil
}

// poolConfig is the application's configuration: its own credentials for
// each instance.
func (f *Fleet) poolConfig(_ context.Context, r flags.Route) (*pgxpool.Config, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(localpg.SuperuserDefault, passwordOf(r.Instance)),
		Host: net.JoinHostPort(r.Endpoint.Host, strconv.Itoa(r.Endpoint.Port)), Path: "/" + r.Endpoint.Database,
		RawQuery: "sslmode=disable"}
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 8
	return cfg, nil
}

// Mover returns a Mover over the control database's catalog, routes and
// journal; cfg may set the rest (its Catalog, Publisher, Routes and
// Journal are replaced). Under the race detector, a QuietSpell left at 0
// is RaceQuietSpell instead of the library's default.
func (c *Control) Mover(cfg *cutover.Config) (*cutover.Mover, error) {
	var mc cutover.Config
	if cfg != nil {
		mc = *cfg
	}
	mc.Catalog, mc.Publisher, mc.Routes, mc.Journal = c.Catalog, c.Publisher, c.Routes, c.Journal
	if raceDetector && mc.QuietSpell == 0 {
		mc.QuietSpell = RaceQuietSpell
	}
	return cutover.New(&mc)
}

// RaceQuietSpell is the quiesce step's quiet spell (cutover.Config.QuietSpell)
// of the Movers a Control makes under the race detector: there, on a
// loaded machine, a workload's goroutine can wait tens of milliseconds
// between Router.Acquire and its statement (and a Router learn of a
// pause that late), longer than the library's default allows for, and
// the fence would fail that statement.
const RaceQuietSpell = 250 * time.Millisecond

// QuietSpell is the quiet spell a test's Movers need when the test's
// application runs in the test process: RaceQuietSpell under the race
// detector, 0 (the library's default) otherwise. For tests that wire
// their Movers without a Control, such as the examples'.
func QuietSpell() time.Duration {
	if raceDetector {
		return RaceQuietSpell
	}
	return 0
}

// AddTenant creates database db on the instance, runs schema in it (plus
// WorkloadSchema), and registers the tenant.
func (f *Fleet) AddTenant(ctx context.Context, id, db, instance, schema string) error {
	inst, ok := f.Instances[instance]
	if !ok {
		return fmt.Errorf("cutovertest: no instance %q", instance)
	}
	if err := inst.CreateDatabase(ctx, db); err != nil {
		return err
	}
	conn, err := inst.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, WorkloadSchema+";"+schema); err != nil {
		return fmt.Errorf("cutovertest: schema of %s: %w", db, err)
	}
	return f.Catalog.AddTenant(ctx, fleet.Tenant{ID: id, Database: db, Instance: instance})
}

// Close stops everything.
func (f *Fleet) Close() error {
	var errs []error
	if f.Router != nil {
		f.Router.Close()
	}
	if f.appRoutes != nil {
		f.appRoutes.Close()
	}
	if f.Control != nil {
		errs = append(errs, f.Control.Close())
	}
	for _, inst := range f.Instances {
		errs = append(errs, inst.Close())
	}
	for _, c := range f.converter.Conversions() {
		if inst := c.LocalInstance(); inst != nil {
			errs = append(errs, inst.Close())
		}
	}
	if f.ControlInstance != nil {
		errs = append(errs, f.ControlInstance.Close())
	}
	return errors.Join(errs...)
}
