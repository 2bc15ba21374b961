package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/protocol"
)

// groupOf returns a site's group as an agent reports it.
func groupOf(snap *protocol.Snapshot, site string) protocol.Group {
	for _, s := range snap.Sites {
		for _, c := range s.Clusters {
			for _, g := range c.Groups {
				if g.Name == GroupOf(site) {
					return g
				}
			}
		}
	}
	return protocol.Group{}
}

// TestDemoFailsOver: killing the node that holds site a's group moves
// the group (its simulated resources) to the other node, as every agent
// reports; the killed node's resources are gone with it.
func TestDemoFailsOver(t *testing.T) {
	d := startDemo(t)
	snap, err := status(t, d, "pbx-b1")
	if err != nil {
		t.Fatal(err)
	}
	holder := groupOf(snap, "a").Active
	if holder == "" {
		t.Fatalf("site a's group has no holder: %+v", groupOf(snap, "a"))
	}
	other := map[string]string{"pbx-a1": "pbx-a2", "pbx-a2": "pbx-a1"}[holder]
	if res, _, err := d.Do(protocol.Action{Verb: "demo kill", Args: []string{holder}}); err != nil || !res.OK {
		t.Fatalf("demo kill %s: %+v %v", holder, res, err)
	}
	agenttest.WaitFor(t, 30*time.Second, "site a's group started on "+other, func() (bool, string) {
		snap, err := status(t, d, "pbx-b1")
		if err != nil {
			return false, err.Error()
		}
		g := groupOf(snap, "a")
		return g.Active == other && g.State == "started", fmt.Sprintf("%+v", g)
	})
	for _, r := range []string{"vip", "asterisk"} {
		if _, err := os.Stat(filepath.Join(d.Dir(), other, "resources", "running."+r)); err != nil {
			t.Errorf("%s on %s: %v", r, other, err)
		}
		if _, err := os.Stat(filepath.Join(d.Dir(), holder, "resources", "running."+r)); err == nil {
			t.Errorf("%s still runs on the killed %s", r, holder)
		}
	}
}
