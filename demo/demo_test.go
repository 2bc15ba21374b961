package demo

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/console/session"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

func startDemo(t *testing.T) *Deployment {
	t.Helper()
	d, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := d.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

func stateOf(snap *protocol.Snapshot, node string) protocol.NodeState {
	n, _ := snap.FindNode(node)
	return n.State
}

// waitFor waits on cond for up to 15 s.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	agenttest.WaitFor(t, 15*time.Second, what, cond)
}

func status(t *testing.T, d *Deployment, via string) (*protocol.Snapshot, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, d.Dial(via), client.Options{})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Status(ctx, "")
}

func TestKillReviveCutHeal(t *testing.T) {
	d := startDemo(t)
	res, handled, err := d.Do(protocol.Action{Verb: "demo kill", Args: []string{"pbx-b2"}})
	if !handled || err != nil || !res.OK {
		t.Fatalf("demo kill: %+v %v %v", res, handled, err)
	}
	waitFor(t, "pbx-b2 OFFLINE at pbx-a1", func() (bool, string) {
		snap, err := status(t, d, "pbx-a1")
		if err != nil {
			return false, err.Error()
		}
		return stateOf(snap, "pbx-b2") == protocol.StateOffline, string(stateOf(snap, "pbx-b2"))
	})
	if _, err := status(t, d, "pbx-b2"); err == nil {
		t.Fatal("a killed node's agent still answers")
	}
	if err := d.Revive("pbx-b2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pbx-b2 online again", func() (bool, string) {
		snap, err := status(t, d, "pbx-a1")
		if err != nil {
			return false, err.Error()
		}
		return stateOf(snap, "pbx-b2") == protocol.StateOnline, string(stateOf(snap, "pbx-b2"))
	})

	if err := d.Cut("a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "site a OFFLINE at pbx-b1, and b OFFLINE at pbx-a1", func() (bool, string) {
		sb, err1 := status(t, d, "pbx-b1")
		sa, err2 := d.find("pbx-a1").agent.Snapshot(protocol.ScopeDeployment), error(nil)
		if err1 != nil || err2 != nil {
			return false, fmt.Sprint(err1, err2)
		}
		ok := stateOf(sb, "pbx-a1") == protocol.StateOffline && stateOf(sb, "pbx-a2") == protocol.StateOffline &&
			stateOf(sa, "pbx-b1") == protocol.StateOffline && stateOf(sa, "pbx-a2") == protocol.StateOnline
		return ok, fmt.Sprintf("b1 sees a1=%s a2=%s; a1 sees b1=%s a2=%s", stateOf(sb, "pbx-a1"), stateOf(sb, "pbx-a2"), stateOf(sa, "pbx-b1"), stateOf(sa, "pbx-a2"))
	})
	if err := d.Heal("a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all five alive after heal", func() (bool, string) {
		return d.converged(context.Background()), "not converged"
	})

	// Bad demo verbs are refused with a reason.
	for _, a := range []protocol.Action{
		{Verb: "demo kill", Args: []string{"nope"}},
		{Verb: "demo heal", Args: []string{"b"}},
		{Verb: "demo cut", Args: []string{"zz"}},
	} {
		if _, _, err := d.Do(a); err == nil || protocol.AsError(err).Hint == "" && protocol.CodeOf(err) != protocol.CodeRefused {
			t.Errorf("%s: err = %v, want a typed refusal", a, err)
		}
	}
}

// TestConsoleMovesToAnotherMember connects a console session through
// pbx-a1, stops pbx-a1, and checks the session goes on showing the
// deployment through another member and says so.
func TestConsoleMovesToAnotherMember(t *testing.T) {
	d := startDemo(t)
	var (
		mu    sync.Mutex
		via   string
		notes []string
		last  *protocol.Snapshot
	)
	s := session.New(session.Options{
		Entry: "pbx-a1", EntryDial: d.Dial("pbx-a1"),
		Resolve: func(n protocol.Node) (client.DialFunc, bool) { return d.Dial(n.Name), true },
		OnSnapshot: func(snap *protocol.Snapshot) {
			mu.Lock()
			last = snap
			mu.Unlock()
		},
		OnChange: func(c protocol.Change) {
			mu.Lock()
			last = c.Snapshot
			mu.Unlock()
		},
		OnConn: func(c session.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			if c.Connected {
				via = c.Via
			}
			notes = append(notes, c.Note)
		},
		Retry: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	snapshotVia := func() (string, *protocol.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		return via, last
	}
	waitFor(t, "connected through pbx-a1", func() (bool, string) {
		v, snap := snapshotVia()
		return v == "pbx-a1" && snap != nil, v
	})

	if err := d.Kill("pbx-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to show pbx-a1 OFFLINE through another member", func() (bool, string) {
		v, snap := snapshotVia()
		if snap == nil {
			return false, "no snapshot"
		}
		return v != "pbx-a1" && v != "" && snap.From == v && stateOf(snap, "pbx-a1") == protocol.StateOffline,
			fmt.Sprintf("via %s, from %s, pbx-a1 %s", v, snap.From, stateOf(snap, "pbx-a1"))
	})
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, n := range notes {
		if strings.Contains(n, "reconnected through") && strings.Contains(n, "pbx-a1") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the session never said it moved: %q", notes)
	}
	// Actions go through the new agent.
	if _, err := s.Do(context.Background(), protocol.Action{Verb: "standby", Args: []string{"pbx-b1"}}, nil); err != nil {
		t.Fatalf("standby through the new entry: %v", err)
	}
}
