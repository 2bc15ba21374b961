package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/protocol"
)

// view is a deployment of two sites (a: pbx-a1, pbx-a2; b: pbx-b1,
// pbx-b2) and an arbitrator, as gossip alone would show it.
func view() *protocol.Snapshot {
	cl := func(site string, nodes ...string) protocol.Site {
		c := protocol.Cluster{Name: site, Site: site}
		for _, n := range nodes {
			c.Nodes = append(c.Nodes, protocol.Node{Name: n, Site: site, Cluster: site, Member: protocol.MemberAlive})
		}
		return protocol.Site{Name: site, Clusters: []protocol.Cluster{c}}
	}
	return &protocol.Snapshot{Sites: []protocol.Site{cl("a", "pbx-a1", "pbx-a2"), cl("arb", "arbitrator"), cl("b", "pbx-b1", "pbx-b2")}}
}

func TestMergeLastSwitches(t *testing.T) {
	asOf := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	last := &protocol.Snapshot{From: "pbx-a1", Sites: []protocol.Site{{Name: "a", Clusters: []protocol.Cluster{{Name: "a",
		Switches: []protocol.Switch{
			{Name: "lines-a", Kind: "line", Node: "pbx-a1", Position: "pbx-a1", Verified: true, Watchdog: "on", Failsafe: "pbx-a2", WatchdogTimeout: 10 * time.Second},
			{Name: "power-a2", Kind: "power", Node: "pbx-a1", Verified: true, Outlets: []protocol.Outlet{{Name: "1", Node: "pbx-a2", On: true, Verified: true}}},
		},
		Databases: []protocol.Database{{Node: "pbx-a1", Role: "master"}},
	}}}}}
	s := view()
	// power-a2 has a live report (its driver moved to another node).
	s.Sites[0].Clusters[0].Switches = []protocol.Switch{{Name: "power-a2", Kind: "power", Node: "pbx-a2", Verified: true}}
	mergeLastSwitches(s, last, asOf)
	c := s.Sites[0].Clusters[0]
	if len(c.Databases) != 0 {
		t.Errorf("databases = %+v: a gone peer's database is not its switch", c.Databases)
	}
	if len(c.Switches) != 2 {
		t.Fatalf("switches = %+v, want the live power-a2 and the stale lines-a", c.Switches)
	}
	if p := c.Switches[0]; p.Stale || p.Node != "pbx-a2" {
		t.Errorf("power-a2 = %+v: a live report wins over a last one", p)
	}
	l := c.Switches[1]
	if l.Name != "lines-a" || !l.Stale || !l.AsOf.Equal(asOf) || l.Verified || l.Position != "pbx-a1" || l.Failsafe != "pbx-a2" || l.Node != "pbx-a1" {
		t.Errorf("lines-a = %+v; want it stale as of %s, unverified, with its last position, driver and failsafe", l, asOf)
	}
	if !last.Sites[0].Clusters[0].Switches[1].Outlets[0].Verified {
		t.Error("merging changed the kept report")
	}
}

