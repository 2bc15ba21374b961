//go:build linux

package soak

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/netlab"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// The soak's deployment: sites a and b, each a local failover cluster of
// a geo-driven PBX node (x1), a PBX node without [geo] (x2) and a
// witness (wx), and an arbitrator; one net per site, a router with a
// 40 ms one-way delay between them. The group of a site is an exec
// resource keeping a file while it runs, so the sampler sees exactly
// which node runs it.
const (
	soakTiming = `[failover.timing]
keepalive = "100ms"
warntime = "400ms"
deadtime = "1s"
initdead = "2s"
monitor_interval = "300ms"
[failover.raft]
heartbeat_timeout = "300ms"
election_timeout = "300ms"
leader_lease_timeout = "150ms"
commit_timeout = "5ms"
transport_timeout = "1s"
`
	soakGeo = `initial_holder = "a"
dead_man = "8s"
lease = "4s"
renewal = "1s"
acquire_after = "2s"
safety_margin = "3s"
service_timeout = "20s"
probe_interval = "500ms"
probe_timeout = "250ms"
suspicion_mult = 4
`
)

// snode is one agent of the soak.
type snode struct {
	name, site, ip string
	geo, witness   bool
	host           *netlab.Host
	dir, cfg, sock string
	running        string
	procs          []*netlab.Proc // every incarnation
	down           bool           // killed by the soak, not started again yet
	killed         map[*netlab.Proc]bool
}

// kill ends the agent with SIGKILL (or SIGTERM when term), as the soak's
// doing.
func (n *snode) kill(term bool) {
	p := n.proc()
	n.killed[p] = true
	if term {
		p.Stop()
	} else {
		p.Kill()
	}
}

func (n *snode) proc() *netlab.Proc {
	if len(n.procs) == 0 {
		return nil
	}
	return n.procs[len(n.procs)-1]
}

type soakLab struct {
	t      *testing.T
	lab    *netlab.Lab
	router *netlab.Router
	nets   map[string]*netlab.Net
	nodes  []*snode
	by     map[string]*snode
	bin    string
	start0 time.Time

	mu sync.Mutex
	tl *Timeline
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err == nil {
			return d
		}
	}
	return def
}

// TestSoak runs a seeded plan of faults against a whole deployment of
// real agents in network namespaces while a sampler checks, every 10 ms,
// that no group runs on two nodes and no two sites serve; after every
// healed fault the service must come back within a bound, and no agent
// may die by itself. HATUI_SOAK_SEED and HATUI_SOAK_DURATION replay or
// lengthen it; HATUI_SOAK_REPORT keeps the report.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("netns soak")
	}
	seed := uint64(5)
	if v := os.Getenv("HATUI_SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("HATUI_SOAK_SEED: %v", err)
		}
		seed = s
	}
	dur := envDuration("HATUI_SOAK_DURATION", 40*time.Second)
	recovery := envDuration("HATUI_SOAK_RECOVERY", 60*time.Second)
	s := newSoakLab(t)
	topo := Topology{Nodes: map[string][]string{"a": {"a1", "a2"}, "b": {"b1", "b2"}}, Sites: []string{"a", "b"}}
	plan := Plan(Spec{Seed: seed, Duration: dur, MinFault: time.Second, MaxFault: 10 * time.Second, Settle: 2 * time.Second}, topo)
	t.Logf("seed %d, %v of faults:\n%s", seed, dur, Describe(plan))
	s.tl = NewTimeline(topo)

	stop := s.sample()
	s.waitService(90*time.Second, "the deployment to serve at first")
	rss0 := s.rss()

	for _, f := range plan {
		if t.Failed() {
			break
		}
		start := s.now()
		s.inject(f)
		end := s.now()
		s.mu.Lock()
		s.tl.Inject(Injected{Fault: f, Start: start, End: end})
		s.mu.Unlock()
		s.checkAgents()
		if !s.serviceWithin(recovery) {
			t.Errorf("no site serves %v after %s healed", recovery, f)
			break
		}
		// The plan's settle time: faults are spaced by design.
		time.Sleep(2 * time.Second)
	}
	stop()
	sum := s.tl.Summarize(seed)
	sum.RSS = map[string][2]int64{}
	rss1 := s.rss()
	for n, v := range rss0 {
		sum.RSS[n] = [2]int64{v, rss1[n]}
	}
	sum.Crashes = s.crashes()
	for _, c := range sum.Crashes {
		t.Errorf("agent died by itself: %s", c)
	}
	for _, b := range sum.Breaches {
		t.Errorf("invariant broken: %s", b)
	}
	report := sum.Text()
	t.Logf("report:\n%s", report)
	dir := os.Getenv("HATUI_SOAK_REPORT")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "report.txt"), []byte(report+"\nplan:\n"+Describe(plan)), 0o644)
	os.WriteFile(filepath.Join(dir, "timeline.svg"), []byte(s.tl.SVG()), 0o644)
	if t.Failed() {
		t.Logf("replay with HATUI_SOAK_SEED=%d HATUI_SOAK_DURATION=%v; timeline in %s", seed, dur, dir)
	}
}

