package failover

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/agent/resource"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/switchdrv/fenceagent"
)

const fenceDummy = "/usr/sbin/fence_dummy"

// testTiming is fast enough for tests and slow enough for a loaded
// two-core machine: failure after 1 s of silence, takeover after 3.1 s
// (stop budget 2 s + hold 0.9 s + 2 keepalives).
var testTiming = Timing{
	Keepalive:       100 * time.Millisecond,
	WarnTime:        400 * time.Millisecond,
	DeadTime:        time.Second,
	InitDead:        2 * time.Second,
	FenceRetry:      500 * time.Millisecond,
	MonitorInterval: 200 * time.Millisecond,
}

var testRaft = RaftTiming{
	HeartbeatTimeout:   200 * time.Millisecond,
	ElectionTimeout:    200 * time.Millisecond,
	LeaderLeaseTimeout: 100 * time.Millisecond,
	CommitTimeout:      5 * time.Millisecond,
	TransportTimeout:   500 * time.Millisecond,
}

// testSerf is a tuned Serf profile: failure in about half a second.
var testSerf = membership.Timings{
	ProbeInterval:     100 * time.Millisecond,
	ProbeTimeout:      50 * time.Millisecond,
	GossipInterval:    30 * time.Millisecond,
	SuspicionMult:     3,
	ReconnectInterval: 300 * time.Millisecond,
	TCPTimeout:        300 * time.Millisecond,
}

// opts shape a test cluster.
type opts struct {
	nodes     int  // nodes that can hold the group (default 2)
	witness   bool // add a witness voter
	serf      bool // Serf as a path
	nic       bool // the UDP path (default when serf is false)
	serial    bool // a serial cable between the first two nodes
	fence     string
	risk      bool
	inactive  bool // do not activate at formation
	persist   bool // keep the decision state on disk
	checks    []health.Spec
	policy    health.PolicyConfig
	timing    Timing
	threshold int
	alone     bool // start only the first node: the cluster never forms
}

// tnode is one voter of a test cluster.
type tnode struct {
	c       *tcluster
	name    string
	ip      string
	witness bool
	data    string
	eng     *Engine
	pool    *membership.Pool
	group   *resource.Group
	running string // the file that exists while the group runs here
	power   string // fence_dummy's status file for this node
	mu      sync.Mutex
	dead    bool
}

// tcluster is a cluster of real engines in this process: real raft over
// TCP on loopback, real heartbeat paths, exec resources writing files.
type tcluster struct {
	t     testing.TB
	o     opts
	dir   string
	key   []byte
	cfg   Config
	nodes []*tnode
	cable *cable
	log   string // start/stop lines of every node's resource

	evMu sync.Mutex
	evs  []Event

	closeOnce sync.Once

	sampler struct {
		stop       chan struct{}
		done       chan struct{}
		violations []string
		samples    atomic.Int64
	}
}

var subnet atomic.Int64

func newCluster(t testing.TB, o opts) *tcluster {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 2
	}
	if !o.serf {
		o.nic = true
	}
	if o.timing == (Timing{}) {
		o.timing = testTiming
	}
	c := &tcluster{t: t, o: o, dir: t.TempDir(), key: make([]byte, 32)}
	rand.Read(c.key)
	c.log = filepath.Join(c.dir, "resource.log")
	net := subnet.Add(1)
	for i := range o.nodes {
		c.nodes = append(c.nodes, &tnode{c: c, name: fmt.Sprintf("pbx-a%d", i+1), ip: fmt.Sprintf("127.77.%d.%d", net, i+1)})
	}
	if o.witness {
		c.nodes = append(c.nodes, &tnode{c: c, name: "wit-a", ip: fmt.Sprintf("127.77.%d.%d", net, 100), witness: true})
	}
	// A crash here is the whole node's (powerOff) or a restart of the
	// engine under running resources (restart): no watchdog would act on
	// either, so the engines run with the agent-crash risk accepted.
	c.cfg = Config{Cluster: "site-a", Group: "pbx", Timing: o.timing, Raft: testRaft, AllowTwoNodeRisk: o.risk, Activate: !o.inactive,
		AllowAgentCrashRisk: true}
	for _, n := range c.nodes {
		c.cfg.Voters = append(c.cfg.Voters, Voter{Name: n.name, Addr: n.ip + ":7960", Witness: n.witness})
		n.data = filepath.Join(c.dir, n.name)
		n.running = filepath.Join(c.dir, "running."+n.name)
		n.power = filepath.Join(c.dir, "power."+n.name)
		os.WriteFile(n.power, []byte("on"), 0o600)
	}
	if o.serial {
		c.cable = newCable(t)
	}
	c.startSampler()
	for i, n := range c.nodes {
		if o.alone && i > 0 {
			continue
		}
		n.start()
	}
	if o.serf {
		for _, n := range c.nodes[1:] {
			if _, err := n.pool.Join([]string{c.nodes[0].pool.Addr()}); err != nil {
				t.Fatalf("joining Serf: %v", err)
			}
		}
	}
	t.Cleanup(c.close)
	return c
}