func TestGeoStandby(t *testing.T) {
	tests := []struct {
		name         string
		role         string
		pending      *protocol.Failover
		group        protocol.Group
		state, cause string
	}{
		{"backup site", "backup", nil, protocol.Group{Name: "pbx-b", State: "unmanaged", Reason: "cluster b is not activated"}, "standby", "backup site: not serving (geo)"},
		{"failover to it pending", "primary", &protocol.Failover{From: "a", To: "b", State: "pending"}, protocol.Group{Name: "pbx-b", State: "unmanaged"}, "standby", "failover to b pending"},
		{"held in maintenance", "backup", nil, protocol.Group{Name: "pbx-b", Active: "pbx-b1", State: "unmanaged", Reason: "pbx-b1 is in maintenance"}, "unmanaged", "pbx-b1 is in maintenance"},
		{"failed", "backup", nil, protocol.Group{Name: "pbx-b", State: "failed", Reason: "start failed"}, "failed", "start failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := view()
			s.Sites[2].Clusters[0].Groups = []protocol.Group{tt.group}
			s.Geo = &protocol.Geo{Ticket: protocol.Ticket{Holder: "a"}, Pending: tt.pending, Sites: []protocol.GeoSite{
				{Name: "a", GeoRole: "primary", ServiceRole: "serving"}, {Name: "arb", Arbitrator: true}, {Name: "b", GeoRole: tt.role, ServiceRole: "standby"}}}
			geoStandby(s)
			g := s.Sites[2].Clusters[0].Groups[0]
			if g.State != tt.state || !strings.HasPrefix(g.Reason, tt.cause) {
				t.Errorf("group = %q (%s), want %q (%s…)", g.State, g.Reason, tt.state, tt.cause)
			}
		})
	}
	// Before any site holds the ticket, no site is a backup yet.
	s := view()
	s.Sites[2].Clusters[0].Groups = []protocol.Group{{Name: "pbx-b", State: "unmanaged"}}
	s.Geo = &protocol.Geo{Sites: []protocol.GeoSite{{Name: "b", GeoRole: "backup", ServiceRole: "standby"}}}
	geoStandby(s)
	if g := s.Sites[2].Clusters[0].Groups[0]; g.State != "standby" || g.Reason != "no site holds the geo ticket yet: none serves" {
		t.Errorf("before the ticket: %+v", g)
	}

	// A site the geo state has serving while its group runs nowhere: the
	// group is left as reported, and the contradiction is a risk.
	s = view()
	s.Sites[0].Clusters[0].Groups = []protocol.Group{{Name: "pbx-a", State: "unmanaged", Reason: "cluster a is not activated"}}
	s.Geo = &protocol.Geo{Ticket: protocol.Ticket{Holder: "a"}, Sites: []protocol.GeoSite{{Name: "a", GeoRole: "primary", ServiceRole: "serving"}}}
	geoStandby(s)
	geoStandby(s)
	c := &s.Sites[0].Clusters[0]
	if g := c.Groups[0]; g.State != "unmanaged" {
		t.Errorf("serving site's group = %+v, want it unmanaged as reported", g)
	}
	want := []string{"the geo state has site a serving, but pbx-a is unmanaged (cluster a is not activated): nothing serves there"}
	if !slices.Equal(c.Quorum.Risks, want) {
		t.Errorf("risks = %q, want %q", c.Quorum.Risks, want)
	}
	// Serving and running: nothing to say.
	c.Groups[0], c.Quorum.Risks = protocol.Group{Name: "pbx-a", Active: "pbx-a1", State: "started"}, nil
	geoStandby(s)
	if len(s.Sites[0].Clusters[0].Quorum.Risks) != 0 {
		t.Errorf("risks = %q for a serving site whose group runs", s.Sites[0].Clusters[0].Quorum.Risks)
	}
}

func TestServiceRisks(t *testing.T) {
	db := func(node, role string) protocol.Database { return protocol.Database{Node: node, Role: role} }
	tests := []struct {
		name  string
		group protocol.Group
		dbs   []protocol.Database
		want  []string
	}{
		{"together", protocol.Group{Name: "pbx-a", Active: "pbx-a1", State: "started"}, []protocol.Database{db("pbx-a1", "master"), db("pbx-a2", "standby")}, nil},
		{"old master beside the service", protocol.Group{Name: "pbx-a", Active: "pbx-a2", State: "started"}, []protocol.Database{db("pbx-a2", "standby"), db("pbx-a1", "master")},
			[]string{"database master on pbx-a1 but pbx-a runs on pbx-a2: the database did not follow the service; 'switchover pbx-a pbx-a1' puts them together again"}},
		{"moving", protocol.Group{Name: "pbx-a", Active: "pbx-a2", State: "starting"}, []protocol.Database{db("pbx-a2", "standby"), db("pbx-a1", "master")}, nil},
		{"two masters", protocol.Group{Name: "pbx-a", Active: "pbx-a1", State: "started"}, []protocol.Database{db("pbx-a1", "master"), db("pbx-a2", "master")},
			[]string{"2 database masters (pbx-a1, pbx-a2): writes on each are lost to the other; keep one, re-seed the others"}},
		{"service on a node without a database", protocol.Group{Name: "pbx-a", Active: "pbx-a3", State: "started"}, []protocol.Database{db("pbx-a1", "master")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := view()
			c := &s.Sites[0].Clusters[0]
			c.Groups, c.Databases = []protocol.Group{tt.group}, tt.dbs
			serviceRisks(s)
			serviceRisks(s) // a second pass adds nothing
			if !slices.Equal(c.Quorum.Risks, tt.want) {
				t.Errorf("risks = %q\nwant    %q", c.Quorum.Risks, tt.want)
			}
		})
	}
}

