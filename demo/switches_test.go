package demo

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/lines"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
	"github.com/hatui/hatui/switchdrv/berofos"
)

func demoDo(t *testing.T, d *Deployment, via, verb string, args ...string) protocol.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, d.Dial(via), client.Options{})
	if err != nil {
		t.Fatalf("connecting to %s: %v", via, err)
	}
	defer c.Close()
	res, err := c.Do(ctx, protocol.Action{Verb: verb, Args: args}, nil)
	if err != nil || !res.OK {
		t.Fatalf("%s %v via %s: %+v %v", verb, args, via, res, err)
	}
	return res
}

func demoSwitch(t *testing.T, d *Deployment, via, name string) (lines.Located, string) {
	t.Helper()
	snap, err := status(t, d, via)
	if err != nil {
		return lines.Located{}, err.Error()
	}
	for _, l := range lines.Switches(snap) {
		if l.Switch.Name == name {
			return l, fmt.Sprintf("%+v", l)
		}
	}
	return lines.Located{}, "no switch " + name
}

func TestSwitchesInDemo(t *testing.T) {
	d := startDemo(t)
	switchSimsMu.Lock()
	sims := switchSims[d]
	switchSimsMu.Unlock()

	waitFor(t, "the demo switches in pbx-b2's deployment status", func() (bool, string) {
		l, seen := demoSwitch(t, d, "pbx-b2", DemoLineSwitch)
		if l.Owner != "pbx-a1" || l.Switch.Position != "pbx-a1" || l.Switch.Failsafe != "pbx-a2" || l.Switch.Watchdog != "on" || l.Switch.WatchdogTimeout <= 0 {
			return false, seen
		}
		// Every PBX node is powered through an iBoot its peer drives.
		for node, peer := range map[string]string{"pbx-a1": "pbx-a2", "pbx-a2": "pbx-a1", "pbx-b1": "pbx-b2", "pbx-b2": "pbx-b1"} {
			p, seen := demoSwitch(t, d, "pbx-b2", PowerSwitchOf(node))
			if p.Owner != peer || len(p.Switch.Outlets) != 1 || p.Switch.Outlets[0].Node != node || !p.Switch.Outlets[0].On {
				return false, seen
			}
		}
		return true, ""
	})

	// Through an agent of the other site: routed to pbx-a1, read back,
	// and shown in the deployment status; the lines stay held there.
	demoDo(t, d, "pbx-b2", "switch set", DemoLineSwitch, "pbx-a2")
	if p := sims.bero.Position(); p != berofos.PositionAD {
		t.Fatalf("after switch set %s pbx-a2 the berofos is at %s, want A-D", DemoLineSwitch, p)
	}
	waitFor(t, "lines-a on pbx-a2 in pbx-b2's deployment status", func() (bool, string) {
		l, seen := demoSwitch(t, d, "pbx-b2", DemoLineSwitch)
		return l.Switch.Position == "pbx-a2" && l.Switch.Verified, seen
	})
	// Following again, the lines return to the active node, pbx-a1.
	demoDo(t, d, "arbitrator", "switch set", DemoLineSwitch, "follow")
	waitFor(t, "lines back on pbx-a1", func() (bool, string) {
		return sims.bero.Position() == berofos.PositionAB, string(sims.bero.Position())
	})

	// Power off is the machine's end: its agent stops with it.
	demoDo(t, d, "pbx-a2", "power off", "pbx-b2")
	if sims.power["pbx-b2"].On() {
		t.Fatal("pbx-b2's outlet is still on after power off")
	}
	waitFor(t, "pbx-b2 down once its power is off", func() (bool, string) {
		_, err := status(t, d, "pbx-b2")
		return err != nil, fmt.Sprint(err)
	})
	res := demoDo(t, d, "pbx-a1", "switch discover")
	if want := sims.bero.MAC().String(); !strings.Contains(strings.ToLower(res.Message), want) {
		t.Fatalf("switch discover in the demo says %q, want the berofos %s", res.Message, want)
	}
}

// TestDemoSwitchOutlivesItsDriver: killing pbx-a1, which drives the line
// switch and holds site a's group, gets it fenced through its iBoot
// (power off, verified) and the group taken over; the line switch stays in
// every agent's view, stale, with its driver, last position and failsafe,
// and the berofos moves the lines to pbx-a2 by itself when its watchdog
// runs out. Revived (power back on), pbx-a1 reports the switch again.
func TestDemoSwitchOutlivesItsDriver(t *testing.T) {
	d := startDemo(t)
	switchSimsMu.Lock()
	sims := switchSims[d]
	switchSimsMu.Unlock()
	waitFor(t, "lines-a armed and reported by pbx-a1", func() (bool, string) {
		l, seen := demoSwitch(t, d, "pbx-b1", DemoLineSwitch)
		return l.Owner == "pbx-a1" && !l.Switch.Stale && l.Switch.Watchdog == "on" && sims.bero.Kicks() > 0, seen
	})
	if err := d.Kill("pbx-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pbx-a1 fenced and pbx-a's group on pbx-a2", func() (bool, string) {
		snap, err := status(t, d, "pbx-b1")
		if err != nil {
			return false, err.Error()
		}
		g := groupOf(snap, "a")
		return !sims.power["pbx-a1"].On() && g.Active == "pbx-a2" && g.State == "started", fmt.Sprintf("power %v, group %+v", sims.power["pbx-a1"].On(), g)
	})
	for _, via := range []string{"pbx-a2", "pbx-b1", "arbitrator"} {
		l, seen := demoSwitch(t, d, via, DemoLineSwitch)
		if !l.Switch.Stale || l.Switch.Node != "pbx-a1" || l.Switch.Position != "pbx-a1" || l.Switch.Failsafe != "pbx-a2" || l.Switch.AsOf.IsZero() {
			t.Errorf("through %s lines-a = %s; want it stale, driven by pbx-a1, last on pbx-a1, failsafe pbx-a2", via, seen)
		}
	}
	agenttest.WaitFor(t, 20*time.Second, "the berofos to move the lines to pbx-a2 by itself", func() (bool, string) {
		return sims.bero.Position() == berofos.PositionAD, string(sims.bero.Position())
	})

	if err := d.Revive("pbx-a1"); err != nil {
		t.Fatal(err)
	}
	if !sims.power["pbx-a1"].On() {
		t.Fatal("pbx-a1 revived with its power off")
	}
	waitFor(t, "pbx-a1 to drive lines-a again", func() (bool, string) {
		l, seen := demoSwitch(t, d, "pbx-b1", DemoLineSwitch)
		return !l.Switch.Stale && l.Owner == "pbx-a1" && l.Switch.Position == "pbx-a2" && l.Switch.Verified, seen
	})
}

// TestDemoStartsHealthy: every cluster of a fresh demo has a fencing
// device for each node and a second heartbeat path, so no risk is shown
// until a fault is injected; site b's group says it is a backup site.
func TestDemoStartsHealthy(t *testing.T) {
	d := startDemo(t)
	waitFor(t, "no risk anywhere, pbx-b standing by as the backup site", func() (bool, string) {
		snap, err := status(t, d, "pbx-a1")
		if err != nil {
			return false, err.Error()
		}
		for _, c := range snap.Clusters() {
			if len(c.Quorum.Risks) > 0 || !c.Quorum.HasQuorum {
				return false, fmt.Sprintf("cluster %s: %+v", c.Name, c.Quorum)
			}
		}
		g := groupOf(snap, "b")
		return g.State == "standby" && g.Reason == "backup site: not serving (geo)", fmt.Sprintf("pbx-b %+v", g)
	})
}
