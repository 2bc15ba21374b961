package geosite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/geosite"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// subnet is this package's loopback range.
var subnet = agenttest.NewSubnet("127.0.87")

// Timings of the in-process tests: the dead man's timer in seconds, the
// lease and margins as short as a busy two-core machine allows.
const (
	tLease   = "5s"
	tRenewal = "1s"
	tAcquire = "3s"
	tDeadMan = "12s"
	tMargin  = "3s"
)

var depSeq atomic.Int32

// member is one agent of a test deployment.
type member struct {
	name, site, ip string
	arb, geo       bool // arbitrator; runs the geo manager
	cfg            *config.Config

	mu sync.Mutex
	a  *agent.Agent
}

func (m *member) agent() *agent.Agent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.a
}

// deployment is a test deployment: sites a and b, an arbitrator, and
// optionally a node of site b that runs no geo manager.
type deployment struct {
	t       *testing.T
	dir     string // the sites' service files
	mode    string
	members map[string]*member
	order   []string
}

type depSpec struct {
	mode    string // default "auto"
	initial string // default "a"
	deadMan string
	nonGeo  bool   // add b-noc, a node of site b without [geo]
	webhook string // an alert webhook URL for every agent
}

// newDeployment configures and starts a1 (site a), b1 (site b) and arb1
// (site arb, the arbitrator), with an exec service that creates a file
// per site while it serves.
func newDeployment(t *testing.T, s depSpec) *deployment {
	t.Helper()
	if s.mode == "" {
		s.mode = "auto"
	}
	if s.initial == "" {
		s.initial = "a"
	}
	if s.deadMan == "" {
		s.deadMan = tDeadMan
	}
	d := &deployment{t: t, dir: t.TempDir(), mode: s.mode, members: map[string]*member{}}
	add := func(name, site string, arb, geo bool) {
		d.members[name] = &member{name: name, site: site, ip: subnet.Next(), arb: arb, geo: geo}
		d.order = append(d.order, name)
	}
	add("a1", "a", false, true)
	add("b1", "b", false, true)
	add("arb1", "arb", true, true)
	if s.nonGeo {
		add("b-noc", "b", false, false)
	}
	var voters strings.Builder
	var geoJoin []string
	for _, name := range d.order {
		m := d.members[name]
		if !m.geo {
			continue
		}
		fmt.Fprintf(&voters, "[[geo.voter]]\nnode = %q\nsite = %q\naddr = \"%s:7947\"\narbitrator = %v\n", m.name, m.site, m.ip, m.arb)
		geoJoin = append(geoJoin, m.ip+":7950")
	}
	first := d.members["a1"].ip + ":7946"
	dep := fmt.Sprintf("geotest%d", depSeq.Add(1))
	for _, name := range d.order {
		m := d.members[name]
		extra := ""
		if m.geo {
			svc := ""
			if !m.arb {
				file := filepath.Join(d.dir, m.site)
				svc = fmt.Sprintf("service = \"exec\"\nstart_command = [\"touch\", %q]\nstop_command = [\"rm\", \"-f\", %q]\nservice_timeout = \"10s\"\n", file, file)
			}
			extra = fmt.Sprintf(`[geo]
enabled = true
bind = "%s:7950"
join = [%s]
mode = %q
initial_holder = %q
dead_man = %q
lease = %q
renewal = %q
acquire_after = %q
safety_margin = %q
probe_interval = "500ms"
probe_timeout = "250ms"
suspicion_mult = 3
%s%s`, m.ip, agenttest.Quote(geoJoin), s.mode, s.initial, s.deadMan, tLease, tRenewal, tAcquire, tMargin, svc, voters.String())
		}
		if s.webhook != "" {
			extra += fmt.Sprintf("[[alerts.webhook]]\nname = \"noc\"\nurl = %q\n", s.webhook)
		}
		var join []string
		if name != "a1" {
			join = []string{first}
		}
		m.cfg = agenttest.Config(t, agenttest.Node{Name: m.name, Site: m.site, IP: m.ip, Join: join,
			Deployment: dep, PeerTimeout: "5s", Extra: extra})
	}
	for _, name := range d.order {
		d.start(name)
	}
	t.Cleanup(func() {
		for _, name := range d.order {
			if a := d.members[name].agent(); a != nil {
				a.Kill()
			}
		}
	})
	return d
}

// with returns d reporting failures to t (a subtest's).
func (d *deployment) with(t *testing.T) *deployment {
	c := *d
	c.t = t
	return &c
}

// start runs the agent of name (again, after kill: same state directory).
func (d *deployment) start(name string) {
	d.t.Helper()
	m := d.members[name]
	a, err := agent.New(m.cfg, agent.Options{Features: []agent.FeatureFunc{geosite.New}})
	if err != nil {
		d.t.Fatalf("starting agent %s: %v", name, err)
	}
	m.mu.Lock()
	m.a = a
	m.mu.Unlock()
}

