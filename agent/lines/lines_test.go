package lines_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/lines"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/berofos"
	"github.com/hatui/hatui/switchdrv/berofos/berofossim"
	"github.com/hatui/hatui/switchdrv/iboot/ibootsim"
)

// subnet is this package's range of loopback addresses.
var subnet = agenttest.NewSubnet("127.0.70")

// optionsTOML renders driver options as a TOML inline table.
func optionsTOML(o switchdrv.Options) string {
	var kv []string
	for k, v := range o {
		kv = append(kv, fmt.Sprintf("%s = %q", k, v))
	}
	return "{ " + strings.Join(kv, ", ") + " }"
}

// nodeConfig builds a valid node configuration on its own address; extra
// is appended (the [[switch]] tables).
func nodeConfig(t *testing.T, name string, join []string, extra string) *config.Config {
	t.Helper()
	return agenttest.Config(t, agenttest.Node{Name: name, IP: subnet.Next(), Join: join, Extra: extra})
}

type testAgent struct {
	name string
	cfg  *config.Config
	a    *agent.Agent
}

// startAgents starts one agent per config, each with the switch feature,
// all joining the first.
func startAgents(t *testing.T, o lines.Options, cfgs ...*config.Config) []*testAgent {
	t.Helper()
	var out []*testAgent
	for i, cfg := range cfgs {
		if i > 0 {
			cfg.Gossip.Join = []string{cfgs[0].Gossip.Bind}
		}
		a, err := agent.New(cfg, agent.Options{Features: []agent.FeatureFunc{lines.NewWith(o)}})
		if err != nil {
			t.Fatalf("starting %s: %v", cfg.Node, err)
		}
		t.Cleanup(func() { a.Kill() })
		out = append(out, &testAgent{name: cfg.Node, cfg: cfg, a: a})
	}
	return out
}

func connect(t *testing.T, n *testAgent) *client.Conn {
	t.Helper()
	return agenttest.Connect(t, n.cfg.Socket.Path)
}

