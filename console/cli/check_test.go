package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

func checkSnap(mut func(*protocol.Snapshot)) *protocol.Snapshot {
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	node := func(name string) protocol.Node {
		return protocol.Node{Name: name, Member: protocol.MemberAlive, State: protocol.StateOnline}
	}
	s := &protocol.Snapshot{Deployment: "d", Time: now, Sites: []protocol.Site{
		{Name: "a", Clusters: []protocol.Cluster{{Name: "a", Nodes: []protocol.Node{node("pbx-a1"), node("pbx-a2")},
			Quorum: protocol.Quorum{Voters: 3, Present: 3, HasQuorum: true},
			Groups: []protocol.Group{{Name: "pbx-a", Active: "pbx-a1", State: "started"}}}}},
		{Name: "b", Clusters: []protocol.Cluster{{Name: "b", Nodes: []protocol.Node{node("pbx-b1"), node("pbx-b2")},
			Quorum: protocol.Quorum{Voters: 3, Present: 3, HasQuorum: true},
			Groups: []protocol.Group{{Name: "pbx-b", State: "stopped", Reason: "backup site"}}}}},
	}, Geo: &protocol.Geo{Ticket: protocol.Ticket{Name: "service", Holder: "a"}}}
	if mut != nil {
		mut(s)
	}
	return s
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		mut    func(*protocol.Snapshot)
		code   int
		inLine string
	}{
		{"healthy, backup site not serving", nil, CheckOK, "HATUI OK - deployment healthy | nodes_online=4;;;0;4 groups_started=1;;;0;2"},
		{"standby node", func(s *protocol.Snapshot) {
			s.Sites[0].Clusters[0].Nodes[1].State = protocol.StateStandby
		}, CheckWarning, "HATUI WARNING - pbx-a2 standby"},
		{"risk", func(s *protocol.Snapshot) {
			s.Sites[1].Clusters[0].Quorum.Risks = []string{"two nodes without witness"}
		}, CheckWarning, "cluster b: two nodes without witness"},
		{"group down at the serving site", func(s *protocol.Snapshot) {
			s.Sites[0].Clusters[0].Groups[0] = protocol.Group{Name: "pbx-a", State: "stopped", Reason: "no node may run it"}
		}, CheckCritical, "HATUI CRITICAL - group pbx-a stopped at serving site a (no node may run it)"},
		{"pending geo failover", func(s *protocol.Snapshot) {
			s.Geo.Pending = &protocol.Failover{From: "a", To: "b", Expires: s.Time.Add(2*time.Minute + 10*time.Second), State: "pending"}
		}, CheckCritical, "HATUI CRITICAL - geo failover a→b pending, 2m10s left on the dead man's timer"},
		{"unclean beats a warning", func(s *protocol.Snapshot) {
			s.Sites[0].Clusters[0].Nodes[0].State = protocol.StateStandby
			s.Sites[0].Clusters[0].Nodes[1].State = protocol.StateUnclean
		}, CheckCritical, "HATUI CRITICAL - pbx-a2 UNCLEAN"},
		{"failed fence", func(s *protocol.Snapshot) {
			s.Sites[0].Clusters[0].Failed = []protocol.Failure{{Resource: "pdu", Node: "pbx-a2", Op: "fence", Reason: "no answer"}}
		}, CheckCritical, "fencing pbx-a2 failed: no answer"},
		{"a pipe in a reason does not break perfdata", func(s *protocol.Snapshot) {
			s.Sites[0].Clusters[0].Quorum.Risks = []string{"a|b"}
		}, CheckWarning, "cluster a: a/b |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(checkSnap(tt.mut))
			line := r.Line()
			if r.Code != tt.code || !strings.Contains(line, tt.inLine) {
				t.Fatalf("code %d line %q; want code %d containing %q", r.Code, line, tt.code, tt.inLine)
			}
			if strings.Count(line, "|") != 1 || strings.Contains(line, "\n") {
				t.Fatalf("not one plugin line with one perfdata separator: %q", line)
			}
		})
	}
}
