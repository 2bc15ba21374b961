package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/cluster"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

var subnet = agenttest.NewSubnet("127.0.80")

// fastTiming fails a silent peer after 1 s; takeover about 3 s later.
const fastTiming = `
[failover.timing]
keepalive = "100ms"
warntime = "400ms"
deadtime = "1s"
initdead = "2s"
fence_retry = "500ms"
monitor_interval = "200ms"
[failover.raft]
heartbeat_timeout = "300ms"
election_timeout = "300ms"
leader_lease_timeout = "150ms"
commit_timeout = "5ms"
transport_timeout = "1s"
`

// tnode is one agent of a test cluster.
type tnode struct {
	name, ip string
	witness  bool
	running  string // exists while the group runs here
	cfgExtra string
	a        *agent.Agent
	conn     *client.Conn
	socket   string
	join     []string
}

type tcluster struct {
	t     *testing.T
	dir   string
	nodes []*tnode
	// violations counts samples with the group running on two nodes.
	violations atomic.Int64
	samples    atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

// script is an exec resource keeping a file while it runs.
func script(t *testing.T, dir, running string) string {
	t.Helper()
	p := filepath.Join(dir, "pbx-"+filepath.Base(running)+".sh")
	body := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in\nstart) touch %[1]s ;;\nstop) rm -f %[1]s ;;\nstatus) [ -e %[1]s ] || exit 3 ;;\nesac\nexit 0\n", running)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// newCluster starts a cluster whose nodes feed watchdogs: files standing
// for /dev/watchdog (nothing here would reset a node; crashes in these
// tests take the node's resources with them).
func newCluster(t *testing.T, names ...string) *tcluster {
	t.Helper()
	return newClusterWith(t, watchdogLines, standInWatchdogs, names...)
}

// watchdogLines give every voter a watchdog file from standInWatchdogs.
const watchdogLines = "watchdog = \"%[2]s/watchdog.%[1]s\"\nwatchdog_timeout = \"1s\"\n"

func standInWatchdogs(c *tcluster) {
	for _, n := range c.nodes {
		os.WriteFile(filepath.Join(c.dir, "watchdog."+n.name), nil, 0o600) // stands for /dev/watchdog
	}
}

// newClusterWith adds lines to every voter's [failover] table; %[1]s in
// them is the node's name, %[2]s the test directory.
func newClusterWith(t *testing.T, lines string, prepare func(c *tcluster), names ...string) *tcluster {
	t.Helper()
	c := &tcluster{t: t, dir: t.TempDir(), stop: make(chan struct{})}
	var voters strings.Builder
	for _, n := range names {
		tn := &tnode{name: n, ip: subnet.Next(), witness: strings.HasPrefix(n, "wit")}
		tn.running = filepath.Join(c.dir, "running."+n)
		fmt.Fprintf(&voters, "[[failover.voter]]\nname = %q\naddr = \"%s:7947\"\nwitness = %v\n", n, tn.ip, tn.witness)
		c.nodes = append(c.nodes, tn)
	}
	for i, n := range c.nodes {
		extra := "[failover]\nenabled = true\ngroup = \"pbx-t\"\nactivate = true\n"
		if strings.Contains(lines, "%[") {
			extra += fmt.Sprintf(lines, n.name, c.dir)
		} else {
			extra += lines
		}
		extra += voters.String() + fastTiming
		if !n.witness {
			extra += fmt.Sprintf("[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nstop_timeout = \"2s\"\nparams = { path = %q }\n", script(t, c.dir, n.running))
		}
		n.cfgExtra = extra
		if i > 0 {
			n.join = []string{c.nodes[0].ip + ":7946"}
		}
	}
	if prepare != nil {
		prepare(c)
	}
	for _, n := range c.nodes {
		c.start(n)
	}
	c.wg.Add(1)
	go c.sample()
	t.Cleanup(func() {
		close(c.stop)
		c.wg.Wait()
		for _, n := range c.nodes {
			if n.a != nil {
				n.a.Kill()
			}
		}
		if v := c.violations.Load(); v > 0 {
			t.Errorf("the group ran on two nodes at once in %d of %d samples", v, c.samples.Load())
		}
	})
	return c
}

