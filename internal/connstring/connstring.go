package connstring

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// ErrSyntax is returned for a string that is neither form.
var ErrSyntax = errors.New("connstring: malformed connection string")

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact returns s with every password it carries (a URL's userinfo, a
// URL's password parameter, a password keyword) replaced by "xxxxx", and
// nothing else changed in meaning; a string without a password gets none.
// A string that cannot be parsed comes back as "[unparsable connection
// string]", since no part of it can be shown safely.
func Redact(s string) string {
	const mask, unparsable = "xxxxx", "[unparsable connection string]"
	if isURL(s) {
		u, err := url.Parse(s)
		if err != nil {
			return unparsable
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", mask)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	kv, err := parseKeywords(s)
	if err != nil {
		return unparsable
	}
	if _, ok := kv["password"]; ok {
		kv["password"] = mask
	}
	return kv.String()
}

// WithoutPassword returns s without any password.
func WithoutPassword(s string) (string, error) { return setPassword(s, "", false) }

// WithPassword returns s with its password set to password (or removed
// when password is empty).
func WithPassword(s, password string) (string, error) {
	return setPassword(s, password, password != "")
}

// HasPassword reports whether s carries a password.
func HasPassword(s string) bool {
	if isURL(s) {
		u, err := url.Parse(s)
		if err != nil {
			return false
		}
		_, ok := u.User.Password()
		return ok || u.Query().Has("password")
	}
	kv, err := Parse(s)
	if err != nil {
		return false
	}
	_, ok := kv["password"]
	return ok
}

func setPassword(s, password string, set bool) (string, error) {
	if isURL(s) {
		u, err := url.Parse(s)
		if err != nil {
			// url's error quotes the input, password included.
			return "", fmt.Errorf("%w: not a valid URL", ErrSyntax)
		}
		q := u.Query()
		hadQueryPassword := q.Has("password")
		q.Del("password")
		if hadQueryPassword {
			u.RawQuery = q.Encode()
		}
		if u.User != nil {
			user := u.User.Username()
			if set {
				u.User = url.UserPassword(user, password)
			} else {
				u.User = url.User(user)
			}
		} else if set {
			q.Set("password", password)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	kv, err := parseKeywords(s)
	if err != nil {
		return "", err
	}
	delete(kv, "password")
	if set {
		kv["password"] = password
	}
	return kv.String(), nil
}

// Keywords is a connection string as libpq's keyword/value pairs, so that
// one part (the database, the password) can be replaced or removed. It
// renders as key='value' pairs; it holds the password if the string did:
// never print it.
type Keywords map[string]string

// Parse parses either form libpq accepts: a URL or keyword=value pairs.
// Its errors never quote the string.
func Parse(s string) (Keywords, error) {
	s = strings.TrimSpace(s)
	if isURL(s) {
		return parseURL(s)
	}
	return parseKeywords(s)
}

func parseURL(s string) (Keywords, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid URL", ErrSyntax)
	}
	kv := Keywords{}
	if u.User != nil {
		kv["user"] = u.User.Username()
		if p, ok := u.User.Password(); ok {
			kv["password"] = p
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
		kv["host"] = strings.Join(hosts, ",")
		if strings.Join(ports, "") != "" {
			kv["port"] = strings.Join(ports, ",")
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		kv["dbname"] = db
	}
	for k, v := range u.Query() {
		if len(v) > 0 {
			kv[k] = v[len(v)-1]
		}
	}
	return kv, nil
}

// With returns a copy with key set to value.
func (k Keywords) With(key, value string) Keywords {
	out := maps.Clone(k)
	out[key] = value
	return out
}

// Without returns a copy without key.
func (k Keywords) Without(key string) Keywords {
	out := maps.Clone(k)
	delete(out, key)
	return out
}

// Endpoint is host:port, for messages: no secrets.
func (k Keywords) Endpoint() string {
	h, p := k["host"], k["port"]
	if h == "" {
		h = "localhost"
	}
	if p == "" {
		p = "5432"
	}
	return h + ":" + p
}

// String renders key='value' pairs, sorted.
func (k Keywords) String() string {
	parts := make([]string, 0, len(k))
	for _, key := range slices.Sorted(maps.Keys(k)) {
		v := strings.ReplaceAll(k[key], `\`, `\\`)
		v = strings.ReplaceAll(v, `'`, `\'`)
		parts = append(parts, key+"='"+v+"'")
	}
	return strings.Join(parts, " ")
}

// parseKeywords parses libpq's keyword=value form: values may be quoted
// with single quotes, with backslash escaping a quote or backslash.
func parseKeywords(s string) (Keywords, error) {
	kv := Keywords{}
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return kv, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if key == "" || i == len(s) || s[i] != '=' {
			return nil, fmt.Errorf("%w: expected keyword=value", ErrSyntax)
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted value of %q", ErrSyntax, key)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		kv[key] = val.String()
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
