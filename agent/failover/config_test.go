package failover

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/resource"
)

func validConfig() Config {
	return Config{
		Cluster: "site-a", Node: "pbx-a1", Group: "pbx",
		Voters: []Voter{{Name: "pbx-a1", Addr: "10.0.3.1:7960"}, {Name: "pbx-a2", Addr: "10.0.3.2:7960"}, {Name: "wit-a", Addr: "10.0.3.9:7960", Witness: true}},
	}.WithDefaults(20 * time.Second)
}

func TestConfigDefaultsFollowTheTimingRule(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	tm := c.Timing
	if tm.StopDeadline >= tm.TakeoverDelay || tm.hold() > tm.DeadTime-tm.Keepalive || tm.hold() < 2*tm.Keepalive {
		t.Fatalf("default timing breaks the rule: %+v (hold %s)", tm, tm.hold())
	}
	if tm.StopBudget != 20*time.Second {
		t.Errorf("stop budget = %s, want the group's 20s", tm.StopBudget)
	}
}

// TestConfigValidation: every configuration that cannot work is refused
// with a message naming the key, saying what is wrong and what would do.
func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		key    string
		says   string
	}{
		{"takeover not after stop", func(c *Config) { c.Timing.TakeoverDelay = c.Timing.StopDeadline },
			"timing.takeover_delay", "is not longer than the stop deadline"},
		{"takeover margin too small", func(c *Config) { c.Timing.TakeoverDelay = c.Timing.StopDeadline + c.Timing.Keepalive },
			"timing.takeover_delay", "by less than two keepalives"},
		{"hold longer than deadtime allows", func(c *Config) {
			c.Timing.StopDeadline = c.Timing.StopBudget + c.Timing.DeadTime
			c.Timing.TakeoverDelay = c.Timing.StopDeadline + time.Minute
		}, "timing.stop_deadline", "so that no voter can call it failed while it runs"},
		{"stop deadline inside the stop budget", func(c *Config) { c.Timing.StopDeadline = c.Timing.StopBudget }, "timing.stop_deadline", "less than two keepalives"},
		{"deadtime too short", func(c *Config) { c.Timing.DeadTime = 2 * c.Timing.Keepalive }, "timing.deadtime", "less than three keepalives"},
		{"warntime after deadtime", func(c *Config) { c.Timing.WarnTime = c.Timing.DeadTime }, "timing.warntime", "not between keepalive"},
		{"initdead shorter than deadtime", func(c *Config) { c.Timing.InitDead = time.Second }, "timing.initdead", "shorter than deadtime"},
		{"bad voter address", func(c *Config) { c.Voters[1].Addr = "pbx-a2" }, "voters[1].addr", "is not host:port"},
		{"duplicate voter", func(c *Config) { c.Voters[1].Name = "pbx-a1" }, "voters[1].name", "listed twice"},
		{"one node", func(c *Config) { c.Voters[1].Witness = true }, "voters", "at least two nodes"},
		{"node not a voter", func(c *Config) { c.Node = "pbx-b1" }, "node", "not one of the voters"},
		{"bad cluster name", func(c *Config) { c.Cluster = "site a" }, "cluster", "not a valid cluster name"},
		{"raft lease above heartbeat", func(c *Config) { c.Raft.LeaderLeaseTimeout = 2 * c.Raft.HeartbeatTimeout }, "raft.leader_lease_timeout", "not between"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate = %v, want a *ConfigError", err)
			}
			if ce.Key != tc.key || !strings.Contains(err.Error(), tc.says) || ce.Want == "" {
				t.Fatalf("Validate = %v\nwant key %s saying %q and what would do", err, tc.key, tc.says)
			}
		})
	}
}

