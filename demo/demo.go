// Package demo runs a whole hatui deployment on one machine: two sites of
// two PBX nodes plus an arbitrator, each a real ha-agent with real Serf on
// its own loopback address, in one process. It injects faults the way the
// field does: an agent that stops dead, a site cut off the network.
//
// It backs `hatui --demo` and the tests that want a real deployment
// without root.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/membership/partition"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// Layout describes the demo deployment: site name → node names. The
// arbitrator site's node has the role "arbitrator".
var Layout = []struct {
	Site, Node, Role string
}{
	{"a", "pbx-a1", "pbx"}, {"a", "pbx-a2", "pbx"},
	{"b", "pbx-b1", "pbx"}, {"b", "pbx-b2", "pbx"},
	{"arb", "arbitrator", "arbitrator"},
}

// Options configure a demo deployment.
type Options struct {
	// Dir holds the agents' state; a temporary directory when empty
	// (removed by Close).
	Dir string
	// Subnet is the first three octets of the loopback addresses, such as
	// "127.0.20"; a random free one when empty.
	Subnet string
	// Logger receives the agents' logs; nil discards them.
	Logger *log.Logger
	// Name is the deployment's name ("demo" when empty), so that several
	// demos on one overview can be told apart.
	Name string
	// NoDatabase leaves PostgreSQL out even where it could run.
	NoDatabase bool
}

// Node is one demo node.
type Node struct {
	Name, Site, Role, IP string
	cfg                  *config.Config
	agent                *agent.Agent // nil while killed
}

// Deployment is a running demo.
type Deployment struct {
	net     *partition.Network
	dir     string
	ownDir  bool
	logger  *log.Logger
	mu      sync.Mutex
	nodes   []*Node
	cuts    map[string]int // site → partition group
	noDB    bool
	nextCut int
	closers []func()
	closed  bool
}

// Start builds and starts the deployment. It returns once every agent is
// listening; call WaitConverged to wait until they all see each other.
func Start(o Options) (*Deployment, error) {
	d := &Deployment{net: partition.NewNetwork(), dir: o.Dir, logger: o.Logger, cuts: map[string]int{}, noDB: o.NoDatabase}
	name := o.Name
	if name == "" {
		name = "demo"
	}
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "hatui-demo-")
		if err != nil {
			return nil, fmt.Errorf("creating demo directory: %w", err)
		}
		d.dir, d.ownDir = dir, true
	}
	subnet := o.Subnet
	if subnet == "" {
		var err error
		if subnet, err = freeSubnet(); err != nil {
			return nil, err
		}
	}
	keyBytes := make([]byte, 32)
	rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	var first string
	for i, l := range Layout {
		n := &Node{Name: l.Node, Site: l.Site, Role: l.Role, IP: fmt.Sprintf("%s.%d", subnet, i+1)}
		var join string
		if first != "" {
			join = fmt.Sprintf("%q", first)
		}
		data := fmt.Sprintf(`deployment = %q
node = %q
site = %q
role = %q
state_dir = %q
[socket]
path = %q
[gossip]
bind = "%s:7946"
keys = [%q]
join = [%s]
[peer]
timeout = "2s"
`, name, n.Name, n.Site, n.Role, filepath.Join(d.dir, n.Name), filepath.Join(d.dir, n.Name, "ha-agent.sock"), n.IP, key, join)
		cfg, err := config.Parse("demo/"+n.Name+".toml", []byte(data))
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("demo config for %s: %w", n.Name, err)
		}
		n.cfg = cfg
		if first == "" {
			first = cfg.Gossip.Bind
		}
		d.nodes = append(d.nodes, n)
		if err := d.start(n); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// freeSubnet picks a random 127.x.y subnet whose first address is free.
func freeSubnet() (string, error) {
	for i := 0; i < 20; i++ {
		b, _ := rand.Int(rand.Reader, big.NewInt(100*250))
		s := fmt.Sprintf("127.%d.%d", 150+b.Int64()/250, 1+b.Int64()%250)
		l, err := net.ListenPacket("udp", s+".1:7946")
		if err == nil {
			l.Close()
			return s, nil
		}
	}
	return "", fmt.Errorf("no free loopback subnet for the demo: close other demos")
}

// Feature adds an agent feature to a demo node, with whatever simulated
// hardware it needs; each feature's demo file appends one in its init.
type Feature func(d *Deployment, n *Node) (agent.FeatureFunc, error)

// features are the demo's agent features, registered by the files that
// simulate their hardware.
var features []Feature

// machine is what a node's simulated machine does beside its agent: a
// crash takes down what runs on it (its PBX, its database), a boot brings
// up what its init system would. Either may be nil.
type machine struct {
	crash func(d *Deployment, n *Node)
	boot  func(d *Deployment, n *Node) error
}

// machines are registered by the files that simulate what runs on a node.
var machines []machine