// kill stops the agent of name as a crash would (its service, a file,
// stays as it is).
func (d *deployment) kill(name string) {
	d.t.Helper()
	m := d.members[name]
	m.mu.Lock()
	a := m.a
	m.a = nil
	m.mu.Unlock()
	if a != nil {
		a.Kill()
	}
}

// lose loses a whole site: its agent crashes and its service dies with
// it.
func (d *deployment) lose(name string) {
	d.t.Helper()
	d.kill(name)
	if err := os.Remove(filepath.Join(d.dir, d.members[name].site)); err != nil && !os.IsNotExist(err) {
		d.t.Fatal(err)
	}
}

// waitUnreachable waits until every named agent's geo pool shows site
// unreachable.
func (d *deployment) waitUnreachable(site string, within time.Duration, names ...string) {
	d.t.Helper()
	for _, name := range names {
		agenttest.WaitFor(d.t, within, name+" to see site "+site+" unreachable", func() (bool, string) {
			g := d.geo(name)
			if g == nil {
				return false, "no geo state"
			}
			for _, s := range g.Sites {
				if s.Name == site {
					return !s.Reachable, describe(g)
				}
			}
			return false, describe(g)
		})
	}
}

// restart stops and starts the agent of name.
func (d *deployment) restart(name string) {
	d.t.Helper()
	d.kill(name)
	d.start(name)
}

// serves reports whether site's service runs (its file exists).
func (d *deployment) serves(site string) bool {
	_, err := os.Stat(filepath.Join(d.dir, site))
	return err == nil
}

// geo returns name's own geo view, or nil.
func (d *deployment) geo(name string) *protocol.Geo {
	a := d.members[name].agent()
	if a == nil {
		return nil
	}
	return a.Snapshot(protocol.ScopeDeployment).Geo
}

func describe(g *protocol.Geo) string {
	if g == nil {
		return "no geo state"
	}
	s := fmt.Sprintf("holder=%s term=%d leader=%s mode=%s", g.Ticket.Holder, g.Ticket.Term, g.Leader, g.Mode)
	if p := g.Pending; p != nil {
		s += fmt.Sprintf(" pending=%s>%s until %s", p.From, p.To, p.Expires.Format(time.RFC3339Nano))
	}
	for _, site := range g.Sites {
		s += fmt.Sprintf(" %s(%s,%s,reach=%v)", site.Name, site.GeoRole, site.ServiceRole, site.Reachable)
	}
	return s
}

// waitServing waits until exactly site serves among a and b (site ""
// for neither).
func (d *deployment) waitServing(site string, within time.Duration) {
	d.t.Helper()
	agenttest.WaitFor(d.t, within, "site "+orNone(site)+" alone serving", func() (bool, string) {
		a, b := d.serves("a"), d.serves("b")
		ok := (site == "a" && a && !b) || (site == "b" && b && !a) || (site == "" && !a && !b)
		return ok, fmt.Sprintf("a serves=%v b serves=%v; arb1 sees %s", a, b, describe(d.geo("arb1")))
	})
}

// waitPending waits until every named agent shows the failover from→to
// pending, and returns its expiry as the first one saw it.
func (d *deployment) waitPending(from, to string, within time.Duration, names ...string) time.Time {
	d.t.Helper()
	var exp time.Time
	for _, name := range names {
		agenttest.WaitFor(d.t, within, fmt.Sprintf("%s to show a failover %s→%s pending", name, from, to), func() (bool, string) {
			g := d.geo(name)
			ok := g != nil && g.Pending != nil && g.Pending.From == from && g.Pending.To == to && g.Pending.State == "pending"
			if ok && exp.IsZero() {
				exp = g.Pending.Expires
			}
			return ok, describe(g)
		})
	}
	return exp
}

// connect opens a protocol session with name's agent on its socket.
func (d *deployment) connect(name string) *client.Conn {
	d.t.Helper()
	return agenttest.Connect(d.t, d.members[name].cfg.Socket.Path)
}

// do runs a verb through name's socket.
func (d *deployment) do(name, verb string, args ...string) (protocol.Result, error) {
	d.t.Helper()
	c := d.connect(name)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	return c.Do(ctx, protocol.Action{Verb: verb, Args: args}, nil)
}

// events returns the event log of name's agent.
func (d *deployment) events(name string) []protocol.Event {
	evs, _ := d.members[name].agent().EventsSince(0)
	return evs
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// neverBoth samples both sites every 10 ms until stopped and fails the
// test if they ever serve at once.
func (d *deployment) neverBoth() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if d.serves("a") && d.serves("b") {
					d.t.Errorf("sites a and b serve at once (arb1 sees %s)", describe(d.geo("arb1")))
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
