package failover

import (
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

func stepNames(ps []protocol.Progress) []string {
	var out []string
	for _, p := range ps {
		if len(out) == 0 || out[len(out)-1] != p.Step {
			out = append(out, p.Step)
		}
	}
	return out
}

// TestStandbyOnlineSwitchover moves the group by operator actions and
// checks that the old holder always stops before the new one starts.
func TestStandbyOnlineSwitchover(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	c.seen("pbx-a1", "wit-a", "pbx-a2")

	// standby pbx-a1: the group moves to pbx-a2.
	since := time.Now()
	res, steps, err := c.do("wit-a", protocol.Action{Verb: "standby", Args: []string{"pbx-a1"}})
	if err != nil || !res.OK || !strings.Contains(res.Message, "runs on pbx-a2") {
		t.Fatalf("standby = %+v, %v", res, err)
	}
	if got := stepNames(steps); strings.Join(got, ",") != "record standby,move group" {
		t.Errorf("standby steps = %q", got)
	}
	c.waitHolder("pbx-a2", 5*time.Second)
	assertHandover(t, c, "pbx-a1", "pbx-a2", since)
	if st := c.node("pbx-a1").engine().Status(); st.Nodes[0].State != protocol.StateStandby {
		t.Errorf("pbx-a1 state = %s", st.Nodes[0].State)
	}

	// A switchover to a node in standby is refused, with a hint.
	_, err = c.node("pbx-a2").engine().Plan(protocol.Action{Verb: "switchover", Args: []string{"pbx-a1"}})
	var pe *protocol.Error
	if pe = protocol.AsError(err); err == nil || pe.Code != protocol.CodeRefused || pe.Message != "switchover refused: pbx-a1 is in standby" || !strings.Contains(pe.Hint, "online") {
		t.Fatalf("switchover to a standby node = %v", err)
	}
	// Standby of the last node that can hold the group needs --force.
	if _, err := c.node("pbx-a2").engine().Plan(protocol.Action{Verb: "standby", Args: []string{"pbx-a2"}}); protocol.CodeOf(err) != protocol.CodeRefused {
		t.Fatalf("standby of the only eligible holder = %v; want refused", err)
	}

	// online pbx-a1: no failback.
	res, _, err = c.do("pbx-a2", protocol.Action{Verb: "online", Args: []string{"pbx-a1"}})
	if err != nil || !res.OK {
		t.Fatalf("online = %+v, %v", res, err)
	}
	c.stable("pbx-a2", 500*time.Millisecond)
	c.seen("pbx-a2", "pbx-a2")

	// switchover back: the five steps of seed 004, in order.
	since = time.Now()
	res, steps, err = c.do("pbx-a2", protocol.Action{Verb: "switchover", Args: []string{"pbx-a1"}})
	if err != nil || !res.OK {
		t.Fatalf("switchover = %+v, %v", res, err)
	}
	if got, want := strings.Join(stepNames(steps), ","), "restoration,activation,auditing,clean-up,standby role relay"; got != want {
		t.Errorf("switchover steps = %s, want %s", got, want)
	}
	if last := steps[len(steps)-1]; last.Message != "pbx-a2 is now the standby" {
		t.Errorf("relay step says %q", last.Message)
	}
	c.waitHolder("pbx-a1", 5*time.Second)
	assertHandover(t, c, "pbx-a2", "pbx-a1", since)
	// The target said it was ready before the holder let go.
	ready := c.waitEvent("pbx-a2", EvAction, since, time.Second)
	stopping := c.waitEvent("pbx-a2", EvStopping, since, time.Second)
	if !strings.Contains(ready.Message, "ready") || !ready.Time.Before(stopping.Time) {
		t.Errorf("ready %s / stopping %s: the standby was not ready before the active let go", ready, stopping)
	}
	st := c.node("pbx-a2").engine().State()
	if st.Group.Evidence != EvidenceSwitchover || st.action() != nil {
		t.Errorf("after switchover: group %+v, action %+v", st.Group, st.action())
	}

	// A dry run changes nothing.
	waitFor(t, "pbx-a1 to see the switchover end", 2*time.Second, func() bool { return c.node("pbx-a1").engine().State().action() == nil })
	res, steps, err = c.do("pbx-a1", protocol.Action{Verb: "switchover", DryRun: true})
	if err != nil || !res.OK || len(steps) != 5 || !strings.HasPrefix(steps[0].Message, "dry run") {
		t.Errorf("dry-run switchover = %+v, %+v", res, steps)
	}
	c.stable("pbx-a1", 300*time.Millisecond)
}

// assertHandover checks, from the events, that from stopped the group
// before to started it.
func assertHandover(t *testing.T, c *tcluster, from, to string, since time.Time) {
	t.Helper()
	stopped := c.waitEvent(from, EvStopped, since, 5*time.Second)
	started := c.waitEvent(to, EvStarted, since, 5*time.Second)
	if !stopped.Time.Before(started.Time) {
		t.Fatalf("%s stopped at %s, not before %s started at %s", from, stopped.Time.Format("15:04:05.000"), to, started.Time.Format("15:04:05.000"))
	}
}

// TestMaintenanceIsUnmanaged: in maintenance nothing is started or
// stopped, even when the resource dies; out of it, the engine repairs.
func TestMaintenanceIsUnmanaged(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	c.seen("pbx-a1", "pbx-a2")
	a1 := c.node("pbx-a1")
	res, _, err := c.do("pbx-a2", protocol.Action{Verb: "maintenance", Args: []string{"pbx-a1", "on"}})
	if err != nil || !res.OK {
		t.Fatalf("maintenance = %+v, %v", res, err)
	}
	waitFor(t, "maintenance to reach pbx-a1", 5*time.Second, func() bool { return a1.engine().State().node("pbx-a1").Maintenance })
	before := len(c.resourceLog())
	removeFile(t, a1.running) // asterisk dies while unmanaged
	time.Sleep(3 * c.o.timing.MonitorInterval)
	if n := len(c.resourceLog()); n != before {
		t.Fatalf("the engine acted on a node in maintenance: %q", c.resourceLog())
	}
	if c.holder() != "" {
		t.Fatalf("%s runs the group", c.holder())
	}
	if st := a1.engine().Status(); st.Group.State != "unmanaged" {
		t.Errorf("group state in maintenance = %s", st.Group.State)
	}
	res, _, err = c.do("pbx-a2", protocol.Action{Verb: "maintenance", Args: []string{"pbx-a1", "off"}})
	if err != nil || !res.OK {
		t.Fatalf("maintenance off = %+v, %v", res, err)
	}
	c.waitHolder("pbx-a1", 5*time.Second)
}

// TestActivateDryRunThenActivate: a new cluster waits for activate; the
// dry run runs the checks, lists the steps and changes nothing.
func TestActivateDryRunThenActivate(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, inactive: true})
	w := c.node("wit-a")
	waitFor(t, "the cluster to form", 10*time.Second, func() bool {
		st := w.engine().Status()
		return w.engine().State().Initialized && st.Quorum.Present == 3
	})
	res, steps, err := c.do("wit-a", protocol.Action{Verb: "activate", DryRun: true})
	if err != nil || !res.OK || !strings.Contains(res.Message, "nothing was changed") {
		t.Fatalf("activate --dry-run = %+v, %v", res, err)
	}
	want := "check voters,check decision log,check fencing,check group,activate,start group"
	if got := strings.Join(stepNames(steps), ","); got != want {
		t.Errorf("dry-run steps = %s, want %s", got, want)
	}
	if !strings.HasPrefix(steps[len(steps)-1].Message, "dry run: would") {
		t.Errorf("the last dry-run step says %q", steps[len(steps)-1].Message)
	}
	time.Sleep(300 * time.Millisecond)
	if w.engine().State().Activated || c.holder() != "" {
		t.Fatal("the dry run activated the cluster")
	}
	if st := w.engine().Status(); st.Group.State != "unmanaged" {
		t.Errorf("group state before activation = %s", st.Group.State)
	}
	// standby and online in a cluster that is not activated (a geo backup
	// site) answer at once: nothing starts, so there is nothing to wait
	// for (online once waited minutes for a group that could not start).
	for _, verb := range []string{"standby", "online"} {
		res, _, err = c.do("wit-a", protocol.Action{Verb: verb, Args: []string{"pbx-a2"}})
		if err != nil || !res.OK {
			t.Fatalf("%s in an inactive cluster = %+v, %v", verb, res, err)
		}
		if verb == "online" && !strings.Contains(res.Message, "not activated") {
			t.Errorf("online in an inactive cluster says %q; want it to say the cluster is not activated, without waiting", res.Message)
		}
	}
	res, _, err = c.do("wit-a", protocol.Action{Verb: "activate"})
	if err != nil || !res.OK || !strings.Contains(res.Message, "runs on pbx-a1") {
		t.Fatalf("activate = %+v, %v", res, err)
	}
	c.waitHolder("pbx-a1", 5*time.Second)
}

