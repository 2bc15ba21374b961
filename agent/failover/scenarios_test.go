package failover

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCrashOfActiveStandbyTakesOver: the holder loses power; the standby
// takes over once a majority (it and the witness) sees it failed, and not
// before the takeover delay after its last contact.
func TestCrashOfActiveStandbyTakesOver(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	a1, a2 := c.node("pbx-a1"), c.node("pbx-a2")

	crashed := time.Now()
	a1.powerOff()
	c.waitHolder("pbx-a2", 10*time.Second)
	started := c.waitEvent("pbx-a2", EvStarted, crashed, time.Second)
	if took := started.Time.Sub(crashed); took < c.cfg.Timing.DeadTime {
		t.Errorf("pbx-a2 started %s after the crash, before the dead time %s", took, c.cfg.Timing.DeadTime)
	}
	acq := c.waitEvent("pbx-a2", EvAcquired, crashed, time.Second)
	if !strings.Contains(acq.Message, string(EvidenceMajority)) {
		t.Errorf("takeover evidence = %q, want a majority", acq.Message)
	}
	st := a2.engine().State()
	if st.Group.Previous != "pbx-a1" || st.Group.Evidence != EvidenceMajority {
		t.Errorf("group record = %+v", st.Group)
	}
}

// TestActiveCutFromStandbyOnly: the holder loses every path to the
// standby but not to the witness. The standby sees it failed; the witness
// does not, so there is no majority and no takeover, and the holder,
// still in contact with a majority, keeps running.
func TestActiveCutFromStandbyOnly(t *testing.T) {
	t.Parallel()
	nc := needNetcut(t)
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	a1, a2 := c.node("pbx-a1"), c.node("pbx-a2")

	cut := time.Now()
	nc.cut(a1.ip, a2.ip)
	c.waitEvent("pbx-a2", EvPeerFailed, cut, 5*time.Second)
	// Long enough for a takeover to have happened had the standby's own
	// view been enough: twice the takeover delay.
	c.stable("pbx-a1", 2*c.a2Timing().TakeoverDelay)
	if ev, ok := c.firstEvent("pbx-a1", EvSelfFence, cut); ok {
		t.Fatalf("the holder fenced itself although the witness answers: %s", ev)
	}
	st := a2.engine().Status()
	if !strings.Contains(st.Group.Reason, "majority") {
		t.Errorf("the standby's status does not say why it waits: %q", st.Group.Reason)
	}
	// pbx-a2's vote reaches the log only if it can reach the leader;
	// either way there is no majority against pbx-a1.
	if st := a1.engine().State(); st.Group.Holder != "pbx-a1" || len(st.agreeing("pbx-a1")) >= st.majority() || slices.Contains(st.agreeing("pbx-a1"), "wit-a") {
		t.Errorf("state after the cut: holder %s, votes against pbx-a1 %v", st.Group.Holder, st.agreeing("pbx-a1"))
	}

	nc.heal()
	c.waitEvent("pbx-a2", EvPeerAlive, cut, 5*time.Second)
	c.stable("pbx-a1", 500*time.Millisecond)
}

// TestActiveCutFromEveryone: the holder loses every peer and the
// witness. It stops its group (self-fence) before the standby, with the
// witness's agreement, starts it: the event timestamps show the order.
func TestActiveCutFromEveryone(t *testing.T) {
	t.Parallel()
	nc := needNetcut(t)
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	a1, a2, w := c.node("pbx-a1"), c.node("pbx-a2"), c.node("wit-a")

	cut := time.Now()
	nc.cut(a1.ip, a2.ip, w.ip)
	c.waitHolder("pbx-a2", 10*time.Second)
	fence := c.waitEvent("pbx-a1", EvSelfFence, cut, time.Second)
	stopped := c.waitEvent("pbx-a1", EvStopped, cut, time.Second)
	started := c.waitEvent("pbx-a2", EvStarted, cut, time.Second)
	if !stopped.Time.Before(started.Time) {
		t.Fatalf("pbx-a1 stopped at %s, not before pbx-a2 started at %s", stopped.Time.Format("15:04:05.000"), started.Time.Format("15:04:05.000"))
	}
	tm := c.a2Timing()
	if got := stopped.Time.Sub(cut); got > tm.StopDeadline+tm.Keepalive {
		t.Errorf("pbx-a1 stopped %s after the cut, later than the stop deadline %s", got, tm.StopDeadline)
	}
	// Contact is proven by echoes, so the last proof may precede the cut
	// by up to two keepalives, on both sides alike.
	if got := started.Time.Sub(cut); got < tm.TakeoverDelay-2*tm.Keepalive {
		t.Errorf("pbx-a2 started %s after the cut, earlier than the takeover delay %s", got, tm.TakeoverDelay)
	}
	t.Logf("cut → self-fence %s, stopped %s, standby started %s",
		fence.Time.Sub(cut).Round(time.Millisecond), stopped.Time.Sub(cut).Round(time.Millisecond), started.Time.Sub(cut).Round(time.Millisecond))

	// Healed, the old holder learns the new epoch and stays stopped.
	nc.heal()
	waitFor(t, "pbx-a1 to learn it was deposed", 5*time.Second, func() bool {
		return a1.engine().State().Group.Holder == "pbx-a2"
	})
	c.stable("pbx-a2", time.Second)
}

