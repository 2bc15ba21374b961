//go:build linux

package netns_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/netlab"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

const (
	fenceDummy = "/usr/sbin/fence_dummy"
	group      = "pbx"
	vipAddr    = "10.81.1.100"
	vipCIDR    = vipAddr + "/24"
	sipPort    = "5060"
)

// Timings. Agents fail a silent peer after 1 s; without fencing a standby
// starts the group TakeoverDelay after its voters last heard the old
// holder: stop budget (vip 0.5 s + sip 1.5 s) + deadtime − keepalive + 2
// keepalives = 3.1 s.
const testTiming = `
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

// takeoverDelay is the takeover delay testTiming gives (see above).
const takeoverDelay = 3100 * time.Millisecond

// opts shape a test cluster.
type opts struct {
	witness bool   // a third voter, the witness
	serial  bool   // a serial cable (socat pty pair) between n1 and n2
	fence   string // "" none, "ok" fence_dummy on a status file, "fail" fence_dummy type=fail
	// timing replaces testTiming.
	timing string
	// group adds lines to [failover] (max_restarts, ...).
	group string
	// checks replaces the default SIP check (TOML [[failover.check]] tables).
	checks *string
	// vipStop and sipStop set the resources' stop timeouts ("" the
	// harness's, "default" none: the type's default).
	vipStop, sipStop string
	// watchdog is "" for a file standing in for /dev/watchdog on every
	// node that can hold the group (none with fencing or risk), "none"
	// for none. The harness resets a node whose agent stops feeding it
	// (see watchWatchdogs).
	watchdog string
	// wdTimeout is the watchdog_timeout written ("" leaves the agent's
	// default), wdReset when the harness resets a node that stopped
	// feeding it (the timeout the agent arms).
	wdTimeout string
	wdReset   time.Duration
	// risk sets allow_agent_crash_risk.
	risk bool
	// sample is the VIP sampler's interval (default 50 ms).
	sample time.Duration
	// deferStart leaves starting the agents to the test (startAll).
	deferStart bool
	// warm makes the "sip" resource a warm kamailio (testdata/
	// kamailio-resource.sh) running on both nodes, its default check
	// asking the node's own address.
	warm bool
	// firstResources are [[failover.resource]] tables put before the
	// VIP (a database); nodeLines returns more lines for a node's file.
	firstResources string
	nodeLines      func(n *node) string
}

// node is one agent in its namespace.
type node struct {
	c       *tcluster
	name    string
	host    *netlab.Host
	ip      string
	witness bool
	dir     string // config, state, socket, sipp's files, power file
	cfgPath string
	socket  string
	power   string // fence_dummy's status file standing for the node's power
	wd      string // the file standing for /dev/watchdog, "" without one

	mu      sync.Mutex
	proc    *netlab.Proc
	conn    *client.Conn
	dead    bool      // powered off or crashed by the test
	resetAt time.Time // when the harness's watchdog last reset it
}

// tcluster is a lab with n1, n2, an optional witness and a client.
type tcluster struct {
	t      testing.TB
	o      opts
	lab    *netlab.Lab
	net    *netlab.Net
	client *netlab.Host
	key    string
	nodes  []*node
	socat  *netlab.Proc
	tty    [2]string

	sampler struct {
		stop       chan struct{}
		done       chan struct{}
		mu         sync.Mutex
		violations []string
		samples    atomic.Int64
	}
}

func newCluster(t testing.TB, o opts) *tcluster {
	t.Helper()
	need(t)
	if o.timing == "" {
		o.timing = testTiming
	}
	if o.vipStop == "" {
		o.vipStop = "500ms"
	}
	if o.sipStop == "" {
		o.sipStop = "1500ms"
	}
	if o.watchdog == "" && (o.fence != "" || o.risk) {
		o.watchdog = "none"
	}
	if o.watchdog != "none" && o.wdReset == 0 {
		o.wdTimeout, o.wdReset = "1s", time.Second
	}
	if o.sample == 0 {
		o.sample = 50 * time.Millisecond
	}
	if o.warm {
		needKamailio(t)
	}
	k := make([]byte, 32)
	rand.Read(k)
	c := &tcluster{t: t, o: o, lab: netlab.New(t), key: base64.StdEncoding.EncodeToString(k)}
	c.net = c.lab.Net("lan", "10.81.1.0/24")
	names := []string{"n1", "n2"}
	if o.witness {
		names = append(names, "wit")
	}
	dir := t.TempDir()
	for i, name := range names {
		n := &node{c: c, name: name, witness: name == "wit", dir: filepath.Join(dir, name)}
		n.host = c.lab.Host(name)
		n.host.Attach(c.net, fmt.Sprintf("10.81.1.%d/24", 11+i))
		n.ip = n.host.IP(c.net)
		n.cfgPath = filepath.Join(n.dir, "ha-agent.toml")
		n.socket = agenttest.Socket(n.dir)
		n.power = filepath.Join(n.dir, "power")
		if o.watchdog != "none" && !n.witness {
			n.wd = filepath.Join(n.dir, "watchdog")
		}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.power, []byte("on"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	c.client = c.lab.Host("client")
	c.client.Attach(c.net, "10.81.1.50/24")
	if o.serial {
		c.startSocat()
	}
	for _, n := range c.nodes {
		c.writeConfig(n)
	}
	c.startSampler()
	t.Cleanup(c.stopSampler)
	if o.fence != "" {
		c.watchPower()
	}
	if o.watchdog != "none" {
		c.watchWatchdogs()
	}
	if !o.deferStart {
		c.startAll()
	}
	return c
}

// startAll starts every node's agent.
func (c *tcluster) startAll() {
	for _, n := range c.nodes {
		n.start()
	}
}

// startSocat joins two ptys, the serial ports of n1 and n2, with socat:
// a null-modem cable.
func (c *tcluster) startSocat() {
	dir := c.t.TempDir()
	c.tty = [2]string{filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")}
	cmd := c.client.Command("socat", "-d", "-d", "pty,raw,echo=0,link="+c.tty[0], "pty,raw,echo=0,link="+c.tty[1])
	c.socat = c.client.Start(cmd) // any namespace: ptys are files
	waitFor(c.t, 10*time.Second, "socat's ptys", func() (bool, string) {
		for _, p := range c.tty {
			if _, err := os.Stat(p); err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})
}

// writeConfig writes n's ha-agent.toml and, for a node that can hold the
// group, its sipp resource script.
func (c *tcluster) writeConfig(n *node) {
	c.t.Helper()
	var join []string
	var voters strings.Builder
	for _, o := range c.nodes {
		if o != n {
			join = append(join, o.ip+":7946")
		}
		fmt.Fprintf(&voters, "[[failover.voter]]\nname = %q\naddr = \"%s:7947\"\nwitness = %v\n", o.name, o.ip, o.witness)
	}
	var b strings.Builder
	var fo strings.Builder
	fmt.Fprintf(&fo, "[failover]\nenabled = true\ngroup = %q\nactivate = true\n", group)
	if c.o.risk {
		fo.WriteString("allow_agent_crash_risk = true\n")
	}
	if n.wd != "" {
		fmt.Fprintf(&fo, "watchdog = %q\n", n.wd)
		if c.o.wdTimeout != "" {
			fmt.Fprintf(&fo, "watchdog_timeout = %q\n", c.o.wdTimeout)
		}
	}
	b.WriteString(agenttest.Render(agenttest.Node{Deployment: "netns", Name: n.name, Site: "a", Cluster: "ca", Dir: n.dir,
		IP: n.ip, Key: c.key, Join: join,
		Extra: fmt.Sprintf("%s%s\n%s%s", fo.String(), c.o.group, voters.String(), c.o.timing)}))
	if c.o.serial && !n.witness {
		i, peer := 0, "n2"
		if n.name == "n2" {
			i, peer = 1, "n1"
		}
		fmt.Fprintf(&b, "[[failover.path]]\nkind = \"serial\"\ndevice = %q\nbaud = 115200\npeer = %q\n", c.tty[i], peer)
	}
	if !n.witness {
		script := c.script(n)
		b.WriteString(c.o.firstResources)
		fmt.Fprintf(&b, `[[failover.resource]]
