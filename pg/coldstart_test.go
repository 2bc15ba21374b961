package pg_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/pgtest"
)

// TestColdStart starts both instances of a stopped cluster as standbys:
// with no master, neither touches a single file. Then one is promoted
// and the other is prepared from it.
func TestColdStart(t *testing.T) {
	a := pgtest.NewMaster(t, "pbx-a1")
	a.Exec(t, "CREATE TABLE subscribers (id int PRIMARY KEY); INSERT INTO subscribers SELECT generate_series(1, 1000)")
	b := a.NewStandby(t, "pbx-a2")
	streams(t, b, a)
	a.Stop(t)
	b.Stop(t)
	sumA, sumB := pgtest.Checksums(t, a.Dir), pgtest.Checksums(t, b.Dir)

	ia, ib := a.Instance(), b.Instance()
	for _, c := range []struct {
		in   *pg.Instance
		peer *pgtest.Server
	}{{ia, b}, {ib, a}} {
		res, err := c.in.StartStandby(ctxT(t, time.Minute), pg.StandbyOptions{Peers: []pg.Peer{c.peer.Peer()}})
		if err != nil {
			t.Fatalf("%s: %v", c.in.Node, err)
		}
		if res.Outcome != pg.OutcomeWaiting || !strings.Contains(res.Message, "did nothing") {
			t.Fatalf("%s: %+v, want waiting-for-master saying it did nothing", c.in.Node, res)
		}
	}
	if a.Running() || b.Running() {
		t.Fatal("a server was started with no master")
	}
	if d := pgtest.DiffChecksums(sumA, pgtest.Checksums(t, a.Dir)); len(d) != 0 {
		t.Fatalf("pbx-a1's files changed: %v", d)
	}
	if d := pgtest.DiffChecksums(sumB, pgtest.Checksums(t, b.Dir)); len(d) != 0 {
		t.Fatalf("pbx-a2's files changed: %v", d)
	}

	// The cluster manager promotes pbx-a2 (it was a standby; both are at
	// the same position after a clean shutdown).
	posA, err := ia.Position(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ib.Promote(ctxT(t, time.Minute), pg.PromoteRequest{Peers: []pg.Position{posA}, OldMasterGone: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != pg.RoleMaster || st.Timeline != 2 {
		t.Fatalf("promoted pbx-a2: %s on timeline %d, want master on 2", st.Role, st.Timeline)
	}
	// The monitor of pbx-a1 now finds a master and prepares from it. It was
	// a master on timeline 1, stopped cleanly before pbx-a2 forked
	// timeline 2: its history is on pbx-a2's, so it is made a standby as
	// it is, not copied again.
	ino := inodeOf(t, a.DataDir)
	res, err := ia.StartStandby(ctxT(t, 2*time.Minute), pg.StandbyOptions{Peers: []pg.Peer{b.Peer()}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != pg.OutcomeStarted || res.Master != "pbx-a2" || !strings.Contains(res.Message, "made it a standby") {
		t.Fatalf("start as standby with a master: %+v", res)
	}
	if got := inodeOf(t, a.DataDir); got != ino {
		t.Fatalf("pbx-a1's data directory was replaced (inode %d, was %d)", got, ino)
	}
	streams(t, a, b)
	if n := a.QueryInt(t, "SELECT count(*) FROM subscribers"); n != 1000 {
		t.Errorf("prepared standby has %d subscribers, want 1000", n)
	}
	// Asked again (the next monitor), it is already replicating.
	res, err = ia.StartStandby(ctxT(t, time.Minute), pg.StandbyOptions{Peers: []pg.Peer{b.Peer()}})
	if err != nil || res.Outcome != pg.OutcomeReplicating {
		t.Fatalf("second start as standby: %+v, %v", res, err)
	}
}

// TestPromote promotes a local standby once the master is stopped: its
// timeline goes up. A geo standby is refused without force, and nobody
// is promoted while the old master may still write.
func TestPromote(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	m.Exec(t, "CREATE TABLE calls (id serial PRIMARY KEY, at timestamptz DEFAULT now()); INSERT INTO calls DEFAULT VALUES")
	local := m.NewStandby(t, "pbx-a2")
	geo := m.NewStandby(t, "pbx-b1", pgtest.AsGeo())
	streams(t, local, m)
	streams(t, geo, m)
	il, ig := local.Instance(), geo.Instance()

	// The old master still answers: promoting would make two masters.
	_, err := il.Promote(ctxT(t, time.Minute), pg.PromoteRequest{
		CheckOldMaster: func(ctx context.Context) (bool, string, error) {
			if s, err := pg.QueryStatus(ctx, m.ConnInfo()); err == nil && s.Role == pg.RoleMaster {
				return false, "pbx-a1 still answers as master", nil
			}
			return true, "pbx-a1 does not answer", nil
		},
	})
	if pg.RefusalReason(err) != pg.ReasonMasterNotFenced || !strings.Contains(err.Error(), "still answers") {
		t.Fatalf("promote with the master alive: %v, want refusal %s", err, pg.ReasonMasterNotFenced)
	}

	m.Stop(t)
	posG, err := ig.Position(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	posL, err := il.Position(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	// A geo standby is never promoted automatically, however fresh.
	_, err = ig.Promote(ctxT(t, time.Minute), pg.PromoteRequest{Peers: []pg.Position{posL}, OldMasterGone: true})
	var ref *pg.RefusedError
	if !errors.As(err, &ref) || ref.Reason != pg.ReasonGeoStandby || !ref.Forcible {
		t.Fatalf("automatic promote of the geo standby: %v, want a forcible %s refusal", err, pg.ReasonGeoStandby)
	}
	if st := status(t, geo); st.Role != pg.RoleStandby {
		t.Fatal("the refused geo standby is not a standby any more")
	}

	st, err := il.Promote(ctxT(t, time.Minute), pg.PromoteRequest{Peers: []pg.Position{posG}, OldMasterGone: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != pg.RoleMaster || st.Timeline != 2 {
		t.Fatalf("promoted local standby: %s on timeline %d, want master on timeline 2", st.Role, st.Timeline)
	}
	local.Exec(t, "INSERT INTO calls DEFAULT VALUES")
	// Promoting a master is refused, not repeated.
	if _, err := il.Promote(ctxT(t, time.Minute), pg.PromoteRequest{Force: true}); pg.RefusalReason(err) != pg.ReasonNotStandby {
		t.Errorf("promoting the master again: %v, want %s", err, pg.ReasonNotStandby)
	}

	// An operator may promote the geo standby with force (a confirmed geo
	// failover); it gets a new timeline of its own.
	st, err = ig.Promote(ctxT(t, time.Minute), pg.PromoteRequest{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != pg.RoleMaster || st.Timeline != 2 {
		t.Fatalf("forced geo promote: %s on timeline %d", st.Role, st.Timeline)
	}
}

// TestHealthQueryLocked: a representative query that cannot get its table
// marks the instance unhealthy while its process is alive; a frozen server
// is reported within the timeout.
func TestHealthQueryLocked(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	m.Exec(t, "CREATE TABLE subscribers (id int PRIMARY KEY, name text); INSERT INTO subscribers VALUES (1, 'alice')")
	in := m.Instance()
	q := pg.HealthQuery{SQL: "SELECT name FROM subscribers WHERE id = 1", Timeout: 500 * time.Millisecond, MinRows: 1}

	if h := in.Health(ctxT(t, 10*time.Second), q); !h.OK || !h.Alive {
		t.Fatalf("healthy instance: %+v", h)
	}
	if h := in.Health(ctxT(t, 10*time.Second), pg.HealthQuery{SQL: "SELECT 1 FROM subscribers WHERE id = 2", MinRows: 1}); h.OK {
		t.Errorf("a query returning too few rows counted as healthy: %+v", h)
	}

	db := m.DB(t)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("LOCK TABLE subscribers IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h := in.Health(ctxT(t, 10*time.Second), q)
	if h.OK || !h.Alive {
		t.Fatalf("with the table locked: %+v, want unhealthy while alive", h)
	}
	if !strings.Contains(h.Detail, "statement timeout") {
		t.Errorf("detail %q does not name the statement timeout", h.Detail)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the check took %s", took)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if h := in.Health(ctxT(t, 10*time.Second), q); !h.OK {
		t.Fatalf("after the lock is released: %+v", h)
	}

	// A frozen postmaster accepts no connection: the check still ends.
	pid := postmasterPID(t, m)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	h = q.Check(ctxT(t, 10*time.Second), m.ConnInfo())
	syscall.Kill(pid, syscall.SIGCONT)
	if h.OK || h.Latency > 3*time.Second {
		t.Fatalf("frozen server: %+v, want unhealthy within the timeout", h)
	}
}

// TestHealthQueryOnStreamingStandby: the representative query answers on
// a hot standby (PostgreSQL refuses a read-write transaction during
// recovery), and a query that writes runs on the master only while the
// standby is asked a read-only stand-in.
func TestHealthQueryOnStreamingStandby(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	m.Exec(t, "CREATE TABLE subscribers (id int PRIMARY KEY, name text); INSERT INTO subscribers VALUES (1, 'alice')")
	m.Exec(t, "CREATE TABLE heartbeat (id int PRIMARY KEY, at timestamptz); INSERT INTO heartbeat VALUES (1, now())")
	s := m.NewStandby(t, "pbx-a2")
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := s.QueryInt(t, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")
		return n == 1, "standby not streaming yet"
	})
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := s.QueryInt(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'heartbeat'")
		return n == 1, "tables not replayed yet"
	})

	read := pg.HealthQuery{SQL: "SELECT name FROM subscribers WHERE id = 1", MinRows: 1}
	if h := s.Instance().Health(ctxT(t, 10*time.Second), read.OnStandby()); !h.OK {
		t.Fatalf("read-only health query on a streaming standby: %+v", h)
	}
	if h := m.Instance().Health(ctxT(t, 10*time.Second), read); !h.OK {
		t.Fatalf("read-only health query on the master: %+v", h)
	}

	write := pg.HealthQuery{SQL: "UPDATE heartbeat SET at = now() WHERE id = 1 RETURNING id", MinRows: 1, Writes: true}
	if h := m.Instance().Health(ctxT(t, 10*time.Second), write); !h.OK {
		t.Fatalf("writing health query on the master: %+v", h)
	}
	h := s.Instance().Health(ctxT(t, 10*time.Second), write.OnStandby())
	if !h.OK || !strings.Contains(h.Detail, "master only") {
		t.Fatalf("writing health query on the standby: %+v, want a read-only stand-in that says the query runs on the master only", h)
	}
	// A query that writes but is not declared so is refused with a reason
	// an operator can act on, not silently run read-write.
	undeclared := pg.HealthQuery{SQL: "UPDATE heartbeat SET at = now() WHERE id = 1"}
	if h := m.Instance().Health(ctxT(t, 10*time.Second), undeclared); h.OK || !strings.Contains(h.Detail, "read-only") {
		t.Fatalf("undeclared writing query on the master: %+v, want a failure naming the read-only transaction", h)
	}
}
