package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// subnet is this package's loopback range.
var subnet = agenttest.NewSubnet("127.0.10")

type testNode struct {
	name string
	cfg  *config.Config
	a    *Agent
}

func (n *testNode) socket() string { return n.cfg.Socket.Path }

// testConfig builds a valid configuration for one node on its own address.
func testConfig(t *testing.T, name, site string, join []string) *config.Config {
	t.Helper()
	return agenttest.Config(t, agenttest.Node{Name: name, Site: site, IP: subnet.Next(), Join: join})
}

// startCluster starts n agents in one site that join the first.
func startCluster(t *testing.T, n int) []*testNode {
	t.Helper()
	var nodes []*testNode
	var join []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node%c", 'a'+i)
		cfg := testConfig(t, name, "site1", join)
		nd := &testNode{name: name, cfg: cfg}
		nd.start(t)
		if i == 0 {
			join = []string{cfg.Gossip.Bind}
		}
		nodes = append(nodes, nd)
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			if nd.a != nil {
				nd.a.Kill()
			}
		}
	})
	return nodes
}

func (n *testNode) start(t *testing.T) {
	t.Helper()
	a, err := New(n.cfg, Options{})
	if err != nil {
		t.Fatalf("starting agent %s: %v", n.name, err)
	}
	n.a = a
}

// connect opens a protocol session on the node's Unix socket.
func connect(t *testing.T, n *testNode) *client.Conn {
	t.Helper()
	return agenttest.Connect(t, n.socket())
}

// nodeSeen asks agent n (through its socket) about node name.
func nodeSeen(t *testing.T, c *client.Conn, name string) (protocol.Node, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	snap, err := c.Status(ctx, "")
	if err != nil {
		return protocol.Node{}, false
	}
	return snap.FindNode(name)
}

func countAlive(snap *protocol.Snapshot) int {
	n := 0
	for _, nd := range snap.Nodes() {
		if nd.Member == protocol.MemberAlive {
			n++
		}
	}
	return n
}

func TestFiveAgentsSeeEachOtherAndAFailure(t *testing.T) {
	nodes := startCluster(t, 5)
	conns := make([]*client.Conn, len(nodes))
	for i, n := range nodes {
		conns[i] = connect(t, n)
	}
	for i, c := range conns {
		agenttest.WaitFor(t, 10*time.Second, fmt.Sprintf("%s to see five alive", nodes[i].name), func() (bool, string) {
			snap, err := c.Status(context.Background(), "")
			if err != nil {
				return false, err.Error()
			}
			return countAlive(snap) == 5, fmt.Sprintf("%d alive", countAlive(snap))
		})
	}

	victim := nodes[2]
	victim.a.Kill()
	for i, c := range conns {
		if nodes[i] == victim {
			continue
		}
		agenttest.WaitFor(t, 10*time.Second, fmt.Sprintf("%s to report %s failed", nodes[i].name, victim.name), func() (bool, string) {
			n, ok := nodeSeen(t, c, victim.name)
			return ok && n.Member == protocol.MemberFailed && n.State == protocol.StateOffline, fmt.Sprintf("%+v", n.Member)
		})
	}
}

