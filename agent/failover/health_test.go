package failover

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/protocol"
)

// sipCheck is an exec health check on the node's check script, fast.
func sipCheck(class health.Class) health.Spec {
	s := health.DefaultSpec()
	s.Name, s.Kind, s.Class, s.Resource = "sip", "exec", class, "asterisk"
	s.Interval, s.Timeout, s.Rise, s.Fall = 200*time.Millisecond, 150*time.Millisecond, 1, 2
	return s
}

// resourceLog returns the resource script's calls as "start pbx-a1" etc.
func (c *tcluster) resourceLog() []string {
	b, _ := os.ReadFile(c.log)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			out = append(out, f[1]+" "+f[2])
		}
	}
	return out
}

// TestMajorCheckRestartsThenFailsOver: a major check that keeps failing
// restarts its resource MaxRestarts times, then escalates: the holder
// releases the group (banned until cleanup) and the standby takes it.
// Cleanup then clears the ban and the fail counts.
func TestMajorCheckRestartsThenFailsOver(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, checks: []health.Spec{sipCheck(health.Major)},
		policy: health.PolicyConfig{MaxRestarts: 2, RestartWindow: time.Hour}, threshold: 100})
	a1, a2 := c.node("pbx-a1"), c.node("pbx-a2")
	c.setHealthy(a2, true)
	c.setHealthy(a1, true)
	c.waitHolder("pbx-a1", 10*time.Second)

	sick := time.Now()
	c.setHealthy(a1, false)
	c.waitHolder("pbx-a2", 20*time.Second)
	if n := len(filterEvents(c.events(), "pbx-a1", EvRestart)); n != 2 {
		t.Errorf("pbx-a1 restarted asterisk %d times; want 2", n)
	}
	esc := c.waitEvent("pbx-a1", EvEscalated, sick, time.Second)
	if !strings.Contains(esc.Message, "already restarted 2 times") {
		t.Errorf("escalation = %q", esc.Message)
	}
	want := []string{"start pbx-a1", "stop pbx-a1", "start pbx-a1", "stop pbx-a1", "start pbx-a1", "stop pbx-a1", "start pbx-a2"}
	if got := c.resourceLog(); !slices.Equal(got, want) {
		t.Errorf("resource calls = %q\nwant %q", got, want)
	}
	st := a2.engine().State()
	if st.node("pbx-a1").Banned == "" {
		t.Fatal("pbx-a1 is not banned after escalating")
	}
	if n := a1.group.FailCount("asterisk"); n != 2 {
		t.Errorf("fail count on pbx-a1 = %d, want 2", n)
	}
	waitFor(t, "pbx-a1 to see the group started on pbx-a2", 5*time.Second, func() bool {
		g := a1.engine().State().Group
		return g.Holder == "pbx-a2" && g.Phase == PhaseStarted
	})
	if _, err := a1.engine().Plan(protocol.Action{Verb: "switchover", Args: []string{"pbx-a1"}}); protocol.CodeOf(err) != protocol.CodeRefused || !strings.Contains(err.Error(), "cleanup") {
		t.Errorf("switchover to a banned node = %v; want refused with a cleanup hint", err)
	}

	res, steps, err := c.do("pbx-a2", protocol.Action{Verb: "cleanup", Args: []string{"pbx-a1"}})
	if err != nil || !res.OK {
		t.Fatalf("cleanup = %+v, %v", res, err)
	}
	if len(steps) != 1 || steps[0].Step != "cleanup pbx-a1" {
		t.Errorf("cleanup steps = %+v", steps)
	}
	if n := a1.group.FailCount("asterisk"); n != 0 {
		t.Errorf("fail count after cleanup = %d", n)
	}
	if st := a2.engine().State(); st.node("pbx-a1").Banned != "" {
		t.Errorf("pbx-a1 still banned after cleanup: %s", st.node("pbx-a1").Banned)
	}
	if r := a1.engine().Status().Failed; len(r) != 0 {
		t.Errorf("failed actions after cleanup: %+v", r)
	}
	c.stable("pbx-a2", 300*time.Millisecond) // no failback
}

// TestMinorCheckOnlyLogs: a failing minor check is an event, nothing more.
func TestMinorCheckOnlyLogs(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, checks: []health.Spec{sipCheck(health.Minor)}})
	c.waitHolder("pbx-a1", 10*time.Second)
	since := time.Now()
	c.waitEvent("pbx-a1", EvCheckFailed, since, 5*time.Second)
	c.stable("pbx-a1", time.Second)
	if n := len(filterEvents(c.events(), "pbx-a1", EvRestart)); n != 0 {
		t.Errorf("a minor check restarted the resource %d times", n)
	}
	if got := c.resourceLog(); !slices.Equal(got, []string{"start pbx-a1"}) {
		t.Errorf("resource calls = %q", got)
	}
	chk := c.node("pbx-a1").engine().Status().Group.Resources[0].Checks
	if len(chk) != 1 || chk[0].OK || chk[0].Class != "minor" {
		t.Errorf("checks in status = %+v", chk)
	}
}

// TestStartFailureMovesGroup: a start that fails on the preferred node
// bans it and the next node starts the group.
func TestStartFailureMovesGroup(t *testing.T) {
	t.Parallel()
	c := newCluster(t, opts{witness: true, inactive: true})
	os.WriteFile(c.dir+"/failstart.pbx-a1", nil, 0o644)
	waitFor(t, "the cluster to form", 10*time.Second, func() bool { return c.node("pbx-a2").engine().State().Initialized })
	res, _, err := c.do("pbx-a2", protocol.Action{Verb: "activate"})
	if err != nil || !res.OK {
		t.Fatalf("activate = %+v, %v", res, err)
	}
	c.waitHolder("pbx-a2", 10*time.Second)
	st := c.node("pbx-a2").engine().State()
	if !strings.Contains(st.node("pbx-a1").Banned, "cannot bind 5060") {
		t.Errorf("pbx-a1 ban = %q; want the start failure's words", st.node("pbx-a1").Banned)
	}
	if f := c.node("pbx-a1").engine().Status().Failed; len(f) != 1 || f[0].Op != "start" {
		t.Errorf("failed actions on pbx-a1 = %+v", f)
	}
}