name = "vip"
type = "vip"
%sparams = { ip = %q, interface = "eth0", arp_count = "2", arp_interval = "50ms" }
[[failover.resource]]
name = "sip"
type = "exec"
start_timeout = "10s"
warm = %v
%sparams = { path = %q }
`, stopTimeout(c.o.vipStop), vipCIDR, c.o.warm, stopTimeout(c.o.sipStop), script)
		switch {
		case c.o.checks != nil:
			b.WriteString(*c.o.checks)
		case c.o.warm:
			// A warm PBX's check asks this node's own instance.
			b.WriteString(sipCheckAt("sip-options", "major", "1s", "800ms", 3, n.ip+":"+sipPort))
		default:
			b.WriteString(sipCheck("sip-options", "major", "1s", "800ms", 3))
		}
		if c.o.fence != "" {
			// Each node drives the power switch of the other: n2 can
			// fence n1 and vice versa. fence_dummy takes no plug, so the
			// driver's one outlet is "main".
			other := c.nodes[0]
			if other == n {
				other = c.nodes[1]
			}
			opt := fmt.Sprintf("agent = %q, status_file = %q, timeout = \"20s\"", fenceDummy, other.power)
			if c.o.fence == "fail" {
				opt = fmt.Sprintf("agent = %q, type = \"fail\", power_timeout = \"1\", timeout = \"20s\"", fenceDummy)
			}
			fmt.Fprintf(&b, "[[switch]]\nname = \"pdu-%s\"\nkind = \"power\"\ndriver = \"fence\"\noptions = { %s }\noutlets = { main = %q }\n", other.name, opt, other.name)
		}
	}
	if c.o.nodeLines != nil {
		b.WriteString(c.o.nodeLines(n))
	}
	if err := os.WriteFile(n.cfgPath, []byte(b.String()), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// stopTimeout is a resource's stop_timeout line; none for "default".
func stopTimeout(v string) string {
	if v == "default" {
		return ""
	}
	return fmt.Sprintf("stop_timeout = %q\n", v)
}

// sipCheck is a [[failover.check]] asking the VIP with SIP OPTIONS.
func sipCheck(name, class, interval, timeout string, fall int) string {
	return sipCheckAt(name, class, interval, timeout, fall, vipAddr+":"+sipPort)
}

// sipCheckAt is sipCheck asking address.
func sipCheckAt(name, class, interval, timeout string, fall int, address string) string {
	return fmt.Sprintf(`[[failover.check]]