func (c *tcluster) start(n *tnode) {
	c.t.Helper()
	cfg := agenttest.Config(c.t, agenttest.Node{Name: n.name, Site: "a", IP: n.ip, Join: n.join, Extra: n.cfgExtra})
	a, err := agent.New(cfg, agent.Options{Features: []agent.FeatureFunc{cluster.New}})
	if err != nil {
		c.t.Fatalf("starting %s: %v", n.name, err)
	}
	n.a, n.socket = a, cfg.Socket.Path
	n.conn = agenttest.Connect(c.t, cfg.Socket.Path)
}

// sample checks every 5 ms that no two nodes run the group.
func (c *tcluster) sample() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		on := 0
		for _, n := range c.nodes {
			if _, err := os.Stat(n.running); err == nil {
				on++
			}
		}
		c.samples.Add(1)
		if on > 1 {
			c.violations.Add(1)
		}
	}
}

func (c *tcluster) node(name string) *tnode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

// group returns the group as seen through n's agent.
func group(t *testing.T, n *tnode) (protocol.Group, *protocol.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := n.conn.Status(ctx, "")
	if err != nil {
		return protocol.Group{}, nil
	}
	for _, s := range snap.Sites {
		for i, cl := range s.Clusters {
			for _, g := range cl.Groups {
				if g.Name == "pbx-t" {
					return g, &s.Clusters[i]
				}
			}
		}
	}
	return protocol.Group{}, nil
}

// waitHolder waits until the group is started on a node other than not,
// as n's agent reports it, and returns the holder.
func (c *tcluster) waitHolder(n *tnode, not string) string {
	c.t.Helper()
	var holder string
	agenttest.WaitFor(c.t, 30*time.Second, "the group started elsewhere than "+not, func() (bool, string) {
		g, _ := group(c.t, n)
		holder = g.Active
		if g.State != "started" || holder == "" || holder == not {
			return false, fmt.Sprintf("%+v", g)
		}
		_, err := os.Stat(c.node(holder).running)
		return err == nil, fmt.Sprintf("%+v, running file: %v", g, err)
	})
	return holder
}

func do(t *testing.T, n *tnode, verb string, args ...string) protocol.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := n.conn.Do(ctx, protocol.Action{Verb: verb, Args: args}, nil)
	if err != nil {
		t.Fatalf("%s %v through %s: %v", verb, args, n.name, err)
	}
	return res
}

func other(h string) string {
	if h == "a1" {
		return "a2"
	}
	return "a1"
}

func TestAgentsFailOver(t *testing.T) {
	c := newCluster(t, "a1", "a2", "wit")
	wit := c.node("wit")
	holder := c.waitHolder(wit, "")

	_, cl := group(t, wit)
	if q := cl.Quorum; q.Source != "failover" || q.Voters != 3 || !q.HasQuorum {
		t.Errorf("quorum through the witness: %+v, want 3 failover voters with quorum", q)
	}
	for _, r := range cl.Quorum.Risks {
		if strings.Contains(r, "no watchdog") {
			t.Errorf("nodes with watchdogs are shown at risk: %q", r)
		}
	}

	t.Run("standby moves the group", func(t *testing.T) {
		res := do(t, wit, "standby", holder)
		if !res.OK {
			t.Fatalf("standby %s: %+v", holder, res)
		}
		next := c.waitHolder(wit, holder)
		agenttest.WaitFor(t, 10*time.Second, holder+" shown in standby", func() (bool, string) {
			_, cl := group(t, wit)
			for _, n := range cl.Nodes {
				if n.Name == holder {
					return n.State == protocol.StateStandby, string(n.State)
				}
			}
			return false, "not listed"
		})
		if res := do(t, wit, "online", holder); !res.OK {
			t.Fatalf("online %s: %+v", holder, res)
		}
		holder = next
	})

	t.Run("switchover", func(t *testing.T) {
		to := other(holder)
		res := do(t, c.node(to), "switchover", "pbx-t", to)
		if !res.OK {
			t.Fatalf("switchover to %s: %+v", to, res)
		}
		if got := c.waitHolder(wit, holder); got != to {
			t.Fatalf("after switchover the group is on %s, want %s", got, to)
		}
		holder = to
	})

	t.Run("refusals", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := wit.conn.Do(ctx, protocol.Action{Verb: "switchover", Args: []string{"no-such-group"}}, nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeUsage || !strings.Contains(pe.Message, "no-such-group") {
			t.Errorf("switchover of an unknown group: %v, want a usage error naming it", err)
		}
		_, err = wit.conn.Do(ctx, protocol.Action{Verb: "fence", Args: []string{"a1"}}, nil)
		if !errors.As(err, &pe) || pe.Code != protocol.CodeRefused || !strings.Contains(pe.Message, "no fencing device") {
			t.Errorf("fence without a device: %v, want refused: no fencing device", err)
		}
	})

	t.Run("crash of the holder", func(t *testing.T) {
		h := c.node(holder)
		h.a.Kill()
		os.Remove(h.running) // the machine is gone, and its PBX with it
		got := c.waitHolder(wit, holder)
		if got != other(holder) {
			t.Fatalf("after the crash the group is on %s", got)
		}
		c.start(h)
		agenttest.WaitFor(t, 30*time.Second, holder+" back and online", func() (bool, string) {
			_, cl := group(t, wit)
			for _, n := range cl.Nodes {
				if n.Name == holder {
					return n.State == protocol.StateOnline, string(n.State)
				}
			}
			return false, "not listed"
		})
		if _, err := os.Stat(h.running); err == nil {
			t.Errorf("%s started the group again after its restart", holder)
		}
	})
}

