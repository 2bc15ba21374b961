package geosite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/cluster"
	"github.com/hatui/hatui/agent/geosite"
	"github.com/hatui/hatui/protocol"
)

// fsTiming is the local clusters' timing in TestFirstStartOneSiteServes.
const fsTiming = `[failover.timing]
keepalive = "100ms"
warntime = "400ms"
deadtime = "1s"
initdead = "2s"
monitor_interval = "200ms"
[failover.raft]
heartbeat_timeout = "300ms"
election_timeout = "300ms"
leader_lease_timeout = "150ms"
commit_timeout = "5ms"
transport_timeout = "1s"
`

// TestFirstStartOneSiteServes is the double service seen at a first
// start: each site is a local cluster of a geo-driven PBX node, a PBX
// node without [geo] and a witness, both configured with activate =
// true (they cannot know that the geo manager drives their cluster).
// Site b's geo-driven node b1 starts last. Its geo manager cannot stop
// a cluster that has not formed, and the other two voters must not put
// it in service when it forms: the ticket is a's. A sampler checks
// every 5 ms that the two sites never serve at once; b must not serve
// at all.
func TestFirstStartOneSiteServes(t *testing.T) {
	dir := t.TempDir()
	type node struct {
		name, site, ip string
		geo, witness   bool
		running        string
		cfg            string
		a              *agent.Agent
	}
	var nodes []*node
	add := func(name, site string, geo, witness bool) {
		nodes = append(nodes, &node{name: name, site: site, ip: subnet.Next(), geo: geo, witness: witness, running: filepath.Join(dir, "running."+name)})
	}
	for _, s := range []string{"a", "b"} {
		add(s+"1", s, true, false)
		add(s+"2", s, false, false)
		add("w"+s, s, false, true)
	}
	add("arb1", "arb", true, false)

	var geoVoters strings.Builder
	var geoJoin []string
	for _, n := range nodes {
		if n.geo {
			fmt.Fprintf(&geoVoters, "[[geo.voter]]\nnode = %q\nsite = %q\naddr = \"%s:7947\"\narbitrator = %v\n", n.name, n.site, n.ip, n.site == "arb")
			geoJoin = append(geoJoin, n.ip+":7950")
		}
	}
	dep := fmt.Sprintf("firststart%d", depSeq.Add(1))
	byName := map[string]*node{}
	for _, n := range nodes {
		byName[n.name] = n
		var extra strings.Builder
		if n.site != "arb" {
			fmt.Fprintf(&extra, "[failover]\nenabled = true\ngroup = \"pbx-%s\"\nactivate = true\nallow_agent_crash_risk = true\n", n.site)
			for _, o := range nodes {
				if o.site == n.site {
					fmt.Fprintf(&extra, "[[failover.voter]]\nname = %q\naddr = \"%s:7947\"\nwitness = %v\n", o.name, o.ip, o.witness)
				}
			}
			extra.WriteString(fsTiming)
			if !n.witness {
				p := filepath.Join(dir, n.name+".sh")
				body := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in\nstart) touch %[1]s ;;\nstop) rm -f %[1]s ;;\nstatus) [ -e %[1]s ] || exit 3 ;;\nesac\nexit 0\n", n.running)
				if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&extra, "[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nstop_timeout = \"2s\"\nparams = { path = %q }\n", p)
			}
		}
		if n.geo {
			fmt.Fprintf(&extra, `[geo]
enabled = true
bind = "%s:7950"
join = [%s]
initial_holder = "a"
dead_man = %q
lease = %q
renewal = %q
acquire_after = %q
safety_margin = %q
service_timeout = "20s"
probe_interval = "500ms"
probe_timeout = "250ms"
suspicion_mult = 3
%s`, n.ip, agenttest.Quote(geoJoin), tDeadMan, tLease, tRenewal, tAcquire, tMargin, geoVoters.String())
		}
		n.cfg = extra.String()
	}
	start := func(n *node) {
		t.Helper()
		var join []string
		if n != nodes[0] {
			join = []string{nodes[0].ip + ":7946"}
		}
		cfg := agenttest.Config(t, agenttest.Node{Name: n.name, Site: n.site, Cluster: "site-" + n.site, IP: n.ip, Join: join,
			Deployment: dep, PeerTimeout: "5s", Extra: n.cfg})
		a, err := agent.New(cfg, agent.Options{Features: []agent.FeatureFunc{cluster.New, geosite.New}})
		if err != nil {
			t.Fatalf("starting %s: %v", n.name, err)
		}
		n.a = a
	}
	serves := func(site string) bool {
		for _, n := range nodes {
			if n.site == site {
				if _, err := os.Stat(n.running); err == nil {
					return true
				}
			}
		}
		return false
	}
	var mu sync.Mutex
	var both, bServed int
	var samples int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			a, b := serves("a"), serves("b")
			mu.Lock()
			samples++
			if a && b {
				both++
			}
			if b {
				bServed++
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.a != nil {
				n.a.Kill()
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
		t.Logf("sampler: %d samples, both sites serving in %d, site b serving in %d", samples, both, bServed)
		if both > 0 {
			t.Errorf("sites a and b served at once in %d samples", both)
		}
		if bServed > 0 {
			t.Errorf("site b served in %d samples; the ticket is a's", bServed)
		}
	}()

	for _, n := range nodes {
		if n.name != "b1" {
			start(n)
		}
	}
	// Site b's cluster forms from b2 and wb; with b1 away it must wait.
	groupOf := func(n *node, name string) protocol.Group {
		for _, s := range n.a.Snapshot(protocol.ScopeDeployment).Sites {
			for _, cl := range s.Clusters {
				for _, g := range cl.Groups {
					if g.Name == name {
						return g
					}
				}
			}
		}
		return protocol.Group{}
	}
	agenttest.WaitFor(t, 30*time.Second, "site b's cluster to form without b1", func() (bool, string) {
		g := groupOf(byName["wb"], "pbx-b")
		return g.State != "" && !strings.Contains(g.Reason, "not formed") && !strings.Contains(g.Reason, "not initialised"), fmt.Sprintf("%+v", g)
	})
	agenttest.WaitFor(t, 60*time.Second, "site a to serve", func() (bool, string) {
		return serves("a"), fmt.Sprintf("a1 sees %s; pbx-a %+v", describe(byName["a1"].a.Snapshot(protocol.ScopeDeployment).Geo), groupOf(byName["wa"], "pbx-a"))
	})
	if g := groupOf(byName["wb"], "pbx-b"); g.State == "started" || g.Active != "" {
		t.Errorf("site b's cluster took its group before its geo-driven node joined: %+v", g)
	}
	start(byName["b1"])
	// Once every voter has joined and no activate is pending, nothing
	// but the geo manager's "cluster activate" can put b in service: the
	// first start is over.
	for _, name := range []string{"b1", "b2", "wb"} {
		agenttest.WaitFor(t, 30*time.Second, name+" to see site b's cluster settled out of service", func() (bool, string) {
			g := groupOf(byName[name], "pbx-b")
			// The geo-driven node says why in geo terms (a backup site);
			// the others see an inactive cluster. Neither may still be
			// waiting to activate by itself.
			settled := g.State == "unmanaged" && strings.HasSuffix(g.Reason, "is not activated") ||
				g.State == "standby" && strings.HasPrefix(g.Reason, "backup site")
			return settled && g.Active == "", fmt.Sprintf("%+v", g)
		})
	}
	if !serves("a") {
		t.Error("site a no longer serves")
	}
}