name = %q
kind = "sip"
resource = "sip"
class = %q
interval = %q
timeout = %q
rise = 1
fall = %d
params = { address = %q, accept = "200" }
`, name, class, interval, timeout, fall, address)
}

// script writes n's sipp resource script from testdata (kamailio's and
// its configuration with opts.warm).
func (c *tcluster) script(n *node) string {
	c.t.Helper()
	name := "sipp-resource.sh"
	if c.o.warm {
		name = "kamailio-resource.sh"
		cfg, err := os.ReadFile("testdata/kamailio.cfg")
		if err != nil {
			c.t.Fatal(err)
		}
		cfg = []byte(strings.NewReplacer("@VIP@", vipAddr, "@NODEIP@", n.ip).Replace(string(cfg)))
		if err := os.WriteFile(filepath.Join(n.dir, "kamailio.cfg"), cfg, 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	tmpl, err := os.ReadFile("testdata/" + name)
	if err != nil {
		c.t.Fatal(err)
	}
	scenario, err := filepath.Abs("testdata/uas.xml")
	if err != nil {
		c.t.Fatal(err)
	}
	body := strings.NewReplacer("@DIR@", n.dir, "@VIP@", vipAddr, "@NODEIP@", n.ip, "@SCENARIO@", scenario).Replace(string(tmpl))
	p := filepath.Join(n.dir, "sipp-resource.sh")
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// start runs n's agent in its namespace and connects to its socket.
func (n *node) start() {
	t := n.c.t
	t.Helper()
	os.Remove(n.socket)
	if n.wd != "" {
		// A new boot of the watchdog: the agent writes from the start of
		// the file, so kicks and a disarming 'V' are read in order.
		if err := os.WriteFile(n.wd, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := n.host.Start(n.host.Command(agentBin, "--config", n.cfgPath))
	waitFor(t, 20*time.Second, n.name+"'s socket", func() (bool, string) {
		if p.Exited() {
			t.Fatalf("%s's agent exited at start:\n%s", n.name, p.Log())
		}
		_, err := os.Stat(n.socket)
		return err == nil, fmt.Sprint(err)
	})
	// The socket file appears at bind, a moment before the agent
	// listens: a connection refused then is retried.
	var conn *client.Conn
	waitFor(t, 10*time.Second, "a session with "+n.name, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		conn, err = client.Connect(ctx, client.UnixDialer(n.socket), client.Options{Client: "netns-test"})
		return err == nil, fmt.Sprint(err)
	})
	t.Cleanup(func() { conn.Close() })
	n.mu.Lock()
	n.proc, n.conn, n.dead = p, conn, false
	n.mu.Unlock()
}

// crash is a dead machine: the agent killed (SIGKILL to its group), its
// sipp killed, its link down. It returns when all three are done.
func (n *node) crash() {
	n.mu.Lock()
	p := n.proc
	n.dead = true
	n.mu.Unlock()
	p.Kill()
	n.killSipp(syscall.SIGKILL)
	n.host.LinkDown(n.c.net)
}

// revive boots a crashed node again: its addresses are gone (as after a
// reboot), the link is up, the agent starts with its old state dir.
func (n *node) revive() {
	t := n.c.t
	t.Helper()
	// A reboot forgets the VIP; take it away while the link is still
	// down, so it is never on an up interface here.
	if out, err := exec.Command("ip", "-n", n.host.NS(), "addr", "del", vipCIDR, "dev", "eth0").CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot assign") {
		t.Fatalf("removing the VIP from crashed %s: %v: %s", n.name, err, out)
	}
	os.Remove(filepath.Join(n.dir, "sipp.pid"))
	os.WriteFile(n.power, []byte("on"), 0o644)
	n.host.LinkUp(n.c.net)
	n.start()
}

// killAgent is a crash of n's agent alone (kill -9 of its process
// group): the node, its link, its VIP and its sipp stay up, as after an
// agent bug, the OOM killer or a bad upgrade.
func (n *node) killAgent() {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	p.Kill()
}

// watchWatchdogs makes the files standing for /dev/watchdog act as
// watchdogs: a node whose agent fed its file and then stopped for the
// watchdog timeout without disarming it ('V') is reset within 20 ms (its
// sipp killed, its link down, as a node that reboots), as softdog would.
func (c *tcluster) watchWatchdogs() {
	stop, done := make(chan struct{}), make(chan struct{})
	type seen struct {
		size int64
		mod  time.Time
		at   time.Time
	}
	last := map[*node]seen{}
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			now := time.Now()
			for _, n := range c.nodes {
				if n.wd == "" || n.isDead() {
					delete(last, n)
					continue
				}
				b, err := os.ReadFile(n.wd)
				fi, serr := os.Stat(n.wd)
				if err != nil || serr != nil || len(b) == 0 || b[len(b)-1] == 'V' {
					delete(last, n) // not armed, or disarmed
					continue
				}
				s, ok := last[n]
				if !ok || fi.Size() != s.size || !fi.ModTime().Equal(s.mod) {
					last[n] = seen{size: fi.Size(), mod: fi.ModTime(), at: now}
					continue
				}
				if now.Sub(s.at) >= c.o.wdReset {
					delete(last, n)
					n.reset(now.Sub(s.at))
				}
			}
		}
	}()
	c.t.Cleanup(func() { close(stop); <-done })
}

// reset is the watchdog resetting n: whatever still runs there dies and
// its link goes down (ip(8) here: netlab's LinkDown may end the test, and
// this runs on the watchdog's goroutine).
func (n *node) reset(silent time.Duration) {
	n.mu.Lock()
	p := n.proc
	n.dead = true
	n.resetAt = time.Now()
	n.mu.Unlock()
	p.Kill()
	n.killSipp(syscall.SIGKILL)
	if out, err := exec.Command("ip", "-n", n.host.NS(), "link", "set", "dev", "eth0", "down").CombinedOutput(); err != nil {
		n.c.t.Errorf("watchdog reset of %s: link down: %v: %s", n.name, err, out)
	}
	n.c.t.Logf("%s the watchdog reset %s (not fed for %v)", stamp(time.Now()), n.name, silent.Round(time.Millisecond))
}

// lastReset returns when the watchdog last reset n (zero: never).
func (n *node) lastReset() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.resetAt
}

// sippPid returns the pid of n's sipp, 0 when none runs.
func (n *node) sippPid() int {
	b, err := os.ReadFile(filepath.Join(n.dir, "sipp.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// killSipp sends sig to n's sipp (or warm kamailio), if it runs: to its
// process group, which the resource script made its own with setsid, so
// that kamailio's children go too.
func (n *node) killSipp(sig syscall.Signal) int {
	pid := n.sippPid()
	if pid > 0 {
		if syscall.Kill(-pid, sig) != nil {
			syscall.Kill(pid, sig)
		}
	}
	return pid
}

func (n *node) isDead() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dead
}

func (n *node) client() *client.Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conn
}

// status asks n's own agent for its own state (node scope: no
// forwarding, so it answers even when n is cut off).
func (n *node) status() (*protocol.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.client().StatusRequest(ctx, protocol.StatusRequest{Node: n.name, Scope: protocol.ScopeNode})
}

// group returns the group and the cluster as n's agent reports them.
func (n *node) group() (protocol.Group, protocol.Cluster, error) {
	snap, err := n.status()
	if err != nil {
		return protocol.Group{}, protocol.Cluster{}, err
	}
	for _, s := range snap.Sites {
		for _, cl := range s.Clusters {
			for _, g := range cl.Groups {
				if g.Name == group {
					return g, cl, nil
				}
			}
		}
	}
	return protocol.Group{}, protocol.Cluster{}, fmt.Errorf("%s reports no group %s", n.name, group)
}

// events returns n's own events whose message contains substr.
func (n *node) events(substr string) []protocol.Event {
	snap, err := n.status()
	if err != nil {
		return nil
	}
	var out []protocol.Event
	for _, e := range snap.Events {
		if e.Node == n.name && strings.Contains(e.Message, substr) {
			out = append(out, e)
		}
	}
	return out
}

// do runs a verb through n's agent.
func (n *node) do(verb string, args ...string) (protocol.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return n.client().Do(ctx, protocol.Action{Verb: verb, Args: args}, nil)
}

// waitStarted waits until the group runs on a node other than not (""
// for any), as the live nodes' agents report, with sipp answering there,
// and returns that node.
func (c *tcluster) waitStarted(d time.Duration, not string) *node {
	c.t.Helper()
	var holder *node
	waitFor(c.t, d, "the group started elsewhere than "+not, func() (bool, string) {
		var seen []string
		for _, n := range c.nodes {
			if n.witness || n.isDead() || n.name == not {
				continue
			}
			g, _, err := n.group()
			if err != nil {
				seen = append(seen, err.Error())
				continue
			}
			seen = append(seen, fmt.Sprintf("%s: %s on %q (%s)", n.name, g.State, g.Active, g.Reason))
			if g.State == "started" && g.Active == n.name && n.sippPid() > 0 {
				holder = n
				return true, ""
			}
		}
		return false, strings.Join(seen, "; ")
	})
	return holder
}

// startSampler checks every o.sample (50 ms unless set) that the VIP is
// not on an up interface of both n1 and n2.
func (c *tcluster) startSampler() {
	s := &c.sampler
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	hosts := []*netlab.Host{c.nodes[0].host, c.nodes[1].host}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(c.o.sample)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			var on []string
			for _, h := range hosts {
				if up, err := vipOnUpInterface(h); err == nil && up {
					on = append(on, h.Name())
				}
			}
			s.samples.Add(1)
			if len(on) > 1 {
				s.mu.Lock()
				s.violations = append(s.violations, time.Now().Format("15:04:05.000")+" VIP on "+strings.Join(on, " and "))
				s.mu.Unlock()
			}
		}
	}()
}

// stopSampler ends the sampler and fails the test on any violation.
func (c *tcluster) stopSampler() {
	s := &c.sampler
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) > 0 {
		c.t.Errorf("the VIP was on an up interface of both nodes in %d of %d samples: %s", len(s.violations), s.samples.Load(), strings.Join(s.violations[:min(10, len(s.violations))], "; "))
	} else {
		c.t.Logf("sampler: %d samples, the VIP was never on both nodes", s.samples.Load())
	}
}

// vipOnUpInterface reports whether the VIP is configured on an interface
// of h that is up. It asks the kernel over netlink from inside h: no
// fork, cheap enough for every 50 ms.
func vipOnUpInterface(h *netlab.Host) (bool, error) {
	var found bool
	err := h.Do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 {
				continue
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.String() == vipAddr {
					found = true
				}
			}
		}
		return nil
	})
	return found, err
}

// watchPower makes fence_dummy's status files act as power switches: a
// node whose file says "off" loses power (agent and sipp killed, link
// down) within 20 ms.
func (c *tcluster) watchPower() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, n := range c.nodes {
				if b, _ := os.ReadFile(n.power); strings.TrimSpace(string(b)) == "off" && !n.isDead() {
					n.powerOff()
				}
			}
		}
	}()
	c.t.Cleanup(func() { close(stop); <-done })
}

// powerOff is crash for another goroutine than the test's: netlab's
// LinkDown may end the test, so the link goes down with ip(8) here.
func (n *node) powerOff() {
	n.mu.Lock()
	p := n.proc
	n.dead = true
	n.mu.Unlock()
	p.Kill()
	n.killSipp(syscall.SIGKILL)
	if out, err := exec.Command("ip", "-n", n.host.NS(), "link", "set", "dev", "eth0", "down").CombinedOutput(); err != nil {
		n.c.t.Errorf("powering %s off: link down: %v: %s", n.name, err, out)
	}
	n.c.t.Logf("%s powered off %s (its fence_dummy status file says off)", time.Now().Format("15:04:05.000"), n.name)
}

// probe is one SIP OPTIONS request from the client and its answer.
type probe struct {
	sent, answered time.Time // answered is zero when no 200 came
}

// prober sends SIP OPTIONS to the VIP from the client's namespace every
// interval and records which were answered with 200.
type prober struct {
	conn  net.PacketConn
	to    *net.UDPAddr
	local string
	mu    sync.Mutex
	sent  []probe
	stop  chan struct{}
	wg    sync.WaitGroup
}

func (c *tcluster) startProber(interval time.Duration) *prober {
	c.t.Helper()
	p := &prober{stop: make(chan struct{}), to: &net.UDPAddr{IP: net.ParseIP(vipAddr), Port: 5060}}
	if err := c.client.Do(func() (err error) {
		p.conn, err = net.ListenPacket("udp4", c.client.IP(c.net)+":0")
		return err
	}); err != nil {
		c.t.Fatalf("opening the client's UDP socket: %v", err)
	}
	p.local = p.conn.LocalAddr().String()
	p.wg.Add(2)
	go p.send(interval)
	go p.receive()
	c.t.Cleanup(p.close)
	return p
}

func (p *prober) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.conn.Close()
	p.wg.Wait()
}

func (p *prober) send(interval time.Duration) {
	defer p.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		seq := len(p.sent)
		p.sent = append(p.sent, probe{sent: time.Now()})
		p.mu.Unlock()
		callID := fmt.Sprintf("probe-%d@10.81.1.50", seq)
		req := health.OptionsRequest("sip:ping@"+vipAddr+":5060", "client", p.local, vipAddr+":5060", callID, fmt.Sprintf("z9hG4bKp%d", seq), "t"+strconv.Itoa(seq))
		p.conn.WriteTo(req, p.to)
	}
}

func (p *prober) receive() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		now := time.Now()
		r, err := health.ParseSIPResponse(buf[:n])
		if err != nil || r.Code != 200 {
			continue
		}
		id, ok := strings.CutPrefix(r.CallID, "probe-")
		if !ok {
			continue
		}
		seq, err := strconv.Atoi(strings.TrimSuffix(id, "@10.81.1.50"))
		if err != nil {
			continue
		}
		p.mu.Lock()
		if seq < len(p.sent) && p.sent[seq].answered.IsZero() {
			p.sent[seq].answered = now
		}
		p.mu.Unlock()
	}
}

// firstAnswerSince returns when the first request sent at or after t was
// answered, and whether one was.
func (p *prober) firstAnswerSince(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for _, s := range p.sent {
		if !s.sent.Before(t) && !s.answered.IsZero() && (first.IsZero() || s.answered.Before(first)) {
			first = s.answered
		}
	}
	return first, !first.IsZero()
}

// longestGap returns the longest time between two consecutive answers
// received within [from, to] (plus the answers just around it): the
// longest stretch a client could not reach the service.
func (p *prober) longestGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	var ans []time.Time
	for _, s := range p.sent {
		if !s.answered.IsZero() {
			ans = append(ans, s.answered)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(ans, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(ans); i++ {
		if ans[i].Before(from) || ans[i-1].After(to) {
			continue
		}
		gap = max(gap, ans[i].Sub(ans[i-1]))
	}
	return gap
}

// waitAnswered waits until a request sent after since is answered.
func (c *tcluster) waitAnswered(p *prober, d time.Duration, since time.Time) time.Time {
	c.t.Helper()
	var at time.Time
	waitFor(c.t, d, "a SIP 200 from the VIP at the client", func() (bool, string) {
		var ok bool
		at, ok = p.firstAnswerSince(since)
		return ok, "no answer"
	})
	return at
}

// waitFor polls cond every 20 ms until it holds, failing t after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last saw: %s", d, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
