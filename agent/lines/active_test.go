package lines_test

import (
	"testing"

	"github.com/hatui/hatui/agent/lines"
	"github.com/hatui/hatui/protocol"
)

func TestActiveNode(t *testing.T) {
	alive := func(name string) protocol.Node { return protocol.Node{Name: name, Member: protocol.MemberAlive} }
	standby := func(name string) protocol.Node {
		n := alive(name)
		n.Standby = true
		return n
	}
	failed := func(name string) protocol.Node { return protocol.Node{Name: name, Member: protocol.MemberFailed} }
	snap := func(nodes []protocol.Node, groups ...protocol.Group) *protocol.Snapshot {
		return &protocol.Snapshot{Sites: []protocol.Site{
			{Name: "other", Clusters: []protocol.Cluster{{Name: "a", Nodes: []protocol.Node{alive("x1")}}}},
			{Name: "a", Clusters: []protocol.Cluster{{Name: "a", Nodes: nodes, Groups: groups}}},
		}}
	}
	both := map[string]string{"n1": "A-B", "n2": "A-D"}
	tests := []struct {
		name      string
		snap      *protocol.Snapshot
		group     string
		positions map[string]string
		want      string
	}{
		{"first online node", snap([]protocol.Node{alive("n1"), alive("n2")}), "", both, "n1"},
		{"active in standby", snap([]protocol.Node{standby("n1"), alive("n2")}), "", both, "n2"},
		{"active failed", snap([]protocol.Node{failed("n1"), alive("n2")}), "", both, "n2"},
		{"nobody eligible", snap([]protocol.Node{standby("n1"), failed("n2")}), "", both, ""},
		{"node without a position is skipped", snap([]protocol.Node{alive("n0"), alive("n2")}), "", both, "n2"},
		{"no positions: any node", snap([]protocol.Node{alive("n0"), alive("n2")}), "", nil, "n0"},
		{"group holder wins over the fallback", snap([]protocol.Node{alive("n1"), alive("n2")}, protocol.Group{Name: "pbx", Active: "n2"}), "", both, "n2"},
		{"named group", snap([]protocol.Node{alive("n1"), alive("n2")}, protocol.Group{Name: "db", Active: "n1"}, protocol.Group{Name: "pbx", Active: "n2"}), "pbx", both, "n2"},
		{"group held by nobody moves nothing", snap([]protocol.Node{alive("n1"), alive("n2")}, protocol.Group{Name: "pbx", State: "stopped"}), "", both, ""},
		{"named group not reported: fallback", snap([]protocol.Node{alive("n1"), alive("n2")}, protocol.Group{Name: "db", Active: "n2"}), "pbx", both, "n1"},
		{"cluster not in snapshot", &protocol.Snapshot{}, "", both, ""},
		{"nil snapshot", nil, "", both, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lines.ActiveNode(tt.snap, "a", "a", tt.group, tt.positions); got != tt.want {
				t.Errorf("ActiveNode = %q, want %q", got, tt.want)
			}
		})
	}
}
