package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/console/session"
	"github.com/hatui/hatui/console/sshdial/sshtest"
	"github.com/hatui/hatui/demo"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// hatuiBin is the console binary, built once for the end-to-end tests.
var hatuiBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hatui-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hatuiBin = filepath.Join(dir, "hatui")
	if out, err := exec.Command("go", "build", "-o", hatuiBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building hatui: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startDemo(t *testing.T) *demo.Deployment {
	t.Helper()
	d, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := d.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// runHatui runs the binary and returns stdout, stderr and the exit code.
func runHatui(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hatuiBin, args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "HOME="+t.TempDir())
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running hatui: %v", err)
	}
	return out.String(), errb.String(), code
}

func TestExecStatusJSONThroughRealSSH(t *testing.T) {
	sshtest.Require(t)
	d := startDemo(t)
	srv := sshtest.Start(t, sshtest.Config{})
	known := sshtest.KnownHostsFile(t, false, srv)
	target := fmt.Sprintf("%s@%s", srv.User, srv.Addr)
	common := []string{"-i", srv.UserKeyPath, "--ssh-config", os.DevNull, "--socket", d.SocketPath("pbx-a1")}

	out, errs, code := runHatui(t, append(common, "--known-hosts", known, "--exec", "status", "--json", target)...)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	var snap protocol.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("output is not a snapshot: %v\n%s", err, out)
	}
	if snap.From != "pbx-a1" || len(snap.Nodes()) != len(demo.Layout) {
		t.Fatalf("snapshot from %q with %d nodes, want pbx-a1 with %d", snap.From, len(snap.Nodes()), len(demo.Layout))
	}
	for _, l := range demo.Layout {
		if n, ok := snap.FindNode(l.Node); !ok || n.Member != protocol.MemberAlive {
			t.Errorf("node %s missing or not alive: %+v", l.Node, n)
		}
	}

	// An action through the same path is carried out and forwarded.
	out, errs, code = runHatui(t, append(common, "--known-hosts", known, "--exec", "standby pbx-b1", target)...)
	if code != 0 || !strings.Contains(out, "pbx-b1 is in standby") {
		t.Fatalf("standby through ssh: exit %d, out %q, err %q", code, out, errs)
	}

	// A changed host key is refused and says what to check.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewSignerFromKey(other)
	changed := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(changed, []byte(fmt.Sprintf("%s %s", srv.KnownHostsAddress(), ssh.MarshalAuthorizedKey(otherPub.PublicKey()))), 0o600)
	_, errs, code = runHatui(t, append(common, "--known-hosts", changed, "--exec", "status", "--json", target)...)
	if code != 3 || !strings.Contains(strings.ToLower(errs), "changed") {
		t.Fatalf("changed host key: exit %d, stderr %q; want exit 3 naming the changed key", code, errs)
	}
	if !strings.Contains(errs, changed) {
		t.Errorf("changed-key message does not name the known_hosts file to check: %q", errs)
	}

	// An unknown host under --exec is refused: nobody can be asked.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o600)
	out, errs, code = runHatui(t, append(common, "--known-hosts", empty, "--exec", "status", "--json", target)...)
	if code != 3 || !strings.Contains(errs, "not in known_hosts") {
		t.Fatalf("unknown host: exit %d, stderr %q; want exit 3 saying the host is unknown", code, errs)
	}
	if out != "" {
		t.Fatalf("unknown host printed a status: %q", out)
	}
	if b, _ := os.ReadFile(empty); len(b) != 0 {
		t.Fatalf("an unknown host key was written under --exec: %q", b)
	}
}

func TestExecExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
		not  string
	}{
		{"usage", []string{"--demo", "--exec", "standby"}, 2, "needs", ""},
		{"unknown verb", []string{"--demo", "--exec", "frobnicate"}, 2, "unknown verb", ""},
		{"unknown node", []string{"--demo", "--exec", "standby pbx-zz"}, 2, "no node named", ""},
		{"irreversible without --yes", []string{"--demo", "--exec", "fence pbx-a2"}, 2, "--yes", ""},
		{"unreachable", []string{"--socket", "/nonexistent/ha-agent.sock", "--exec", "status"}, 3, "connecting to agent", ""},
		{"read-only", []string{"--demo", "--read-only", "--exec", "standby pbx-a2"}, 2, "read-only", ""},
		{"success", []string{"--demo", "--exec", "online pbx-a2"}, 0, "", ""},
		// Said for what it is, not as a verb the agent does not know.
		{"reseed a node without a database", []string{"--demo", "--exec", "reseed pbx-b1", "--yes"}, 2, "pbx-b1 runs no database", "does not know"},
		// Nothing to confirm about a node that does not exist.
		{"reseed an unknown node", []string{"--demo", "--exec", "reseed nosuch"}, 2, `no node named "nosuch"`, "--yes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runHatui(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.want) || (tt.not != "" && strings.Contains(out+errs, tt.not)) {
				t.Fatalf("exit %d (want %d), output %q %q (want %q, not %q)", code, tt.code, out, errs, tt.want, tt.not)
			}
		})
	}
}

func TestExecJSONErrorShape(t *testing.T) {
	out, _, code := runHatui(t, "--demo", "--exec", "standby pbx-zz", "--json")
	var got struct {
		OK    bool            `json:"ok"`
		Error *protocol.Error `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 2 {
		t.Fatalf("exit %d, output %q: %v", code, out, err)
	}
	if got.OK || got.Error == nil || got.Error.Code != protocol.CodeUnknownNode || got.Error.Hint == "" {
		t.Fatalf("JSON error = %+v", got)
	}
}

// TestWatcherThroughRealSSH: through the node's own sshd, the socket sees
// the SSH login user (sshd opens it as that user), so a member of the
// watch group only reads status but every action is refused as
// unauthorized (exit 2), and the refusal is audited; an operator acts.
func TestWatcherThroughRealSSH(t *testing.T) {
	sshtest.Require(t)
	agenttest.RequireUser(t, agenttest.WatchUser)
	agenttest.RequireUser(t, agenttest.OperatorUser)
	dir := t.TempDir()
	agenttest.OpenTo(t, dir)
	cfg := agenttest.Config(t, agenttest.Node{Name: "nodea", IP: "127.0.31.1", Dir: dir,
		Socket: fmt.Sprintf("group = %q\noperators = [%q]", agenttest.WatchGroup, agenttest.OperatorGroup)})
	a, err := agent.New(cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Kill() })

	srv := sshtest.Start(t, sshtest.Config{})
	// sshd reads authorized_keys as the login user.
	agenttest.OpenTo(t, srv.Dir)
	if err := os.Chmod(filepath.Join(srv.Dir, "authorized_keys"), 0o644); err != nil {
		t.Fatal(err)
	}
	known := sshtest.KnownHostsFile(t, false, srv)
	common := []string{"-i", srv.UserKeyPath, "--ssh-config", os.DevNull, "--socket", cfg.Socket.Path, "--known-hosts", known}
	as := func(user string, args ...string) (string, string, int) {
		t.Helper()
		return runHatui(t, append(append(common, args...), user+"@"+srv.Addr)...)
	}

	out, errs, code := as(agenttest.WatchUser, "--exec", "status", "--json")
	if code != 0 || !strings.Contains(out, `"nodea"`) {
		t.Fatalf("watcher's status through sshd: exit %d, out %q, err %q", code, out, errs)
	}
	out, errs, code = as(agenttest.WatchUser, "--exec", "standby nodea")
	if code != 2 || !strings.Contains(out+errs, "may watch but not act") || !strings.Contains(out+errs, agenttest.OperatorGroup) {
		t.Fatalf("watcher's standby through sshd: exit %d, out %q, err %q; want exit 2, unauthorized naming %s", code, out, errs, agenttest.OperatorGroup)
	}
	out, errs, code = as(agenttest.OperatorUser, "--exec", "standby nodea")
	if code != 0 || !strings.Contains(out, "nodea is in standby") {
		t.Fatalf("operator's standby through sshd: exit %d, out %q, err %q", code, out, errs)
	}
	log, err := os.ReadFile(filepath.Join(cfg.StateDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"user":"`+agenttest.WatchUser+`"`) || !strings.Contains(string(log), `"result":"refused"`) {
		t.Fatalf("the watcher's refusal is not in the audit log:\n%s", log)
	}
}

