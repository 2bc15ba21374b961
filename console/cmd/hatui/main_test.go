package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatui/hatui/console/sshdial/sshtest"
	"github.com/hatui/hatui/demo"
	"github.com/hatui/hatui/protocol"
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