func (d *Deployment) start(n *Node) error {
	ip := n.IP
	var fs []agent.FeatureFunc
	for _, mk := range features {
		f, err := mk(d, n)
		if err != nil {
			return fmt.Errorf("demo feature for %s: %w", n.Name, err)
		}
		if f != nil {
			fs = append(fs, f)
		}
	}
	a, err := agent.New(n.cfg, agent.Options{
		Features: fs,
		Logger:   d.logger,
		WrapGossip: func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return d.net.Wrap(ip, t)
		},
		WrapPeerConn: func(c net.Conn) net.Conn { return d.net.WrapConn(ip, c) },
	})
	if err != nil {
		return fmt.Errorf("starting demo agent %s: %w", n.Name, err)
	}
	n.agent = a
	if n.Name != d.nodes[0].Name {
		// Join whoever is up: after a revive the first node may be dead.
		var addrs []string
		for _, o := range d.nodes {
			if o != n && o.agent != nil {
				addrs = append(addrs, o.cfg.Gossip.Bind)
			}
		}
		if len(addrs) > 0 {
			a.Join(addrs)
		}
	}
	return nil
}

// Nodes returns the demo's nodes.
func (d *Deployment) Nodes() []Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Node, len(d.nodes))
	for i, n := range d.nodes {
		out[i] = *n
	}
	return out
}

// SocketPath returns the Unix socket of the named node's agent.
func (d *Deployment) SocketPath(node string) string {
	n := d.find(node)
	if n == nil {
		return ""
	}
	return n.cfg.Socket.Path
}

func (d *Deployment) find(name string) *Node {
	for _, n := range d.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Dial returns a DialFunc that opens an in-process session with the named
// node's agent; it fails while the node is killed or its site is cut.
func (d *Deployment) Dial(node string) client.DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		d.mu.Lock()
		n := d.find(node)
		var a *agent.Agent
		cut := false
		if n != nil {
			a = n.agent
			_, cut = d.cuts[n.Site]
		}
		d.mu.Unlock()
		switch {
		case n == nil:
			return nil, fmt.Errorf("no demo node %q", node)
		case a == nil:
			return nil, fmt.Errorf("%s is down (killed in the demo)", node)
		case cut:
			return nil, fmt.Errorf("%s is cut off the network", node)
		}
		c1, c2 := net.Pipe()
		go a.ServeConn(c2, "demo")
		return c1, nil
	}
}