func TestIsland(t *testing.T) {
	a := &Agent{cfg: &config.Config{Node: "pbx-a1", Geo: config.Geo{Enabled: true, Voters: []config.GeoVoter{
		{Node: "pbx-a1", Site: "a"}, {Node: "pbx-a2", Site: "a"}, {Node: "arbitrator", Site: "arb"}, {Node: "pbx-b1", Site: "b"}, {Node: "pbx-b2", Site: "b"}}}}}
	geo := func(reach map[string]bool) *protocol.Geo {
		g := &protocol.Geo{}
		for _, s := range []string{"a", "arb", "b"} {
			g.Sites = append(g.Sites, protocol.GeoSite{Name: s, Reachable: reach[s]})
		}
		return g
	}
	if is := a.island(geo(map[string]bool{"a": true, "arb": true, "b": true})); is != nil {
		t.Errorf("all reached: island %+v", is)
	}
	if is := a.island(geo(map[string]bool{"a": true, "arb": true})); is != nil {
		t.Errorf("3 of 5 votes reached: island %+v", is)
	}
	is := a.island(geo(map[string]bool{"a": true}))
	if is == nil || is.Node != "pbx-a1" || is.Votes != 2 || is.Total != 5 || !slices.Equal(is.Sites, []string{"a"}) || !slices.Equal(is.Unreached, []string{"arb", "b"}) {
		t.Errorf("site a alone: island %+v, want pbx-a1 reaching a (2 of 5), not arb and b", is)
	}
	if is := a.island(nil); is != nil {
		t.Errorf("no geo: island %+v", is)
	}
}

// TestMergeReportOwnFlags checks that a node's own report overrides the
// gossip view of its standby and maintenance flags (the report arrives
// first), and that nobody else's report does.
func TestMergeReportOwnFlags(t *testing.T) {
	tests := []struct {
		name      string
		from      string
		member    protocol.Membership
		standby   bool
		wantState protocol.NodeState
		wantStdby bool
	}{
		{"own report wins", "b", protocol.MemberAlive, true, protocol.StateStandby, true},
		{"a peer's report about b does not", "a", protocol.MemberAlive, true, protocol.StateOnline, false},
		{"a failed member stays as gossip has it", "b", protocol.MemberFailed, true, protocol.DeriveState(protocol.MemberFailed, false, false, false), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := func(standby bool, m protocol.Membership) protocol.Node {
				return protocol.Node{Name: "b", Member: m, Standby: standby,
					State: protocol.DeriveState(m, standby, false, false)}
			}
			snap := func(from string, n protocol.Node) *protocol.Snapshot {
				return &protocol.Snapshot{From: from, Sites: []protocol.Site{{Name: "s",
					Clusters: []protocol.Cluster{{Name: "c", Nodes: []protocol.Node{n}}}}}}
			}
			dst := snap("a", node(false, tt.member))
			mergeReport(dst, snap(tt.from, node(tt.standby, protocol.MemberAlive)))
			got := dst.Sites[0].Clusters[0].Nodes[0]
			if got.Standby != tt.wantStdby || got.State != tt.wantState {
				t.Errorf("after merge: standby %v state %q, want %v %q", got.Standby, got.State, tt.wantStdby, tt.wantState)
			}
		})
	}
}
