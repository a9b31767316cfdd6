package logical

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// conninfo is a libpq connection string as keywords and values. It is
// parsed from either form libpq accepts (URL or key=value) and rendered as
// key=value, so that a database or password can be replaced or removed.
type conninfo map[string]string

func parseConninfo(s string) (conninfo, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return parseURL(s)
	}
	return parseKeywords(s)
}

func parseURL(s string) (conninfo, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url's error quotes the string, which may hold a password.
		return nil, fmt.Errorf("connection string is not a valid URL")
	}
	ci := conninfo{}
	if u.User != nil {
		ci["user"] = u.User.Username()
		if p, ok := u.User.Password(); ok {
			ci["password"] = p
		}
	}
	if u.Host != "" {
		var hosts, ports []string
		for _, hp := range strings.Split(u.Host, ",") {
			h, p := hp, ""
			if i := strings.LastIndex(hp, ":"); i >= 0 && !strings.HasSuffix(hp, "]") {
				h, p = hp[:i], hp[i+1:]
			}
			hosts = append(hosts, strings.Trim(h, "[]"))
			ports = append(ports, p)
		}
		ci["host"] = strings.Join(hosts, ",")
		if strings.Join(ports, "") != "" {
			ci["port"] = strings.Join(ports, ",")
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		ci["dbname"] = db
	}
	for k, v := range u.Query() {
		if len(v) > 0 {
			ci[k] = v[len(v)-1]
		}
	}
	return ci, nil
}

func parseKeywords(s string) (conninfo, error) {
	ci := conninfo{}
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return ci, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := s[start:i]
		skip()
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("connection string: missing '=' after %q", key)
		}
		i++
		skip()
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					v.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '\'' {
					i++
					closed = true
					break
				}
				v.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("connection string: unterminated quoted value of %q", key)
			}
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
		}
		ci[key] = v.String()
	}
}

// with returns a copy with key set to value.
func (ci conninfo) with(key, value string) conninfo {
	out := maps.Clone(ci)
	out[key] = value
	return out
}

// without returns a copy without key.
func (ci conninfo) without(key string) conninfo {
	out := maps.Clone(ci)
	delete(out, key)
	return out
}

// String renders key='value' pairs, sorted. It holds the password if ci
// does: never print it.
func (ci conninfo) String() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(ci)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		v := strings.ReplaceAll(ci[k], `\`, `\\`)
		v = strings.ReplaceAll(v, `'`, `\'`)
		fmt.Fprintf(&b, "%s='%s'", k, v)
	}
	return b.String()
}

// endpoint is host:port for messages (no secrets).
func (ci conninfo) endpoint() string {
	h, p := ci["host"], ci["port"]
	if h == "" {
		h = "localhost"
	}
	if p == "" {
		p = "5432"
	}
	return h + ":" + p
}