// WaitConverged waits until every running agent sees every running node
// alive, every site with a running PBX node shows its service group
// settled (started, or unmanaged at the site that does not serve), and
// the geo ticket has a holder.
func (d *Deployment) WaitConverged(ctx context.Context) error {
	for {
		if d.converged(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the demo agents to see each other: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *Deployment) converged(ctx context.Context) bool {
	d.mu.Lock()
	var up []*Node
	for _, n := range d.nodes {
		if n.agent != nil {
			up = append(up, n)
		}
	}
	d.mu.Unlock()
	for _, n := range up {
		snap := n.agent.Snapshot(protocol.ScopeDeployment)
		alive := 0
		for _, sn := range snap.Nodes() {
			if sn.Member == protocol.MemberAlive {
				alive++
			}
		}
		if alive != len(up) {
			return false
		}
		for _, s := range snap.Sites {
			for _, c := range s.Clusters {
				for _, g := range c.Groups {
					// Started where the geo ticket says the site serves,
					// standby (its cluster not activated) where it does
					// not; unmanaged until the geo view says which.
					if g.State != "started" && g.State != "unmanaged" && g.State != "standby" {
						return false
					}
				}
			}
		}
		if !groupsShown(snap, up) {
			return false
		}
		if !geoServing(snap) || !groupStarted(snap, snap.Geo.Ticket.Holder) {
			return false
		}
	}
	return true
}

// geoServing says whether the geo ticket's holder serves.
func geoServing(snap *protocol.Snapshot) bool {
	if snap.Geo == nil || snap.Geo.Ticket.Holder == "" {
		return false
	}
	for _, s := range snap.Geo.Sites {
		if s.Name == snap.Geo.Ticket.Holder {
			return s.ServiceRole == "serving"
		}
	}
	return false
}

// groupStarted says whether the site's group runs somewhere.
func groupStarted(snap *protocol.Snapshot, site string) bool {
	for _, s := range snap.Sites {
		for _, c := range s.Clusters {
			for _, g := range c.Groups {
				if g.Name == GroupOf(site) {
					return g.State == "started" && g.Active != ""
				}
			}
		}
	}
	return false
}

// groupsShown says whether every site with a running PBX node shows its
// group.
func groupsShown(snap *protocol.Snapshot, up []*Node) bool {
	for _, n := range up {
		if n.Role != "pbx" {
			continue
		}
		found := false
		for _, s := range snap.Sites {
			for _, c := range s.Clusters {
				for _, g := range c.Groups {
					found = found || g.Name == GroupOf(n.Site)
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Kill stops a node's agent dead, as a crash would.
func (d *Deployment) Kill(node string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.find(node)
	if n == nil {
		return protocol.Errorf(protocol.CodeUnknownNode, "demo nodes: "+d.names(), "no demo node %q", node)
	}
	if n.agent == nil {
		return protocol.Errorf(protocol.CodeRefused, "revive it with 'demo revive "+node+"'", "%s is already down", node)
	}
	d.crash(n)
	return nil
}

// crash stops a node dead, its agent and all that runs on its machine.
// The caller holds d.mu.
func (d *Deployment) crash(n *Node) {
	n.agent.Kill()
	n.agent = nil
	for _, m := range machines {
		if m.crash != nil {
			m.crash(d, n)
		}
	}
}

// powerLost crashes a running node whose power went off, if still says it
// is still off.
func (d *Deployment) powerLost(node string, still func() bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.find(node)
	if d.closed || n == nil || n.agent == nil || !still() {
		return
	}
	if d.logger != nil {
		d.logger.Printf("demo: %s lost its power: it is down", node)
	}
	d.crash(n)
}

// Revive restarts a killed node's agent with its state directory intact.
func (d *Deployment) Revive(node string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.find(node)
	if n == nil {
		return protocol.Errorf(protocol.CodeUnknownNode, "demo nodes: "+d.names(), "no demo node %q", node)
	}
	if n.agent != nil {
		return protocol.Errorf(protocol.CodeRefused, "kill it first with 'demo kill "+node+"'", "%s is running", node)
	}
	// The machine boots: power first, then what its init system starts,
	// then the agent.
	for _, m := range machines {
		if m.boot == nil {
			continue
		}
		if err := m.boot(d, n); err != nil {
			return fmt.Errorf("booting %s: %w", node, err)
		}
	}
	return d.start(n)
}

// Cut isolates every node of a site from the rest.
func (d *Deployment) Cut(site string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ips := d.siteIPs(site)
	if len(ips) == 0 {
		return protocol.Errorf(protocol.CodeUsage, "demo sites: a, b, arb", "no demo site %q", site)
	}
	if _, ok := d.cuts[site]; ok {
		return protocol.Errorf(protocol.CodeRefused, "heal it with 'demo heal "+site+"'", "site %s is already cut off", site)
	}
	d.nextCut++
	d.cuts[site] = d.nextCut
	d.net.Isolate(d.nextCut, ips...)
	return nil
}

// Heal reconnects a site that was cut off.
func (d *Deployment) Heal(site string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ips := d.siteIPs(site)
	if len(ips) == 0 {
		return protocol.Errorf(protocol.CodeUsage, "demo sites: a, b, arb", "no demo site %q", site)
	}
	if _, ok := d.cuts[site]; !ok {
		return protocol.Errorf(protocol.CodeRefused, "", "site %s is not cut off", site)
	}
	delete(d.cuts, site)
	d.net.Heal(ips...)
	return nil
}

func (d *Deployment) siteIPs(site string) []string {
	var ips []string
	for _, n := range d.nodes {
		if n.Site == site {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

func (d *Deployment) names() string {
	var s []string
	for _, n := range d.nodes {
		s = append(s, n.Name)
	}
	sort.Strings(s)
	return fmt.Sprint(s)
}

// Do carries out a demo verb ("demo kill NODE", "demo revive NODE",
// "demo cut SITE", "demo heal SITE"). Other verbs are not the demo's:
// handled is false for them.
func (d *Deployment) Do(a protocol.Action) (res protocol.Result, handled bool, err error) {
	ops := map[string]struct {
		f    func(string) error
		done string
	}{
		"demo kill":   {d.Kill, "%s stopped dead (its agent crashed)"},
		"demo revive": {d.Revive, "%s started again"},
		"demo cut":    {d.Cut, "site %s cut off the network"},
		"demo heal":   {d.Heal, "site %s reconnected"},
	}
	op, ok := ops[a.Verb]
	if !ok {
		return protocol.Result{}, false, nil
	}
	if len(a.Args) != 1 {
		return protocol.Result{}, true, protocol.Errorf(protocol.CodeUsage, "usage: "+a.Verb+" NAME", "%s takes one name", a.Verb)
	}
	if err := op.f(a.Args[0]); err != nil {
		return protocol.Result{OK: false, Message: err.Error(), Error: protocol.AsError(err)}, true, err
	}
	return protocol.Result{OK: true, Message: fmt.Sprintf(op.done, a.Args[0])}, true, nil
}

// OnClose registers a function that Close runs after stopping the
// agents: simulators and servers a demo feature started.
func (d *Deployment) OnClose(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closers = append(d.closers, f)
}

// Dir is the demo's state directory.
func (d *Deployment) Dir() string { return d.dir }

// Close stops every agent and removes a temporary state directory.
func (d *Deployment) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, n := range d.nodes {
		if n.agent != nil {
			n.agent.Kill()
			n.agent = nil
		}
	}
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	if d.ownDir {
		os.RemoveAll(d.dir)
	}
}