// TestDisableStandbySideFirst: disable marks the standby side first, then
// the active; the group keeps running, unmanaged, and no takeover follows
// even when the holder then dies.
func TestDisableStandbySideFirst(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	c.seen("pbx-a1", "pbx-a1")
	since := time.Now()
	res, steps, err := c.do("pbx-a1", protocol.Action{Verb: "disable"})
	if err != nil || !res.OK {
		t.Fatalf("disable = %+v, %v", res, err)
	}
	if got := strings.Join(stepNames(steps), ","); got != "disable standby side,disable active side,deactivate" {
		t.Errorf("disable steps = %s", got)
	}
	standby := c.waitEvent("pbx-a1", EvAction, since, time.Second)
	if !strings.Contains(standby.Message, "standby side disabled (all confirmed)") {
		t.Errorf("first disable event = %q", standby.Message)
	}
	var active Event
	for _, e := range filterEvents(c.events(), "pbx-a1", EvAction) {
		if strings.Contains(e.Message, "active side") {
			active = e
		}
	}
	if active.Time.IsZero() || !standby.Time.Before(active.Time) {
		t.Fatalf("the active side was disabled at %v, not after the standby side at %v", active.Time, standby.Time)
	}
	st := c.node("pbx-a1").engine().State()
	if st.Activated || !st.node("pbx-a1").Disabled || !st.node("pbx-a2").Disabled || !st.node("wit-a").Disabled {
		t.Fatalf("state after disable: activated %v, nodes %+v", st.Activated, st.Nodes)
	}
	c.stable("pbx-a1", 300*time.Millisecond)
	c.node("pbx-a1").crash() // the agent dies; asterisk runs on
	time.Sleep(2 * c.a2Timing().TakeoverDelay)
	if c.node("pbx-a2").holds() {
		t.Fatal("pbx-a2 took over a disabled cluster")
	}
	if _, err := c.node("pbx-a2").engine().Plan(protocol.Action{Verb: "disable"}); protocol.CodeOf(err) != protocol.CodeRefused {
		t.Errorf("disable of a disabled cluster = %v", err)
	}
}

