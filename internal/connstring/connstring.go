package connstring

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// ErrSyntax is returned for a string that is neither form.
var ErrSyntax = errors.New("connstring: malformed connection string")

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact returns s with its password replaced by "xxxxx"; a string that
// cannot be parsed comes back as "[unparsable connection string]", since
// no part of it can be shown safely.
func Redact(s string) string {
	out, err := setPassword(s, "xxxxx", true)
	if err != nil {
		return "[unparsable connection string]"
	}
	return out
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
	kv, err := parseKeywords(s)
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
	return formatKeywords(kv), nil
}

// parseKeywords parses libpq's keyword=value form: values may be quoted
// with single quotes, with backslash escaping a quote or backslash.
func parseKeywords(s string) (map[string]string, error) {
	kv := map[string]string{}
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

func formatKeywords(kv map[string]string) string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := strings.ReplaceAll(kv[k], `\`, `\\`)
		v = strings.ReplaceAll(v, `'`, `\'`)
		parts = append(parts, k+"='"+v+"'")
	}
	return strings.Join(parts, " ")
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
