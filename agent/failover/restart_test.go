package failover

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// TestRestartKeepsDecisionState: every agent restarts (the PBX keeps
// running); the decision state comes back from disk, the holder confirms
// it at a newer epoch without stopping, and the flags survive.
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
	if slices.Contains(c.resourceLog(), "stop pbx-a1") {
		t.Errorf("the restart stopped the PBX: %q", c.resourceLog())
	}
	c.stable("pbx-a1", 500*time.Millisecond)
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