// TestStopStopsTheGroup: stop takes the cluster out of service with the
// group stopped everywhere (what a geo site that loses the ticket needs),
// and nobody takes the released group while the stop runs; activate
// starts it again.
func TestStopStopsTheGroup(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	c.seen("pbx-a1", "pbx-a2")
	res, steps, err := c.do("pbx-a2", protocol.Action{Verb: "stop"})
	if err != nil || !res.OK {
		t.Fatalf("stop = %+v, %v", res, err)
	}
	if got := strings.Join(stepNames(steps), ","); got != "disable standby side,disable active side,deactivate" {
		t.Errorf("stop steps = %s", got)
	}
	for _, n := range []string{"pbx-a1", "pbx-a2"} {
		if c.node(n).holds() {
			t.Errorf("%s still runs the group after stop", n)
		}
	}
	st := c.node("pbx-a2").engine().State()
	if st.Activated || st.Group.Holder != "" {
		t.Fatalf("after stop: activated %v, holder %q", st.Activated, st.Group.Holder)
	}
	c.stable("", 300*time.Millisecond) // a negative: nobody starts it again
	if res, _, err := c.do("pbx-a2", protocol.Action{Verb: "activate"}); err != nil || !res.OK {
		t.Fatalf("activate = %+v, %v", res, err)
	}
	waitFor(t, "the group to run again after activate", 10*time.Second, func() bool {
		return c.node("pbx-a1").holds() || c.node("pbx-a2").holds()
	})
}

