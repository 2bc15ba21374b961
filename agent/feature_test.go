package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/protocol"
)

// fakeDB is a test feature: it reports one database for its node and
// has a verb "bump NODE" that raises that database's lag.
type fakeDB struct {
	h   Host
	mu  sync.Mutex
	lag int64
}

func (f *fakeDB) Verbs() []Verb { return []Verb{{Name: "bump", Route: RouteToNode}} }

func (f *fakeDB) Plan(ctx context.Context, a protocol.Action, c localapi.Caller) (localapi.Job, error) {
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		f.mu.Lock()
		f.lag += 100
		lag := f.lag
		f.mu.Unlock()
		node := f.h.Config().Node
		f.h.Record(protocol.Event{Node: node, Kind: "db", Severity: protocol.SevWarning, Message: fmt.Sprintf("lag on %s is now %d", node, lag)})
		return protocol.Result{OK: true, Message: fmt.Sprintf("bumped on %s", node)}
	}, nil
}

func (f *fakeDB) Report(r *protocol.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &r.Sites[0].Clusters[0]
	node := f.h.Config().Node
	c.Databases = append(c.Databases, protocol.Database{Node: node, Role: "standby", LagBytes: f.lag})
	c.Switches = append(c.Switches, protocol.Switch{Name: "sw-" + node, Kind: "line", Node: node, Position: node, Verified: true, Reachable: true})
}

func (f *fakeDB) Close() error { return nil }

