package flags

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/daisychain-db/daisychain/fleet"
	"github.com/daisychain-db/daisychain/internal/idcheck"
	"github.com/daisychain-db/daisychain/internal/sentinel"
)

// RouteFlagKey is the key of the OpenFeature object flag that holds a
// tenant's route. It is evaluated with the tenant ID as targeting key; its
// value is the JSON object of a Route:
//
//	{"instance": "pg-7", "endpoint": {"host": "10.0.0.7", "port": 5432,
//	 "database": "tenant_42"}, "paused": false, "epoch": 3}
const RouteFlagKey = "daisychain.route"

// EventMetadataTenant is the EventMetadata key of a configuration-changed
// event that names the one tenant whose route changed. An event for several
// tenants (after a reload) lists them under EventMetadataTenants instead.
const (
	EventMetadataTenant  = "tenant"
	EventMetadataTenants = "tenants"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalidRoute: a route is malformed (missing field, wrong type,
	// port out of range...); the error says what is wrong. It is also
	// fleet.ErrInvalid under errors.Is.
	ErrInvalidRoute = sentinel.New("flags: invalid route", fleet.ErrInvalid)
	// ErrStaleEpoch: a route was published with an epoch that is not
	// greater than the tenant's current one.
	ErrStaleEpoch = errors.New("flags: route epoch is not newer than the current one")
	// ErrUnknownInstance: a route names an instance that the catalog does
	// not know, so it is refused: by a publisher with a catalog (an
	// error), by a Resolver (an EventRouteRefused).
	ErrUnknownInstance = errors.New("flags: route to an instance unknown to the catalog")
	// ErrEndpointMismatch: a route's endpoint is not the endpoint the
	// catalog records for its instance, so it is refused, as
	// ErrUnknownInstance.
	ErrEndpointMismatch = errors.New("flags: route endpoint differs from the catalog's")
	// ErrPaused: a tenant's route stayed paused longer than the Router's
	// hold limit.
	ErrPaused = errors.New("flags: route paused beyond the hold limit")
	// ErrClosed: the Router or provider is closed.
	ErrClosed = errors.New("flags: closed")
)

// Endpoint is where a route sends a tenant's connections: the instance's
// endpoint, as the catalog records it, and the tenant's database on it.
// The embedded fleet.Endpoint keeps the JSON flat ({"host", "port",
// "database"}), as published routes have always been. It never holds
// credentials: those come from the host application's configuration for
// the instance.
type Endpoint struct {
	fleet.Endpoint
	Database string `json:"database"`
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s/%s", e.Endpoint, e.Database)
}

// Route says where a tenant's traffic goes right now.
//
// Epoch only grows: every published route of a tenant has a greater epoch
// than the one before, and readers keep the route with the greatest epoch
// they have seen. Epoch 0 is the route derived from the catalog when no
// route was published; published routes have epoch 1 or more.
type Route struct {
	// Instance is the ID of the instance in the fleet catalog.
	Instance string `json:"instance"`
	// Endpoint is where connections go; it must be the catalog's
	// endpoint of Instance, with the tenant's database.
	Endpoint Endpoint `json:"endpoint"`
	// Paused holds new work: a Router waits instead of connecting.
	Paused bool `json:"paused"`
	// Epoch orders the routes of one tenant.
	Epoch int64 `json:"epoch"`
	// Move names the move that published the route, if any: for audit,
	// and so that a move resumed after a crash recognizes its own routes.
	Move string `json:"move,omitempty"`
}

// RouteTo returns an unpaused route to database on inst, at epoch.
func RouteTo(inst fleet.Instance, database string, epoch int64) Route {
	return Route{
		Instance: inst.ID,
		Endpoint: Endpoint{Endpoint: inst.Endpoint, Database: database},
		Epoch:    epoch,
	}
}

func (r Route) String() string {
	s := fmt.Sprintf("%s@%s epoch %d", r.Instance, r.Endpoint, r.Epoch)
	if r.Paused {
		s += " (paused)"
	}
	return s
}

// Validate reports what is wrong with r, as an error wrapping
// ErrInvalidRoute, or nil.
func (r Route) Validate() error {
	var errs []string
	// Bounded, and without control characters (six bytes each in JSON),
	// so that a route fits in a notification (see PublishMany).
	if err := idcheck.Check("instance", r.Instance); err != nil {
		errs = append(errs, err.Error())
	}
	if r.Endpoint.Host == "" || len(r.Endpoint.Host) > 255 || idcheck.HasControl(r.Endpoint.Host) {
		errs = append(errs, fmt.Sprintf("endpoint host must be 1 to 255 bytes without control characters, got %d bytes", len(r.Endpoint.Host)))
	}
	if len(r.Move) > 512 || idcheck.HasControl(r.Move) {
		errs = append(errs, fmt.Sprintf("move must be at most 512 bytes without control characters, got %d bytes", len(r.Move)))
	}
	if r.Endpoint.Port <= 0 || r.Endpoint.Port > 65535 {
		errs = append(errs, fmt.Sprintf("endpoint port %d is outside 1..65535", r.Endpoint.Port))
	}
	if r.Endpoint.Database == "" || len(r.Endpoint.Database) > 63 || strings.ContainsRune(r.Endpoint.Database, 0) {
		errs = append(errs, fmt.Sprintf("endpoint database %q must be 1 to 63 bytes without NUL", r.Endpoint.Database))
	}
	if r.Epoch < 0 {
		errs = append(errs, fmt.Sprintf("epoch %d is negative", r.Epoch))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidRoute, strings.Join(errs, "; "))
	}
	return nil
}

