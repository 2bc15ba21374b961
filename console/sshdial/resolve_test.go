package sshdial

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// testOptions resolves as operator "op" with home /home/op and an agent
// at /tmp/agent.sock.
func testOptions(c *Config) Options {
	return Options{Config: c, Home: "/home/op", LocalUser: "op",
		Getenv: func(k string) string {
			if k == "SSH_AUTH_SOCK" {
				return "/tmp/agent.sock"
			}
			return ""
		}}
}

// defaultHop is what a host with no ssh_config settings of its own
// resolves to under testdata/config's Host * block.
func defaultHop(alias string) Hop {
	return Hop{
		Alias: alias, HostName: alias, Port: 22, User: "default-user",
		IdentityFiles:         []string{"/home/op/.ssh/id_ed25519", "/home/op/.ssh/id_ecdsa", "/home/op/.ssh/id_rsa"},
		IdentityAgent:         "/tmp/agent.sock",
		KnownHostsFiles:       []string{"/home/op/.ssh/known_hosts", "/home/op/.ssh/known_hosts2"},
		GlobalKnownHostsFiles: []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"},
		StrictHostKeyChecking: StrictAsk,
		ConnectTimeout:        90 * time.Second,
		KeepaliveInterval:     30 * time.Second,
		KeepaliveCountMax:     DefaultKeepaliveCountMax,
	}
}

func TestResolve(t *testing.T) {
	cfg := loadTestConfig(t, "config")
	with := func(h Hop, f func(*Hop)) Hop { f(&h); return h }
	pbxA1 := with(defaultHop("pbx-a1"), func(h *Hop) {
		h.HostName, h.User, h.Port = "10.1.1.11", "ops", 2222
		h.IdentityFiles = []string{"/home/op/.ssh/noc_ed25519"}
		h.KeepaliveInterval, h.KeepaliveCountMax = 5*time.Second, 2
	})
	tests := []struct {
		name   string
		target string
		opts   func(*Options)
		want   []Hop
	}{
		{"alias", "pbx-a1", nil, []Hop{pbxA1}},
		{"command line user and port win", "root@pbx-a1:22", nil,
			[]Hop{with(pbxA1, func(h *Hop) { h.User, h.Port = "root", 22 })}},
		{"unknown host gets defaults", "10.9.9.9", nil, []Hop{defaultHop("10.9.9.9")}},
		{"jump host with its own config", "pbx-b7", nil, []Hop{
			with(defaultHop("jump-b"), func(h *Hop) {
				h.HostName, h.User, h.Port = "bastion.site-b.example.net", "jumper", 2200
				h.StrictHostKeyChecking = StrictAcceptNew
			}),
			with(defaultHop("pbx-b7"), func(h *Hop) {
				h.HostName = "pbx-b7.site-b.example.net"
				h.IdentityFiles = []string{"/home/op/.ssh/site b key"}
			}),
		}},
		{"jump chain", "pbx-c1.site-c", nil, []Hop{
			with(defaultHop("bastion-c"), func(h *Hop) { h.User, h.Port = "ops", 2022 }),
			defaultHop("relay-c"),
			with(defaultHop("pbx-c1.site-c"), func(h *Hop) {
				h.KnownHostsFiles = []string{"/home/op/.ssh/known_hosts.site-c", "/etc/noc/known_hosts"}
				h.HashKnownHosts = true
			}),
		}},
		{"tokens", "tokens", nil, []Hop{with(defaultHop("tokens"), func(h *Hop) {
			h.HostName, h.User = "tokens.example.net", "remote"
			h.IdentityFiles = []string{"/home/op/.ssh/remote@tokens.example.net:22", "/home/op/.ssh/op_key"}
			h.IdentityAgent = "/home/op/.ssh/agent.sock"
		})}},
		{"-J overrides config", "pbx-b7", func(o *Options) { o.ProxyJump = "a@j1:2,j2" }, []Hop{
			with(defaultHop("j1"), func(h *Hop) { h.User, h.Port = "a", 2 }),
			defaultHop("j2"),
			with(defaultHop("pbx-b7"), func(h *Hop) {
				h.HostName = "pbx-b7.site-b.example.net"
				h.IdentityFiles = []string{"/home/op/.ssh/site b key"}
			}),
		}},
		{"-J none", "pbx-b7", func(o *Options) { o.ProxyJump = "none" }, []Hop{
			with(defaultHop("pbx-b7"), func(h *Hop) {
				h.HostName = "pbx-b7.site-b.example.net"
				h.IdentityFiles = []string{"/home/op/.ssh/site b key"}
			}),
		}},
		{"options override", "pbx-a1", func(o *Options) {
			o.IdentityFiles = []string{"~/cli_key"}
			o.KnownHostsFiles = []string{"/tmp/kh"}
			o.KeepaliveInterval = -1
			o.KeepaliveCountMax = 7
			o.ConnectTimeout = time.Second
			o.AgentSocket = "none"
		}, []Hop{with(pbxA1, func(h *Hop) {
			h.IdentityFiles = []string{"/home/op/cli_key", "/home/op/.ssh/noc_ed25519"}
			h.KnownHostsFiles = []string{"/tmp/kh"}
			h.GlobalKnownHostsFiles = nil
			h.KeepaliveInterval, h.KeepaliveCountMax = 0, 7
			h.ConnectTimeout = time.Second
			h.IdentityAgent = ""
		})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(cfg)
			if tt.opts != nil {
				tt.opts(&o)
			}
			got, err := Resolve(tt.target, o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i].Warnings = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%q)\n got %+v\nwant %+v", tt.target, got, tt.want)
			}
		})
	}
}

