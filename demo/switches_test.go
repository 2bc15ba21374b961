package demo

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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

	waitFor(t, "both demo switches in pbx-b2's deployment status", func() (bool, string) {
		l, seen := demoSwitch(t, d, "pbx-b2", DemoLineSwitch)
		p, seen2 := demoSwitch(t, d, "pbx-b2", DemoPowerSwitch)
		return l.Owner == "pbx-a1" && l.Switch.Position == "pbx-a1" && p.Owner == "pbx-b1" && len(p.Switch.Outlets) == 1, seen + " " + seen2
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

	demoDo(t, d, "pbx-a2", "power off", "pbx-b2")
	if sims.iboot.On() {
		t.Fatal("pbx-b2's outlet is still on after power off")
	}
	res := demoDo(t, d, "pbx-a1", "switch discover")
	if want := sims.bero.MAC().String(); !strings.Contains(strings.ToLower(res.Message), want) {
		t.Fatalf("switch discover in the demo says %q, want the berofos %s", res.Message, want)
	}
}
