package cutovertest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daisychain-db/daisychain/fleet"
)

// AddTenantsFromTemplate creates one database per ID on the instance as a
// copy of a template database holding schema (plus WorkloadSchema), and
// registers each as a tenant whose database has the ID's name: hundreds
// of small tenants in seconds, for tests and benchmarks at the scale of
// an instance.
func (f *Fleet) AddTenantsFromTemplate(ctx context.Context, instance string, ids []string, schema string) error {
	inst, ok := f.Instances[instance]
	if !ok {
		return fmt.Errorf("cutovertest: no instance %q", instance)
	}
	const template = "daisychain_tenant_template"
	if err := inst.CreateDatabase(ctx, template); err != nil {
		return err
	}
	tconn, err := inst.Connect(ctx, template)
	if err != nil {
		return err
	}
	_, err = tconn.Exec(ctx, WorkloadSchema+";"+schema)
	tconn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("cutovertest: schema of the tenant template: %w", err)
	}
	admin, err := inst.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	for _, id := range ids {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{id}.Sanitize()+
			" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
			return fmt.Errorf("cutovertest: create tenant database %q: %w", id, err)
		}
		if err := f.Catalog.AddTenant(ctx, fleet.Tenant{ID: id, Database: id, Instance: instance}); err != nil {
			return err
		}
	}
	// The template is not a tenant: it must not stay on the instance,
	// where a conversion would carry it along unrouted.
	_, err = admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{template}.Sanitize())
	return err
}