// close crashes every node and checks the sampler; it runs at the end of
// the test, or earlier when called.
func (c *tcluster) close() {
	c.closeOnce.Do(func() {
		for _, n := range c.nodes {
			n.crash()
		}
		c.stopSampler()
		if c.t.Failed() {
			c.dump()
		}
	})
}

// node returns the named node.
func (c *tcluster) node(name string) *tnode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

// script writes the exec resource of node n: it logs every call and
// keeps the running file; failstart.<node> makes start fail.
func (c *tcluster) script(n *tnode) string {
	p := filepath.Join(c.dir, "pbx-"+n.name+".sh")
	body := fmt.Sprintf(`#!/bin/sh
case "$1" in
start)
	echo "$(date +%%s%%N) start %[1]s" >>%[2]s
	if [ -e %[3]s/failstart.%[1]s ]; then echo "cannot bind 5060" >&2; exit 1; fi
	if [ -e %[3]s/slowstart.%[1]s ]; then sleep 1.5; fi
	touch %[4]s ;;
stop)
	rm -f %[4]s
	echo "$(date +%%s%%N) stop %[1]s" >>%[2]s ;;
status)
	[ -e %[4]s ] && exit 0
	exit 3 ;;
esac
exit 0
`, n.name, c.log, c.dir, n.running)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// checkScript is a health check that passes while healthy.<node> exists.
func (c *tcluster) checkScript(n *tnode) string {
	p := filepath.Join(c.dir, "check-"+n.name+".sh")
	body := fmt.Sprintf("#!/bin/sh\n[ -e %s/healthy.%s ] && { echo 200 OK; exit 0; }\necho 'no SIP answer' >&2\nexit 1\n", c.dir, n.name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *tcluster) setHealthy(n *tnode, ok bool) {
	f := filepath.Join(c.dir, "healthy."+n.name)
	if ok {
		os.WriteFile(f, nil, 0o644)
	} else {
		os.Remove(f)
	}
}

// start opens the node's engine (again, after a crash or restart).
func (n *tnode) start() {
	c := n.c
	t := c.t
	t.Helper()
	var peers []string
	for _, o := range c.nodes {
		if o != n {
			peers = append(peers, o.name)
		}
	}
	var paths []Path
	cfg := c.cfg
	cfg.Node = n.name
	if c.o.persist {
		cfg.DataDir = n.data
	}
	if c.o.serf {
		p, err := membership.Start(membership.Options{Name: n.name, BindAddr: n.ip + ":7946", Keys: [][]byte{c.key[:32]}, Timings: testSerf,
			WrapTransport: func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport { return &fromHost{t, n.ip} }})
		if err != nil {
			t.Fatalf("serf on %s: %v", n.name, err)
		}
		n.pool = p
		sp, err := NewSerfPath(p, peers, c.o.timing.Keepalive/2)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, sp)
	}
	hb := HeartbeatConfig{Cluster: cfg.Cluster, Node: n.name, Key: c.key, Interval: c.o.timing.Keepalive}
	if c.o.nic {
		addrs := map[string]string{}
		for _, o := range c.nodes {
			if o != n {
				addrs[o.name] = o.ip + ":7961"
			}
		}
		p, err := NewNICPath(NICConfig{HeartbeatConfig: hb, Local: n.ip + ":7961", Peers: addrs})
		if err != nil {
			t.Fatalf("nic path on %s: %v", n.name, err)
		}
		paths = append(paths, p)
	}
	if c.cable != nil && (n == c.nodes[0] || n == c.nodes[1]) {
		end, peer := 0, c.nodes[1].name
		if n == c.nodes[1] {
			end, peer = 1, c.nodes[0].name
		}
		p, err := NewSerialPath(SerialConfig{HeartbeatConfig: hb, Device: c.cable.paths[end], Baud: 115200, Peer: peer})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	deps := Deps{Key: c.key, Paths: paths, OnEvent: c.record}
	stream, err := NewTCPStreamLayer(n.ip + ":7960")
	if err != nil {
		t.Fatal(err)
	}
	deps.Stream = stream
	if !n.witness {
		spec := GroupSpec{Name: "pbx", MigrationThreshold: c.o.threshold, Policy: c.o.policy,
			Resources: []resource.Spec{{Name: "asterisk", Type: "exec", Params: map[string]string{"path": c.script(n)},
				StartTimeout: 5 * time.Second, StopTimeout: 2 * time.Second, MonitorTimeout: 2 * time.Second}}}
		for _, s := range c.o.checks {
			if s.Kind == "exec" && s.Params == nil {
				s.Params = map[string]string{"path": c.checkScript(n)}
			}
			spec.Checks = append(spec.Checks, s)
		}
		g, m, err := BuildGroup(spec)
		if err != nil {
			t.Fatal(err)
		}
		n.group, deps.Group, deps.Monitor = g, g, m
	}
	if c.o.fence != "" {
		deps.Fencer = c.fencer()
	}
	e, err := Open(cfg, deps)
	if err != nil {
		stream.Close()
		for _, p := range paths {
			p.Close()
		}
		t.Fatalf("opening %s: %v", n.name, err)
	}
	n.mu.Lock()
	n.eng, n.dead = e, false
	n.mu.Unlock()
}

// fencer is fence_dummy through switchdrv/fenceagent, one status file
// per node standing for its power supply.
func (c *tcluster) fencer() Fencer {
	c.t.Helper()
	if _, err := os.Stat(fenceDummy); err != nil {
		if os.Getenv("CI") == "" {
			c.t.Skipf("%s missing (apt-get install fence-agents): %v", fenceDummy, err)
		}
		c.t.Fatalf("%s missing (apt-get install fence-agents): %v", fenceDummy, err)
	}
	pf := PowerFencer{}
	for _, n := range c.nodes {
		args := map[string]string{"status_file": n.power}
		if c.o.fence == "fail" {
			args = map[string]string{"type": "fail", "power_timeout": "1", "status_file": ""}
		}
		pf[n.name] = Outlet{Switch: fenceagent.New(fenceagent.Config{Agent: fenceDummy, Timeout: 20 * time.Second, Args: args}), Outlet: fenceagent.DefaultOutlet}
	}
	return pf
}

// watchPower powers n off (crash, resources gone) when its fence_dummy
// status file says off: the power switch's effect on the machine.
func (c *tcluster) watchPower(n *tnode) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if b, _ := os.ReadFile(n.power); string(b) == "off" {
				n.powerOff()
				return
			}
		}
	}()
	c.t.Cleanup(func() { close(stop); <-done })
}