func TestFeatureStateReachesEveryAgent(t *testing.T) {
	var nodes []*testNode
	var join []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("db%c", 'a'+i)
		cfg := testConfig(t, name, fmt.Sprintf("site%d", i%2), join)
		n := &testNode{name: name, cfg: cfg}
		a, err := New(cfg, Options{Features: []FeatureFunc{func(h Host) (Feature, error) { return &fakeDB{h: h}, nil }}})
		if err != nil {
			t.Fatal(err)
		}
		n.a = a
		t.Cleanup(func() { a.Kill() })
		if i == 0 {
			join = []string{cfg.Gossip.Bind}
		}
		nodes = append(nodes, n)
	}
	conn := connect(t, nodes[0])
	dbOf := func(snap *protocol.Snapshot, node string) (protocol.Database, bool) {
		for _, s := range snap.Sites {
			for _, c := range s.Clusters {
				for _, d := range c.Databases {
					if d.Node == node {
						return d, true
					}
				}
			}
		}
		return protocol.Database{}, false
	}
	agenttest.WaitFor(t, 10*time.Second, "every node's database in dba's deployment view", func() (bool, string) {
		snap, err := conn.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, n := range nodes {
			if _, ok := dbOf(snap, n.name); !ok {
				missing = append(missing, n.name)
			}
		}
		return len(missing) == 0, fmt.Sprint("missing ", missing)
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, changes, err := conn.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := conn.Do(context.Background(), protocol.Action{Verb: "bump", Args: []string{"dbc"}}, nil)
	if err != nil || res.Message != "bumped on dbc" {
		t.Fatalf("bump dbc via dba: %+v %v", res, err)
	}
	sawLag, sawEvent := false, false
	deadline := time.After(10 * time.Second)
	for !(sawLag && sawEvent) {
		select {
		case ch := <-changes:
			if d, ok := dbOf(ch.Snapshot, "dbc"); ok && d.LagBytes == 100 {
				sawLag = true
			}
			for _, e := range ch.Events {
				if e.Node == "dbc" && strings.Contains(e.Message, "lag on dbc is now 100") {
					sawEvent = true
				}
			}
		case <-deadline:
			t.Fatalf("watch at dba: saw lag %v, saw event %v", sawLag, sawEvent)
		}
	}
	// The relayed event is not relayed back: dbc's own log has it once.
	evs, _ := nodes[2].a.EventsSince(0)
	count := 0
	for _, e := range evs {
		if strings.Contains(e.Message, "lag on dbc is now 100") {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("dbc's log has its event %d times, want once", count)
	}

	// A peer that dies takes its report with it, but for its switches: a
	// device does not vanish with its driver; it stays, marked stale, as
	// it was last known.
	killed := time.Now()
	nodes[2].a.Kill()
	agenttest.WaitFor(t, 10*time.Second, "dbc's database gone from dba's view, its switch kept stale", func() (bool, string) {
		snap, err := conn.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		_, ok := dbOf(snap, "dbc")
		sw, found := switchOf(snap, "sw-dbc")
		return !ok && found && sw.Stale && sw.Node == "dbc" && sw.Position == "dbc" && !sw.Verified && !sw.AsOf.Before(killed.Add(-time.Second)),
			fmt.Sprintf("database there %v, switch %+v", ok, sw)
	})
	// Back, it reports for itself again.
	restarted, err := New(nodes[2].cfg, Options{Features: []FeatureFunc{func(h Host) (Feature, error) { return &fakeDB{h: h}, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Kill() })
	restarted.Join([]string{nodes[0].cfg.Gossip.Bind})
	agenttest.WaitFor(t, 15*time.Second, "dbc's switch live again", func() (bool, string) {
		snap, err := conn.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		sw, found := switchOf(snap, "sw-dbc")
		return found && !sw.Stale && sw.Verified, fmt.Sprintf("%+v", sw)
	})
}

func switchOf(snap *protocol.Snapshot, name string) (protocol.Switch, bool) {
	for _, c := range snap.Clusters() {
		for _, sw := range c.Switches {
			if sw.Name == name {
				return sw, true
			}
		}
	}
	return protocol.Switch{}, false
}

func TestMergeReportOwners(t *testing.T) {
	base := &protocol.Snapshot{Sites: []protocol.Site{{Name: "a", Clusters: []protocol.Cluster{{Name: "a", Nodes: []protocol.Node{{Name: "n1"}, {Name: "n2"}}}}}}}
	report := func(from string, g protocol.Group, sw protocol.Switch) *protocol.Snapshot {
		return &protocol.Snapshot{From: from, Sites: []protocol.Site{{Name: "a", Clusters: []protocol.Cluster{{Name: "a",
			Nodes:  []protocol.Node{{Name: from, Links: []protocol.Link{{Peer: "x", Path: "serial", Up: true}}}},
			Groups: []protocol.Group{g}, Switches: []protocol.Switch{sw},
			Quorum: protocol.Quorum{Risks: []string{"risk"}}}}}}}
	}
	mergeReport(base, report("n2", protocol.Group{Name: "pbx", Active: "n1", State: "stale view"}, protocol.Switch{Name: "lines", Position: "n1"}))
	mergeReport(base, report("n1", protocol.Group{Name: "pbx", Active: "n1", State: "started"}, protocol.Switch{Name: "lines", Position: "n2"}))
	mergeReport(base, report("n2", protocol.Group{Name: "pbx", Active: "n1", State: "stale again"}, protocol.Switch{Name: "lines", Position: "n2"}))
	c := base.Sites[0].Clusters[0]
	if len(c.Groups) != 1 || c.Groups[0].State != "started" {
		t.Errorf("groups = %+v, want the holder's view only", c.Groups)
	}
	if len(c.Switches) != 1 {
		t.Errorf("switches = %+v, want one", c.Switches)
	}
	if len(c.Quorum.Risks) != 1 {
		t.Errorf("risks = %v, want one, deduplicated", c.Quorum.Risks)
	}
	if len(c.Nodes[0].Links) != 1 || len(c.Nodes[1].Links) != 2 {
		t.Errorf("links n1 %v, n2 %v: want each node's own reported links", c.Nodes[0].Links, c.Nodes[1].Links)
	}
	// A report for a cluster gossip has not shown yet is left out, not invented.
	mergeReport(base, &protocol.Snapshot{From: "z", Sites: []protocol.Site{{Name: "zz", Clusters: []protocol.Cluster{{Name: "zz"}}}}})
	if len(base.Sites) != 1 {
		t.Errorf("merge invented a site: %+v", base.Sites)
	}
}
