package tui

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/protocol"
)

// demoState loads a snapshot taken from the real demo in one state of
// the README's walk-through (testdata/demo_<name>.json).
func demoState(t testing.TB, name string) *protocol.Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "demo_"+name+".json"))
	if err != nil {
		t.Fatalf("reading demo state: %v", err)
	}
	var s protocol.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decoding demo state %s: %v", name, err)
	}
	return &s
}

// stateScreen renders a demo state as the console connected through the
// snapshot's agent shows it, on a clock frozen at the snapshot's time.
func stateScreen(t testing.TB, s *protocol.Snapshot, w, h int) string {
	t.Helper()
	m := New(Options{Demo: true, Now: func() time.Time { return s.Time.Add(time.Second) }})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(SnapshotMsg{s})
	m.Update(ConnMsg{Via: s.From, Connected: true})
	return screen(m)
}

// warningLines are the loud lines under the two summary lines.
func warningLines(sc string) []string {
	var out []string
	for _, l := range strings.Split(sc, "\n")[2:] {
		if !strings.HasPrefix(l, "!!") {
			break
		}
		out = append(out, strings.TrimRight(l, " "))
	}
	return out
}

// TestDemoStatesSayWhatIsTrue reads the first screen of each state of the
// demo walk-through (healthy, after K on pbx-a1, after R, after X seen
// through pbx-a1, after H) at 120×40 and 80×24, as an operator would: it
// pins each screen in a golden file and asserts the lines issue 17 found
// misleading are gone and the true ones are there.
func TestDemoStatesSayWhatIsTrue(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	type check struct {
		warnings []string // the loud lines, in order, by prefix
		has      []string // at 120×40
		hasNot   []string // at either size
	}
	checks := map[string]check{
		"healthy": {
			warnings: nil, // no RISK line until a fault is injected
			has:      []string{"group pbx-b standby — backup site: not serving (geo)", "lines → pbx-a1 verified · watchdog 10s → pbx-a2"},
			hasNot:   []string{"unmanaged", "not activated", "RISK"},
		},
		"after_k": {
			warnings: []string{"!! RISK a: one node left: pbx-a2 runs pbx-a with no standby"},
			has: []string{
				"line  lines-a    driver pbx-a1 OFFLINE",
				"at 18:17:26: lines on pbx-a1; its watchdog sends them to", "pbx-a2 by 18:17:36 (10s after the last kick)",
				"power power-a2   driver pbx-a1 OFFLINE",
				"group pbx-a started on pbx-a2",
			},
			hasNot: []string{"nothing can be taken over", "NO QUORUM"},
		},
		"after_r": {
			warnings: []string{"!! RISK a: database master on pbx-a1 but pbx-a runs on pbx-a2"},
			has:      []string{"RISK database master on pbx-a1 but pbx-a runs on pbx-a2: the"},
		},
		"after_x": {
			warnings: []string{"!! ISLAND pbx-a1 reaches only site a (2 of 5 geo votes): arb, b are out of sight", "!! RISK a: database master"},
			has: []string{
				"5 nodes configured · 2 online · 3 out of sight (island)",
				"b out of sight (island)",
				"pbx-b1     unseen",
				"lease until 18:17:47 EXPIRED: this island cannot renew it",
			},
			hasNot: []string{"NO QUORUM", "OFFLINE"},
		},
		"after_h": {
			warnings: []string{"!! GEO FAILOVER a → b by itself in 0:02:44 · c confirm · a abort", "!! RISK a: database master"},
			has:      []string{"b primary/standby", "PENDING FAILOVER a → b"},
		},
	}
	for _, name := range []string{"healthy", "after_k", "after_r", "after_x", "after_h"} {
		c := checks[name]
		for _, size := range []struct{ w, h int }{{120, 40}, {80, 24}} {
			t.Run(fmt.Sprintf("%s/%dx%d", name, size.w, size.h), func(t *testing.T) {
				sc := stateScreen(t, demoState(t, name), size.w, size.h)
				checkSize(t, sc, size.w, size.h)
				golden(t, fmt.Sprintf("demo_%s_%dx%d.golden", name, size.w, size.h), sc)
				warns := warningLines(sc)
				if len(warns) != len(c.warnings) {
					t.Errorf("loud lines = %q, want %d starting %q", warns, len(c.warnings), c.warnings)
				}
				for i, w := range c.warnings {
					if i < len(warns) && !strings.HasPrefix(w, strings.TrimSuffix(warns[i], "…")) && !strings.HasPrefix(warns[i], w) {
						t.Errorf("loud line %d = %q, want it to start %q", i+1, warns[i], w)
					}
				}
				for _, s := range c.hasNot {
					if strings.Contains(sc, s) {
						t.Errorf("the screen says %q:\n%s", s, sc)
					}
				}
				if size.w < 120 {
					return
				}
				for _, s := range c.has {
					if !strings.Contains(sc, s) {
						t.Errorf("the screen does not say %q:\n%s", s, sc)
					}
				}
			})
		}
	}
}

// TestRisksOneLinePerCluster: two clusters with two risks each take one
// loud line each, and a risk that appeared after the console connected
// is listed before the ones that were there all along.
func TestRisksOneLinePerCluster(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	s := demoState(t, "healthy")
	for i := range s.Sites {
		for j := range s.Sites[i].Clusters {
			c := &s.Sites[i].Clusters[j]
			if c.Name == "arb" {
				continue
			}
			c.Quorum.Risks = []string{"Serf is the only heartbeat path", "two nodes without fencing or witness"}
		}
	}
	m := New(Options{Now: func() time.Time { return s.Time }})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	m.Update(SnapshotMsg{s})
	want := []string{
		"!! RISK a: (2) Serf is the only heartbeat path · two nodes without fencing or witness",
		"!! RISK b: (2) Serf is the only heartbeat path · two nodes without fencing or witness",
	}
	if got := warningLines(screen(m)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("loud lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A new risk in b: b's line moves before a's standing one.
	next := demoState(t, "healthy")
	next.Sites = s.Sites
	b := &next.Sites[2].Clusters[0]
	b.Quorum.Risks = append(append([]string(nil), b.Quorum.Risks...), "database master on pbx-b1 but pbx-b runs on pbx-b2")
	m.Update(SnapshotMsg{next})
	got := warningLines(screen(m))
	if len(got) != 2 || !strings.HasPrefix(got[0], "!! RISK b: (3)") || !strings.HasPrefix(got[1], "!! RISK a: (2)") {
		t.Fatalf("after a new risk in b, loud lines = %q; want b's first", got)
	}
}
