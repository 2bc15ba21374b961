package agent

import (
	"testing"

	"github.com/hatui/hatui/protocol"
)

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
