//go:build linux

// Package recipetest brings each recipe under recipes/ up whole in network
// namespaces (agent/netlab): the recipe's own files, through `ha-agent
// bootstrap` on the first node and `ha-agent join TOKEN` on every other
// (only addresses, and devices standing where hardware would, are given),
// real ha-agent processes, Kamailio as the SIP server; then each test runs
// its seed's signature scenario.
//
// The tests need root, ip, nft and kamailio; without them they skip, or
// fail when CI=true.
package recipetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/enroll"
	"github.com/hatui/hatui/agent/netlab"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

var (
	agentBin string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hatui-recipes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin, buildErr = agenttest.BuildAgent(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need ends t unless the machine can run these tests.
func need(t *testing.T, bins ...string) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root (network namespaces)"
	}
	for _, b := range append([]string{"ip", "nft", "ss", "setsid", "kamailio"}, bins...) {
		if _, err := exec.LookPath(b); err != nil && missing == "" {
			missing = b
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing %s", missing)
	}
	t.Skipf("missing %s (CI unset: skipping)", missing)
}

// node is one node of a recipe in its namespace.
type node struct {
	name, addr string
	host       *netlab.Host
	paths      enroll.Paths
	proc       *netlab.Proc
}

func (n *node) socket() string { return filepath.Join(n.paths.Run, "ha-agent.sock") }

// deployment is a recipe brought up in a lab.
type deployment struct {
	t      *testing.T
	recipe *enroll.Recipe
	lab    *netlab.Lab
	lan    *netlab.Net
	nodes  map[string]*node
	order  []*node
	client *netlab.Host
	addrs  map[string]string
	// devices makes each node's device paths (the hardware the test
	// stands in for); nil: the recipe's own.
	devices func(n *node) map[string]string
}

var joinLine = regexp.MustCompile(`(?m)^\s*ha-agent join (\S+)`)

// up brings a recipe up on one LAN (its nodes' addresses taken from the
// recipe, in one /24), bootstrap then join, and waits until the first
// node sees every node alive.
func up(t *testing.T, name string, devices func(n *node) map[string]string) *deployment {
	t.Helper()
	r, err := enroll.LoadRecipe(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := r.Addrs(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{t: t, recipe: r, lab: netlab.New(t), nodes: map[string]*node{}, addrs: addrs, devices: devices}
	first := net.ParseIP(r.Nodes[0].Addr).To4()
	prefix := fmt.Sprintf("%d.%d.%d", first[0], first[1], first[2])
	d.lan = d.lab.Net("lan", prefix+".0/24")
	for _, rn := range r.Nodes {
		n := &node{name: rn.Name, addr: rn.Addr, host: d.lab.Host(rn.Name)}
		n.host.Attach(d.lan, rn.Addr+"/24")
		dir := filepath.Join(t.TempDir(), rn.Name)
		n.paths = enroll.Paths{Etc: filepath.Join(dir, "etc"), State: filepath.Join(dir, "state"), Run: filepath.Join(dir, "run")}
		if devices != nil {
			n.paths.Devices = devices(n)
		}
		d.nodes[rn.Name] = n
		d.order = append(d.order, n)
	}
	d.client = d.lab.Host("client")
	d.client.Attach(d.lan, prefix+".250/24")

	// The first command, on the first node.
	fn := d.nodes[r.First().Name]
	out := d.run(fn, append([]string{"bootstrap", "--recipe", r.Dir, "--service", "none"}, d.pathArgs(fn)...)...)
	tokens := map[string]string{}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if m := joinLine.FindStringSubmatch(l); m != nil && i > 0 {
			// The line before names the node: "# fs2 (pbx, 10.0.1.2)".
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(lines[i-1]), "#"))
			if len(f) > 0 {
				tokens[f[0]] = m[1]
			}
		}
	}
	if len(tokens) != len(r.Nodes)-1 {
		t.Fatalf("bootstrap printed %d join commands for %d other nodes:\n%s", len(tokens), len(r.Nodes)-1, out)
	}
	d.start(fn)
	// The second command, on every other node, once the first listens.
	for _, n := range d.order {
		if n == fn {
			continue
		}
		args := append([]string{"join", tokens[n.name], "--service", "none"}, d.pathArgs(n)...)
		agenttest.WaitFor(t, 15*time.Second, "the first node's join listener", func() (bool, string) {
			c := n.host.Command(agentBin, args...)
			b, err := c.CombinedOutput()
			return err == nil, string(b)
		})
		d.start(n)
	}
	d.waitAlive(fn, 30*time.Second)
	return d
}

