package pg

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// ConnInfo is a parsed libpq connection string, keyword to value. It exists
// because the same string goes both to lib/pq and to pg_basebackup's -d,
// and the re-seed must add application_name to it without disturbing the
// rest (passwords with spaces and quotes included).
type ConnInfo map[string]string

// ParseConnInfo reads a keyword=value connection string, or a
// postgres:// or postgresql:// URI, as libpq does.
func ParseConnInfo(s string) (ConnInfo, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "postgres://") || strings.HasPrefix(t, "postgresql://") {
		return parseURI(t)
	}
	ci := ConnInfo{}
	i := 0
	for {
		for i < len(t) && isSpace(t[i]) {
			i++
		}
		if i >= len(t) {
			return ci, nil
		}
		start := i
		for i < len(t) && t[i] != '=' && !isSpace(t[i]) {
			i++
		}
		key := t[start:i]
		for i < len(t) && isSpace(t[i]) {
			i++
		}
		if !validKeyword(key) || i >= len(t) || t[i] != '=' {
			return nil, fmt.Errorf("connection string %q: expected keyword=value at %q", redact(s), key)
		}
		i++
		for i < len(t) && isSpace(t[i]) {
			i++
		}
		var val strings.Builder
		if i < len(t) && t[i] == '\'' {
			i++
			closed := false
			for i < len(t) {
				c := t[i]
				if c == '\\' && i+1 < len(t) {
					val.WriteByte(t[i+1])
					i += 2
					continue
				}
				if c == '\'' {
					closed = true
					i++
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("connection string: unterminated quoted value for %q", key)
			}
		} else {
			for i < len(t) && !isSpace(t[i]) {
				if t[i] == '\\' && i+1 < len(t) {
					val.WriteByte(t[i+1])
					i += 2
					continue
				}
				val.WriteByte(t[i])
				i++
			}
		}
		ci[key] = val.String()
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// parseURI maps a connection URI onto keywords.
func parseURI(s string) (ConnInfo, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("connection URI: %w", err)
	}
	ci := ConnInfo{}
	if h := u.Hostname(); h != "" {
		ci["host"] = h
	}
	if p := u.Port(); p != "" {
		ci["port"] = p
	}
	if u.User != nil {
		ci["user"] = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			ci["password"] = pw
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		ci["dbname"] = db
	}
	for k, vs := range u.Query() {
		if !validKeyword(k) {
			return nil, fmt.Errorf("connection URI: %q is not a connection keyword", k)
		}
		if len(vs) > 0 {
			ci[k] = vs[len(vs)-1]
		}
	}
	return ci, nil
}

// validKeyword accepts libpq's keyword spelling: letters, digits and
// underscores.
func validKeyword(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// String renders the keywords in a stable order, quoting every value so
// that any byte survives the trip through libpq.
func (c ConnInfo) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteString("='")
		v := c[k]
		for j := 0; j < len(v); j++ {
			if v[j] == '\'' || v[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[j])
		}
		b.WriteByte('\'')
	}
	return b.String()
}

// With returns a copy of c with key set to value.
func (c ConnInfo) With(key, value string) ConnInfo {
	out := make(ConnInfo, len(c)+1)
	for k, v := range c {
		out[k] = v
	}
	out[key] = value
	return out
}

// Without returns a copy of c without key.
func (c ConnInfo) Without(key string) ConnInfo {
	out := make(ConnInfo, len(c))
	for k, v := range c {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// Redacted renders c with any password hidden, for logs and errors.
func (c ConnInfo) Redacted() string {
	if _, ok := c["password"]; !ok {
		return c.String()
	}
	return c.With("password", "xxx").String()
}

// Endpoint is host:port for messages, with libpq's defaults shown as such.
func (c ConnInfo) Endpoint() string {
	h, p := c["host"], c["port"]
	if h == "" {
		h = "(local socket)"
	}
	if p == "" {
		p = "5432"
	}
	return h + ":" + p
}

// redact hides a password in a raw connection string that failed to parse.
func redact(s string) string {
	if strings.Contains(s, "password") {
		return "(connection string with a password)"
	}
	return s
}
