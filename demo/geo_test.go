package demo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// TestDemoGeoFailover: cutting site a off moves the geo ticket to site b
// with the dead man's timer running, as site b and the arbitrator show;
// "geo confirm b" makes site b's cluster serve at once.
func TestDemoGeoFailover(t *testing.T) {
	d := startDemo(t)
	if res, _, err := d.Do(protocol.Action{Verb: "demo cut", Args: []string{"a"}}); err != nil || !res.OK {
		t.Fatalf("demo cut a: %+v %v", res, err)
	}
	for _, via := range []string{"pbx-b1", "arbitrator"} {
		agenttest.WaitFor(t, 60*time.Second, "a pending geo failover to b seen by "+via, func() (bool, string) {
			snap, err := status(t, d, via)
			if err != nil {
				return false, err.Error()
			}
			g := snap.Geo
			if g == nil {
				return false, "no geo state"
			}
			p := g.Pending
			return g.Ticket.Holder == "b" && p != nil && p.To == "b" && p.State == "pending" && time.Until(p.Expires) > time.Minute,
				fmt.Sprintf("ticket %+v pending %+v", g.Ticket, p)
		})
	}
	if g := groupOf(mustStatus(t, d, "pbx-b1"), "b"); g.State == "started" {
		t.Fatalf("site b serves before anyone confirmed: %+v", g)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Connect(ctx, d.Dial("arbitrator"), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Do(ctx, protocol.Action{Verb: "geo confirm", Args: []string{"b"}}, nil)
	if err != nil || !res.OK {
		t.Fatalf("geo confirm b: %+v %v", res, err)
	}
	agenttest.WaitFor(t, 60*time.Second, "site b's group started", func() (bool, string) {
		snap, err := status(t, d, "pbx-b1")
		if err != nil {
			return false, err.Error()
		}
		g := groupOf(snap, "b")
		return g.State == "started" && g.Active != "", fmt.Sprintf("%+v", g)
	})
}

func mustStatus(t *testing.T, d *Deployment, via string) *protocol.Snapshot {
	t.Helper()
	snap, err := status(t, d, via)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