// FlagValue returns r as the flag's object value: a fresh map of JSON
// types (strings, float64-compatible int64, bool) that any OpenFeature hook
// or provider can carry.
func (r Route) FlagValue() map[string]any {
	v := map[string]any{
		"instance": r.Instance,
		"endpoint": map[string]any{
			"host":     r.Endpoint.Host,
			"port":     int64(r.Endpoint.Port),
			"database": r.Endpoint.Database,
		},
		"paused": r.Paused,
		"epoch":  r.Epoch,
	}
	if r.Move != "" {
		v["move"] = r.Move
	}
	return v
}

// DecodeRoute turns a flag's object value into a Route and validates it.
// It accepts what providers return: a map[string]any (numbers as any Go
// integer, integral float64 or json.Number), JSON text as string,
// []byte or json.RawMessage, a Route or *Route, or any value that
// marshals to the JSON object of a Route. Unknown fields are ignored, so
// that newer writers may add some. Errors wrap ErrInvalidRoute and name
// the field.
func DecodeRoute(v any) (Route, error) {
	var m map[string]any
	switch v := v.(type) {
	case nil:
		return Route{}, fmt.Errorf("%w: no value", ErrInvalidRoute)
	case Route:
		return v, v.Validate()
	case *Route:
		if v == nil {
			return Route{}, fmt.Errorf("%w: nil *Route", ErrInvalidRoute)
		}
		return *v, v.Validate()
	case map[string]any:
		m = v
	case string:
		return decodeJSON([]byte(v))
	case []byte:
		return decodeJSON(v)
	case json.RawMessage:
		return decodeJSON(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return Route{}, fmt.Errorf("%w: value of type %T: %v", ErrInvalidRoute, v, err)
		}
		return decodeJSON(b)
	}
	return decodeMap(m)
}

func decodeJSON(b []byte) (Route, error) {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return Route{}, fmt.Errorf("%w: not a JSON object: %v", ErrInvalidRoute, err)
	}
	if m == nil {
		return Route{}, fmt.Errorf("%w: JSON null", ErrInvalidRoute)
	}
	return decodeMap(m)
}

func decodeMap(m map[string]any) (Route, error) {
	var r Route
	var errs []string
	field := func(name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Sprintf("field %q: %v", name, err))
		}
	}
	var err error
	r.Instance, err = getString(m, "instance")
	field("instance", err)
	switch ep := m["endpoint"].(type) {
	case map[string]any:
		r.Endpoint.Host, err = getString(ep, "host")
		field("endpoint.host", err)
		var port int64
		port, err = getInt(ep, "port")
		field("endpoint.port", err)
		r.Endpoint.Port = int(max(min(port, math.MaxInt32), math.MinInt32))
		r.Endpoint.Database, err = getString(ep, "database")
		field("endpoint.database", err)
	case nil:
		field("endpoint", errors.New("missing"))
	default:
		field("endpoint", fmt.Errorf("want an object, got %T", ep))
	}
	if p, ok := m["paused"]; ok && p != nil {
		b, isBool := p.(bool)
		if !isBool {
			field("paused", fmt.Errorf("want a boolean, got %T %v", p, p))
		}
		r.Paused = b
	}
	r.Epoch, err = getInt(m, "epoch")
	field("epoch", err)
	if mv, ok := m["move"]; ok && mv != nil {
		r.Move, err = getString(m, "move")
		field("move", err)
	}
	if len(errs) > 0 {
		return Route{}, fmt.Errorf("%w: %s", ErrInvalidRoute, strings.Join(errs, "; "))
	}
	return r, r.Validate()
}

func getString(m map[string]any, k string) (string, error) {
	switch v := m[k].(type) {
	case string:
		return v, nil
	case nil:
		return "", errors.New("missing")
	default:
		return "", fmt.Errorf("want a string, got %T %v", v, v)
	}
}

func getInt(m map[string]any, k string) (int64, error) {
	switch v := m[k].(type) {
	case int:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int64:
		return v, nil
	case uint32:
		return int64(v), nil
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, fmt.Errorf("want an integer, got %v", v)
		}
		return int64(v), nil
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return 0, fmt.Errorf("want an integer, got %v", v)
		}
		return n, nil
	case nil:
		return 0, errors.New("missing")
	default:
		return 0, fmt.Errorf("want an integer, got %T %v", v, v)
	}
}