// TestPlanRefusals: bad arguments and unsafe actions are refused with
// typed errors and hints, before anything is done.
func TestPlanRefusals(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true})
	c.waitHolder("pbx-a1", 10*time.Second)
	c.seen("pbx-a1", "pbx-a1")
	e := c.node("pbx-a1").engine()
	for _, tc := range []struct {
		a    protocol.Action
		code protocol.Code
		msg  string
	}{
		{protocol.Action{Verb: "reboot"}, protocol.CodeUnknownVerb, "does not know"},
		{protocol.Action{Verb: "standby"}, protocol.CodeUsage, "wrong arguments"},
		{protocol.Action{Verb: "standby", Args: []string{"pbx-z9"}}, protocol.CodeUnknownNode, "pbx-z9 is not a voter"},
		{protocol.Action{Verb: "standby", Args: []string{"wit-a"}}, protocol.CodeRefused, "standby refused: wit-a is the witness"},
		{protocol.Action{Verb: "maintenance", Args: []string{"pbx-a1", "maybe"}}, protocol.CodeUsage, ""},
		{protocol.Action{Verb: "switchover", Args: []string{"pbx-a1"}}, protocol.CodeRefused, "switchover refused: pbx-a1 already holds pbx"},
		{protocol.Action{Verb: "switchover", Args: []string{"wit-a"}}, protocol.CodeRefused, "switchover refused: wit-a is the witness"},
		{protocol.Action{Verb: "fence", Args: []string{"pbx-a2"}}, protocol.CodeRefused, "fence refused: pbx-a2 has no fencing device"},
		{protocol.Action{Verb: "fence", Args: []string{"pbx-a1"}}, protocol.CodeRefused, "fence refused: pbx-a1 cannot fence itself"},
		{protocol.Action{Verb: "activate", Args: []string{"now"}}, protocol.CodeUsage, ""},
	} {
		_, err := e.Plan(tc.a)
		pe := protocol.AsError(err)
		if err == nil || pe.Code != tc.code || !strings.Contains(pe.Message, tc.msg) {
			t.Errorf("%s: got %v, want %s %q", tc.a, err, tc.code, tc.msg)
		}
	}
	c.stable("pbx-a1", 100*time.Millisecond)
}

// TestFenceAction: an operator fences the standby through fence_dummy;
// the result waits for the verified off and the log records it.
func TestFenceAction(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{fence: "dummy"})
	c.waitHolder("pbx-a1", 10*time.Second)
	c.seen("pbx-a1", "pbx-a1")
	a2 := c.node("pbx-a2")
	c.watchPower(a2)
	// activate's dry run asks the fencing devices (fence_dummy monitor).
	res, steps, err := c.do("pbx-a1", protocol.Action{Verb: "activate", DryRun: true})
	if err != nil || !res.OK || len(steps) < 3 || steps[2].Message != "fencing devices answer" {
		t.Fatalf("activate --dry-run = %+v, %+v, %v", res, steps, err)
	}
	res, steps, err = c.do("pbx-a1", protocol.Action{Verb: "fence", Args: []string{"pbx-a2"}})
	if err != nil || !res.OK || !strings.Contains(res.Message, "verifiably off") {
		t.Fatalf("fence = %+v, %v", res, err)
	}
	if got := strings.Join(stepNames(steps), ","); got != "fence,record" {
		t.Errorf("fence steps = %s", got)
	}
	if p := a2.powerState(); p != "off" {
		t.Fatalf("fence_dummy says %q", p)
	}
	if !c.node("pbx-a1").engine().State().node("pbx-a2").Fenced {
		t.Error("the fence is not in the log")
	}
	waitFor(t, "the power switch to take pbx-a2 down", 5*time.Second, a2.isDead)
	c.stable("pbx-a1", 2*c.node("pbx-a1").engine().Config().Timing.DeadTime)
}

// TestStatusBeforeForming: a voter whose cluster has not formed names
// its group and the cluster and says why nothing runs (the console's
// overview showed "group  standby" and "cluster  is not activated").
func TestStatusBeforeForming(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, alone: true})
	// Let the lone engine run a while (the sampler's ten rounds).
	waitFor(t, "ten sampler rounds", 10*time.Second, func() bool { return c.sampler.samples.Load() >= 10 })
	st := c.node("pbx-a1").engine().Status()
	if st.Group.Name != "pbx" || st.Group.State != "unmanaged" || st.Group.Reason != "cluster site-a has not formed yet" {
		t.Errorf("group before forming = %+v", st.Group)
	}
}