// crash stops the node's engine without stopping its resources, as an
// agent crash does.
func (n *tnode) crash() {
	n.mu.Lock()
	e, pool := n.eng, n.pool
	already := n.dead
	n.dead = true
	n.mu.Unlock()
	if already || e == nil {
		return
	}
	e.Close()
	if pool != nil {
		pool.Shutdown()
	}
}

// powerOff is a node losing power: agent and resources gone at once.
func (n *tnode) powerOff() {
	n.crash()
	os.Remove(n.running)
}

// restart crashes the agent and starts it again; resources keep running.
func (n *tnode) restart() {
	n.crash()
	n.start()
	if n.c.o.serf {
		for _, o := range n.c.nodes {
			if o != n && !o.isDead() {
				n.pool.Join([]string{o.pool.Addr()})
				break
			}
		}
	}
}

func (n *tnode) isDead() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dead
}

func (n *tnode) engine() *Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.eng
}

// holds reports whether the node's resources run (its running file).
func (n *tnode) holds() bool {
	_, err := os.Stat(n.running)
	return err == nil
}

func (c *tcluster) record(e Event) {
	c.evMu.Lock()
	c.evs = append(c.evs, e)
	c.evMu.Unlock()
}

func (c *tcluster) events() []Event {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return slices.Clone(c.evs)
}

