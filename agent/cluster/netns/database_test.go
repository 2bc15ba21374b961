//go:build linux

package netns_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/hatui/hatui/agent/netlab"
	"github.com/hatui/hatui/pg/pgtest"
	"github.com/hatui/hatui/protocol"
)

// dbPort is the port every node's PostgreSQL listens on, in its own
// namespace.
const dbPort = 5432

// dbLab is a test cluster whose group holds a real PostgreSQL 15: n1
// runs the master, n2 a streaming standby of it, both under their agents.
type dbLab struct {
	*tcluster
	srv map[string]*pgtest.Server
}

// dbConnInfo reaches the node's PostgreSQL over the LAN.
func dbConnInfo(ip string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", ip, dbPort)
}

// newDBCluster makes the two servers (in the root namespace, then stops
// them), and starts agents whose group is database, vip, sip.
// resourceLines are the database resource's extra lines (params).
func newDBCluster(t *testing.T, params string) *dbLab {
	t.Helper()
	need(t)
	pgtest.Require(t)
	settings := []pgtest.Option{pgtest.Setting("wal_log_hints", "on"), pgtest.Setting("synchronous_commit", "on"),
		pgtest.Setting("wal_sender_timeout", "5s"), pgtest.Setting("wal_receiver_timeout", "5s")}
	m := pgtest.NewMaster(t, "n1", settings...)
	hba, err := os.OpenFile(filepath.Join(m.DataDir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(hba, "host all all 10.81.1.0/24 trust\nhost replication all 10.81.1.0/24 trust\n")
	hba.Close()
	m.Exec(t, "SELECT pg_reload_conf()")
	m.Exec(t, "CREATE TABLE acked (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
	s := m.NewStandby(t, "n2", settings...)
	m.Stop(t)
	s.Stop(t)
	// The standby follows n1 across the LAN, as its agent will see it.
	s.AutoConf(t, map[string]string{"primary_conninfo": dbConnInfo("10.81.1.11") + " application_name=n2", "primary_slot_name": "n2"})
	l := &dbLab{srv: map[string]*pgtest.Server{"n1": m, "n2": s}}
	o := opts{witness: true, deferStart: true,
		firstResources: "[[failover.resource]]\nname = \"db\"\ntype = \"database\"\nstop_timeout = \"1500ms\"\nstart_timeout = \"30s\"\n" + params,
		nodeLines: func(n *node) string {
			srv := l.srv[n.name]
			if srv == nil {
				return ""
			}
			var b strings.Builder
			fmt.Fprintf(&b, `[database]
enabled = true
conninfo = %q
data_dir = %q
bin_dir = %q
start_options = %q
monitor = "300ms"
max_slot_wal_keep_size = "1GB"
`, dbConnInfo(n.ip), srv.DataDir, pgtest.BinDir(),
				fmt.Sprintf("-c listen_addresses=* -c port=%d -c unix_socket_directories=%s", dbPort, srv.Dir))
			for _, o := range []string{"n1", "n2"} {
				if o != n.name {
					ip := "10.81.1.11"
					if o == "n2" {
						ip = "10.81.1.12"
					}
					fmt.Fprintf(&b, "[[database.peers]]\nnode = %q\nconninfo = %q\n", o, dbConnInfo(ip))
				}
			}
			return b.String()
		}}
	l.tcluster = newCluster(t, o)
	// Before the lab's cleanup SIGKILLs whatever runs in the namespaces
	// (the postmasters the agents started there): the agents first, so
	// that none starts its PostgreSQL again, then the servers, waited
	// for, so that pgtest's own cleanup finds them gone.
	t.Cleanup(func() {
		for _, n := range l.nodes {
			n.mu.Lock()
			p := n.proc
			n.dead = true // no watchdog reset for the harness to play
			n.mu.Unlock()
			if p != nil {
				p.Kill()
			}
		}
		for _, n := range l.nodes {
			if l.srv[n.name] != nil {
				l.killDB(n)
			}
		}
	})
	l.startAll()
	return l
}

// killDB kills the node's postmaster and every process of its session
// (pg_ctl starts it with setsid), as a crash of the machine does.
func (l *dbLab) killDB(n *node) {
	t := l.t
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.srv[n.name].DataDir, "postmaster.pid"))
	if err != nil {
		return // not running
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 1 {
		t.Fatalf("postmaster.pid of %s: %q", n.name, b)
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return // a stale file: the postmaster is gone already
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 10*time.Second, n.name+"'s postmaster gone", func() (bool, string) {
		return syscall.Kill(pid, 0) != nil, "still there"
	})
}

// crashAll is the master's machine dying: agent, PostgreSQL and sipp
// killed, link down.
func (l *dbLab) crashAll(n *node) {
	n.crash()
	l.killDB(n)
}

// dbRow returns n's database row as its own agent reports it (the node
// scope carries only the answering node's rows: a peer's row reaches
// another agent's deployment view through its own report).
func dbRow(n *node) (protocol.Database, bool) {
	name := n.name
	snap, err := n.status()
	if err != nil {
		return protocol.Database{}, false
	}
	for _, s := range snap.Sites {
		for _, c := range s.Clusters {
			for _, d := range c.Databases {
				if d.Node == name {
					return d, true
				}
			}
		}
	}
	return protocol.Database{}, false
}

// inSync says whether n's agent reports its database as a streaming
// standby and the master behind the VIP lists it as its synchronous
// standby (pg_stat_replication's sync_state "sync", or "quorum" under
// ANY 1), with what it saw.
func (l *dbLab) inSync(n *node) (bool, string) {
	d, ok := dbRow(n)
	if !ok || d.Role != "standby" || !d.Streaming {
		return false, fmt.Sprintf("%s's row: %+v", n.name, d)
	}
	db, err := openVIP(l.client)
	if err != nil {
		return false, err.Error()
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var state, names string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&names); err != nil {
		return false, "the master behind the VIP: " + err.Error()
	}
	err = db.QueryRowContext(ctx, "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", n.name).Scan(&state)
	if err != nil {
		return false, fmt.Sprintf("the master behind the VIP (synchronous_standby_names %q) lists no %s: %v", names, n.name, err)
	}
	return state == "sync" || state == "quorum", fmt.Sprintf("%s is %q to the master behind the VIP (synchronous_standby_names %q)", n.name, state, names)
}

// writer is a client on the client host writing through the VIP: one
// INSERT per commit, each id recorded once the commit is acknowledged.
type writer struct {
	host *netlab.Host
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	acked   []int64
	lastAck time.Time
	errs    int
}

// deadlineConn fails a read or write that takes longer than 3 s, so a
// connection to a master that vanished with its link ends.
type deadlineConn struct{ net.Conn }

func (c deadlineConn) Read(b []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	return c.Conn.Read(b)
}

func (c deadlineConn) Write(b []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	return c.Conn.Write(b)
}

// nsDialer dials from the client host's namespace.
type nsDialer struct{ host *netlab.Host }

func (d nsDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialTimeout(network, addr, 2*time.Second)
}

func (d nsDialer) DialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := d.host.Do(func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	if err != nil {
		return nil, err
	}
	return deadlineConn{c}, nil
}

// openVIP opens a one-connection pool to the master through the VIP,
// from the client host.
func openVIP(host *netlab.Host) (*sql.DB, error) {
	cn, err := pq.NewConnector(dbConnInfo(vipAddr))
	if err != nil {
		return nil, err
	}
	cn.Dialer(nsDialer{host})
	db := sql.OpenDB(cn)
	db.SetMaxOpenConns(1)
	return db, nil
}

func (l *dbLab) startWriter() *writer {
	w := &writer{host: l.client, stop: make(chan struct{}), done: make(chan struct{})}
	db, err := openVIP(l.client)
	if err != nil {
		l.t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer db.Close()
		for id := int64(1); ; id++ {
			select {
			case <-w.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			_, err := db.ExecContext(ctx, "INSERT INTO acked (id) VALUES ($1)", id)
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, id)
				w.lastAck = time.Now()
			} else {
				w.errs++
			}
			w.mu.Unlock()
			if err != nil {
				select {
				case <-w.stop:
					return
				case <-time.After(50 * time.Millisecond): // a client's retry pause
				}
			}
		}
	}()
	l.t.Cleanup(w.close)
	return w
}

func (w *writer) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// errors counts the writes that failed.
func (w *writer) errors() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs
}

