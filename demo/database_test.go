package demo

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

func databases(snap *protocol.Snapshot) map[string]protocol.Database {
	out := map[string]protocol.Database{}
	for _, s := range snap.Sites {
		for _, c := range s.Clusters {
			for _, d := range c.Databases {
				out[d.Node] = d
			}
		}
	}
	return out
}

// TestDemoDatabases: with PostgreSQL and root, site a's PBXs have a master
// and a streaming standby, seen from another site; without, the demo
// shows no databases and works as before.
func TestDemoDatabases(t *testing.T) {
	why := demoPGAvailable()
	if why != nil && os.Getenv("CI") == "true" {
		t.Fatalf("the demo's databases need PostgreSQL and root: %v", why)
	}
	// How long the demo takes to start (database set-up runs in the
	// background) is measured by BenchmarkDemoFirstScreen, not here.
	d := startDemo(t)
	if why != nil {
		snap, err := status(t, d, "pbx-b1")
		if err != nil {
			t.Fatal(err)
		}
		if dbs := databases(snap); len(dbs) != 0 {
			t.Fatalf("no PostgreSQL here (%v), yet the demo shows databases %+v", why, dbs)
		}
		t.Skipf("demo without databases checked; with them needs PostgreSQL and root: %v", why)
	}
	deadline := time.Now().Add(25 * time.Second)
	var last string
	for {
		snap, err := status(t, d, "pbx-b1")
		if err == nil {
			dbs := databases(snap)
			m, s := dbs["pbx-a1"], dbs["pbx-a2"]
			if m.Role == "master" && s.Role == "standby" && s.Streaming && s.Upstream == "pbx-a1" && s.Timeline == m.Timeline && len(dbs) == 2 {
				return
			}
			last = fmt.Sprintf("%+v", dbs)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's databases did not come up: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
