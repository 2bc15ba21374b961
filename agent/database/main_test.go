package database_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/database"
	"github.com/hatui/hatui/pg/pgtest"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// helperEnv names the configuration file when the test binary runs as a
// separate agent process (so a test can kill it as a crash would).
const helperEnv = "HATUI_DATABASE_TEST_AGENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(runHelperAgent(path))
	}
	pgtest.Main(m)
}

// runHelperAgent runs an agent with the database feature until killed.
func runHelperAgent(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	a, err := agent.New(cfg, agent.Options{Features: []agent.FeatureFunc{database.New}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	a.Close()
	return 0
}

// subnet is this package's loopback range.
var subnet = agenttest.NewSubnet("127.0.60")

// dbNode is one agent with a database over one test server.
type dbNode struct {
	name string
	srv  *pgtest.Server
	cfg  *config.Config
	path string
	a    *agent.Agent
	proc *exec.Cmd // when it runs as a separate process
}

// nodeConfig writes and loads the configuration of an agent whose
// database is srv, with the other servers as peers.
func nodeConfig(t testing.TB, srv *pgtest.Server, site string, join []string, peers []*pgtest.Server, extra string) *dbNode {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `[database]
enabled = true
conninfo = %q
data_dir = %q
bin_dir = %q
geo = %v
monitor = "300ms"
%s
[database.health]
sql = "SELECT 1"
min_rows = 1
`, srv.ConnInfo(), srv.DataDir, pgtest.BinDir(), srv.Geo, extra)
	for _, p := range peers {
		fmt.Fprintf(&b, "[[database.peers]]\nnode = %q\nconninfo = %q\ngeo = %v\n", p.Name, p.ConnInfo(), p.Geo)
	}
	cfg := agenttest.Config(t, agenttest.Node{Name: srv.Name, Site: site, IP: subnet.Next(), Join: join,
		Deployment: "dbtest", PeerTimeout: "5s", Extra: b.String()})
	return &dbNode{name: srv.Name, srv: srv, cfg: cfg, path: cfg.File}
}

// start runs the node's agent in this process.
func (n *dbNode) start(t testing.TB) {
	t.Helper()
	a, err := agent.New(n.cfg, agent.Options{Features: []agent.FeatureFunc{database.New}})
	if err != nil {
		t.Fatalf("starting agent %s: %v", n.name, err)
	}
	n.a = a
	t.Cleanup(func() { a.Kill() })
}

// startProcess runs the node's agent as a separate process.
func (n *dbNode) startProcess(t testing.TB) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+n.path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting agent process %s: %v", n.name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("agent process %s did not start: %q %v", n.name, line, err)
	}
	go func() { _, _ = bufio.NewReader(out).WriteTo(discard{}) }()
	n.proc = cmd
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// startAgents builds one agent per server, each with the others as peers.
func startAgents(t testing.TB, srvs ...*pgtest.Server) []*dbNode {
	t.Helper()
	var nodes []*dbNode
	var join []string
	for i, s := range srvs {
		var peers []*pgtest.Server
		for j, o := range srvs {
			if j != i {
				peers = append(peers, o)
			}
		}
		site := "a"
		if s.Geo {
			site = "b"
		}
		n := nodeConfig(t, s, site, join, peers, "")
		n.start(t)
		if i == 0 {
			join = []string{n.cfg.Gossip.Bind}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// connect opens a protocol session with the node's agent.
func connect(t testing.TB, n *dbNode) *client.Conn {
	t.Helper()
	return agenttest.Connect(t, n.cfg.Socket.Path)
}

// waitDB polls the deployment view of conn until cond holds for every
// named database.
func waitDB(t testing.TB, conn *client.Conn, d time.Duration, what string, cond func(map[string]protocol.Database) (bool, string)) map[string]protocol.Database {
	t.Helper()
	var got map[string]protocol.Database
	pgtest.Eventually(t, d, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		snap, err := conn.Status(ctx, "")
		if err != nil {
			return false, what + ": " + err.Error()
		}
		got = map[string]protocol.Database{}
		for _, s := range snap.Sites {
			for _, c := range s.Clusters {
				for _, db := range c.Databases {
					got[db.Node] = db
				}
			}
		}
		ok, why := cond(got)
		return ok, what + ": " + why
	})
	return got
}

// watcher collects what a watching console sees.
type watcher struct {
	mu      sync.Mutex
	reseeds map[string][]protocol.Progress // node → Database.Reseed values seen
	events  []protocol.Event
}

func watch(t testing.TB, conn *client.Conn) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, changes, err := conn.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{reseeds: map[string][]protocol.Progress{}}
	go func() {
		for ch := range changes {
			w.mu.Lock()
			if ch.Snapshot != nil {
				for _, s := range ch.Snapshot.Sites {
					for _, c := range s.Clusters {
						for _, d := range c.Databases {
							if d.Reseed != nil {
								w.reseeds[d.Node] = append(w.reseeds[d.Node], *d.Reseed)
							}
						}
					}
				}
			}
			w.events = append(w.events, ch.Events...)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watcher) reseedOf(node string) []protocol.Progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]protocol.Progress(nil), w.reseeds[node]...)
}