// TestAgentCrashRiskShown: nodes without watchdog or fencing run only
// with allow_agent_crash_risk, and then every agent's status, the
// witness's too, names each such node in the cluster's risks.
func TestAgentCrashRiskShown(t *testing.T) {
	c := newClusterWith(t, "allow_agent_crash_risk = true\n", nil, "r1", "r2", "rwit")
	wit := c.node("rwit")
	c.waitHolder(wit, "")
	for _, n := range []string{"r1", "r2"} {
		agenttest.WaitFor(t, 10*time.Second, "the risk of "+n+" in the witness's status", func() (bool, string) {
			_, cl := group(t, wit)
			if cl == nil {
				return false, "no cluster"
			}
			for _, r := range cl.Quorum.Risks {
				if strings.HasPrefix(r, n+" has no watchdog and no node can fence it: if its agent dies alone, pbx-t keeps running on "+n) {
					return true, ""
				}
			}
			return false, strings.Join(cl.Quorum.Risks, " | ")
		})
	}
}

// TestBadConfig: a configuration that cannot work stops the agent at
// start with an error naming the thing at fault.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, filepath.Join(dir, "running"))
	base := func(res, check string) string {
		ip := "127.0.81.1"
		return "[failover]\nenabled = true\ngroup = \"pbx-b\"\n" +
			fmt.Sprintf("[[failover.voter]]\nname = \"b1\"\naddr = \"%s:7947\"\n[[failover.voter]]\nname = \"b2\"\naddr = \"127.0.81.2:7947\"\n[[failover.voter]]\nname = \"wb\"\naddr = \"127.0.81.3:7947\"\nwitness = true\n", ip) +
			res + check
	}
	for _, tc := range []struct {
		name, extra string
		want        []string
	}{
		{"unknown resource type", base("[[failover.resource]]\nname = \"pbx\"\ntype = \"asterisk-magic\"\n", ""), []string{"pbx", "asterisk-magic"}},
		{"missing binary", base("[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nparams = { path = \"/nonexistent/pbx.sh\" }\n", ""), []string{"pbx", "/nonexistent/pbx.sh"}},
		{"check timeout not shorter than interval", base(fmt.Sprintf("[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nparams = { path = %q }\n", ok),
			"[[failover.check]]\nname = \"sip\"\nkind = \"tcp\"\nresource = \"pbx\"\ninterval = \"1s\"\ntimeout = \"1s\"\nparams = { address = \"127.0.0.1:5060\" }\n"), []string{"sip", "timeout"}},
		{"watchdog slower than a takeover", withLines(base(fmt.Sprintf("[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nparams = { path = %q }\n", ok), ""),
			"watchdog = \"/dev/null\"\nwatchdog_timeout = \"600s\"\n"), []string{"watchdog_timeout", "takeover delay"}},
		{"watchdog that is not one", withLines(base(fmt.Sprintf("[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nparams = { path = %q }\n", ok), ""),
			"watchdog = \"/dev/null\"\n"), []string{"/dev/null", "timeout"}},
		{"neither watchdog nor fencing", base(fmt.Sprintf("[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nparams = { path = %q }\n", ok), ""),
			[]string{"allow_agent_crash_risk", "neither a watchdog nor a fencing device", "if its agent dies alone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := agenttest.Config(t, agenttest.Node{Name: "b1", IP: "127.0.81.1", Extra: tc.extra})
			_, cerr := cluster.Check(cfg)
			if cerr == nil {
				t.Error("check-config passed it")
			}
			a, err := agent.New(cfg, agent.Options{Features: []agent.FeatureFunc{cluster.New}})
			if err == nil {
				a.Kill()
				t.Fatal("the agent started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
				if cerr != nil && !strings.Contains(cerr.Error(), w) {
					t.Errorf("check-config's error %q does not mention %q", cerr, w)
				}
			}
		})
	}
}