// startSampler checks every 5 ms that no two nodes run the group.
func (c *tcluster) startSampler() {
	c.sampler.stop = make(chan struct{})
	c.sampler.done = make(chan struct{})
	go func() {
		defer close(c.sampler.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-c.sampler.stop:
				return
			case <-t.C:
			}
			var holding []string
			for _, n := range c.nodes {
				if n.holds() {
					holding = append(holding, n.name)
				}
			}
			c.sampler.samples.Add(1)
			if len(holding) > 1 {
				c.evMu.Lock()
				c.sampler.violations = append(c.sampler.violations, fmt.Sprintf("%s: %s hold the group at once", time.Now().Format("15:04:05.000"), strings.Join(holding, " and ")))
				c.evMu.Unlock()
			}
		}
	}()
}

func (c *tcluster) stopSampler() {
	close(c.sampler.stop)
	<-c.sampler.done
	if c.sampler.samples.Load() < 10 {
		c.t.Errorf("the two-holder sampler ran only %d times", c.sampler.samples.Load())
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if len(c.sampler.violations) > 0 {
		c.t.Errorf("two holders at once (%d samples):\n%s", len(c.sampler.violations), strings.Join(c.sampler.violations[:min(10, len(c.sampler.violations))], "\n"))
	}
}

func (c *tcluster) dump() {
	var b bytes.Buffer
	for _, e := range c.events() {
		fmt.Fprintln(&b, e.String())
	}
	if l, err := os.ReadFile(c.log); err == nil {
		fmt.Fprintf(&b, "resource log:\n%s", l)
	}
	c.t.Logf("events:\n%s", b.String())
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holder returns the node whose resources run, "" if none.
func (c *tcluster) holder() string {
	for _, n := range c.nodes {
		if n.holds() {
			return n.name
		}
	}
	return ""
}

// waitHolder waits until name runs the group and the log says so.
func (c *tcluster) waitHolder(name string, d time.Duration) {
	c.t.Helper()
	waitFor(c.t, name+" to hold the group", d, func() bool {
		if c.holder() != name {
			return false
		}
		g := c.node(name).engine().State().Group
		return g.Holder == name && g.Phase == PhaseStarted
	})
}

// seen waits until the engines of nodes see holder running the group.
func (c *tcluster) seen(holder string, nodes ...string) {
	c.t.Helper()
	for _, n := range nodes {
		waitFor(c.t, n+" to see "+holder+" hold the group", 5*time.Second, func() bool {
			g := c.node(n).engine().State().Group
			return g.Holder == holder && g.Phase == PhaseStarted
		})
	}
}

// stable asserts that the holder stays name for d.
func (c *tcluster) stable(name string, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if h := c.holder(); h != name {
			c.t.Fatalf("the group moved to %q; want it to stay on %s", h, name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// firstEvent returns the first event of type t on node (any node when
// ""), after since.
func (c *tcluster) firstEvent(node string, t EventType, since time.Time) (Event, bool) {
	for _, e := range c.events() {
		if e.Type == t && (node == "" || e.Node == node) && !e.Time.Before(since) {
			return e, true
		}
	}
	return Event{}, false
}

func (c *tcluster) waitEvent(node string, t EventType, since time.Time, d time.Duration) Event {
	c.t.Helper()
	var ev Event
	waitFor(c.t, fmt.Sprintf("event %s on %s", t, node), d, func() bool {
		var ok bool
		ev, ok = c.firstEvent(node, t, since)
		return ok
	})
	return ev
}

// do plans and runs an action on node's engine.
func (c *tcluster) do(node string, a protocol.Action) (protocol.Result, []protocol.Progress, error) {
	c.t.Helper()
	job, err := c.node(node).engine().Plan(a)
	if err != nil {
		return protocol.Result{}, nil, err
	}
	var mu sync.Mutex
	var steps []protocol.Progress
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := job(ctx, func(p protocol.Progress) {
		mu.Lock()
		steps = append(steps, p)
		mu.Unlock()
	})
	return res, steps, nil
}

// power reads fence_dummy's state file for n.
func (n *tnode) powerState() string {
	b, _ := os.ReadFile(n.power)
	return string(b)
}

// fromHost makes memberlist's TCP dials leave from the node's own
// address, as they do between real hosts (on loopback the kernel would
// pick 127.0.0.1, which no per-host cut can catch).
type fromHost struct {
	memberlist.NodeAwareTransport
	ip string
}

func (f *fromHost) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(f.ip)}}
	return d.Dial("tcp", a.Addr)
}

func (f *fromHost) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return f.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func removeFile(t testing.TB, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}
