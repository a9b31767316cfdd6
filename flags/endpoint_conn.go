package flags

import (
	"crypto/tls"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// pointAt makes cc connect to ep and nowhere else: the route's host, port
// and database, tried with each TLS setting that the connection string's
// sslmode gave its first host, in pgx's order (sslmode=prefer, the
// default: TLS, then plaintext; allow: the reverse). The other hosts of a
// multi-host string are dropped: the route says where the tenant is.
func pointAt(cc *pgconn.Config, ep Endpoint) {
	from, fromPort := cc.Host, cc.Port
	variants := []*tls.Config{cc.TLSConfig}
	for _, fb := range cc.Fallbacks {
		if fb.Host == from && fb.Port == fromPort {
			variants = append(variants, fb.TLSConfig)
		}
	}
	for i, tc := range variants {
		variants[i] = tlsFor(tc, from, ep.Host)
	}
	cc.Host, cc.Port, cc.Database = ep.Host, uint16(ep.Port), ep.Database
	cc.TLSConfig, cc.Fallbacks = variants[0], nil
	for _, tc := range variants[1:] {
		cc.Fallbacks = append(cc.Fallbacks, &pgconn.FallbackConfig{Host: ep.Host, Port: uint16(ep.Port), TLSConfig: tc})
	}
}

// tlsFor returns tc for a connection to host to instead of from: pgx named
// from as the server (certificate check with verify-full, SNI otherwise),
// so name to instead, or nobody for SNI to an IP address (RFC 6066). A
// server name the host application set itself is kept.
func tlsFor(tc *tls.Config, from, to string) *tls.Config {
	if tc == nil || tc.ServerName == "" || tc.ServerName != from {
		return tc
	}
	tc = tc.Clone()
	switch {
	case !tc.InsecureSkipVerify, net.ParseIP(to) == nil:
		tc.ServerName = to
	default:
		tc.ServerName = ""
	}
	return tc
}