func TestResolveDefaultsWithoutConfig(t *testing.T) {
	o := testOptions(nil)
	o.ConfigFiles = []string{}
	got, err := Resolve("node", o)
	if err != nil {
		t.Fatal(err)
	}
	h := got[0]
	if h.User != "op" || h.Port != 22 || h.KeepaliveInterval != DefaultKeepaliveInterval ||
		h.ConnectTimeout != DefaultConnectTimeout || h.StrictHostKeyChecking != StrictAsk {
		t.Errorf("defaults: %+v", h)
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, config, target, want string
	}{
		{"proxycommand", "Host x\n ProxyCommand nc %h %p\n", "x", "ProxyCommand"},
		{"jump loop", "Host x\n ProxyJump y\nHost y\n ProxyJump x\n", "x", "longer than 8 hops"},
		{"bad token", "Host x\n IdentityFile ~/.ssh/%Z\n", "x", "token %Z is not supported"},
		{"lone percent", "Host x\n UserKnownHostsFile /tmp/kh%\n", "x", "lone %"},
		{"bad target", "", "a b", "[user@]host[:port]"},
		{"unknown user", "Host x\n IdentityFile ~nosuchuser12345/key\n", "x", "no user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tt.config), "cfg")
			if err != nil {
				t.Fatal(err)
			}
			_, err = Resolve(tt.target, testOptions(c))
			if KindOf(err) != KindConfig || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v (kind %v), want KindConfig containing %q", err, KindOf(err), tt.want)
			}
		})
	}
}

func TestResolveIdentityAgent(t *testing.T) {
	tests := []struct{ setting, want string }{
		{"SSH_AUTH_SOCK", "/tmp/agent.sock"},
		{"none", ""},
		{"$OTHER_SOCK", "/run/other.sock"},
		{"%d/agent", "/home/op/agent"},
	}
	for _, tt := range tests {
		c, err := ParseConfig(strings.NewReader("IdentityAgent "+tt.setting+"\n"), "cfg")
		if err != nil {
			t.Fatal(err)
		}
		o := testOptions(c)
		o.Getenv = func(k string) string {
			return map[string]string{"SSH_AUTH_SOCK": "/tmp/agent.sock", "OTHER_SOCK": "/run/other.sock"}[k]
		}
		hops, err := Resolve("h", o)
		if err != nil {
			t.Fatal(err)
		}
		if hops[0].IdentityAgent != tt.want {
			t.Errorf("IdentityAgent %s: got %q, want %q", tt.setting, hops[0].IdentityAgent, tt.want)
		}
	}
}

func TestHopString(t *testing.T) {
	h := Hop{Alias: "pbx-a1", HostName: "10.1.1.11", Port: 2222, User: "ops"}
	if got := h.String(); got != "pbx-a1 (ops@10.1.1.11:2222)" {
		t.Errorf("String() = %q", got)
	}
	h.Alias = "10.1.1.11"
	if got := h.String(); got != "ops@10.1.1.11:2222" {
		t.Errorf("String() = %q", got)
	}
}
