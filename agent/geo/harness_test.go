package geo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/agent/geo/geotest"
	"github.com/hatui/hatui/protocol"
)

// Test timings: booth's and silhouette's ideas at millisecond scale,
// multiplied by GEO_TEST_SCALE (default 1) for a machine too busy for them.
var (
	tLease   = 300 * time.Millisecond
	tRenewal = 100 * time.Millisecond
	tAcquire = 200 * time.Millisecond
	tDeadMan = 1500 * time.Millisecond
	tMargin  = 200 * time.Millisecond
	tRaft    = 100 * time.Millisecond // raft's heartbeat and election timeouts
)

func TestMain(m *testing.M) {
	if v := os.Getenv("GEO_TEST_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			fmt.Fprintf(os.Stderr, "GEO_TEST_SCALE=%q is not a positive number\n", v)
			os.Exit(2)
		}
		for _, d := range []*time.Duration{&tLease, &tRenewal, &tAcquire, &tDeadMan, &tMargin, &tRaft} {
			*d = time.Duration(float64(*d) * f)
		}
	}
	os.Exit(m.Run())
}

// spec describes a test deployment.
type spec struct {
	voters  []Voter // Node, Site, Arbitrator; addresses are filled in
	mode    Mode
	initial string
	deadMan time.Duration
	durable bool
	tune    func(*Config)
}

// threeSites is site a, site b and an arbitrator, one agent each.
func threeSites() []Voter {
	return []Voter{{Node: "a1", Site: "a"}, {Node: "b1", Site: "b"}, {Node: "arb1", Site: "arb", Arbitrator: true}}
}

type harness struct {
	t      *testing.T
	net    *geotest.Network
	world  *geotest.World
	events *eventLog
	stop   context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	nodes []*hnode
}

type hnode struct {
	name, site string
	arb        bool
	addr       string
	cfg        Config
	m          *Manager
}

func newHarness(t *testing.T, s spec) *harness {
	t.Helper()
	if s.mode == "" {
		s.mode = ModeAuto
	}
	if s.deadMan == 0 {
		s.deadMan = tDeadMan
	}
	h := &harness{t: t, net: geotest.NewNetwork(), world: geotest.NewWorld(), events: &eventLog{}, done: make(chan struct{})}
	voters := slices.Clone(s.voters)
	layers := make([]raft.StreamLayer, len(voters))
	for i := range voters {
		l, err := NewTCPStreamLayer(fmt.Sprintf("127.0.0.%d:0", 10+i), nil)
		if err != nil {
			t.Fatalf("listening for %s: %v", voters[i].Node, err)
		}
		layers[i] = l
		voters[i].Addr = l.Addr().String()
	}
	for i, v := range voters {
		cfg := Config{
			Node: v.Node, Site: v.Site, Mode: s.mode, Voters: voters, InitialHolder: s.initial,
			Lease: tLease, Renewal: tRenewal, AcquireAfter: tAcquire, DeadMan: s.deadMan, SafetyMargin: tMargin,
			ServiceTimeout: time.Second, History: 20,
			Raft: Tuning{
				HeartbeatTimeout: tRaft, ElectionTimeout: tRaft,
				LeaderLeaseTimeout: tRaft / 2, CommitTimeout: 5 * time.Millisecond,
				TransportTimeout: 10 * tRaft,
			},
		}
		if s.durable {
			cfg.DataDir = t.TempDir()
		}
		if s.tune != nil {
			s.tune(&cfg)
		}
		n := &hnode{name: v.Node, site: v.Site, arb: v.Arbitrator, addr: v.Addr, cfg: cfg}
		h.nodes = append(h.nodes, n)
		h.open(n, layers[i])
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() {
		defer close(h.done)
		h.world.Watch(ctx, 10*time.Millisecond)
	}()
	t.Cleanup(h.close)
	return h
}

func (h *harness) logger() (*slog.Logger, io.Writer) {
	if os.Getenv("GEO_TEST_LOG") == "" {
		return nil, nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})), os.Stderr
}

func (h *harness) open(n *hnode, layer raft.StreamLayer) {
	h.t.Helper()
	log, raftLog := h.logger()
	deps := Deps{
		Stream:    h.net.Layer(n.name, layer),
		Reachable: h.reachFunc(n),
		Notifier:  h.events.notifier(),
		Logger:    log,
		RaftLog:   raftLog,
	}
	if !n.arb {
		deps.Service = h.world.Site(n.site)
	}
	m, err := Open(n.cfg, deps)
	if err != nil {
		layer.Close()
		h.t.Fatalf("opening the geo manager of %s: %v", n.name, err)
	}
	h.mu.Lock()
	n.m = m
	h.mu.Unlock()
}

// reachFunc is Serf's view for node n: a site is reachable when one of its
// agents runs and is not partitioned from n.
func (h *harness) reachFunc(n *hnode) func() map[string]bool {
	return func() map[string]bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := map[string]bool{}
		for _, o := range h.nodes {
			if o != n && o.m != nil && h.net.Connected(n.name, o.name) {
				out[o.site] = true
			}
		}
		return out
	}
}

func (h *harness) close() {
	h.mu.Lock()
	nodes := slices.Clone(h.nodes)
	h.mu.Unlock()
	for _, n := range nodes {
		h.stopNode(n.name)
	}
	h.stop()
	<-h.done
	for _, v := range h.world.Violations() {
		h.t.Errorf("two sites served at once: %s", v)
	}
}

func (h *harness) node(name string) *hnode {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.nodes {
		if n.name == name {
			return n
		}
	}
	h.t.Fatalf("no node %s", name)
	return nil
}

