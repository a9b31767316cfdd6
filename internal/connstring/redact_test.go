package connstring

import (
	"strings"
	"testing"
)

// TestRedact: the password goes, in every place libpq reads one from,
// and everything else (passfile included) stays.
func TestRedact(t *testing.T) {
	for _, c := range []struct {
		name, in string
		keep     []string
	}{
		{"URL userinfo", "postgres://admin:s3cr%20t@db.example:5432/app?sslmode=require",
			[]string{"admin", "db.example:5432", "/app", "sslmode=require"}},
		{"URL query password", "postgresql://admin@db.example/app?password=s3cr%20t&application_name=x",
			[]string{"admin@db.example", "application_name=x"}},
		{"URL both", "postgres://admin:s3cr%20t@db.example/app?password=s3cr%20t",
			[]string{"admin", "db.example"}},
		{"keywords quoted", `host=db.example user=admin password='s3cr t\'x' dbname=app`,
			[]string{"host='db.example'", "user='admin'", "dbname='app'"}},
		{"keywords spaced", `host=db.example password = s3cr\ t dbname=app`,
			[]string{"host='db.example'", "dbname='app'"}},
		{"passfile stays", "host=db.example user=admin passfile=/etc/app/pgpass dbname=app",
			[]string{"passfile='/etc/app/pgpass'"}},
		{"URL passfile stays", "postgres://admin@db.example/app?passfile=%2Fetc%2Fapp%2Fpgpass",
			[]string{"passfile=%2Fetc%2Fapp%2Fpgpass"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Redact(c.in)
			if strings.Contains(got, "s3cr") {
				t.Errorf("Redact(%q) = %q shows the password", c.in, got)
			}
			for _, k := range c.keep {
				if !strings.Contains(got, k) {
					t.Errorf("Redact(%q) = %q lost %q", c.in, got, k)
				}
			}
			if HasPassword(c.in) != strings.Contains(got, "xxxxx") {
				t.Errorf("Redact(%q) = %q: marks a password %v, HasPassword %v",
					c.in, got, strings.Contains(got, "xxxxx"), HasPassword(c.in))
			}
		})
	}
}