func TestStandbyReachesEveryAgentAndSurvivesRestart(t *testing.T) {
	nodes := startCluster(t, 5)
	a, c := nodes[0], nodes[2]
	conns := make([]*client.Conn, len(nodes))
	for i, n := range nodes {
		conns[i] = connect(t, n)
	}
	agenttest.WaitFor(t, 10*time.Second, "all five alive at node a", func() (bool, string) {
		snap, err := conns[0].Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		return countAlive(snap) == 5, fmt.Sprint(countAlive(snap))
	})

	res, err := conns[0].Do(context.Background(), protocol.Action{Verb: "standby", Args: []string{c.name}}, nil)
	if err != nil {
		t.Fatalf("standby %s via %s: %v", c.name, a.name, err)
	}
	if !res.OK {
		t.Fatalf("standby result not ok: %+v", res)
	}
	everyoneSees := func(want protocol.NodeState) {
		t.Helper()
		for i, cn := range conns {
			if nodes[i].a == nil {
				continue
			}
			agenttest.WaitFor(t, 10*time.Second, fmt.Sprintf("%s to show %s %s", nodes[i].name, c.name, want), func() (bool, string) {
				n, ok := nodeSeen(t, cn, c.name)
				return ok && n.State == want, string(n.State)
			})
		}
	}
	everyoneSees(protocol.StateStandby)

	// Restart C's agent: the flag must come back from its state directory.
	c.a.Close()
	c.start(t)
	conns[2] = connect(t, c)
	everyoneSees(protocol.StateStandby)
	if f := c.a.flags.get(); !f.Standby {
		t.Fatalf("flags after restart: %+v, want standby", f)
	}

	if _, err := conns[0].Do(context.Background(), protocol.Action{Verb: "online", Args: []string{c.name}}, nil); err != nil {
		t.Fatalf("online %s via %s: %v", c.name, a.name, err)
	}
	everyoneSees(protocol.StateOnline)

	// The action is in C's audit log with the result.
	b, err := os.ReadFile(filepath.Join(c.cfg.StateDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"action":"online nodec","result":"ok"`) {
		t.Fatalf("audit log lacks the online action:\n%s", b)
	}
}

func TestStatusIsForwardedAndUnreachableWhenDown(t *testing.T) {
	nodes := startCluster(t, 3)
	a, c := nodes[0], nodes[2]
	conn := connect(t, a)
	agenttest.WaitFor(t, 10*time.Second, "three alive", func() (bool, string) {
		snap, err := conn.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		return countAlive(snap) == 3, fmt.Sprint(countAlive(snap))
	})
	snap, err := conn.Status(context.Background(), c.name)
	if err != nil {
		t.Fatalf("status %s via %s: %v", c.name, a.name, err)
	}
	if snap.From != c.name {
		t.Fatalf("forwarded status answered by %q, want %q", snap.From, c.name)
	}

	c.a.Kill()
	// Whether gossip has noticed yet or not, the answer must come within
	// the peer timeout and say unreachable: never a hang.
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, err = conn.Status(context.Background(), c.name)
		if protocol.CodeOf(err) != protocol.CodeUnreachable {
			t.Fatalf("status of a stopped node: err = %v, want code unreachable", err)
		}
		if d := time.Since(start); d > a.cfg.Peer.Timeout.Duration+time.Second {
			t.Fatalf("unreachable answer took %v, more than the peer timeout", d)
		}
		agenttest.WaitFor(t, 10*time.Second, "c reported failed", func() (bool, string) {
			n, _ := nodeSeen(t, conn, c.name)
			return n.Member == protocol.MemberFailed, string(n.Member)
		})
	}
	// An action for it is refused the same way.
	_, err = conn.Do(context.Background(), protocol.Action{Verb: "standby", Args: []string{c.name}}, nil)
	if protocol.CodeOf(err) != protocol.CodeUnreachable {
		t.Fatalf("standby of a stopped node: err = %v, want unreachable", err)
	}
}

// rawSession speaks the protocol by hand, to send what a client never would.
type rawSession struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawSession {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawSession{t: t, c: c, r: bufio.NewReaderSize(c, 1<<20)}
}

func (s *rawSession) send(line string) {
	s.t.Helper()
	if _, err := s.c.Write([]byte(line + "\n")); err != nil {
		s.t.Fatalf("writing: %v", err)
	}
}

func (s *rawSession) recv() protocol.Envelope {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := s.r.ReadBytes('\n')
	if err != nil {
		s.t.Fatalf("reading reply: %v", err)
	}
	var env protocol.Envelope
	if err := json.Unmarshal(line, &env); err != nil {
		s.t.Fatalf("reply is not an envelope: %q", line)
	}
	return env
}

func (s *rawSession) expectError(code protocol.Code) protocol.Error {
	s.t.Helper()
	env := s.recv()
	if env.Type != protocol.TypeError {
		s.t.Fatalf("got %s, want error %s", env.Type, code)
	}
	var pe protocol.Error
	env.Decode(&pe)
	if pe.Code != code {
		s.t.Fatalf("got error %+v, want code %s", pe, code)
	}
	if pe.Message == "" || pe.Hint == "" {
		s.t.Fatalf("error %s lacks a message or a hint: %+v", code, pe)
	}
	return pe
}

func TestBadInputGetsTypedErrorsAndTheSessionSurvives(t *testing.T) {
	nodes := startCluster(t, 1)
	s := dialRaw(t, nodes[0].socket())

	s.send(`{"type":"status","id":1}`)
	s.expectError(protocol.CodeNotHello)

	s.send(`{"type":"hello","id":2,"body":{"versions":[1]}}`)
	if env := s.recv(); env.Type != protocol.TypeWelcome || env.ID != 2 {
		t.Fatalf("hello answered with %+v", env)
	}

	s.send(`this is not json at all`)
	s.expectError(protocol.CodeBadRequest)

	s.send(`{"type":"status","id":3,"body":{"node":42}}`)
	if pe := s.expectError(protocol.CodeBadRequest); !strings.Contains(pe.Message, "status") {
		t.Fatalf("bad body error does not name the message type: %+v", pe)
	}

	s.send(`{"type":"` + strings.Repeat("x", protocol.MaxLineBytes+10) + `"}`)
	s.expectError(protocol.CodeTooLarge)

	s.send(`{"type":"frobnicate","id":4}`)
	if env := s.recv(); env.ID != 4 || env.Type != protocol.TypeError {
		t.Fatalf("unknown type answered with %+v", env)
	}

	s.send(`{"type":"status","id":5,"body":{"node":"no-such-node"}}`)
	s.expectError(protocol.CodeUnknownNode)

	s.send(`{"type":"action","id":6,"body":{"verb":"standby","args":["no-such-node"]}}`)
	env := s.recv()
	var ref protocol.Refused
	env.Decode(&ref)
	if env.Type != protocol.TypeRefused || ref.Code != protocol.CodeUnknownNode {
		t.Fatalf("standby of unknown node answered with %s %+v", env.Type, ref)
	}

	// After all that, the same session still works.
	s.send(`{"type":"status","id":7}`)
	if env := s.recv(); env.Type != protocol.TypeSnapshot || env.ID != 7 {
		t.Fatalf("status after bad input answered with %s id %d", env.Type, env.ID)
	}

	// A wrong version is refused and the session ends; the agent lives on.
	s2 := dialRaw(t, nodes[0].socket())
	s2.send(`{"type":"hello","id":1,"body":{"versions":[99]}}`)
	pe := s2.expectError(protocol.CodeUnsupportedVersion)
	if !strings.Contains(pe.Message, "99") {
		t.Fatalf("version error does not name the client's version: %+v", pe)
	}
	connect(t, nodes[0]) // still serving
}

func TestSocketIsGroupOnly(t *testing.T) {
	nodes := startCluster(t, 1)
	fi, err := os.Stat(nodes[0].socket())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want a socket with 0660", fi.Mode())
	}
}

func TestNoKeyNoStart(t *testing.T) {
	cfg := testConfig(t, "lonely", "site1", nil)
	cfg.Gossip.Keys = nil
	_, err := New(cfg, Options{})
	if !errors.Is(err, membership.ErrNoKey) {
		t.Fatalf("start without key: err = %v, want ErrNoKey", err)
	}
	if !strings.Contains(err.Error(), "--insecure-dev") {
		t.Fatalf("error does not say how to proceed: %v", err)
	}
	a, err := New(cfg, Options{Insecure: true})
	if err != nil {
		t.Fatalf("start with --insecure-dev: %v", err)
	}
	a.Kill()
}

func TestNodeWithoutKeyCannotJoin(t *testing.T) {
	nodes := startCluster(t, 2)
	intruder := testConfig(t, "intruder", "site1", []string{nodes[0].cfg.Gossip.Bind})
	intruder.Gossip.Keys = nil
	a, err := New(intruder, Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Kill()
	if err := a.Join([]string{nodes[0].cfg.Gossip.Bind}); err == nil {
		t.Fatalf("a node without the gossip key joined")
	}
	// And the keyed members never list it.
	conn := connect(t, nodes[0])
	agenttest.WaitFor(t, 5*time.Second, "two members", func() (bool, string) {
		snap, err := conn.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		return countAlive(snap) == 2, fmt.Sprint(countAlive(snap))
	})
	if _, ok := nodeSeen(t, conn, "intruder"); ok {
		t.Fatalf("keyed agent lists the intruder")
	}
}

// TestIdleDeploymentSendsNoChanges: agents watch each other's reports, so
// a change sent without cause wakes the other side, which sends one back;
// that loop once kept idle agents at 60 % of a core. Once four agents see
// each other and follow each other's reports, a few idle seconds pass
// without a single change on any node-scope or deployment-scope watch.
func TestIdleDeploymentSendsNoChanges(t *testing.T) {
	nodes := startCluster(t, 4)
	for _, n := range nodes {
		c := connect(t, n)
		agenttest.WaitFor(t, 15*time.Second, n.name+" to see four alive and follow three reports", func() (bool, string) {
			snap, err := c.Status(context.Background(), "")
			if err != nil {
				return false, err.Error()
			}
			r := len(n.a.peers.reports())
			return countAlive(snap) == 4 && r == 3, fmt.Sprintf("%d alive, %d reports", countAlive(snap), r)
		})
	}
	// Watch every agent at both scopes, as a peer and a console would.
	type watch struct {
		what    string
		changes <-chan protocol.Change
	}
	var watches []watch
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range nodes {
		for _, scope := range []protocol.Scope{protocol.ScopeNode, protocol.ScopeDeployment} {
			_, ch, err := connect(t, n).WatchScope(ctx, scope)
			if err != nil {
				t.Fatalf("watching %s (%s): %v", n.name, scope, err)
			}
			watches = append(watches, watch{fmt.Sprintf("%s %s watch", n.name, scope), ch})
		}
	}
	// Changes still in flight from the joins settle first: wait for a
	// second in which no watch hears anything.
	agenttest.WaitFor(t, 20*time.Second, "the deployment to settle", func() (bool, string) {
		quiet := time.After(time.Second)
		for {
			for _, w := range watches {
				select {
				case ch := <-w.changes:
					return false, fmt.Sprintf("%s: change %d (%d events)", w.what, ch.Seq, len(ch.Events))
				default:
				}
			}
			select {
			case <-quiet:
				return true, ""
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	// Every agent is woken now as it would be by anything: none of them
	// may send a change for it.
	for _, n := range nodes {
		n.a.Changed()
	}
	deadline := time.After(3 * time.Second)
	counts := map[string]int{}
	for {
		for _, w := range watches {
			select {
			case <-w.changes:
				counts[w.what]++
			default:
			}
		}
		select {
		case <-deadline:
			if len(counts) > 0 {
				t.Fatalf("idle for 3 s, the watches still received changes: %v", counts)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestJoinRetriedUntilTheTargetComesUp: at a site's cold start the node
// that the others join may boot last. A node started 3 s before its join
// target keeps trying, says so in status as a risk without claiming
// quorum, and is one pool with the target once it comes up.
func TestJoinRetriedUntilTheTargetComesUp(t *testing.T) {
	seedIP := subnet.Next()
	seedCfg := agenttest.Config(t, agenttest.Node{Name: "seed", Site: "site1", IP: seedIP})
	early := &testNode{name: "early", cfg: testConfig(t, "early", "site1", []string{seedCfg.Gossip.Bind})}
	early.start(t)
	t.Cleanup(func() { early.a.Kill() })
	c := connect(t, early)

	agenttest.WaitFor(t, 10*time.Second, "the early node to show that it has not reached its peer", func() (bool, string) {
		snap, err := c.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		for _, cl := range snap.Clusters() {
			for _, r := range cl.Quorum.Risks {
				if strings.Contains(r, "has not reached any configured peer") && strings.Contains(r, seedCfg.Gossip.Bind) {
					if cl.Quorum.HasQuorum {
						return false, "the risk is shown but the cluster still claims quorum"
					}
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("clusters %+v", snap.Clusters())
	})

	time.Sleep(3 * time.Second) // the seed boots late: this is the fault, not a wait for a result
	seed := &testNode{name: "seed", cfg: seedCfg}
	seed.start(t)
	t.Cleanup(func() { seed.a.Kill() })

	agenttest.WaitFor(t, maxJoinRetry+5*time.Second, "one pool after the seed came up", func() (bool, string) {
		snap, err := c.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		for _, cl := range snap.Clusters() {
			for _, r := range cl.Quorum.Risks {
				if strings.Contains(r, "configured peer") {
					return false, "risk still shown: " + r
				}
			}
		}
		return countAlive(snap) == 2, fmt.Sprintf("%d alive", countAlive(snap))
	})
}

// TestJoinTargetNeverUp: a node whose targets never come up keeps trying
// and keeps showing the risk.
func TestJoinTargetNeverUp(t *testing.T) {
	nowhere := subnet.Next() + ":7946"
	n := &testNode{name: "lonely", cfg: testConfig(t, "lonely", "site1", []string{nowhere})}
	n.start(t)
	t.Cleanup(func() { n.a.Kill() })
	c := connect(t, n)
	agenttest.WaitFor(t, 15*time.Second, "several join attempts, the risk shown all along", func() (bool, string) {
		snap, err := c.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		shown := false
		for _, cl := range snap.Clusters() {
			for _, r := range cl.Quorum.Risks {
				shown = shown || strings.Contains(r, "has not reached any configured peer yet ("+nowhere)
			}
		}
		n.a.join.mu.Lock()
		tries := n.a.join.tries
		n.a.join.mu.Unlock()
		if !shown {
			return false, fmt.Sprintf("risk not shown after %d tries", tries)
		}
		return tries >= 3, fmt.Sprintf("%d tries", tries)
	})
}

// TestWatcherSeesEverythingAndActsOnNothing: the socket tells people who
// watch from people who act by their Unix groups (SO_PEERCRED, never what
// the client says). A member of socket.group only may read status and run
// dry runs; every action is refused as unauthorized with a hint naming the
// operators' group, and the refusal is in the audit log. A member of
// socket.operators may act.
func TestWatcherSeesEverythingAndActsOnNothing(t *testing.T) {
	watcher := agenttest.RequireUser(t, agenttest.WatchUser)
	operator := agenttest.RequireUser(t, agenttest.OperatorUser)
	dir := t.TempDir()
	agenttest.OpenTo(t, dir)
	cfg := agenttest.Config(t, agenttest.Node{Name: "nodea", Site: "site1", IP: subnet.Next(), Dir: dir,
		Socket: fmt.Sprintf("group = %q\noperators = [%q]", agenttest.WatchGroup, agenttest.OperatorGroup)})
	n := &testNode{name: "nodea", cfg: cfg}
	n.start(t)
	t.Cleanup(func() { n.a.Kill() })

	type answer struct {
		Role    protocol.Role   `json:"role"`
		Nodes   int             `json:"nodes"`
		Refused *protocol.Error `json:"refused"`
		Result  *protocol.Result
	}
	// The test binary lives in go's private build directory: give the
	// other users a copy they can run.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "helper.test")
	if err := os.WriteFile(helper, self, 0o755); err != nil {
		t.Fatal(err)
	}
	ask := func(cred *syscall.Credential, verb string, dryRun bool) answer {
		t.Helper()
		cmd := exec.Command(helper, "-test.run=^TestHelperSocketClient$")
		cmd.Env = append(os.Environ(), "HATUI_HELPER_SOCKET="+n.socket(), "HATUI_HELPER_VERB="+verb,
			fmt.Sprintf("HATUI_HELPER_DRY=%v", dryRun))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper client as uid %d: %v\n%s", cred.Uid, err, out)
		}
		var a answer
		_, line, _ := bytes.Cut(out, []byte("ANSWER "))
		line, _, _ = bytes.Cut(line, []byte("\n"))
		if err := json.Unmarshal(line, &a); err != nil {
			t.Fatalf("helper answer %q: %v", out, err)
		}
		return a
	}

	w := ask(watcher, "standby nodea", false)
	if w.Role != protocol.RoleWatcher || w.Nodes != 1 {
		t.Fatalf("watcher: role %q, saw %d nodes; want watcher seeing the node", w.Role, w.Nodes)
	}
	if w.Refused == nil || w.Refused.Code != protocol.CodeUnauthorized ||
		!strings.Contains(w.Refused.Message, agenttest.OperatorGroup) || !strings.Contains(w.Refused.Hint, "usermod -aG "+agenttest.OperatorGroup) {
		t.Fatalf("watcher's standby: %+v, want unauthorized naming %s with a usermod hint", w.Refused, agenttest.OperatorGroup)
	}
	if n.a.flags.get().Standby {
		t.Fatal("the watcher's refused standby changed the flag")
	}
	if d := ask(watcher, "standby nodea", true); d.Refused != nil && d.Refused.Code == protocol.CodeUnauthorized {
		t.Fatalf("a dry run changes nothing and is allowed to a watcher; got %+v", d.Refused)
	}
	o := ask(operator, "standby nodea", false)
	if o.Role != protocol.RoleOperator || o.Refused != nil || o.Result == nil || !o.Result.OK {
		t.Fatalf("operator's standby: role %q refused %+v result %+v", o.Role, o.Refused, o.Result)
	}
	if !n.a.flags.get().Standby {
		t.Fatal("the operator's standby did not set the flag")
	}

	log, err := os.ReadFile(filepath.Join(cfg.StateDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var refusal, done bool
	for _, line := range strings.Split(string(log), "\n") {
		refusal = refusal || (strings.Contains(line, `"user":"`+agenttest.WatchUser+`"`) && strings.Contains(line, `"result":"refused"`) && strings.Contains(line, "standby nodea"))
		done = done || (strings.Contains(line, `"user":"`+agenttest.OperatorUser+`"`) && strings.Contains(line, `"result":"ok"`))
	}
	if !refusal || !done {
		t.Fatalf("audit log lacks the watcher's refusal (%v) or the operator's action (%v):\n%s", refusal, done, log)
	}
}

// TestHelperSocketClient is not a test: the role test runs it as another
// user, in a child process, to speak to the socket as that user would.
func TestHelperSocketClient(t *testing.T) {
	sock := os.Getenv("HATUI_HELPER_SOCKET")
	if sock == "" {
		t.Skip("helper process only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.UnixDialer(sock), client.Options{Client: "test-helper", User: "someone-else"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string]any{"role": c.Welcome().Role}
	if snap, err := c.Status(ctx, ""); err == nil {
		out["nodes"] = len(snap.Nodes())
	}
	verb := strings.Fields(os.Getenv("HATUI_HELPER_VERB"))
	res, err := c.Do(ctx, protocol.Action{Verb: verb[0], Args: verb[1:], DryRun: os.Getenv("HATUI_HELPER_DRY") == "true"}, nil)
	if err != nil {
		out["refused"] = protocol.AsError(err)
	} else {
		out["Result"] = res
	}
	b, _ := json.Marshal(out)
	fmt.Printf("\nANSWER %s\n", b)
}

// TestHistoryHoldsPeersEntriesOnceAcrossRestarts: an action carried out by
// another node's agent is in this agent's history (relayed from the peer's
// report), with the user; a restart of this agent neither loses it nor
// records the peer's entries a second time.
func TestHistoryHoldsPeersEntriesOnceAcrossRestarts(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ca := connect(t, a)
	agenttest.WaitFor(t, 10*time.Second, "both alive and followed", func() (bool, string) {
		snap, err := ca.Status(context.Background(), "")
		if err != nil {
			return false, err.Error()
		}
		return countAlive(snap) == 2 && len(a.a.peers.reports()) == 1, fmt.Sprintf("%d alive", countAlive(snap))
	})
	if _, err := ca.Do(context.Background(), protocol.Action{Verb: "standby", Args: []string{b.name}}, nil); err != nil {
		t.Fatal(err)
	}
	auditOf := func(h *protocol.History) []protocol.Event {
		var out []protocol.Event
		for _, e := range h.Events {
			if e.Kind == "audit" && e.Node == b.name {
				out = append(out, e)
			}
		}
		return out
	}
	agenttest.WaitFor(t, 10*time.Second, b.name+"'s audit entry in "+a.name+"'s history", func() (bool, string) {
		h, err := ca.History(context.Background(), protocol.HistoryRequest{})
		if err != nil {
			return false, err.Error()
		}
		got := auditOf(h)
		return len(got) == 1 && got[0].User != "" && strings.Contains(got[0].Message, "standby "+b.name), fmt.Sprintf("%+v", got)
	})

	a.a.Close()
	a.start(t)
	ca = connect(t, a)
	agenttest.WaitFor(t, 10*time.Second, a.name+" to follow "+b.name+" again", func() (bool, string) {
		return len(a.a.peers.reports()) == 1, "not yet"
	})
	h, err := ca.History(context.Background(), protocol.HistoryRequest{Node: b.name})
	if err != nil {
		t.Fatal(err)
	}
	if got := auditOf(h); len(got) != 1 {
		t.Fatalf("after a restart %s's history holds %d copies of %s's audit entry, want 1: %+v", a.name, len(got), b.name, got)
	}
}
