package health

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// sqlProbe runs a query on PostgreSQL through lib/pq and wants an answer
// within the check's timeout. Each probe opens a fresh connection, so a
// server that refuses new sessions (max_connections, pg_hba, recovery) is
// seen even though an old session would still answer.
//
// Parameters:
//
//	dsn    a lib/pq connection string, such as
//	       "host=/run/postgresql dbname=asterisk user=hatui sslmode=disable"
//	       or "postgres://hatui@127.0.0.1/asterisk" (required)
//	query  the query (default "SELECT 1")
//	expect the first column of the first row, as text, when set
type sqlProbe struct {
	db     *sql.DB
	query  string
	expect string
	hasExp bool
}

func newSQL(check string, p map[string]string) (prober, error) {
	dsn := p["dsn"]
	const want = "a lib/pq connection string such as \"host=/run/postgresql dbname=asterisk sslmode=disable\""
	if dsn == "" {
		return nil, paramError(check, "dsn", "missing", want)
	}
	conn, err := pq.NewConnector(dsn)
	if err != nil {
		// Not echoing the DSN: it may hold a password.
		return nil, &ConfigError{Check: check, Key: "dsn", Problem: "not a valid connection string: " + err.Error(), Want: want, Err: err}
	}
	q := strings.TrimSpace(p["query"])
	if q == "" {
		q = "SELECT 1"
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(0)
	exp, has := p["expect"]
	return &sqlProbe{db: db, query: q, expect: exp, hasExp: has}, nil
}

func (s *sqlProbe) probe(ctx context.Context) (string, error) {
	start := time.Now()
	rows, err := s.db.QueryContext(ctx, s.query)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", err
		}
		if s.hasExp {
			return "no rows", fmt.Errorf("query returned no rows; expected %q", s.expect)
		}
		return fmt.Sprintf("no rows in %s", time.Since(start).Round(time.Microsecond)), nil
	}
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", err
	}
	first := ""
	if len(vals) > 0 {
		switch v := vals[0].(type) {
		case nil:
			first = "NULL"
		case []byte:
			first = string(v)
		default:
			first = fmt.Sprint(v)
		}
	}
	out := fmt.Sprintf("%s in %s", first, time.Since(start).Round(time.Microsecond))
	if s.hasExp && first != s.expect {
		return out, fmt.Errorf("query returned %q; expected %q", first, s.expect)
	}
	return out, nil
}

// Close closes the connection pool.
func (s *sqlProbe) Close() error { return s.db.Close() }