// mgr returns the running manager of a node.
func (h *harness) mgr(name string) *Manager {
	h.t.Helper()
	n := h.node(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	if n.m == nil {
		h.t.Fatalf("node %s is stopped", name)
	}
	return n.m
}

func (h *harness) status(name string) protocol.Geo { return h.mgr(name).Status() }

// stopNode stops a node's agent (its site's service is left as it is).
func (h *harness) stopNode(name string) {
	n := h.node(name)
	h.mu.Lock()
	m := n.m
	n.m = nil
	h.mu.Unlock()
	if m != nil {
		if err := m.Close(); err != nil {
			h.t.Errorf("closing %s: %v", name, err)
		}
	}
}

// startNode starts a stopped node again on its address and data.
func (h *harness) startNode(name string) {
	h.t.Helper()
	n := h.node(name)
	var layer raft.StreamLayer
	var err error
	for range 50 {
		if layer, err = NewTCPStreamLayer(n.addr, nil); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatalf("listening again for %s: %v", name, err)
	}
	h.open(n, layer)
}

func (h *harness) nodesOf(site string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, n := range h.nodes {
		if n.site == site {
			out = append(out, n.name)
		}
	}
	return out
}

// loseSite stops every agent of a site and powers its service off.
func (h *harness) loseSite(site string) {
	for _, n := range h.nodesOf(site) {
		h.stopNode(n)
	}
	h.world.Site(site).PowerOff()
}

// isolate cuts every agent of a site from every other agent.
func (h *harness) isolate(site string) {
	var in, out []string
	h.mu.Lock()
	for _, n := range h.nodes {
		if n.site == site {
			in = append(in, n.name)
		} else {
			out = append(out, n.name)
		}
	}
	h.mu.Unlock()
	h.net.Split(in, out)
}

// waitLong bounds waits for things that take a few leases: generous,
// because the machine is shared and a busy one stalls processes for
// seconds.
const waitLong = 15 * time.Second

// waitFor polls cond until it holds or timeout passes; last, when given,
// says what was seen last, for the failure message.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, last ...*string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			seen := ""
			if len(last) > 0 {
				seen = ": last seen: " + *last[0]
			}
			t.Fatalf("timed out after %s waiting for %s%s", timeout, what, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdFor checks that cond keeps holding for d.
func holdFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitServing waits until site serves and every running agent sees it hold
// the ticket.
func (h *harness) waitServing(site string) {
	h.t.Helper()
	var last string
	waitFor(h.t, waitLong, "site "+site+" to hold the ticket and serve", func() bool {
		if !h.world.Site(site).Serving() {
			last = "the service of site " + site + " is not running"
			return false
		}
		for _, n := range h.running() {
			st := h.status(n)
			if st.Ticket.Holder != site || st.Pending != nil || siteOf(st, site).ServiceRole != RoleServing {
				last = fmt.Sprintf("%s sees %+v", n, st)
				return false
			}
		}
		return true
	}, &last)
}

func (h *harness) running() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, n := range h.nodes {
		if n.m != nil {
			out = append(out, n.name)
		}
	}
	return out
}

// waitPending waits until every named agent shows the same pending
// failover from → to, and returns it.
func (h *harness) waitPending(from, to string, nodes ...string) protocol.Failover {
	h.t.Helper()
	var p protocol.Failover
	var last string
	waitFor(h.t, waitLong, fmt.Sprintf("a pending failover %s → %s at %v", from, to, nodes), func() bool {
		var seen []protocol.Failover
		for _, n := range nodes {
			st := h.status(n)
			if st.Pending == nil || st.Pending.From != from || st.Pending.To != to || st.Pending.State != FailoverPending || st.Ticket.Holder != to {
				last = fmt.Sprintf("%s sees %+v", n, st)
				return false
			}
			seen = append(seen, *st.Pending)
		}
		for _, s := range seen[1:] {
			if !s.Expires.Equal(seen[0].Expires) {
				h.t.Fatalf("agents disagree on the expiry: %v", seen)
			}
		}
		p = seen[0]
		return true
	}, &last)
	return p
}

func siteOf(g protocol.Geo, name string) protocol.GeoSite {
	for _, s := range g.Sites {
		if s.Name == name {
			return s
		}
	}
	return protocol.GeoSite{}
}

// firstStart returns when site first started serving after t0.
func (h *harness) firstStart(site string, after time.Time) (time.Time, bool) {
	for _, tr := range h.world.Site(site).History() {
		if tr.Serving && tr.Time.After(after) {
			return tr.Time, true
		}
	}
	return time.Time{}, false
}

// lastStop returns when site last stopped serving.
func (h *harness) lastStop(site string) (time.Time, bool) {
	hist := h.world.Site(site).History()
	for i := len(hist) - 1; i >= 0; i-- {
		if !hist[i].Serving {
			return hist[i].Time, true
		}
	}
	return time.Time{}, false
}

func (h *harness) everServed(site string) bool {
	return len(h.world.Site(site).History()) > 0
}

// eventLog records the managers' events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) notifier() Notifier {
	return NotifyFunc(func(e Event) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.events = append(l.events, e)
	})
}

func (l *eventLog) find(kind EventKind) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) waitEvent(kind EventKind, node string) Event {
	h.t.Helper()
	var ev Event
	waitFor(h.t, waitLong, fmt.Sprintf("a %s event from %s", kind, node), func() bool {
		for _, e := range h.events.find(kind) {
			if node == "" || e.Node == node {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

// ctx returns a context for one operator action.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	h.t.Cleanup(cancel)
	return ctx
}
