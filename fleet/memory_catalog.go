package fleet

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// MemoryCatalog is a Catalog held in memory, for tests, examples and
// single-process tools. The zero value is not usable; call
// NewMemoryCatalog.
type MemoryCatalog struct {
	mu        sync.RWMutex
	instances map[string]Instance
	tenants   map[string]Tenant
}

var _ Catalog = (*MemoryCatalog)(nil)

// NewMemoryCatalog returns an empty catalog.
func NewMemoryCatalog() *MemoryCatalog {
	return &MemoryCatalog{instances: map[string]Instance{}, tenants: map[string]Tenant{}}
}

// RegisterInstance implements Catalog.
func (c *MemoryCatalog) RegisterInstance(_ context.Context, inst Instance) error {
	if err := inst.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances[inst.ID] = inst
	return nil
}

// UnregisterInstance implements Catalog.
func (c *MemoryCatalog) UnregisterInstance(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.instances[id]; !ok {
		return fmt.Errorf("fleet: unregister: %w: %q", ErrInstanceNotFound, id)
	}
	n := 0
	for _, t := range c.tenants {
		if t.Instance == id {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%w: instance %q serves %d tenant(s): move them off first", ErrInstanceInUse, id, n)
	}
	delete(c.instances, id)
	return nil
}

// Instances implements Catalog.
func (c *MemoryCatalog) Instances(context.Context) ([]Instance, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.SortedFunc(maps.Values(c.instances), func(a, b Instance) int {
		return cmp.Compare(a.ID, b.ID)
	}), nil
}

// Instance implements Catalog.
func (c *MemoryCatalog) Instance(_ context.Context, id string) (Instance, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	inst, ok := c.instances[id]
	if !ok {
		return Instance{}, fmt.Errorf("%w: %q", ErrInstanceNotFound, id)
	}
	return inst, nil
}

// AddTenant implements Catalog.
func (c *MemoryCatalog) AddTenant(_ context.Context, t Tenant) error {
	if err := t.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.instances[t.Instance]; !ok {
		return fmt.Errorf("fleet: add tenant %q: %w: %q", t.ID, ErrInstanceNotFound, t.Instance)
	}
	if _, ok := c.tenants[t.ID]; ok {
		return fmt.Errorf("%w: %q", ErrTenantExists, t.ID)
	}
	c.tenants[t.ID] = t
	return nil
}

// Tenants implements Catalog.
func (c *MemoryCatalog) Tenants(_ context.Context, instanceID string) ([]Tenant, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if _, ok := c.instances[instanceID]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrInstanceNotFound, instanceID)
	}
	var out []Tenant
	for _, t := range c.tenants {
		if t.Instance == instanceID {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Tenant) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Locate implements Catalog.
func (c *MemoryCatalog) Locate(_ context.Context, tenantID string) (Tenant, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.tenants[tenantID]
	if !ok {
		return Tenant{}, fmt.Errorf("%w: %q", ErrTenantNotFound, tenantID)
	}
	return t, nil
}

// Assign implements Catalog.
func (c *MemoryCatalog) Assign(_ context.Context, tenantID, instanceID string, opts *AssignOpts) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tenants[tenantID]
	if !ok {
		return fmt.Errorf("fleet: assign: %w: %q", ErrTenantNotFound, tenantID)
	}
	if _, ok := c.instances[instanceID]; !ok {
		return fmt.Errorf("fleet: assign tenant %q: %w: %q", tenantID, ErrInstanceNotFound, instanceID)
	}
	if opts != nil && opts.From != "" && t.Instance != opts.From {
		return fmt.Errorf("%w: tenant %q is on %q, not %q", ErrAssignConflict, tenantID, t.Instance, opts.From)
	}
	t.Instance = instanceID
	c.tenants[tenantID] = t
	return nil
}
