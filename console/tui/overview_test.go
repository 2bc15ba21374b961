package tui

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/hatui/hatui/console/cli"
	"github.com/hatui/hatui/protocol"
)

// overviewOf builds an overview of n deployments on the frozen clock, each
// holding the fixture under its own name; pending names those that keep
// the fixture's pending geo failover (the others have none).
func overviewOf(t testing.TB, n int, pending map[int]time.Duration) *Overview {
	t.Helper()
	var names []string
	var backends []Backend
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("dep-%02d", i))
		backends = append(backends, &fakeBackend{})
	}
	o := NewOverview(Options{Now: func() time.Time { return fixedNow }}, names, backends)
	o.Update(tea.WindowSizeMsg{Width: 140, Height: 60})
	for i := 0; i < n; i++ {
		s := fixture(t)
		s.Deployment = names[i]
		if d, ok := pending[i]; ok {
			s.Geo.Pending.State = "pending"
			s.Geo.Pending.Expires = fixedNow.Add(d)
		} else {
			s.Geo.Pending = nil
		}
		o.Update(DeploymentMsg{Index: i, Msg: ConnMsg{Via: "pbx-a1", Connected: true}})
		o.Update(DeploymentMsg{Index: i, Msg: SnapshotMsg{s}})
	}
	return o
}

func overviewScreen(o *Overview) string {
	var b bytes.Buffer
	w := &colorprofile.Writer{Forward: &b, Profile: colorprofile.NoTTY}
	w.Write([]byte(o.View().Content))
	return b.String()
}

// TestOverview: pending geo failovers come first, sorted by the time
// left, each with its loud line; an unreachable deployment says why; a
// new alarm rings the bell once and is marked until acknowledged; Enter
// opens the deployment and Esc comes back.
func TestOverview(t *testing.T) {
	o := overviewOf(t, 4, map[int]time.Duration{1: 5 * time.Minute, 3: 2 * time.Minute})
	sc := overviewScreen(o)
	i3, i1 := strings.Index(sc, "!! GEO FAILOVER dep-03"), strings.Index(sc, "!! GEO FAILOVER dep-01")
	if i3 < 0 || i1 < 0 || i3 > i1 {
		t.Fatalf("the loud lines are not the pending failovers, nearest first:\n%s", sc)
	}
	var rows []string
	for _, l := range strings.Split(sc, "\n") {
		if strings.Contains(l, "dep-0") && !strings.HasPrefix(l, "!!") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 4 || !strings.Contains(rows[0], "dep-03") || !strings.Contains(rows[1], "dep-01") || !strings.Contains(rows[0], "NEW ") {
		t.Fatalf("rows %q: want dep-03 then dep-01 first, marked NEW", rows)
	}

	// A new alarm in dep-00 rings the bell; the same one again does not.
	s := fixture(t)
	s.Deployment = "dep-00"
	s.Geo.Pending.Expires = fixedNow.Add(time.Minute)
	_, cmd := o.Update(DeploymentMsg{Index: 0, Msg: SnapshotMsg{s}})
	if cmd == nil || !ringsBell(cmd) {
		t.Error("a new pending failover did not ring the bell")
	}
	if _, cmd = o.Update(DeploymentMsg{Index: 0, Msg: SnapshotMsg{s}}); cmd != nil && ringsBell(cmd) {
		t.Error("the same alarm rang the bell twice")
	}

	// Unreachable, with the reason.
	o.Update(DeploymentMsg{Index: 2, Msg: ConnMsg{Via: "pbx-a1", Note: "no agent answers (pbx-a1: connection refused); retrying"}})
	if sc = overviewScreen(o); !strings.Contains(sc, "UNREACHABLE") || !strings.Contains(sc, "connection refused") || !strings.Contains(sc, "1 unreachable") {
		t.Errorf("an unreachable deployment is not shown as such:\n%s", sc)
	}

	// Acknowledge the selected row (the cursor starts on dep-00, first now).
	o.Update(keyMsg("space"))
	for _, l := range strings.Split(overviewScreen(o), "\n") {
		if strings.Contains(l, "> dep-00") && strings.Contains(l, "NEW ") {
			t.Errorf("acknowledged row still marked: %q", l)
		}
	}
	o.Update(keyMsg("enter"))
	if sc = overviewScreen(o); !strings.Contains(sc, "hatui · dep-00") {
		t.Fatalf("enter did not open dep-00:\n%s", sc)
	}
	o.Update(keyMsg("esc"))
	if sc = overviewScreen(o); !strings.Contains(sc, "━━ Deployments") {
		t.Fatalf("esc did not come back to the overview:\n%s", sc)
	}
}

// ringsBell reports whether cmd (or a batch of them) prints the bell.
func ringsBell(cmd tea.Cmd) bool {
	switch m := cmd().(type) {
	case tea.RawMsg:
		return m.Msg == "\a"
	case tea.BatchMsg:
		for _, c := range m {
			if c != nil && ringsBell(c) {
				return true
			}
		}
	}
	return false
}

// BenchmarkOverview50 renders the overview of 50 deployments of five
// nodes each, several with a pending geo failover.
func BenchmarkOverview50(b *testing.B) {
	pending := map[int]time.Duration{}
	for i := 0; i < 50; i += 7 {
		pending[i] = time.Duration(i+1) * time.Minute
	}
	o := overviewOf(b, 50, pending)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o.tick++
		_ = o.View()
	}
}

// TestOverviewOrder: with no failover pending, the worse deployment comes
// first: an UNCLEAN node (critical) sorts above the others, whatever its
// name.
func TestOverviewOrder(t *testing.T) {
	o := overviewOf(t, 3, nil)
	for i := 0; i < 2; i++ { // nothing to report: OK
		o.Update(DeploymentMsg{Index: i, Msg: SnapshotMsg{&protocol.Snapshot{Deployment: fmt.Sprintf("dep-%02d", i), Time: fixedNow}}})
	}
	s := fixture(t)
	s.Deployment = "dep-02"
	s.Geo.Pending = nil
	s.Sites[0].Clusters[0].Nodes[0].State = protocol.StateUnclean
	if r := cli.Check(s); r.Code != cli.CheckCritical {
		t.Fatalf("fixture check %d, want critical", r.Code)
	}
	o.Update(DeploymentMsg{Index: 2, Msg: SnapshotMsg{s}})
	var rows []string
	for _, l := range strings.Split(overviewScreen(o), "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, "> "), "dep-0") {
			rows = append(rows, strings.Fields(strings.TrimLeft(l, "> "))[0])
		}
	}
	if want := []string{"dep-02", "dep-00", "dep-01"}; !slices.Equal(rows, want) {
		t.Fatalf("rows %q, want %q: the critical deployment first, then by name", rows, want)
	}
}