// TestWatchdog: every voter feeds its watchdog while it runs; an agent
// stopped while its node holds the group leaves the watchdog armed (the
// node resets unless the agent comes back in time), one stopped with
// nothing running here disarms it.
func TestWatchdog(t *testing.T) {
	c := newClusterWith(t, watchdogLines, standInWatchdogs, "d1", "d2", "dwit")
	holder := c.waitHolder(c.node("dwit"), "")
	for _, n := range c.nodes {
		p := filepath.Join(c.dir, "watchdog."+n.name)
		start := len(readFile(t, p))
		agenttest.WaitFor(t, 10*time.Second, n.name+" feeding its watchdog", func() (bool, string) {
			b := readFile(t, p)
			return len(b) >= start+2 && strings.Trim(b, "k") == "", fmt.Sprintf("%q", b)
		})
	}
	idle := c.node(map[string]string{"d1": "d2", "d2": "d1"}[holder])
	if err := idle.a.Close(); err != nil {
		t.Fatal(err)
	}
	if b := readFile(t, filepath.Join(c.dir, "watchdog."+idle.name)); !strings.HasSuffix(b, "V") {
		t.Errorf("%s held nothing and stopped, but did not disarm: %q", idle.name, tail(b))
	}
	h := c.node(holder)
	h.a.Close()
	if b := readFile(t, filepath.Join(c.dir, "watchdog."+holder)); strings.HasSuffix(b, "V") {
		t.Errorf("%s stopped while holding the group and disarmed its watchdog: %q", holder, tail(b))
	}
}

// withLines adds lines to a config's [failover] table.
func withLines(cfg, lines string) string {
	return strings.Replace(cfg, "group = \"pbx-b\"\n", "group = \"pbx-b\"\n"+lines, 1)
}

// TestCheckConfigReport: check-config says what an operator should know
// before the agent starts: the stop budget from the resources' timeouts,
// the takeover delay that follows, the watchdog it found, and the risk
// when a node has neither watchdog nor fencing.
func TestCheckConfigReport(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, filepath.Join(dir, "running"))
	wd := filepath.Join(dir, "watchdog")
	os.WriteFile(wd, nil, 0o600)
	base := "[failover]\nenabled = true\ngroup = \"pbx-b\"\n%s" +
		"[[failover.voter]]\nname = \"b1\"\naddr = \"127.0.81.1:7947\"\n[[failover.voter]]\nname = \"b2\"\naddr = \"127.0.81.2:7947\"\n[[failover.voter]]\nname = \"wb\"\naddr = \"127.0.81.3:7947\"\nwitness = true\n" +
		"[failover.timing]\nkeepalive = \"500ms\"\ndeadtime = \"3s\"\n" +
		"[[failover.resource]]\nname = \"vip\"\ntype = \"vip\"\nparams = { ip = \"10.0.0.100/24\", interface = \"eth0\" }\n" +
		fmt.Sprintf("[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nparams = { path = %q }\n", ok)
	for _, tc := range []struct {
		name, lines string
		want        []string
	}{
		{"watchdog", fmt.Sprintf("watchdog = %q\n", wd), []string{
			"stop budget 6s (vip 1s + pbx 5s)",
			"takeover delay 9.5s", // stop budget + deadtime − keepalive + 2 keepalives
			"watchdog " + wd + ": a file, not a device: a stand-in for tests that resets nothing; the agent arms it with 8s", // whole seconds within 9.5s − 2 keepalives
		}},
		{"risk accepted", "allow_agent_crash_risk = true\n", []string{"RISK: no watchdog and no fencing: if b1's agent dies alone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := agenttest.Config(t, agenttest.Node{Name: "b1", IP: "127.0.81.1", Extra: fmt.Sprintf(base, tc.lines)})
			report, err := cluster.Check(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(report, w) {
					t.Errorf("report does not say %q:\n%s", w, report)
				}
			}
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, _ := os.ReadFile(p)
	return string(b)
}

func tail(s string) string {
	if len(s) > 10 {
		return "…" + s[len(s)-10:]
	}
	return s
}
