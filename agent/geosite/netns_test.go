//go:build linux

package geosite_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/netlab"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// The acceptance tests run the real ha-agent binary, one per network
// namespace: sites a and b and the arbitrator, each on its own net, joined
// by a router that delays every packet by 40 ms one way. Each site's
// service is a sipp UAS answering SIP OPTIONS, started and stopped by the
// geo manager's exec service; a client namespace on both sites' nets
// probes them every 50 ms and fails the test if both ever answer.

// Timings of the acceptance runs: the dead man's timer in seconds.
const (
	nLease   = "4s"
	nRenewal = "1s"
	nAcquire = "2s"
	nDeadMan = "15s"
	nMargin  = "3s"
	wanDelay = 40 * time.Millisecond
)

var (
	buildOnce sync.Once
	agentBin  string
	buildErr  error
)

// haAgent builds the ha-agent binary once per test binary; TestMain
// removes it.
func haAgent(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { agentBin, buildErr = agenttest.BuildAgent(binDir) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentBin
}

// binDir holds the ha-agent binary the netns tests build.
var binDir string

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "geosite-ha-agent-"); err != nil {
		fmt.Fprintln(os.Stderr, "geosite tests: making a temp dir:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// need skips (or fails in CI) without a program the acceptance tests run.
func need(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required (apt-get install sip-tester iproute2)", p)
			}
			t.Skipf("%s is not installed (apt-get install sip-tester iproute2)", p)
		}
	}
}

// site is one namespace running an agent.
type site struct {
	name, node, ip string
	arb            bool
	host           *netlab.Host
	dir, cfg, sock string
	proc           *netlab.Proc
}

// wan is a three-site deployment in namespaces.
type wan struct {
	t      testing.TB
	lab    *netlab.Lab
	router *netlab.Router
	client *netlab.Host
	sites  map[string]*site // by site name: a, b, arb
	probe  *sipProbe
	mode   string
}

type wanSpec struct {
	mode    string // "auto" (default) or "manual"
	deadMan string
}