// TestBuildGroupErrors: resource and check errors come from their
// packages, wrapped with the group's name.
func TestBuildGroupErrors(t *testing.T) {
	okRes := resource.Spec{Name: "vip", Type: "exec", Params: map[string]string{"path": "/bin/true"}}
	check := func(mod func(*health.Spec)) health.Spec {
		s := health.DefaultSpec()
		s.Name, s.Kind, s.Params = "sip", "tcp", map[string]string{"address": "127.0.0.1:5060"}
		mod(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		spec GroupSpec
		says string
		as   any
	}{
		{"unknown resource type", GroupSpec{Name: "pbx", Resources: []resource.Spec{{Name: "asterisk", Type: "sysvinit"}}},
			`group "pbx": resource "asterisk": parameter "type": unknown resource type "sysvinit"; want one of database, exec, ocf, runit, systemd, vip`, new(*resource.ConfigError)},
		{"check timeout not below interval", GroupSpec{Name: "pbx", Resources: []resource.Spec{okRes},
			Checks: []health.Spec{check(func(s *health.Spec) { s.Timeout = s.Interval })}},
			"timeout 10s is not shorter than interval 10s: probes would overlap", new(*health.ConfigError)},
		{"check of a missing resource", GroupSpec{Name: "pbx", Resources: []resource.Spec{okRes},
			Checks: []health.Spec{check(func(s *health.Spec) { s.Resource, s.Class = "asterisk", health.Major })}},
			`guards resource "asterisk", which the group does not have`, nil},
		{"no resources", GroupSpec{Name: "pbx"}, "has no resources", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, m, err := BuildGroup(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("BuildGroup = %v, want %q", err, tc.says)
			}
			if g != nil || m != nil {
				t.Error("a group was built despite the error")
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("error %T does not unwrap to %T", err, tc.as)
			}
		})
	}
	g, m, err := BuildGroup(GroupSpec{Name: "pbx", Resources: []resource.Spec{okRes}, Checks: []health.Spec{check(func(*health.Spec) {})}})
	if err != nil || g == nil || m == nil {
		t.Fatalf("valid group: %v", err)
	}
	m.Close()
	if b, want := StopBudget(g), resource.DefaultTimeouts(okRes.Type).Stop; b != want {
		t.Errorf("stop budget = %s, want the %s type's default %s", b, okRes.Type, want)
	}
}

// TestOpenRefusals: what only Open can check, with the dependencies.
func TestOpenRefusals(t *testing.T) {
	g, _, err := BuildGroup(GroupSpec{Name: "pbx", Resources: []resource.Spec{{Name: "vip", Type: "exec", Params: map[string]string{"path": "/bin/true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	two := Config{Cluster: "site-a", Node: "pbx-a1", Group: "pbx",
		Voters: []Voter{{Name: "pbx-a1", Addr: "127.0.0.1:1"}, {Name: "pbx-a2", Addr: "127.0.0.1:2"}}}
	witness := two
	witness.Voters = append(witness.Voters, Voter{Name: "wit-a", Addr: "127.0.0.1:3", Witness: true})
	atRisk := two
	atRisk.AllowTwoNodeRisk = true
	key := make([]byte, 32)
	path := fakePath{}
	for _, tc := range []struct {
		name string
		cfg  Config
		deps Deps
		says string
	}{
		{"two nodes without fencing or witness", two, Deps{Stream: nopStream{}, Key: key, Group: g, Paths: []Path{path}},
			"allow_two_node_risk: two nodes without fencing or witness"},
		{"witness, no watchdog, no fencing", witness, Deps{Stream: nopStream{}, Key: key, Group: g, Paths: []Path{path}},
			"allow_agent_crash_risk: pbx-a1 has neither a watchdog nor a fencing device: if its agent dies alone"},
		{"two nodes at risk, no watchdog", atRisk, Deps{Stream: nopStream{}, Key: key, Group: g, Paths: []Path{path}},
			"a watchdog (failover.watchdog = \"/dev/watchdog\"; softdog will do), a fencing device for the other nodes ([[switch]]), or allow_agent_crash_risk = true"},
		{"short key", two, Deps{Stream: nopStream{}, Key: key[:8], Group: g, Paths: []Path{path}}, "the cluster key is 8 bytes"},
		{"no paths", two, Deps{Stream: nopStream{}, Key: key, Group: g}, "no heartbeat paths"},
		{"no group on a node", two, Deps{Stream: nopStream{}, Key: key, Paths: []Path{path}}, "has no Group to hold"},
		{"no stream", two, Deps{Key: key, Group: g, Paths: []Path{path}}, "no stream layer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Open(tc.cfg, tc.deps)
			if err == nil {
				e.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Open = %v, want %q", err, tc.says)
			}
		})
	}
}

type fakePath struct{}

func (fakePath) Kind() string      { return PathNIC }
func (fakePath) Links() []PathLink { return nil }
func (fakePath) Close() error      { return nil }

// nopStream is a stream layer that is never used: Open refuses first.
type nopStream struct{ net.Listener }

func (nopStream) Dial(raft.ServerAddress, time.Duration) (net.Conn, error) {
	return nil, errors.New("nop")
}

// TestExampleConfig: the example in testdata decodes with the TOML
// library the agent uses and validates with the defaults filled in.
func TestExampleConfig(t *testing.T) {
	var c Config
	md, err := toml.DecodeFile(filepath.Join("testdata", "failover.toml"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("keys the Config does not know: %v", u)
	}
	c = c.WithDefaults(40 * time.Second)
	if err := c.Validate(); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	if len(c.Voters) != 3 || !c.Voters[2].Witness || c.Timing.Keepalive != 500*time.Millisecond {
		t.Fatalf("decoded %+v", c)
	}
}