// a2Timing is the timing with defaults as the nodes use it.
func (c *tcluster) a2Timing() Timing {
	return c.node("pbx-a2").engine().Config().Timing
}

// TestSerialPathKeepsPeerAlive: with Serf cut but the serial cable up,
// the standby still hears the holder, so nothing moves; once the cable is
// cut too, the holder fences itself and the standby takes over.
func TestSerialPathKeepsPeerAlive(t *testing.T) {
	t.Parallel()
	nc := needNetcut(t)
	c := newCluster(t, opts{witness: true, serf: true, serial: true})
	c.waitHolder("pbx-a1", 15*time.Second)
	a1, a2, w := c.node("pbx-a1"), c.node("pbx-a2"), c.node("wit-a")

	cut := time.Now()
	nc.cut(a1.ip, a2.ip, w.ip)
	c.waitEvent("pbx-a2", EvPathDown, cut, 5*time.Second)
	c.waitEvent("wit-a", EvPeerFailed, cut, 5*time.Second)
	c.stable("pbx-a1", 2*c.a2Timing().TakeoverDelay)
	if ev, ok := c.firstEvent("pbx-a2", EvPeerFailed, cut); ok {
		t.Fatalf("pbx-a2 called pbx-a1 failed although the serial link is up: %s", ev)
	}
	links := a2.engine().Status()
	var serialUp, serfUp bool
	for _, n := range links.Nodes {
		for _, l := range n.Links {
			if l.Peer == "pbx-a1" {
				serialUp = serialUp || l.Path == PathSerial && l.Up
				serfUp = serfUp || l.Path == PathSerf && l.Up
			}
		}
	}
	if !serialUp || serfUp {
		t.Fatalf("pbx-a2's links to pbx-a1: serial up %v, serf up %v; want serial up, serf down", serialUp, serfUp)
	}

	cableCut := time.Now()
	c.cable.cut.Store(true)
	c.waitHolder("pbx-a2", 10*time.Second)
	stopped := c.waitEvent("pbx-a1", EvStopped, cableCut, time.Second)
	started := c.waitEvent("pbx-a2", EvStarted, cableCut, time.Second)
	if !stopped.Time.Before(started.Time) {
		t.Fatalf("pbx-a1 stopped at %s, not before pbx-a2 started at %s", stopped.Time.Format("15:04:05.000"), started.Time.Format("15:04:05.000"))
	}
}

// TestFenceDummyTakeover: two nodes with fencing through Debian's
// fence_dummy. The holder hangs with its PBX still running; the standby
// fences it and starts the group only after the off is verified (the
// power watcher then kills the hung node's resources, as a power switch
// does).
func TestFenceDummyTakeover(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{fence: "dummy"})
	c.waitHolder("pbx-a1", 10*time.Second)
	a1, a2 := c.node("pbx-a1"), c.node("pbx-a2")
	c.watchPower(a1)

	hung := time.Now()
	a1.crash() // the agent hangs; asterisk keeps running
	c.waitHolder("pbx-a2", 15*time.Second)
	fenced := c.waitEvent("pbx-a2", EvFenced, hung, time.Second)
	started := c.waitEvent("pbx-a2", EvStarted, hung, time.Second)
	if !fenced.Time.Before(started.Time) {
		t.Fatalf("pbx-a2 started at %s, before the fence was verified at %s", started.Time.Format("15:04:05.000"), fenced.Time.Format("15:04:05.000"))
	}
	if p := a1.powerState(); p != "off" {
		t.Fatalf("fence_dummy says pbx-a1 is %q", p)
	}
	st := a2.engine().State()
	if st.Group.Evidence != EvidenceFenced || !st.node("pbx-a1").Fenced {
		t.Fatalf("group %+v, pbx-a1 fenced %v; want a takeover on fenced evidence", st.Group, st.node("pbx-a1").Fenced)
	}
	if s := a2.engine().Status(); s.Nodes[0].Unclean || s.Group.Active != "pbx-a2" {
		t.Fatalf("status after the fence: %+v", s)
	}

	// Powered on again, pbx-a1 rejoins as the standby: the survivor adds
	// it back to the decision log, and it learns it was replaced.
	os.WriteFile(a1.power, []byte("on"), 0o600)
	a1.start()
	waitFor(t, "pbx-a1 to rejoin", 10*time.Second, func() bool {
		st := a1.engine().State()
		return st.Group.Holder == "pbx-a2" && !st.node("pbx-a1").Fenced
	})
	c.stable("pbx-a2", time.Second)
}

