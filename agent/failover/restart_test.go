package failover

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// TestRestartKeepsDecisionState: every agent restarts under a running
// PBX (an agent crash); the decision state comes back from disk and the
// flags survive. The holder stops the PBX at once, before its raft even
// starts (it cannot know whether another node took the group while it was
// gone), says so, confirms it holds the group at a newer epoch, and only
// then starts it again.
func TestRestartKeepsDecisionState(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, persist: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	if res, _, err := c.do("pbx-a1", protocol.Action{Verb: "maintenance", Args: []string{"pbx-a2", "on"}}); err != nil || !res.OK {
		t.Fatalf("maintenance = %+v, %v", res, err)
	}
	before := c.node("pbx-a1").engine().State()
	waitFor(t, "everyone to see the flag", 5*time.Second, func() bool {
		return c.node("wit-a").engine().State().node("pbx-a2").Maintenance && c.node("pbx-a2").engine().State().node("pbx-a2").Maintenance
	})

	since := time.Now()
	for _, n := range c.nodes {
		n.restart()
	}
	a1 := c.node("pbx-a1")
	found := c.waitEvent("pbx-a1", EvStaleFound, since, 10*time.Second)
	if !strings.Contains(found.Message, "stopping it at once") {
		t.Errorf("pbx-a1 found its PBX running and says %q; want it stopped at once", found.Message)
	}
	claim := c.waitEvent("pbx-a1", EvAcquired, since, 10*time.Second)
	if !strings.Contains(claim.Message, "confirmed") {
		t.Errorf("after the restart pbx-a1 says %q; want a claim", claim.Message)
	}
	c.waitHolder("pbx-a1", 5*time.Second)
	after := a1.engine().State()
	if after.Group.Epoch <= before.Group.Epoch || after.Group.Holder != "pbx-a1" {
		t.Errorf("group after restart = %+v; want pbx-a1 at an epoch above %d", after.Group, before.Group.Epoch)
	}
	if !after.node("pbx-a2").Maintenance {
		t.Error("the maintenance flag was lost in the restart")
	}
	// The stop came before the claim, and the start after it.
	stopped, ok := c.firstEvent("pbx-a1", EvStopped, since)
	started, ok2 := c.firstEvent("pbx-a1", EvStarted, since)
	if !ok || !ok2 || stopped.Time.After(claim.Time) || started.Time.Before(claim.Time) {
		t.Errorf("stopped %v (%v), claimed %v, started %v (%v): want stop, claim, start", stopped.Time, ok, claim.Time, started.Time, ok2)
	}
	c.stable("pbx-a1", 500*time.Millisecond)

	// In maintenance nothing is started or stopped: a restart leaves the
	// PBX as it is.
	if res, _, err := c.do("pbx-a1", protocol.Action{Verb: "maintenance", Args: []string{"pbx-a1", "on"}}); err != nil || !res.OK {
		t.Fatalf("maintenance pbx-a1 = %+v, %v", res, err)
	}
	waitFor(t, "pbx-a1 to see its flag", 5*time.Second, func() bool { return a1.engine().State().node("pbx-a1").Maintenance })
	since = time.Now()
	a1.restart()
	left := c.waitEvent("pbx-a1", EvStaleLeft, since, 10*time.Second)
	if !strings.Contains(left.Message, "left as it is: pbx-a1 is in maintenance") || !a1.holds() {
		t.Errorf("restart in maintenance: %q, running %v; want the PBX left running", left.Message, a1.holds())
	}
	if e, ok := c.firstEvent("pbx-a1", EvStopped, since); ok {
		t.Errorf("a restart in maintenance stopped the PBX: %s", e.Message)
	}
}

// TestRestartMidSwitchoverRollsBack: the witness began a switchover and
// restarted before the holder let go; on start it rolls the switchover
// back and says so, and the holder keeps the group.
func TestRestartMidSwitchoverRollsBack(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, persist: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	w := c.node("wit-a")
	e := w.engine()
	st := e.State()
	// The state a witness leaves when it dies right after beginning.
	rec := &ActionRecord{Verb: verbSwitchover, From: "pbx-a1", To: "pbx-a2", Runner: "wit-a", RunnerInc: e.inc, Step: stepRestoration, Epoch: st.Group.Epoch}
	if _, err := e.propose(context.Background(), &command{Op: opBegin, Record: rec}); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	w.restart()
	ev := c.waitEvent("wit-a", EvRolledBack, since, 10*time.Second)
	if !strings.Contains(ev.Message, "rolled back") || !strings.Contains(ev.Message, "this agent restarted") || !strings.Contains(ev.Message, "pbx-a1 keeps pbx") {
		t.Errorf("rollback event = %q", ev.Message)
	}
	waitFor(t, "the switchover record to go", 5*time.Second, func() bool { return w.engine().State().action() == nil })
	c.stable("pbx-a1", time.Second)
	if _, ok := c.firstEvent("", EvResumed, since); ok {
		t.Error("the switchover was also resumed")
	}
}

// TestRestartMidSwitchoverResumes: the runner dies after the holder let
// go and while the target is starting; on start it resumes the
// switchover to the end and says so.
func TestRestartMidSwitchoverResumes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, persist: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	c.seen("pbx-a1", "wit-a")
	os.WriteFile(c.dir+"/slowstart.pbx-a2", nil, 0o644)
	w := c.node("wit-a")
	job, err := w.engine().Plan(protocol.Action{Verb: "switchover", Args: []string{"pbx-a2"}})
	if err != nil {
		t.Fatal(err)
	}
	go job(context.Background(), func(protocol.Progress) {})
	waitFor(t, "pbx-a2 to be starting the group", 10*time.Second, func() bool {
		g := c.node("pbx-a2").engine().State().Group
		return g.Holder == "pbx-a2" && (g.Phase == PhaseAssigned || g.Phase == PhaseStarting)
	})
	since := time.Now()
	w.restart()
	ev := c.waitEvent("wit-a", EvResumed, since, 10*time.Second)
	if !strings.Contains(ev.Message, "had let go, so it is resumed") {
		t.Errorf("resume event = %q", ev.Message)
	}
	c.waitHolder("pbx-a2", 10*time.Second)
	waitFor(t, "the switchover to finish", 10*time.Second, func() bool { return w.engine().State().action() == nil })
	done := false
	for _, e := range filterEvents(c.events(), "wit-a", EvAction) {
		done = done || e.Time.After(since) && strings.Contains(e.Message, "done: pbx runs on pbx-a2")
	}
	if !done {
		t.Error("the resumed switchover did not say it finished")
	}
	if _, ok := c.firstEvent("", EvRolledBack, since); ok {
		t.Error("the switchover was also rolled back")
	}
}
