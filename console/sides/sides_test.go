package sides

import (
	"slices"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// deployment returns a view from node from: sites a (pbx-a1, pbx-a2), arb
// (arbitrator) and b (pbx-b1, pbx-b2), with the nodes of the sites in
// alive up and the others failed.
func deployment(from string, alive ...string) *protocol.Snapshot {
	s := &protocol.Snapshot{Deployment: "demo", From: from}
	for _, site := range []struct {
		name  string
		nodes []string
	}{{"a", []string{"pbx-a1", "pbx-a2"}}, {"arb", []string{"arbitrator"}}, {"b", []string{"pbx-b1", "pbx-b2"}}} {
		c := protocol.Cluster{Name: site.name, Site: site.name}
		for _, n := range site.nodes {
			m := protocol.MemberFailed
			if slices.Contains(alive, site.name) {
				m = protocol.MemberAlive
			}
			c.Nodes = append(c.Nodes, protocol.Node{Name: n, Site: site.name, Member: m})
		}
		s.Sites = append(s.Sites, protocol.Site{Name: site.name, Clusters: []protocol.Cluster{c}})
	}
	return s
}

func TestMerge(t *testing.T) {
	expires := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)
	whole := func(from string) *protocol.Snapshot {
		s := deployment(from, "a", "arb", "b")
		s.Geo = &protocol.Geo{Ticket: protocol.Ticket{Holder: "a"}}
		return s
	}
	island := func() *protocol.Snapshot {
		s := deployment("pbx-a1", "a")
		s.Island = &protocol.Island{Node: "pbx-a1", Sites: []string{"a"}, Unreached: []string{"arb", "b"}, Votes: 2, Total: 5}
		s.Geo = &protocol.Geo{Ticket: protocol.Ticket{Holder: "a", LeaseExpiry: expires.Add(-time.Hour)}}
		return s
	}
	majority := func(from string) *protocol.Snapshot {
		s := deployment(from, "arb", "b")
		s.Geo = &protocol.Geo{Ticket: protocol.Ticket{Holder: "a"}, Pending: &protocol.Failover{From: "a", To: "b", State: "pending", Expires: expires}}
		return s
	}
	tests := []struct {
		name      string
		views     []*protocol.Snapshot
		from      string // whose view the result is built on
		sides     []string
		quorum    string
		siteAFrom string // whose word site a is
		pending   bool
	}{
		{name: "all agree", views: []*protocol.Snapshot{whole("arbitrator"), whole("pbx-a1"), whole("pbx-b1")}, from: "pbx-a1", siteAFrom: "pbx-a1"},
		{name: "only the entry", views: []*protocol.Snapshot{whole("pbx-a1"), nil}, from: "pbx-a1", siteAFrom: "pbx-a1"},
		{name: "entry in a cut site", views: []*protocol.Snapshot{island(), majority("arbitrator"), majority("pbx-b1")},
			from: "arbitrator", sides: []string{"arbitrator", "pbx-a1"}, quorum: "arbitrator", siteAFrom: "pbx-a1", pending: true},
		{name: "cut site unreachable from the console", views: []*protocol.Snapshot{majority("pbx-b1"), majority("arbitrator")},
			from: "arbitrator", siteAFrom: "arbitrator", pending: true},
		{name: "only the island", views: []*protocol.Snapshot{island()}, from: "pbx-a1", siteAFrom: "pbx-a1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge(tt.views, "pbx-a1")
			if got.From != tt.from {
				t.Errorf("built on %s's view, want %s's", got.From, tt.from)
			}
			var sides []string
			if got.Partition != nil {
				for _, s := range got.Partition.Sides {
					sides = append(sides, s.Via)
				}
				if got.Partition.Quorum != tt.quorum {
					t.Errorf("quorum side %q, want %q", got.Partition.Quorum, tt.quorum)
				}
				if got.Island != nil {
					t.Errorf("the merged view of a partition with a quorum side is marked an island: %+v", got.Island)
				}
			}
			if !slices.Equal(sides, tt.sides) {
				t.Errorf("sides %v, want %v", sides, tt.sides)
			}
			a := got.Sites[0].Clusters[0].Nodes[0]
			wantAlive := tt.siteAFrom == "pbx-a1" // only the island sees site a alive
			if (a.Member == protocol.MemberAlive) != wantAlive {
				t.Errorf("pbx-a1 is %s in the merged view, want it as %s sees it", a.Member, tt.siteAFrom)
			}
			if (got.Geo != nil && got.Geo.Pending != nil) != tt.pending {
				t.Errorf("pending failover shown = %v, want %v", got.Geo != nil && got.Geo.Pending != nil, tt.pending)
			}
		})
	}
	// The views given are not changed.
	is, maj := island(), majority("pbx-b1")
	Merge([]*protocol.Snapshot{is, maj}, "pbx-a1")
	if maj.Sites[0].Clusters[0].Nodes[0].Member != protocol.MemberFailed || maj.Partition != nil {
		t.Error("Merge changed a view it was given")
	}
	// Each side says what it believes of the ticket.
	got := Merge([]*protocol.Snapshot{is, maj}, "pbx-a1")
	if s := SiteSide(got.Partition, "a"); s == nil || s.Via != "pbx-a1" || !s.Island || s.Holder != "a" || s.Pending != nil {
		t.Errorf("site a's side = %+v, want pbx-a1's island believing a holds the ticket", s)
	}
	if s := SiteSide(got.Partition, "b"); s == nil || s.Via != "pbx-b1" || s.Pending == nil || !s.Pending.Expires.Equal(expires) {
		t.Errorf("site b's side = %+v, want pbx-b1's with the pending failover", s)
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC)
	p := &protocol.Partition{Quorum: "arbitrator", Sides: []protocol.Side{
		{Via: "arbitrator", Sites: []string{"arb", "b"}, Holder: "a"},
		{Via: "pbx-a1", Sites: []string{"a"}, Island: true, Holder: "a", LeaseExpiry: now.Add(-time.Second)},
	}}
	want := "sites arb, b (through arbitrator, geo majority) are cut off from site a (through pbx-a1, an island that believes a holds the geo ticket; its lease has expired)"
	if got := Describe(p, now); got != want {
		t.Errorf("Describe:\n got %s\nwant %s", got, want)
	}
	p.Quorum, p.Sides[0].Sites = "", []string{"b"}
	p.Sides[1].LeaseExpiry = now.Add(4 * time.Second)
	want = "site b (through arbitrator) is cut off from site a (through pbx-a1, an island that believes a holds the geo ticket for 4s more); no side holds the geo majority"
	if got := Describe(p, now); got != want {
		t.Errorf("Describe:\n got %s\nwant %s", got, want)
	}
}

// TestMergeWhileGossipSettles: a view that has not heard from a site yet
// (its nodes unknown, not failed) is no partition.
func TestMergeWhileGossipSettles(t *testing.T) {
	early := deployment("pbx-b1", "arb", "b")
	for i := range early.Sites[0].Clusters[0].Nodes {
		early.Sites[0].Clusters[0].Nodes[i].Member = protocol.MemberUnknown
	}
	got := Merge([]*protocol.Snapshot{deployment("pbx-a1", "a", "arb", "b"), early}, "pbx-a1")
	if got.Partition != nil || got.From != "pbx-a1" {
		t.Errorf("settling gossip reported as %+v from %s", got.Partition, got.From)
	}
}
