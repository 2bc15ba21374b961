package pg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// HealthQuery is a representative query: a question the application
// really asks, against its own tables, that must be answered in time. A
// running postmaster proves little; a lock held on the subscribers table,
// a full disk or a wedged backend all leave the process alive while calls
// fail.
type HealthQuery struct {
	// SQL is the query, e.g. "SELECT count(*) FROM subscribers WHERE id = 1".
	// It runs in a read-only transaction unless Writes is set, so that the
	// same query works on a hot standby, where PostgreSQL refuses a
	// read-write transaction.
	SQL string
	// Writes says the query writes (a heartbeat UPDATE): it then runs in a
	// read-write transaction that is committed, on a master only; a
	// standby is asked a read-only SELECT 1 instead (see OnStandby).
	Writes bool
	// ConnInfo overrides the instance's connection string, e.g. to query
	// the application's database as the application's role.
	ConnInfo string
	// Timeout bounds the whole check; 2 s when zero. The server enforces
	// it too (statement_timeout), so a lock wait is cancelled on the server
	// and does not pile up.
	Timeout time.Duration
	// MinRows, when positive, is how many rows the answer must have.
	MinRows int

	standbyStandIn bool // set by OnStandby: SQL is SELECT 1, not the operator's
}

// Health is the result of a representative query.
type Health struct {
	OK      bool
	Detail  string
	Latency time.Duration
	At      time.Time
	// Alive says whether the server process was up (only set by
	// Instance.Health): an unhealthy but alive instance is the case PIDs
	// miss.
	Alive bool
}

func (q HealthQuery) timeout() time.Duration {
	if q.Timeout > 0 {
		return q.Timeout
	}
	return 2 * time.Second
}

// Check runs the query against conninfo (or q.ConnInfo). It always returns
// within the timeout plus a small margin, even when the server does not
// answer at all, because a monitor that hangs is worse than one that fails.
func (q HealthQuery) Check(ctx context.Context, conninfo string) Health {
	start := time.Now()
	if q.ConnInfo != "" {
		conninfo = q.ConnInfo
	}
	if q.SQL == "" {
		return Health{At: start, Detail: "no health query configured: set the SQL of the representative query"}
	}
	to := q.timeout()
	ctx, cancel := context.WithTimeout(ctx, to+500*time.Millisecond)
	defer cancel()
	done := make(chan Health, 1)
	go func() { done <- q.run(ctx, conninfo, to) }()
	select {
	case h := <-done:
		h.At, h.Latency = start, time.Since(start)
		return h
	case <-ctx.Done():
		// The query goroutine finishes on its own once the server answers
		// or the connection breaks; its result is dropped.
		return Health{At: start, Latency: time.Since(start),
			Detail: fmt.Sprintf("no answer to the health query within %s", to)}
	}
}

func (q HealthQuery) run(ctx context.Context, conninfo string, to time.Duration) Health {
	db, conn, err := open(ctx, conninfo)
	if err != nil {
		return Health{Detail: err.Error()}
	}
	defer db.Close()
	defer conn.Close()
	// lib/pq's BeginTx asks for READ WRITE whenever ReadOnly is false,
	// which a server in recovery refuses: a query that does not write
	// must say so.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: !q.Writes})
	if err != nil {
		return Health{Detail: fmt.Sprintf("starting the health query: %v", err)}
	}
	defer tx.Rollback()
	// SET LOCAL keeps the timeout to this transaction; a pooled session
	// never inherits it.
	ms := max(1, to.Milliseconds())
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", ms)); err != nil {
		return Health{Detail: fmt.Sprintf("setting statement_timeout: %v", err)}
	}
	rows, err := tx.QueryContext(ctx, q.SQL)
	if err != nil {
		return Health{Detail: describeQueryErr(err, to)}
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return Health{Detail: describeQueryErr(err, to)}
	}
	rows.Close()
	if err := tx.Commit(); err != nil {
		return Health{Detail: describeQueryErr(err, to)}
	}
	if q.MinRows > 0 && n < q.MinRows {
		return Health{Detail: fmt.Sprintf("health query returned %d rows, want at least %d", n, q.MinRows)}
	}
	if q.standbyStandIn {
		return Health{OK: true, Detail: "answers a read-only query (the health query writes, so it runs on the master only)"}
	}
	return Health{OK: true, Detail: fmt.Sprintf("health query answered %d rows", n)}
}

func describeQueryErr(err error, to time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("health query did not answer within %s", to)
	}
	return fmt.Sprintf("health query failed: %v", err)
}

// OnStandby returns the query to run on a standby: the query itself when
// it only reads, else a read-only SELECT 1 that proves the standby answers
// (a query that writes runs on the master only).
func (q HealthQuery) OnStandby() HealthQuery {
	if !q.Writes {
		return q
	}
	q.SQL, q.Writes, q.MinRows = "SELECT 1", false, 1
	q.standbyStandIn = true
	return q
}

// Health runs the representative query against this instance and notes
// whether its process is up.
func (in *Instance) Health(ctx context.Context, q HealthQuery) Health {
	h := q.Check(ctx, in.ConnInfo)
	if alive, err := in.Running(ctx); err == nil {
		h.Alive = alive
	}
	if !h.OK && h.Alive {
		h.Detail += " (the server process is running)"
	}
	return h
}