func (d *deployment) pathArgs(n *node) []string {
	args := []string{"--etc", n.paths.Etc, "--state", n.paths.State, "--run", n.paths.Run}
	for k, v := range n.paths.Devices {
		args = append(args, "--dev", k+"="+v)
	}
	return args
}

// run runs ha-agent with args inside n and returns its output.
func (d *deployment) run(n *node, args ...string) string {
	d.t.Helper()
	b, err := n.host.Command(agentBin, args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("ha-agent %s on %s: %v\n%s", args[0], n.name, err, b)
	}
	return string(b)
}

// start starts n's agent from the configuration join or bootstrap wrote.
func (d *deployment) start(n *node) {
	d.t.Helper()
	n.proc = n.host.Start(n.host.Command(agentBin, "--config", filepath.Join(n.paths.Etc, "ha-agent.toml")))
}

// status asks n's agent for the deployment.
func (d *deployment) status(n *node) (*protocol.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.UnixDialer(n.socket()), client.Options{Client: "recipetest"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Status(ctx, "")
}

// waitStatus waits until cond holds for n's view of the deployment.
func (d *deployment) waitStatus(n *node, within time.Duration, what string, cond func(s *protocol.Snapshot) (bool, string)) {
	d.t.Helper()
	agenttest.WaitFor(d.t, within, what, func() (bool, string) {
		s, err := d.status(n)
		if err != nil {
			return false, err.Error()
		}
		return cond(s)
	})
}

// waitAlive waits until n sees every node of the recipe alive.
func (d *deployment) waitAlive(n *node, within time.Duration) {
	d.t.Helper()
	d.waitStatus(n, within, "every node alive", func(s *protocol.Snapshot) (bool, string) {
		var seen []string
		alive := 0
		for _, rn := range d.recipe.Nodes {
			x, ok := s.FindNode(rn.Name)
			if ok && x.Member == protocol.MemberAlive {
				alive++
			}
			seen = append(seen, fmt.Sprintf("%s:%v", rn.Name, ok && x.Member == protocol.MemberAlive))
		}
		return alive == len(d.recipe.Nodes), strings.Join(seen, " ")
	})
}

// group finds a group in a snapshot.
func group(s *protocol.Snapshot, name string) (protocol.Group, bool) {
	for _, site := range s.Sites {
		for _, c := range site.Clusters {
			for _, g := range c.Groups {
				if g.Name == name {
					return g, true
				}
			}
		}
	}
	return protocol.Group{}, false
}

// waitGroup waits until n sees group started on holder.
func (d *deployment) waitGroup(n *node, name, holder string, within time.Duration) {
	d.t.Helper()
	d.waitStatus(n, within, fmt.Sprintf("group %s started on %s", name, holder), func(s *protocol.Snapshot) (bool, string) {
		g, ok := group(s, name)
		return ok && g.State == "started" && g.Active == holder, fmt.Sprintf("%+v", g)
	})
}

// sipOK asks addr:5060 with SIP OPTIONS from the client host and says
// whether a 200 came back, and from which server.
func (d *deployment) sipOK(addr string) (bool, string) {
	var c net.Conn
	err := d.client.Do(func() (err error) {
		c, err = net.Dial("udp", net.JoinHostPort(addr, "5060"))
		return err
	})
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr)
	req := fmt.Sprintf("OPTIONS sip:ping@%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;branch=z9hG4bK%[3]d\r\n"+
		"From: <sip:test@%[2]s>;tag=%[3]d\r\nTo: <sip:ping@%[1]s>\r\nCall-ID: %[3]d@recipetest\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", addr, local.String(), time.Now().UnixNano())
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte(req)); err != nil {
		return false, err.Error()
	}
	buf := make([]byte, 4096)
	k, err := c.Read(buf)
	if err != nil {
		return false, err.Error()
	}
	ans := string(buf[:k])
	return strings.HasPrefix(ans, "SIP/2.0 200"), strings.SplitN(ans, "\r\n", 2)[0]
}

// holders lists the nodes that have addr on an interface.
func (d *deployment) holders(addr string) []string {
	var out []string
	for _, n := range d.order {
		if ok, err := n.host.HasAddr(addr); err == nil && ok {
			out = append(out, n.name)
		}
	}
	return out
}

// agentWait is agenttest.WaitFor.
func agentWait(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	agenttest.WaitFor(t, d, what, cond)
}