// ackedAfter says whether a commit was acknowledged after t.
func (w *writer) ackedAfter(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastAck.After(t)
}

// missing returns the acknowledged ids the master through the VIP lacks.
func (w *writer) missing(t *testing.T) (acked int, missing []int64) {
	t.Helper()
	w.mu.Lock()
	ids := append([]int64(nil), w.acked...)
	w.mu.Unlock()
	db, err := openVIP(w.host)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	have := map[int64]bool{}
	waitFor(t, 20*time.Second, "reading the rows through the VIP", func() (bool, string) {
		rows, err := db.Query("SELECT id FROM acked")
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return false, err.Error()
			}
			have[id] = true
		}
		return rows.Err() == nil, fmt.Sprint(rows.Err())
	})
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return len(ids), missing
}

// dbCrashes is how many crashes TestDatabaseFailoverCrash runs;
// HATUI_DB_CRASHES overrides it (20 for the acceptance run).
func dbCrashes() int {
	if n, err := strconv.Atoi(os.Getenv("HATUI_DB_CRASHES")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestDatabaseFailoverCrash: with synchronous = true, the machine of the
// master (agent, PostgreSQL, sipp, link) dies several times while a client
// commits rows through the VIP. Each time the standby is promoted, the VIP
// and the SIP service follow, the writer resumes against the new master,
// the crashed node comes back as a standby (pg_rewind or plain restart);
// at the end every acknowledged commit is there.
func TestDatabaseFailoverCrash(t *testing.T) {
	l := newDBCluster(t, "params = { synchronous = \"true\" }\n")
	holder := l.waitStarted(40*time.Second, "")
	if holder.name != "n1" {
		t.Fatalf("%s took the group first, want n1 (the master's node)", holder.name)
	}
	waitFor(t, 40*time.Second, "n2 streaming in sync", func() (bool, string) {
		return l.inSync(l.other(holder))
	})
	w := l.startWriter()
	waitFor(t, 20*time.Second, "the writer's first commits", func() (bool, string) {
		return w.ackedAfter(time.Time{}), "none yet"
	})
	for i := 0; i < dbCrashes(); i++ {
		standby := l.other(holder)
		crashed := time.Now()
		l.crashAll(holder)
		next := l.waitStarted(40*time.Second, holder.name)
		if next != standby {
			t.Fatalf("crash %d: %s took over, want %s", i+1, next.name, standby.name)
		}
		// The database row is the feature's monitor reading (every
		// 300 ms here), which also polls the peers: with the crashed
		// one unreachable, a reading takes their connect_timeout (2 s).
		var d protocol.Database
		waitFor(t, 10*time.Second, fmt.Sprintf("crash %d: %s's database master after its group started", i+1, next.name), func() (bool, string) {
			d, _ = dbRow(next)
			return d.Role == "master", fmt.Sprintf("%+v", d)
		})
		t.Logf("%s crash %d of %s: %s master on timeline %d %s after the crash", stamp(crashed), i+1, holder.name, next.name, d.Timeline, time.Since(crashed).Round(time.Millisecond))
		holder.revive()
		waitFor(t, 40*time.Second, holder.name+" back as a standby in sync and the writer committing", func() (bool, string) {
			ok, seen := l.inSync(holder)
			return ok && w.ackedAfter(time.Now().Add(-time.Second)), fmt.Sprintf("%s, writer errors %d", seen, w.errors())
		})
		holder = next
	}
	w.close()
	n, missing := w.missing(t)
	t.Logf("%d commits acknowledged over %d crashes, %d write errors", n, dbCrashes(), w.errors())
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged commits lost: %v", len(missing), missing)
	}
	if n == 0 {
		t.Fatal("nothing was acknowledged")
	}
	if ev := holder.events("promoted " + holder.name); len(ev) == 0 {
		t.Errorf("no promotion event on %s", holder.name)
	}
}