func newWAN(t testing.TB, s wanSpec) *wan {
	t.Helper()
	if testing.Short() {
		t.Skip("netns acceptance test")
	}
	need(t, "sipp", "ss")
	bin := haAgent(t)
	if s.mode == "" {
		s.mode = "auto"
	}
	if s.deadMan == "" {
		s.deadMan = nDeadMan
	}
	lab := netlab.New(t)
	w := &wan{t: t, lab: lab, sites: map[string]*site{}, mode: s.mode}
	nets := map[string]*netlab.Net{}
	attach := map[*netlab.Net]string{}
	for i, name := range []string{"a", "b", "arb"} {
		n := lab.Net(name, fmt.Sprintf("10.91.%d.0/24", i+1))
		nets[name] = n
		attach[n] = fmt.Sprintf("10.91.%d.1/24", i+1)
		w.sites[name] = &site{name: name, node: name + "1", ip: fmt.Sprintf("10.91.%d.2", i+1), arb: name == "arb"}
	}
	w.router = lab.Router("wan", attach)
	w.router.SetDelay(wanDelay)
	for _, name := range []string{"a", "b", "arb"} {
		st := w.sites[name]
		st.host = lab.Host(st.node)
		st.host.Attach(nets[name], st.ip+"/24")
		st.dir = filepath.Join(lab.Dir(), st.node)
		if err := os.MkdirAll(st.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.client = lab.Host("client")
	w.client.Attach(nets["a"], "10.91.1.9/24")
	w.client.Attach(nets["b"], "10.91.2.9/24")
	w.probe = newSIPProbe(t, w.client)

	scen, err := filepath.Abs("../health/testdata/sipp-uas-options.xml")
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("testdata/sip-service.sh")
	if err != nil {
		t.Fatal(err)
	}
	var voters strings.Builder
	var gossipJoin, geoJoin []string
	for _, name := range []string{"a", "b", "arb"} {
		st := w.sites[name]
		fmt.Fprintf(&voters, "[[geo.voter]]\nnode = %q\nsite = %q\naddr = \"%s:7947\"\narbitrator = %v\n", st.node, st.name, st.ip, st.arb)
		gossipJoin = append(gossipJoin, st.ip+":7946")
		geoJoin = append(geoJoin, st.ip+":7950")
	}
	for _, name := range []string{"a", "b", "arb"} {
		st := w.sites[name]
		svc := ""
		if !st.arb {
			svc = fmt.Sprintf("service = \"exec\"\nstart_command = [%q, \"start\", %q, %q, %q]\nstop_command = [%q, \"stop\", %q, %q, %q]\nservice_timeout = \"20s\"\n",
				script, st.ip, st.dir, scen, script, st.ip, st.dir, scen)
		}
		role := ""
		if st.arb {
			role = "arbitrator"
		}
		st.sock = agenttest.Socket(st.dir)
		cfg := agenttest.Render(agenttest.Node{Deployment: "geowan", Name: st.node, Site: st.name, Role: role, Dir: st.dir,
			IP: st.ip, Join: gossipJoin, PeerTimeout: "5s", Gossip: "probe_interval = \"500ms\"\nprobe_timeout = \"250ms\"",
			Extra: fmt.Sprintf(`[geo]
enabled = true
bind = "%s:7950"
join = [%s]
mode = %q
initial_holder = "a"
dead_man = %q
lease = %q
renewal = %q
acquire_after = %q
safety_margin = %q
probe_interval = "500ms"
probe_timeout = "250ms"
suspicion_mult = 4
%s%s`, st.ip, agenttest.Quote(geoJoin), s.mode, s.deadMan, nLease, nRenewal, nAcquire, nMargin, svc, voters.String())})
		st.cfg = filepath.Join(st.dir, "ha-agent.toml")
		if err := os.WriteFile(st.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "check-config", st.cfg).CombinedOutput(); err != nil {
			t.Fatalf("check-config %s: %v\n%s", st.node, err, out)
		}
	}
	for _, name := range []string{"a", "b", "arb"} {
		w.start(name)
	}
	return w
}

// start runs site's agent.
func (w *wan) start(name string) {
	w.t.Helper()
	st := w.sites[name]
	st.proc = st.host.Start(st.host.Command(haAgent(w.t), "--config", st.cfg))
	agenttest.WaitFor(w.t, 20*time.Second, st.node+"'s socket", func() (bool, string) {
		if st.proc.Exited() {
			w.t.Fatalf("%s exited:\n%s", st.node, st.proc.Log())
		}
		c, err := w.dial(name)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

// stop ends site's agent with SIGTERM (as systemd would) and kill with
// SIGKILL (as a crash would); neither stops the site's service.
func (w *wan) stop(name string) {
	w.t.Helper()
	if err := w.sites[name].proc.Stop(); err != nil {
		w.t.Logf("stopping %s: %v", name, err)
	}
}

func (w *wan) dial(name string) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return client.Connect(ctx, client.UnixDialer(w.sites[name].sock), client.Options{Client: "geo-acceptance"})
}

// geo returns the geo state site's agent reports, or nil.
func (w *wan) geo(name string) *protocol.Geo {
	c, err := w.dial(name)
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := c.Status(ctx, "")
	if err != nil {
		return nil
	}
	return snap.Geo
}

// do runs a verb through site's agent.
func (w *wan) do(name, verb string, args ...string) (protocol.Result, error) {
	w.t.Helper()
	c, err := w.dial(name)
	if err != nil {
		return protocol.Result{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	return c.Do(ctx, protocol.Action{Verb: verb, Args: args}, nil)
}

func (w *wan) waitPending(from, to string, within time.Duration, names ...string) time.Time {
	w.t.Helper()
	var exp time.Time
	for _, name := range names {
		agenttest.WaitFor(w.t, within, fmt.Sprintf("%s to show a failover %s→%s pending", name, from, to), func() (bool, string) {
			g := w.geo(name)
			ok := g != nil && g.Pending != nil && g.Pending.From == from && g.Pending.To == to
			if ok && exp.IsZero() {
				exp = g.Pending.Expires
			}
			return ok, describe(g)
		})
	}
	return exp
}

func (w *wan) waitReach(site string, reachable bool, within time.Duration, names ...string) {
	w.t.Helper()
	for _, name := range names {
		agenttest.WaitFor(w.t, within, fmt.Sprintf("%s to see site %s reachable=%v", name, site, reachable), func() (bool, string) {
			g := w.geo(name)
			if g == nil {
				return false, "no geo state"
			}
			for _, s := range g.Sites {
				if s.Name == site {
					return s.Reachable == reachable, describe(g)
				}
			}
			return false, describe(g)
		})
	}
}

// waitAnswers waits until site answers SIP OPTIONS (or stops answering).
func (w *wan) waitAnswers(site string, answers bool, within time.Duration) {
	w.t.Helper()
	agenttest.WaitFor(w.t, within, fmt.Sprintf("site %s answering=%v", site, answers), func() (bool, string) {
		got := w.probe.answers(w.sites[site].ip, 300*time.Millisecond)
		return got == answers, fmt.Sprintf("answering=%v; arb sees %s", got, describe(w.geo("arb")))
	})
}

// answersOwn probes site's SIP service from inside its own namespace,
// which sees it whatever partition cuts the site off.
func (w *wan) answersOwn(site string) bool {
	st := w.sites[site]
	var conn net.PacketConn
	if err := st.host.Do(func() (err error) { conn, err = net.ListenPacket("udp4", st.ip+":0"); return err }); err != nil {
		w.t.Fatalf("probe socket in %s: %v", st.node, err)
	}
	defer conn.Close()
	return probeOnce(conn, st.ip, 300*time.Millisecond)
}

// sampler probes both sites every 50 ms until stopped, failing the test
// if both answer in one round, and recording whether each ever answered.
type sampler struct {
	w      *wan
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	served map[string]bool
	both   int
}

func (w *wan) sample() *sampler {
	s := &sampler{w: w, stop: make(chan struct{}), served: map[string]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			var a, b bool
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); a = w.probe.answersA(40 * time.Millisecond) }()
			go func() { defer wg.Done(); b = w.probe.answersB(40 * time.Millisecond) }()
			wg.Wait()
			s.mu.Lock()
			s.served["a"] = s.served["a"] || a
			s.served["b"] = s.served["b"] || b
			if a && b {
				s.both++
				if s.both == 1 {
					w.t.Errorf("sites a and b both answer SIP OPTIONS at %s", time.Now().Format(time.RFC3339Nano))
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sampler) ever(site string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[site]
}

func (s *sampler) done() {
	close(s.stop)
	s.wg.Wait()
}

// sipProbe sends SIP OPTIONS from the client namespace: the sampler and
// the tests each have a socket per site, bound to the client's address on
// that site's net, so that each answer comes back to where it is read.
type sipProbe struct {
	mu      sync.Mutex
	sampler map[string]net.PacketConn // by target IP
	tests   map[string]net.PacketConn
}

func newSIPProbe(t testing.TB, h *netlab.Host) *sipProbe {
	p := &sipProbe{sampler: map[string]net.PacketConn{}, tests: map[string]net.PacketConn{}}
	err := h.Do(func() error {
		for target, local := range map[string]string{"10.91.1.2": "10.91.1.9", "10.91.2.2": "10.91.2.9"} {
			for _, m := range []map[string]net.PacketConn{p.sampler, p.tests} {
				c, err := net.ListenPacket("udp4", local+":0")
				if err != nil {
					return err
				}
				m[target] = c
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("probe sockets in the client namespace: %v", err)
	}
	t.Cleanup(func() {
		for _, m := range []map[string]net.PacketConn{p.sampler, p.tests} {
			for _, c := range m {
				c.Close()
			}
		}
	})
	return p
}

func (p *sipProbe) answersA(d time.Duration) bool {
	return probeOnce(p.sampler["10.91.1.2"], "10.91.1.2", d)
}
func (p *sipProbe) answersB(d time.Duration) bool {
	return probeOnce(p.sampler["10.91.2.2"], "10.91.2.2", d)
}

// answers probes ip on the tests' socket.
func (p *sipProbe) answers(ip string, d time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.tests[ip]
	if c == nil {
		return false
	}
	return probeOnce(c, ip, d)
}

// probeOnce sends one OPTIONS to ip:5060 on conn and waits up to d for
// its 200 (matched by Call-ID, so a late answer to an earlier probe does
// not count).
func probeOnce(conn net.PacketConn, ip string, d time.Duration) bool {
	to := &net.UDPAddr{IP: net.ParseIP(ip), Port: 5060}
	callID := fmt.Sprintf("geo-%d@probe", time.Now().UnixNano())
	local := conn.LocalAddr().String()
	req := health.OptionsRequest("sip:"+ip+":5060", "probe", local, ip+":5060", callID, "z9hG4bK"+callID[4:14], "t1")
	if _, err := conn.WriteTo(req, to); err != nil {
		return false
	}
	deadline := time.Now().Add(d)
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return false
		}
		r, err := health.ParseSIPResponse(buf[:n])
		if err == nil && r.CallID == callID {
			return r.Code == 200
		}
	}
}