// TestExecHistoryAfterRestart: the actions just taken come back from
// `--exec history`, with the user who took them, after the agent
// restarted.
func TestExecHistoryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := agenttest.Config(t, agenttest.Node{Name: "nodea", IP: "127.0.31.2", Dir: dir})
	a, err := agent.New(cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sock := []string{"--socket", cfg.Socket.Path}
	if out, errs, code := runHatui(t, append(sock, "--exec", "standby nodea")...); code != 0 {
		t.Fatalf("standby: exit %d, out %q, err %q", code, out, errs)
	}
	if out, errs, code := runHatui(t, append(sock, "--exec", "online nodea")...); code != 0 {
		t.Fatalf("online: exit %d, out %q, err %q", code, out, errs)
	}
	a.Close()
	a, err = agent.New(cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Kill() })

	out, errs, code := runHatui(t, append(sock, "--exec", "history --since 1h", "--json")...)
	if code != 0 {
		t.Fatalf("history: exit %d, err %q", code, errs)
	}
	var h protocol.History
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("history JSON: %v\n%s", err, out)
	}
	me := currentUser(t)
	var audits []string
	for _, e := range h.Events {
		if e.Kind == "audit" {
			if e.User != me || e.Result != "ok" || e.Node != "nodea" {
				t.Errorf("audit entry %+v: want user %s, result ok, node nodea", e, me)
			}
			audits = append(audits, e.Message)
		}
	}
	if len(audits) != 2 || !strings.Contains(audits[0], "standby nodea") || !strings.Contains(audits[1], "online nodea") {
		t.Fatalf("audit entries after restart: %q, want the standby then the online", audits)
	}
	out, _, code = runHatui(t, append(sock, "--exec", "history --node nodea --limit 50")...)
	if code != 0 || !strings.Contains(out, me+": standby nodea → ok") {
		t.Fatalf("plain history: exit %d:\n%s", code, out)
	}
	if _, errs, code := runHatui(t, append(sock, "--exec", "history --since yesterday")...); code != 2 || !strings.Contains(errs, "a duration such as") {
		t.Fatalf("a bad --since: exit %d, err %q; want exit 2 with the form", code, errs)
	}
}

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// TestExecCheckExitCodes: `--exec check` speaks the monitoring-plugin
// conventions against real agents: OK for three healthy nodes, WARNING
// with one in standby, CRITICAL while a geo failover is pending (the demo
// with site a cut off), UNKNOWN with no agent; one status line with
// perfdata each time.
func TestExecCheckExitCodes(t *testing.T) {
	var socks []string
	var first string
	for i, name := range []string{"n1", "n2", "n3"} {
		ip := fmt.Sprintf("127.0.31.%d", 10+i)
		var join []string
		if first != "" {
			join = []string{first}
		}
		cfg := agenttest.Config(t, agenttest.Node{Name: name, IP: ip, Join: join})
		if first == "" {
			first = cfg.Gossip.Bind
		}
		a, err := agent.New(cfg, agent.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Kill() })
		socks = append(socks, cfg.Socket.Path)
	}
	check := func(sock string) (string, int) {
		out, _, code := runHatui(t, "--socket", sock, "--exec", "check")
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "HATUI ") || (code != 3 && !strings.Contains(out, " | nodes_online=")) {
			t.Fatalf("not one plugin line with perfdata: %q", out)
		}
		return out, code
	}
	agenttest.WaitFor(t, 15*time.Second, "OK from three healthy agents", func() (bool, string) {
		out, code := check(socks[0])
		return code == 0 && strings.Contains(out, "HATUI OK"), out
	})
	if out, _, code := runHatui(t, "--socket", socks[0], "--exec", "standby n2"); code != 0 {
		t.Fatalf("standby: %d %q", code, out)
	}
	agenttest.WaitFor(t, 10*time.Second, "WARNING with n2 in standby", func() (bool, string) {
		out, code := check(socks[2])
		return code == 1 && strings.Contains(out, "HATUI WARNING - n2 standby"), out
	})
	if out, code := check("/nonexistent/ha-agent.sock"); code != 3 || !strings.Contains(out, "HATUI UNKNOWN") {
		t.Fatalf("no agent: exit %d %q, want 3 UNKNOWN", code, out)
	}

	d := startDemo(t)
	if _, _, err := d.Do(protocol.Action{Verb: "demo cut", Args: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitFor(t, 30*time.Second, "CRITICAL for the pending geo failover, seen from site b", func() (bool, string) {
		out, code := check(d.SocketPath("pbx-b1"))
		return code == 2 && strings.Contains(out, "HATUI CRITICAL - geo failover a→b pending"), out
	})
}

// TestExecAcrossPartition: --exec's status and geo decisions through an
// entry inside a cut site. The status looks through a node of every other
// site too, so it carries the partition (both sides, the majority's
// pending failover) in its JSON; "geo abort b" goes to the majority side,
// which alone can carry it out, and is carried out.
func TestExecAcrossPartition(t *testing.T) {
	d := startDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	entry, err := client.Connect(ctx, d.Dial("pbx-a1"), client.Options{Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer entry.Close()
	views := session.NewViews(entry, func(n protocol.Node) (client.DialFunc, bool) { return d.Dial(n.Name), true }, client.Options{Client: "test"}, 3*time.Second)
	defer views.Close()
	if snap, err := views.Status(ctx, ""); err != nil || snap.Partition != nil {
		t.Fatalf("healthy: partition %+v, err %v; want none", snap.Partition, err)
	}
	if _, _, err := d.Do(protocol.Action{Verb: "demo cut", Args: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	var snap *protocol.Snapshot
	agenttest.WaitFor(t, 40*time.Second, "the partition and the majority's pending failover", func() (bool, string) {
		snap, err = views.Status(ctx, "")
		if err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(snap)
		return snap.Partition != nil && snap.Partition.Quorum != "" && snap.Partition.Quorum != "pbx-a1" &&
			snap.Geo != nil && snap.Geo.Pending != nil && snap.Geo.Pending.To == "b" && strings.Contains(string(b), `"partition":{"sides":[`), string(b)
	})
	// pbx-a1 calls itself an island only once its own failure detector
	// gives up on the other sites, which may come after the majority's
	// countdown has started: wait for it rather than race it.
	agenttest.WaitFor(t, 30*time.Second, "the majority's side then pbx-a1's island", func() (bool, string) {
		snap, err = views.Status(ctx, "")
		if err != nil {
			return false, err.Error()
		}
		if snap.Partition == nil {
			return false, "no partition"
		}
		sides := snap.Partition.Sides
		return len(sides) == 2 && sides[0].Via != "pbx-a1" && sides[1].Via == "pbx-a1" && sides[1].Island, fmt.Sprintf("%+v", sides)
	})
	res, err := views.Do(ctx, protocol.Action{Verb: "geo abort", Args: []string{"b"}}, nil)
	if err != nil || !res.OK {
		t.Fatalf("geo abort through the entry inside the cut: %+v, %v", res, err)
	}
	agenttest.WaitFor(t, 20*time.Second, "the failover aborted", func() (bool, string) {
		snap, err = views.Status(ctx, "")
		if err != nil {
			return false, err.Error()
		}
		return snap.Geo != nil && (snap.Geo.Pending == nil || snap.Geo.Pending.State != "pending"), fmt.Sprintf("%+v", snap.Geo)
	})
}