func newSoakLab(t *testing.T) *soakLab {
	t.Helper()
	lab := netlab.New(t)
	bin, err := agenttest.BuildAgent(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &soakLab{t: t, lab: lab, nets: map[string]*netlab.Net{}, by: map[string]*snode{}, bin: bin, start0: time.Now()}
	attach := map[*netlab.Net]string{}
	for i, site := range []string{"a", "b", "arb"} {
		n := lab.Net(site, fmt.Sprintf("10.93.%d.0/24", i+1))
		s.nets[site], attach[n] = n, fmt.Sprintf("10.93.%d.1/24", i+1)
		var names []string
		if site == "arb" {
			names = []string{"arb1"}
		} else {
			names = []string{site + "1", site + "2", "w" + site}
		}
		for j, name := range names {
			sn := &snode{name: name, site: site, ip: fmt.Sprintf("10.93.%d.%d", i+1, 11+j), geo: strings.HasSuffix(name, "1"), witness: name[0] == 'w', killed: map[*netlab.Proc]bool{}}
			s.nodes = append(s.nodes, sn)
			s.by[name] = sn
		}
	}
	s.router = lab.Router("wan", attach)
	s.router.SetDelay(40 * time.Millisecond)
	var gossipJoin, geoJoin []string
	var geoVoters strings.Builder
	for _, n := range s.nodes {
		n.host = lab.Host(n.name)
		n.host.Attach(s.nets[n.site], n.ip+"/24")
		n.dir = filepath.Join(lab.Dir(), n.name)
		n.running = filepath.Join(lab.Dir(), "running."+n.name)
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		gossipJoin = append(gossipJoin, n.ip+":7946")
		if n.geo {
			geoJoin = append(geoJoin, n.ip+":7950")
			fmt.Fprintf(&geoVoters, "[[geo.voter]]\nnode = %q\nsite = %q\naddr = \"%s:7947\"\narbitrator = %v\n", n.name, n.site, n.ip, n.site == "arb")
		}
	}
	for _, n := range s.nodes {
		var extra strings.Builder
		role := "pbx"
		switch {
		case n.site == "arb":
			role = "arbitrator"
		case n.witness:
			role = "witness"
		}
		if n.site != "arb" {
			fmt.Fprintf(&extra, "[failover]\nenabled = true\ngroup = \"pbx-%s\"\nactivate = true\nallow_agent_crash_risk = true\n", n.site)
			for _, o := range s.nodes {
				if o.site == n.site {
					fmt.Fprintf(&extra, "[[failover.voter]]\nname = %q\naddr = \"%s:7947\"\nwitness = %v\n", o.name, o.ip, o.witness)
				}
			}
			extra.WriteString(soakTiming)
			if !n.witness {
				p := filepath.Join(n.dir, "pbx.sh")
				body := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in\nstart) touch %[1]s ;;\nstop) rm -f %[1]s ;;\nstatus) [ -e %[1]s ] || exit 3 ;;\nesac\nexit 0\n", n.running)
				if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&extra, "[[failover.resource]]\nname = \"pbx\"\ntype = \"exec\"\nstop_timeout = \"2s\"\nparams = { path = %q }\n", p)
			}
		}
		if n.geo {
			fmt.Fprintf(&extra, "[geo]\nenabled = true\nbind = \"%s:7950\"\njoin = [%s]\narbitrator = %v\n%s%s", n.ip, agenttest.Quote(geoJoin), n.site == "arb", soakGeo, geoVoters.String())
		}
		cfg := agenttest.Render(agenttest.Node{Deployment: "soak", Name: n.name, Site: n.site, Cluster: "site-" + n.site, Role: role, Dir: n.dir, IP: n.ip,
			Join: gossipJoin, PeerTimeout: "5s", Gossip: "probe_interval = \"500ms\"\nprobe_timeout = \"250ms\"", Extra: extra.String()})
		n.cfg = filepath.Join(n.dir, "ha-agent.toml")
		n.sock = agenttest.Socket(n.dir)
		if err := os.WriteFile(n.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range s.nodes {
		s.startAgent(n)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range s.nodes {
			for i, p := range n.procs {
				lines := strings.Split(p.Log(), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("--- %s incarnation %d (%s):\n%s", n.name, i+1, p.LogPath(), strings.Join(lines, "\n"))
			}
		}
	})
	return s
}

