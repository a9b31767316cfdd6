package flags

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daisychain-db/daisychain/fleet"
)

// TestPointAt: every connection attempt goes to the route's endpoint,
// with the TLS settings sslmode gave the string's first host, in pgx's
// order, and the route's host as the name verify-full checks.
func TestPointAt(t *testing.T) {
	to := Endpoint{Endpoint: fleet.Endpoint{Host: "db-b.example", Port: 6432}, Database: "tenant_9"}
	type attempt struct {
		tls        bool
		serverName string
	}
	for _, c := range []struct {
		name, conn string
		want       []attempt
	}{
		{"prefer", "postgres://u@db-a.example:5432/x", []attempt{{true, "db-b.example"}, {false, ""}}},
		{"allow", "postgres://u@db-a.example/x?sslmode=allow", []attempt{{false, ""}, {true, "db-b.example"}}},
		{"disable", "postgres://u@db-a.example/x?sslmode=disable", []attempt{{false, ""}}},
		{"verify-full", "postgres://u@db-a.example/x?sslmode=verify-full", []attempt{{true, "db-b.example"}}},
		{"multi-host", "postgres://u@db-a.example:1,db-c.example:2/x?sslmode=require", []attempt{{true, "db-b.example"}}},
		{"IP, SNI", "postgres://u@10.0.0.1/x?sslmode=require", []attempt{{true, ""}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cc, err := pgconn.ParseConfig(c.conn)
			if err != nil {
				t.Fatal(err)
			}
			pointAt(cc, to)
			if cc.Database != to.Database {
				t.Errorf("database %q, want %q", cc.Database, to.Database)
			}
			got := []pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}
			for _, fb := range cc.Fallbacks {
				got = append(got, *fb)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d connection attempts, want %d", len(got), len(c.want))
			}
			for i, g := range got {
				if g.Host != to.Host || int(g.Port) != to.Port {
					t.Errorf("attempt %d goes to %s:%d, want the route's %s:%d", i, g.Host, g.Port, to.Host, to.Port)
				}
				if (g.TLSConfig != nil) != c.want[i].tls {
					t.Errorf("attempt %d: TLS %v, want %v", i, g.TLSConfig != nil, c.want[i].tls)
				}
				if g.TLSConfig != nil && g.TLSConfig.ServerName != c.want[i].serverName {
					t.Errorf("attempt %d: server name %q, want %q", i, g.TLSConfig.ServerName, c.want[i].serverName)
				}
			}
		})
	}
}
