// Package agenttest builds what tests of the agent and its features need
// to run real agents side by side: loopback addresses, valid node
// configurations, protocol sessions, and waiting on a condition.
//
// It imports neither the agent nor any feature, so the agent's own tests
// and every feature's tests can use it.
package agenttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/protocol/client"
)

// Key is a gossip key for tests only.
const Key = "f3r7m1w4qH0n8C5sXk2c6p9yZb1vA0eL3uT7oI4jQ5g="

// Subnet hands out loopback addresses in one /24, so that each test
// package keeps to its own range and packages running in parallel never
// collide.
type Subnet struct {
	prefix string // "127.0.70"
	n      atomic.Int32
}

// NewSubnet returns the subnet prefix.0/24, e.g. NewSubnet("127.0.70").
func NewSubnet(prefix string) *Subnet { return &Subnet{prefix: prefix} }

// Next returns a fresh address (wrapping after 250: by then the first
// nodes of the run are long stopped).
func (s *Subnet) Next() string { return fmt.Sprintf("%s.%d", s.prefix, 1+s.n.Add(1)%250) }

// Node describes one agent's configuration.
type Node struct {
	Name string
	Site string // default "s"
	IP   string // the gossip address; the peer listener takes port 7947
	Join []string
	// Deployment defaults to "test"; PeerTimeout to "2s".
	Deployment  string
	PeerTimeout string
	// Cluster and Role are left to their defaults when empty.
	Cluster, Role string
	// Key is the gossip key; Key (the package's) when empty.
	Key string
	// Dir holds the state directory ("state") and the socket
	// ("ha-agent.sock"); Config makes a temporary one when empty.
	Dir string
	// Gossip is added to the [gossip] table (timings).
	Gossip string
	// Socket is added to the [socket] table (group, operators).
	Socket string
	// Extra is appended to the file: feature sections.
	Extra string
}

// Socket is where the agent of a node rendered with dir listens.
func Socket(dir string) string { return filepath.Join(dir, "ha-agent.sock") }

// Render returns n's configuration file. Tests that run ha-agent as a
// process write it themselves; Config loads it in this process.
func Render(n Node) string {
	if n.Site == "" {
		n.Site = "s"
	}
	if n.Deployment == "" {
		n.Deployment = "test"
	}
	if n.PeerTimeout == "" {
		n.PeerTimeout = "2s"
	}
	if n.Key == "" {
		n.Key = Key
	}
	var head strings.Builder
	fmt.Fprintf(&head, "deployment = %q\nnode = %q\nsite = %q\n", n.Deployment, n.Name, n.Site)
	if n.Cluster != "" {
		fmt.Fprintf(&head, "cluster = %q\n", n.Cluster)
	}
	if n.Role != "" {
		fmt.Fprintf(&head, "role = %q\n", n.Role)
	}
	gossip := n.Gossip
	if gossip != "" && !strings.HasSuffix(gossip, "\n") {
		gossip += "\n"
	}
	socket := n.Socket
	if socket != "" && !strings.HasSuffix(socket, "\n") {
		socket += "\n"
	}
	return fmt.Sprintf(`%sstate_dir = %q
[socket]
path = %q
%s[gossip]
bind = "%s:7946"
keys = [%q]
join = [%s]
%s[peer]
timeout = %q
%s`, head.String(), filepath.Join(n.Dir, "state"), Socket(n.Dir), socket, n.IP, n.Key, Quote(n.Join), gossip, n.PeerTimeout, n.Extra)
}

// Config writes n's configuration file into its directory (a temporary
// one when n.Dir is empty), loads it as ha-agent would, and returns it
// (its File is the path).
func Config(t testing.TB, n Node) *config.Config {
	t.Helper()
	if n.Dir == "" {
		n.Dir = t.TempDir()
	}
	dir := n.Dir
	data := Render(n)
	path := filepath.Join(dir, "ha-agent.toml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("test config for %s: %v", n.Name, err)
	}
	return cfg
}

// Quote renders strings as the items of a TOML array.
func Quote(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// Connect opens a protocol session on an agent's Unix socket, closed when
// the test ends.
func Connect(t testing.TB, socket string) *client.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.UnixDialer(socket), client.Options{Client: "test"})
	if err != nil {
		t.Fatalf("connecting to %s: %v", socket, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// WaitFor polls cond until it holds or d passes; cond returns what it
// saw, for the failure message.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last saw: %s", d, what, last)
}

// BuildAgent builds the ha-agent binary into dir and returns its path,
// for tests that run agents as processes (in network namespaces). It runs
// the go command from the module root, so it works from any package.
func BuildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "ha-agent")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hatui/hatui/agent/cmd/ha-agent").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building ha-agent: %w\n%s", err, out)
	}
	return bin, nil
}

// Test users that .ci/run creates for the socket's roles: WatchUser is in
// WatchGroup only (may open the socket), OperatorUser is in WatchGroup and
// OperatorGroup (may act).
const (
	WatchGroup    = "hatui-view"
	OperatorGroup = "hatui-ops"
	WatchUser     = "hatui-watch"
	OperatorUser  = "hatui-op"
)

// RequireUser returns the credentials of a test user, skipping the test
// when the user does not exist (failing under CI=true, where .ci/run has
// made it).
func RequireUser(t testing.TB, name string) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup(name)
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("acting as %s needs root", name)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test user %s needed (.ci/run creates it): %v", name, err)
		}
		t.Skipf("test user %s needed (.ci/run creates it): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		t.Fatalf("groups of %s: %v", name, err)
	}
	for _, g := range ids {
		n, _ := strconv.Atoi(g)
		cred.Groups = append(cred.Groups, uint32(n))
	}
	return cred
}

// OpenTo makes dir and its parents up to the root reachable (o+x) and the
// socket's directory listable, so that a test user can reach a socket in a
// test's temporary directory.
func OpenTo(t testing.TB, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
			t.Fatal(err)
		}
	}
}