func startBerofos(t *testing.T) *berofossim.Sim {
	t.Helper()
	sim, err := berofossim.Start(berofossim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func startIBoot(t *testing.T) *ibootsim.Sim {
	t.Helper()
	sim, err := ibootsim.Start(ibootsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func findSwitch(snap *protocol.Snapshot, name string) (lines.Located, bool) {
	for _, l := range lines.Switches(snap) {
		if l.Switch.Name == name {
			return l, true
		}
	}
	return lines.Located{}, false
}

func do(t *testing.T, c *client.Conn, verb string, args ...string) (protocol.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.Do(ctx, protocol.Action{Verb: verb, Args: args}, nil)
}

// relayWrites counts the writes to the berofos's relay.
func relayWrites(sim *berofossim.Sim) int { return sim.Writes(berofos.GroupRelay) }

// followConfig is a following line switch on sim with n1 on A-B and n2
// on A-D, moving after 3 observations and back after 4.
func followConfig(sim *berofossim.Sim) string {
	return fmt.Sprintf(`[[switch]]
name = "lines"
kind = "line"
driver = "berofos"
options = %s
positions = { n1 = "A-B", n2 = "A-D" }
follow = true
confirm = 3
confirm_back = 4
interval = "100ms"
`, optionsTOML(sim.DriverOptions()))
}

func TestLinesFollowActiveNode(t *testing.T) {
	sim := startBerofos(t)
	sw := followConfig(sim)
	nodes := startAgents(t, lines.Options{}, nodeConfig(t, "n1", nil, sw), nodeConfig(t, "n2", nil, ""))
	c2 := connect(t, nodes[1])

	// Both alive and online: the first, n1, is active; the relay starts
	// at A-D (factory) and moves to n1's A-B.
	agenttest.WaitFor(t, 15*time.Second, "lines on n1 (A-B)", func() (bool, string) {
		return sim.Position() == berofos.PositionAB, string(sim.Position())
	})
	agenttest.WaitFor(t, 10*time.Second, "the switch at n1 in n2's status", func() (bool, string) {
		snap, err := c2.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		l, ok := findSwitch(snap, "lines")
		return ok && l.Owner == "n1" && l.Switch.Position == "n1" && l.Switch.Verified && l.Switch.Reachable, fmt.Sprintf("%+v", l)
	})
	before := relayWrites(sim)

	// The active goes to standby: the lines follow n2, once.
	if res, err := do(t, c2, "standby", "n1"); err != nil || !res.OK {
		t.Fatalf("standby n1: %+v %v", res, err)
	}
	agenttest.WaitFor(t, 15*time.Second, "lines on n2 (A-D)", func() (bool, string) {
		return sim.Position() == berofos.PositionAD, string(sim.Position())
	})
	if w := relayWrites(sim) - before; w != 1 {
		t.Errorf("relay written %d times for one change of active node, want 1", w)
	}
	agenttest.WaitFor(t, 10*time.Second, "a 'moved' event at n2", func() (bool, string) {
		snap, err := c2.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		for _, e := range snap.Events {
			if e.Kind == "switch" && strings.Contains(e.Message, "moved to n2") {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(snap.Events), " events")
	})

	// Back online: after M observations the lines return.
	if res, err := do(t, c2, "online", "n1"); err != nil || !res.OK {
		t.Fatalf("online n1: %+v %v", res, err)
	}
	agenttest.WaitFor(t, 15*time.Second, "lines back on n1 (A-B)", func() (bool, string) {
		return sim.Position() == berofos.PositionAB, string(sim.Position())
	})
	if w := relayWrites(sim) - before; w != 2 {
		t.Errorf("relay written %d times for two changes of active node, want 2", w)
	}
}

// flapHost is an agent.Host whose deployment names a different active
// node (by n1's standby flag) at every call while flap is set, as a
// flapping source would, and n1 steadily otherwise.
type flapHost struct {
	agent.Host // the methods the lines feature does not use
	cfg        *config.Config
	mu         sync.Mutex
	calls      int
	flap       bool
	evs        []protocol.Event
}

func (h *flapHost) Config() *config.Config { return h.cfg }
func (h *flapHost) Changed()               {}
func (h *flapHost) Record(e protocol.Event) {
	h.mu.Lock()
	h.evs = append(h.evs, e)
	h.mu.Unlock()
}

func (h *flapHost) Deployment() *protocol.Snapshot {
	h.mu.Lock()
	h.calls++
	n1Standby := h.flap && h.calls%2 == 0
	h.mu.Unlock()
	return &protocol.Snapshot{Deployment: "test", Sites: []protocol.Site{{Name: "s", Clusters: []protocol.Cluster{{Name: "s", Site: "s",
		Nodes: []protocol.Node{
			{Name: "n1", Member: protocol.MemberAlive, Standby: n1Standby},
			{Name: "n2", Member: protocol.MemberAlive},
		}}}}}}
}

func (h *flapHost) observations() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func TestFlappingActiveDoesNotMoveRelay(t *testing.T) {
	sim := startBerofos(t)
	sim.SetPosition(berofos.PositionAD) // n2's side
	cfg := nodeConfig(t, "n1", nil, fmt.Sprintf(`[[switch]]
name = "lines"
kind = "line"
driver = "berofos"
options = %s
positions = { n1 = "A-B", n2 = "A-D" }
follow = true
confirm = 2
confirm_back = 2
interval = "50ms"
`, optionsTOML(sim.DriverOptions())))
	h := &flapHost{cfg: cfg, flap: true}
	f, err := lines.New(h)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The first report starts the loops.
	f.Report(&protocol.Snapshot{Sites: []protocol.Site{{Name: "s", Clusters: []protocol.Cluster{{Name: "s", Nodes: []protocol.Node{{Name: "n1"}}}}}}})

	// The active node alternates at every observation: no streak of two.
	agenttest.WaitFor(t, 15*time.Second, "30 flapping observations", func() (bool, string) {
		return h.observations() >= 30, fmt.Sprint(h.observations())
	})
	if w := relayWrites(sim); w != 0 || sim.Position() != berofos.PositionAD {
		t.Fatalf("a flapping active node moved the relay: %d writes, now at %s", w, sim.Position())
	}
	// The same controller does move, once, when n1 stays active.
	h.mu.Lock()
	h.flap = false
	h.mu.Unlock()
	agenttest.WaitFor(t, 10*time.Second, "lines on n1 after a steady change", func() (bool, string) {
		return sim.Position() == berofos.PositionAB, fmt.Sprint(sim.Position())
	})
	if w := relayWrites(sim); w != 1 {
		t.Errorf("relay written %d times for one steady change, want 1", w)
	}
}

func TestVerbsRoutedToOwner(t *testing.T) {
	bero := startBerofos(t)
	ib := startIBoot(t)
	lineSw := fmt.Sprintf(`[[switch]]
name = "lines"
kind = "line"
driver = "berofos"
options = %s
positions = { n1 = "A-B", n2 = "A-D" }
interval = "100ms"
`, optionsTOML(bero.DriverOptions()))
	powerSw := fmt.Sprintf(`[[switch]]
name = "ipower"
kind = "power"
driver = "iboot"
options = %s
outlets = { "1" = "n3" }
interval = "100ms"
`, optionsTOML(ib.DriverOptions("tcp")))
	nodes := startAgents(t, lines.Options{DiscoverTarget: bero.UDPAddr().String(), DiscoverWait: 300 * time.Millisecond},
		nodeConfig(t, "n1", nil, lineSw), nodeConfig(t, "n2", nil, powerSw), nodeConfig(t, "n3", nil, ""))
	c1, c3 := connect(t, nodes[0]), connect(t, nodes[2])
	agenttest.WaitFor(t, 15*time.Second, "both switches with their owners in n3's status", func() (bool, string) {
		snap, err := c3.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		l, ok1 := findSwitch(snap, "lines")
		p, ok2 := findSwitch(snap, "ipower")
		return ok1 && ok2 && l.Owner == "n1" && p.Owner == "n2" && len(p.Switch.Outlets) == 1, fmt.Sprintf("%+v %+v", l, p)
	})

	t.Run("switch set via another agent", func(t *testing.T) {
		if bero.Position() != berofos.PositionAD {
			t.Fatalf("simulator starts at %s, want A-D", bero.Position())
		}
		res, err := do(t, c3, "switch set", "lines", "n1")
		if err != nil || !res.OK {
			t.Fatalf("switch set lines n1 via n3: %+v %v", res, err)
		}
		if bero.Position() != berofos.PositionAB {
			t.Fatalf("after switch set lines n1 the relay is at %s, want A-B", bero.Position())
		}
		if !strings.Contains(res.Message, "verified") {
			t.Errorf("result %q does not say the position was read back", res.Message)
		}
		// A position it does not have is refused before anything moves.
		res, err = do(t, c3, "switch set", "lines", "n3")
		if protocol.CodeOf(err) != protocol.CodeUsage && (res.Error == nil || res.Error.Code != protocol.CodeUsage) {
			t.Fatalf("switch set lines n3: %+v %v, want a usage error", res, err)
		}
		if res, err := do(t, c3, "switch set", "nosuch", "n1"); err == nil && res.OK {
			t.Fatalf("switch set on an unknown switch succeeded: %+v", res)
		}
	})

	t.Run("power off via another agent", func(t *testing.T) {
		if !ib.On() {
			t.Fatal("iBoot simulator starts off")
		}
		res, err := do(t, c1, "power off", "n3")
		if err != nil || !res.OK {
			t.Fatalf("power off n3 via n1: %+v %v", res, err)
		}
		if ib.On() {
			t.Fatal("outlet still on after power off")
		}
		agenttest.WaitFor(t, 10*time.Second, "the outlet off in n1's status", func() (bool, string) {
			snap, err := c1.Status(context.Background(), "")
			if err != nil {
				return false, err.Error()
			}
			p, _ := findSwitch(snap, "ipower")
			return len(p.Switch.Outlets) == 1 && !p.Switch.Outlets[0].On && p.Switch.Outlets[0].Verified && p.Switch.Outlets[0].Node == "n3",
				fmt.Sprintf("%+v", p.Switch)
		})
		res, err = do(t, c1, "power on", "ipower/1")
		if err != nil || !res.OK || !ib.On() {
			t.Fatalf("power on ipower/1 via n1: %+v %v, outlet on %v", res, err, ib.On())
		}
	})

	t.Run("switch status lists every switch", func(t *testing.T) {
		wants := []string{"lines: line switch (berofos) driven by n1: lines to n1", "ipower: power switch (iboot) driven by n2", "outlet 1 (n3) on"}
		agenttest.WaitFor(t, 10*time.Second, "switch status at n3 naming both switches and the outlet on", func() (bool, string) {
			res, err := do(t, c3, "switch status")
			if err != nil || !res.OK {
				return false, fmt.Sprintf("%+v %v", res, err)
			}
			for _, want := range wants {
				if !strings.Contains(res.Message, want) {
					return false, fmt.Sprintf("%q, missing %q", res.Message, want)
				}
			}
			return true, ""
		})
		res, err := do(t, c3, "switch status", "ipower")
		if err != nil || !res.OK || strings.Contains(res.Message, "lines:") {
			t.Fatalf("switch status ipower: %+v %v, want ipower only", res, err)
		}
	})

	t.Run("switch discover lists the simulator", func(t *testing.T) {
		res, err := do(t, c3, "switch discover")
		if err != nil || !res.OK {
			t.Fatalf("switch discover: %+v %v", res, err)
		}
		if !strings.Contains(strings.ToLower(res.Message), bero.MAC().String()) {
			t.Fatalf("switch discover says %q, want the simulator's MAC %s", res.Message, bero.MAC())
		}
	})

	t.Run("a switch that does not answer is unreachable, nothing crashes", func(t *testing.T) {
		bero.SetFault(berofossim.FaultNoAnswer)
		agenttest.WaitFor(t, 15*time.Second, "lines unreachable with its error in n3's status", func() (bool, string) {
			snap, err := c3.Status(context.Background(), "")
			if err != nil {
				return false, err.Error()
			}
			l, _ := findSwitch(snap, "lines")
			return !l.Switch.Reachable && strings.Contains(l.Switch.Error, "unreachable"), fmt.Sprintf("%+v", l.Switch)
		})
		res, err := do(t, c3, "switch set", "lines", "n2")
		if err == nil && res.OK {
			t.Fatalf("switch set on a silent switch succeeded: %+v", res)
		}
		code := protocol.CodeOf(err)
		if res.Error != nil {
			code = res.Error.Code
		}
		if code != protocol.CodeUnreachable {
			t.Errorf("switch set on a silent switch: code %q (%+v %v), want unreachable", code, res, err)
		}
		bero.SetFault(berofossim.FaultNone)
		agenttest.WaitFor(t, 15*time.Second, "lines reachable again", func() (bool, string) {
			snap, err := c3.Status(context.Background(), "")
			if err != nil {
				return false, err.Error()
			}
			l, _ := findSwitch(snap, "lines")
			return l.Switch.Reachable && l.Switch.Error == "", fmt.Sprintf("%+v", l.Switch)
		})
	})
}

// TestLinesFollowWhenActiveIsKilled: the switch is driven by a third node
// (as a witness or the arbitrator's box might); when the active PBX node
// dies outright, the lines go to the survivor.
func TestLinesFollowWhenActiveIsKilled(t *testing.T) {
	sim := startBerofos(t)
	sw := followConfig(sim)
	nodes := startAgents(t, lines.Options{}, nodeConfig(t, "drv", nil, sw), nodeConfig(t, "n1", nil, ""), nodeConfig(t, "n2", nil, ""))
	agenttest.WaitFor(t, 15*time.Second, "lines on n1 (A-B)", func() (bool, string) {
		return sim.Position() == berofos.PositionAB, string(sim.Position())
	})
	before := relayWrites(sim)
	nodes[1].a.Kill()
	agenttest.WaitFor(t, 15*time.Second, "lines on n2 (A-D) after n1 died", func() (bool, string) {
		return sim.Position() == berofos.PositionAD, string(sim.Position())
	})
	if w := relayWrites(sim) - before; w != 1 {
		t.Errorf("relay written %d times for one death, want 1", w)
	}
}
