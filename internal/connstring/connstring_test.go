package connstring

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPasswordEditing(t *testing.T) {
	cases := []struct {
		name, in string
	}{
		{"url", "postgres://admin:s3cr%3At@db.example:5432/postgres?sslmode=disable"},
		{"url query password", "postgresql://admin@db.example/app?password=s3cr%3At&sslmode=require"},
		{"keywords", "host=db.example port=5432 user=admin password=s3cr:t dbname=postgres"},
		{"quoted keywords", `host='db.example' user='admin' password='s3cr:t' dbname='my db'`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig, err := pgx.ParseConfig(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if orig.Password != "s3cr:t" {
				t.Fatalf("test input: password %q", orig.Password)
			}
			if !HasPassword(c.in) {
				t.Error("HasPassword = false")
			}
			if r := Redact(c.in); strings.Contains(r, "s3cr") {
				t.Errorf("Redact(%q) = %q still shows the password", c.in, r)
			}
			stripped, err := WithoutPassword(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stripped, "s3cr") || HasPassword(stripped) {
				t.Errorf("WithoutPassword = %q", stripped)
			}
			back, err := WithPassword(stripped, `n'ew\pw`)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.ParseConfig(back)
			if err != nil {
				t.Fatalf("parse %q: %v", Redact(back), err)
			}
			if got.Password != `n'ew\pw` || got.Host != orig.Host || got.User != orig.User ||
				got.Database != orig.Database || got.Port != orig.Port {
				t.Errorf("WithPassword round trip: got %s@%s:%d/%s pw ok=%v, want %s@%s:%d/%s",
					got.User, got.Host, got.Port, got.Database, got.Password == `n'ew\pw`,
					orig.User, orig.Host, orig.Port, orig.Database)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	for _, in := range []string{"host=x password='unterminated", "justgarbage", "postgres://u:pw@[::1/db"} {
		if r := Redact(in); strings.Contains(r, "pw") || strings.Contains(r, "unterminated") {
			t.Errorf("Redact(%q) = %q leaks", in, r)
		}
		if _, err := WithoutPassword(in); err == nil {
			t.Errorf("WithoutPassword(%q): no error", in)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q leaks the password", err)
		}
	}
}