// TestFenceFailureLeavesGroupStopped: the fencing device fails; the
// standby never starts the group and says why.
func TestFenceFailureLeavesGroupStopped(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{fence: "fail"})
	c.waitHolder("pbx-a1", 10*time.Second)
	a1, a2 := c.node("pbx-a1"), c.node("pbx-a2")

	a1.powerOff()
	// Until fencing has been retried at least once, the group must
	// never start.
	waitFor(t, "fencing to be retried", 15*time.Second, func() bool {
		if a2.holds() {
			t.Fatal("pbx-a2 started the group although fencing pbx-a1 failed")
		}
		return len(filterEvents(c.events(), "pbx-a2", EvFenceFailed)) >= 2
	})
	st := a2.engine().Status()
	if st.Group.State != "stopped" || !strings.Contains(st.Group.Reason, "fencing it failed") || !strings.Contains(st.Group.Reason, "stays stopped") {
		t.Fatalf("group status = %q (%s); want stopped, saying the fence failed", st.Group.State, st.Group.Reason)
	}
	if !st.Nodes[0].Unclean || st.Nodes[0].State != "UNCLEAN" {
		t.Fatalf("pbx-a1 = %+v; want UNCLEAN", st.Nodes[0])
	}
}

func filterEvents(evs []Event, node string, t EventType) []Event {
	var out []Event
	for _, e := range evs {
		if e.Node == node && e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// TestTwoNodeRisk: two nodes without fencing or witness run only with
// allow_two_node_risk, and then the status says the risk in a sentence.
// A crash is taken over after the takeover delay.
func TestTwoNodeRisk(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{risk: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	st := c.node("pbx-a2").engine().Status()
	if len(st.Quorum.Risks) == 0 || st.Quorum.Risks[0] != riskTwoNode {
		t.Fatalf("risks = %q; want %q", st.Quorum.Risks, riskTwoNode)
	}
	crashed := time.Now()
	c.node("pbx-a1").powerOff()
	c.waitHolder("pbx-a2", 15*time.Second)
	started := c.waitEvent("pbx-a2", EvStarted, crashed, time.Second)
	if d := started.Time.Sub(crashed); d < c.a2Timing().TakeoverDelay-2*c.a2Timing().Keepalive {
		t.Errorf("started %s after the crash, before the takeover delay", d)
	}
	if st := c.node("pbx-a2").engine().State(); st.Group.Evidence != EvidenceTwoNodeRisk {
		t.Errorf("evidence = %s", st.Group.Evidence)
	}
	// The status says what governs the takeover it just made: not a
	// majority (it has none, and it took over anyway), the accepted risk.
	q := c.node("pbx-a2").engine().Status().Quorum
	alone := false
	for _, r := range q.Risks {
		if strings.Contains(r, "nothing can be taken over") {
			t.Errorf("risk %q contradicts the takeover that happened", r)
		}
		alone = alone || strings.Contains(r, "pbx-a2 decides alone, by allow_two_node_risk")
	}
	if !alone || !q.HasQuorum {
		t.Errorf("quorum after the takeover = %+v; want it to say pbx-a2 decides alone by allow_two_node_risk", q)
	}
}

// TestWitnessDownThenActiveCrashes: with the witness gone, the holder's
// crash leaves no majority, and nothing is taken over, fencing device or
// not (a fenced node that boots again could form the old majority with
// the witness). When the witness returns, the standby fences the old
// holder through fence_dummy and takes over.
func TestWitnessDownThenActiveCrashes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, fence: "dummy", persist: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	a1, a2, w := c.node("pbx-a1"), c.node("pbx-a2"), c.node("wit-a")
	c.watchPower(a1)
	w.crash()
	c.stable("pbx-a1", time.Second) // one voter lost: the majority remains

	crashed := time.Now()
	a1.crash() // hung: its PBX runs on until the power goes
	tm := c.a2Timing()
	time.Sleep(tm.DeadTime + 2*tm.TakeoverDelay)
	if a2.holds() || a1.powerState() != "on" {
		t.Fatalf("without a majority: pbx-a2 holds %v, pbx-a1's power %s; want no takeover and no fence", a2.holds(), a1.powerState())
	}
	st := a2.engine().Status()
	if st.Quorum.HasQuorum || len(st.Quorum.Risks) == 0 || !strings.Contains(st.Quorum.Risks[0], "no majority: 1 of 3 voters present") {
		t.Fatalf("quorum = %+v; want no quorum, said in a sentence", st.Quorum)
	}

	back := time.Now()
	w.start()
	c.waitHolder("pbx-a2", 20*time.Second)
	fenced := c.waitEvent("pbx-a2", EvFenced, back, time.Second)
	started := c.waitEvent("pbx-a2", EvStarted, back, time.Second)
	if !fenced.Time.Before(started.Time) {
		t.Fatalf("started at %s, before the fence at %s", started.Time.Format("15:04:05.000"), fenced.Time.Format("15:04:05.000"))
	}
	if _, ok := c.firstEvent("", EvForced, crashed); ok {
		t.Error("the decision log was forced although the witness could come back")
	}
}