func (s *soakLab) now() time.Duration { return time.Since(s.start0) }

func (s *soakLab) startAgent(n *snode) {
	n.procs = append(n.procs, n.host.Start(n.host.Command(s.bin, "--config", n.cfg)))
	n.down = false
}

// sample records every 10 ms which nodes run their group.
func (s *soakLab) sample() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			run := map[string]bool{}
			for _, n := range s.nodes {
				if _, err := os.Stat(n.running); err == nil {
					run[n.name] = true
				}
			}
			s.mu.Lock()
			for _, b := range s.tl.Record(s.now(), run) {
				s.t.Errorf("invariant broken: %s", b)
			}
			s.mu.Unlock()
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (s *soakLab) serves() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tl.Serves()
}

// serviceWithin waits up to d for a site to serve.
func (s *soakLab) serviceWithin(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !s.serves() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func (s *soakLab) waitService(d time.Duration, what string) {
	s.t.Helper()
	agenttest.WaitFor(s.t, d, what, func() (bool, string) { return s.serves(), "no site serves" })
}

// do runs a verb through the first live agent of site (the witness
// first: it is never a fault's target).
func (s *soakLab) do(site, verb string, args ...string) {
	for _, name := range []string{"w" + site, site + "1", site + "2"} {
		n := s.by[name]
		if n.down {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := client.Connect(ctx, client.UnixDialer(n.sock), client.Options{Client: "soak"})
		if err != nil {
			cancel()
			continue
		}
		res, err := c.Do(ctx, protocol.Action{Verb: verb, Args: args}, nil)
		c.Close()
		cancel()
		if err == nil {
			if !res.OK {
				s.t.Logf("%s %v through %s: %s", verb, args, name, res.Message)
			}
			return
		}
	}
	s.t.Logf("%s %v: no agent of site %s answered", verb, args, site)
}

// inject carries out f and heals it after f.For.
func (s *soakLab) inject(f Fault) {
	s.t.Helper()
	hold := func() { time.Sleep(f.For) }
	switch f.Kind {
	case Crash:
		n := s.by[f.Target]
		n.kill(false)
		n.down = true
		os.Remove(n.running) // the service dies with its node
		n.host.Isolate()
		hold()
		n.host.Rejoin()
		s.startAgent(n)
	case Kill9:
		n := s.by[f.Target]
		n.kill(false)
		s.startAgent(n)
	case Isolate:
		n := s.by[f.Target]
		n.host.Isolate()
		hold()
		n.host.Rejoin()
	case CutPair:
		a, b := s.by[f.Target+"1"], s.by[f.Target+"2"]
		s.lab.Cut(a.host, b.host)
		hold()
		s.lab.Heal(a.host, b.host)
	case CutSite:
		s.router.LinkDown(s.nets[f.Target])
		hold()
		s.router.LinkUp(s.nets[f.Target])
	case RestartAll:
		var wg sync.WaitGroup
		for _, n := range s.nodes {
			wg.Add(1)
			n.killed[n.proc()] = true
			go func() { defer wg.Done(); n.proc().Stop() }()
		}
		wg.Wait()
		for _, n := range s.nodes {
			s.startAgent(n)
		}
	case Standby:
		site := s.by[f.Target].site
		s.do(site, "standby", f.Target)
		hold()
		s.do(site, "online", f.Target)
	}
}

// checkAgents finds agents that exited without the soak killing them
// (a crash, a crash loop) and starts them again so the soak goes on.
func (s *soakLab) checkAgents() {
	for _, n := range s.nodes {
		if !n.down && n.proc().Exited() {
			s.startAgent(n)
		}
	}
}

// crashes lists incarnations that died by themselves or panicked.
func (s *soakLab) crashes() []string {
	var out []string
	for _, n := range s.nodes {
		for i, p := range n.procs {
			log := p.Log()
			if strings.Contains(log, "panic:") || strings.Contains(log, "fatal error:") {
				out = append(out, fmt.Sprintf("%s incarnation %d panicked (%s)", n.name, i+1, p.LogPath()))
			}
			if p.Exited() && !n.killed[p] {
				out = append(out, fmt.Sprintf("%s incarnation %d exited by itself (%s)", n.name, i+1, p.LogPath()))
			}
		}
	}
	return out
}

// rss reads every live agent's resident memory in KiB.
func (s *soakLab) rss() map[string]int64 {
	out := map[string]int64{}
	for _, n := range s.nodes {
		p := n.proc()
		if p == nil || p.Exited() {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				out[n.name] = kb
			}
		}
		f.Close()
	}
	return out
}
