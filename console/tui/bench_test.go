package tui

import (
	"fmt"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/protocol"
)

// bigSnapshot builds a NOC-sized deployment: sites × clusters of two
// nodes, each cluster with a group and a database pair.
func bigSnapshot(nodes int) *protocol.Snapshot {
	s := &protocol.Snapshot{Deployment: "noc", From: "n-000-00-0", Time: fixedNow}
	perSite := 50
	for i := 0; i*perSite < nodes; i++ {
		site := protocol.Site{Name: fmt.Sprintf("site-%03d", i)}
		for c := 0; c < perSite/2 && i*perSite+c*2 < nodes; c++ {
			cl := protocol.Cluster{Name: fmt.Sprintf("c-%03d-%02d", i, c), Site: site.Name,
				Quorum: protocol.Quorum{Voters: 3, Present: 3, HasQuorum: true}, LastChange: fixedNow.Add(-time.Minute)}
			for n := 0; n < 2; n++ {
				name := fmt.Sprintf("n-%03d-%02d-%d", i, c, n)
				st := protocol.StateOnline
				if (i+c+n)%17 == 0 {
					st = protocol.StateOffline
				}
				cl.Nodes = append(cl.Nodes, protocol.Node{Name: name, Site: site.Name, Cluster: cl.Name, Role: "pbx",
					Member: protocol.MemberAlive, State: st, Links: []protocol.Link{{Peer: "x", Path: "serf", Up: true}}})
			}
			cl.Groups = []protocol.Group{{Name: "pbx", Active: cl.Nodes[0].Name, State: "started",
				Resources: []protocol.Resource{{Name: "vip", Type: "ipaddr", Node: cl.Nodes[0].Name, State: "started"}}}}
			lag := 0.2
			cl.Databases = []protocol.Database{{Node: cl.Nodes[0].Name, Role: "master", Timeline: 2, Healthy: true},
				{Node: cl.Nodes[1].Name, Role: "standby", Timeline: 2, LagBytes: 4096, LagSeconds: &lag, Streaming: true, Healthy: true}}
			site.Clusters = append(site.Clusters, cl)
		}
		s.Sites = append(s.Sites, site)
	}
	for i := range 200 {
		s.Events = append(s.Events, protocol.Event{Time: fixedNow.Add(time.Duration(i-200) * time.Second),
			Node: "n-000-00-0", Kind: "member", Severity: protocol.SevInfo, Message: fmt.Sprintf("event %d", i)})
	}
	return s
}

// BenchmarkView500 measures rendering the main screen of a 500-node
// deployment at 120×40, with the clock moving so that caches do not hide
// the per-second work.
func BenchmarkView500(b *testing.B) {
	now := fixedNow
	m := New(Options{Now: func() time.Time { return now }})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	m.Update(SnapshotMsg{bigSnapshot(500)})
	if n := len(m.nodes.nodeRows); n != 500 {
		b.Fatalf("benchmark deployment has %d nodes, want 500", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		_ = m.View()
	}
}

// BenchmarkSnapshot500 measures taking in a new 500-node snapshot, which
// a busy deployment sends several times a second.
func BenchmarkSnapshot500(b *testing.B) {
	m := New(Options{Now: func() time.Time { return fixedNow }})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	s := bigSnapshot(500)
	b.ReportAllocs()
	for b.Loop() {
		m.Update(SnapshotMsg{s})
	}
}
