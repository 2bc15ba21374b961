// Package config reads and validates an ha-agent node configuration.
//
// One TOML file per node. Every setting has a safe default, so the smallest
// valid file names the node, its site and cluster, the gossip key, and the
// peers to join. Validation errors name the file, the key and the expected
// form, because the person reading them is installing a node, often at night.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is one node's configuration.
type Config struct {
	// Deployment names the whole installation (all sites). Agents with
	// another deployment name are not shown together.
	Deployment string `toml:"deployment"`
	Node       string `toml:"node"`
	Site       string `toml:"site"`
	Cluster    string `toml:"cluster"`
	// Role is free text shown in status: "pbx", "witness", "arbitrator"...
	Role string `toml:"role"`
	// StateDir holds what must survive a restart: operator flags, the
	// geo manager's raft log, the audit log.
	StateDir string `toml:"state_dir"`

	Socket Socket `toml:"socket"`
	Gossip Gossip `toml:"gossip"`
	Peer   Peer   `toml:"peer"`
	Geo    Geo    `toml:"geo"`
	// Failover is local failover of the cluster's service group; an
	// empty section means the node runs none.
	Failover Failover `toml:"failover"`
	// Alerts says where alerts (geo failovers, fencing) are sent.
	Alerts Alerts `toml:"alerts"`
	// Metrics serves the deployment's state to Prometheus.
	Metrics Metrics `toml:"metrics"`

	// Database configures this node's PostgreSQL instance (see database.go).
	Database Database `toml:"database"`
	// Switches are the line and power switches this node drives (see switch.go).
	Switches []Switch `toml:"switch"`

	// File is the path the configuration was read from ("" when built in code).
	File string `toml:"-"`
}

// Socket configures the local protocol socket.
type Socket struct {
	Path string `toml:"path"`
	// Group owns the socket; its members may use hatui on this node.
	// Empty keeps the agent's own group.
	Group string `toml:"group"`
	// Operators are the groups whose members may act (standby, switch
	// over, confirm a geo failover...); everyone else who can open the
	// socket may only watch. Root always may act. Empty: everyone who can
	// open the socket may act.
	Operators []string `toml:"operators"`
}

// Metrics configures the Prometheus endpoint. It is off unless enabled,
// and listens on localhost unless Listen says otherwise.
type Metrics struct {
	Enabled bool `toml:"enabled"`
	// Listen is host:port; "127.0.0.1:9464" when empty.
	Listen string `toml:"listen"`
}

// Gossip configures the local Serf pool.
type Gossip struct {
	// Bind is host:port for Serf's UDP and TCP listeners.
	Bind string `toml:"bind"`
	// Advertise is the host:port peers should use, when it differs from Bind.
	Advertise string `toml:"advertise"`
	// Join lists host:port of peers to contact at start.
	Join []string `toml:"join"`
	// Keys are base64 AES keys (16, 24 or 32 bytes); the first is used to
	// send, all are accepted, so keys can be rotated.
	Keys []string `toml:"keys"`
	// KeyFile names a file holding one base64 key per line, read at start;
	// it keeps secrets out of a config file that is often shared.
	KeyFile string `toml:"key_file"`

	ProbeInterval  Duration `toml:"probe_interval"`
	ProbeTimeout   Duration `toml:"probe_timeout"`
	GossipInterval Duration `toml:"gossip_interval"`
	SuspicionMult  int      `toml:"suspicion_mult"`
	// ReconnectInterval is how often a failed member is retried, so a
	// healed partition merges quickly.
	ReconnectInterval Duration `toml:"reconnect_interval"`
	TCPTimeout        Duration `toml:"tcp_timeout"`
}

// Peer configures the agent-to-agent channel that forwards requests.
type Peer struct {
	// Bind is host:port of the forwarding listener. The port defaults to
	// the gossip port + 1 on the gossip address.
	Bind string `toml:"bind"`
	// Advertise is the host:port other agents dial, when it differs.
	Advertise string `toml:"advertise"`
	// Timeout bounds a forwarded request; past it the answer is
	// "unreachable".
	Timeout Duration `toml:"timeout"`
}

// Duration is a time.Duration written as "200ms", "2h".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write it like \"200ms\", \"5s\" or \"2h\"", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults returns the configuration every unset key falls back to. The
// gossip timings are the tuned LAN profile measured in docs/benchmarks.md:
// failure detection in about a second on a LAN.
func Defaults() Config {
	return Config{
		Deployment: "hatui",
		Cluster:    "",
		StateDir:   "/var/lib/ha-agent",
		Socket:     Socket{Path: "/run/ha-agent/ha-agent.sock"},
		Gossip: Gossip{
			Bind:              "0.0.0.0:7946",
			ProbeInterval:     Duration{150 * time.Millisecond},
			ProbeTimeout:      Duration{75 * time.Millisecond},
			GossipInterval:    Duration{200 * time.Millisecond},
			SuspicionMult:     4,
			ReconnectInterval: Duration{time.Second},
			TCPTimeout:        Duration{time.Second},
		},
		Peer: Peer{Timeout: Duration{3 * time.Second}},
		Geo: Geo{
			Bind:         "0.0.0.0:7950",
			Mode:         "auto",
			DeadMan:      Duration{2 * time.Hour},
			Lease:        Duration{10 * time.Second},
			AcquireAfter: Duration{5 * time.Second},
		},
	}
}

// Error is a validation error: which file, which key, what is wrong and
// what form is expected.
type Error struct {
	File     string
	Key      string
	Problem  string
	Expected string
}

func (e *Error) Error() string {
	file := e.File
	if file == "" {
		file = "config"
	}
	s := fmt.Sprintf("%s: %s: %s", file, e.Key, e.Problem)
	if e.Expected != "" {
		s += "; expected " + e.Expected
	}
	return s
}

// Load reads, defaults and validates the configuration file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes TOML data (from file, for messages) over the defaults and
// validates the result.
func Parse(file string, data []byte) (*Config, error) {
	c := Defaults()
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		var pe toml.ParseError
		if pp := (*toml.ParseError)(nil); errors.As(err, &pp) {
			pe = *pp
		}
		if errors.As(err, &pe) || pe.Message != "" {
			key := pe.LastKey
			if key == "" {
				key = fmt.Sprintf("line %d", pe.Position.Line)
			}
			return nil, &Error{File: file, Key: key, Problem: pe.Message, Expected: "valid TOML (see recipes/ha-agent.toml)"}
		}
		// Type mismatches come back as plain errors naming the key.
		if m := lastKeyRE.FindStringSubmatch(err.Error()); m != nil {
			return nil, &Error{File: file, Key: m[1], Problem: m[2], Expected: "a value of the documented type (see recipes/ha-agent.toml; valid TOML)"}
		}
		return nil, &Error{File: file, Key: "(file)", Problem: err.Error(), Expected: "valid TOML (see recipes/ha-agent.toml)"}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, &Error{File: file, Key: und[0].String(), Problem: "unknown key",
			Expected: "one of the keys documented in recipes/ha-agent.toml (check the spelling and the [section])"}
	}
	c.File = file
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

var lastKeyRE = regexp.MustCompile(`last key "([^"]+)"\): (.*)$`)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// Validate checks every key and fills derived defaults (peer address,
// cluster name). It returns the first problem as an *Error.
func (c *Config) Validate() error {
	bad := func(key, problem, expected string) error {
		return &Error{File: c.File, Key: key, Problem: problem, Expected: expected}
	}
	for _, f := range []struct{ key, val string }{
		{"deployment", c.Deployment}, {"node", c.Node}, {"site", c.Site},
	} {
		if f.val == "" {
			return bad(f.key, "missing", nameForm)
		}
		if !nameRE.MatchString(f.val) {
			return bad(f.key, fmt.Sprintf("%q is not a valid name", f.val), nameForm)
		}
	}
	if c.Cluster == "" {
		c.Cluster = c.Site
	}
	if !nameRE.MatchString(c.Cluster) {
		return bad("cluster", fmt.Sprintf("%q is not a valid name", c.Cluster), nameForm)
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return bad("state_dir", fmt.Sprintf("%q is not an absolute path", c.StateDir), "an absolute directory path such as /var/lib/ha-agent")
	}
	if c.Socket.Path == "" || !filepath.IsAbs(c.Socket.Path) {
		return bad("socket.path", fmt.Sprintf("%q is not an absolute path", c.Socket.Path), "an absolute path such as /run/ha-agent/ha-agent.sock")
	}
	if err := checkHostPort(c.Gossip.Bind); err != nil {
		return bad("gossip.bind", err.Error(), "host:port such as 10.0.0.1:7946")
	}
	if c.Gossip.Advertise != "" {
		if err := checkHostPort(c.Gossip.Advertise); err != nil {
			return bad("gossip.advertise", err.Error(), "host:port such as 10.0.0.1:7946")
		}
	}
	for i, j := range c.Gossip.Join {
		if err := checkHostPort(j); err != nil {
			return bad(fmt.Sprintf("gossip.join[%d]", i), err.Error(), "host:port such as 10.0.0.2:7946")
		}
	}
	for i, k := range c.Gossip.Keys {
		if _, err := DecodeKey(k); err != nil {
			return bad(fmt.Sprintf("gossip.keys[%d]", i), err.Error(), "base64 of 16, 24 or 32 random bytes (make one with: ha-agent keygen)")
		}
	}
	g := c.Gossip
	for _, d := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{
		{"gossip.probe_interval", g.ProbeInterval.Duration, 10 * time.Millisecond},
		{"gossip.probe_timeout", g.ProbeTimeout.Duration, 5 * time.Millisecond},
		{"gossip.gossip_interval", g.GossipInterval.Duration, 5 * time.Millisecond},
		{"gossip.reconnect_interval", g.ReconnectInterval.Duration, 100 * time.Millisecond},
		{"gossip.tcp_timeout", g.TCPTimeout.Duration, 100 * time.Millisecond},
		{"peer.timeout", c.Peer.Timeout.Duration, 100 * time.Millisecond},
	} {
		if d.v < d.min {
			return bad(d.key, fmt.Sprintf("%v is too short", d.v), fmt.Sprintf("a duration of at least %v", d.min))
		}
	}
	if g.ProbeTimeout.Duration >= g.ProbeInterval.Duration {
		return bad("gossip.probe_timeout", fmt.Sprintf("%v is not shorter than gossip.probe_interval (%v)", g.ProbeTimeout, g.ProbeInterval),
			"a timeout shorter than the probe interval, typically half of it")
	}
	if g.SuspicionMult < 1 || g.SuspicionMult > 20 {
		return bad("gossip.suspicion_mult", fmt.Sprintf("%d is out of range", g.SuspicionMult), "a whole number from 1 to 20 (4 is the tuned default)")
	}
	if c.Peer.Bind == "" {
		host, port, _ := net.SplitHostPort(c.Gossip.Bind)
		p, _ := strconv.Atoi(port)
		if p != 0 { // port 0 asks for any free port: then so does the peer listener
			p++
		}
		c.Peer.Bind = net.JoinHostPort(host, strconv.Itoa(p))
	} else if err := checkHostPort(c.Peer.Bind); err != nil {
		return bad("peer.bind", err.Error(), "host:port such as 10.0.0.1:7947")
	}
	if c.Peer.Advertise != "" {
		if err := checkHostPort(c.Peer.Advertise); err != nil {
			return bad("peer.advertise", err.Error(), "host:port such as 10.0.0.1:7947")
		}
	}
	if c.Metrics.Listen != "" {
		if !c.Metrics.Enabled {
			return bad("metrics.listen", "set while metrics.enabled is false", "enabled = true to serve metrics, or no listen key")
		}
		if err := checkHostPort(c.Metrics.Listen); err != nil {
			return bad("metrics.listen", err.Error(), "host:port such as 127.0.0.1:9464")
		}
	}
	if err := c.Geo.validate(c); err != nil {
		return err
	}
	if err := c.Failover.validate(c); err != nil {
		return err
	}
	if err := c.Alerts.validate(c); err != nil {
		return err
	}
	if err := c.Database.validate(c); err != nil {
		return err
	}
	for i := range c.Switches {
		if err := c.Switches[i].validate(c, i); err != nil {
			return err
		}
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" && net.ParseIP(host) == nil && !nameRE.MatchString(host) {
		return fmt.Errorf("%q is not an IP address or host name", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q is not a port number", port)
	}
	return nil
}

// nameForm describes a valid name in error messages.
const nameForm = "1–63 letters, digits, '.', '_' or '-', starting with a letter or digit"

// DecodeKey decodes one base64 gossip key and checks its length.
func DecodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("key is not base64")
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("key is %d bytes long", len(k))
}

// LoadKeys returns the gossip keys from Keys and KeyFile, primary first.
// An empty result means the node has no key.
func (c *Config) LoadKeys() ([][]byte, error) {
	var out [][]byte
	for _, s := range c.Gossip.Keys {
		k, err := DecodeKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if c.Gossip.KeyFile != "" {
		b, err := os.ReadFile(c.Gossip.KeyFile)
		if err != nil {
			return nil, &Error{File: c.File, Key: "gossip.key_file", Problem: err.Error(), Expected: "a readable file with one base64 key per line"}
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := DecodeKey(line)
			if err != nil {
				return nil, &Error{File: c.Gossip.KeyFile, Key: fmt.Sprintf("line %d", i+1), Problem: err.Error(),
					Expected: "base64 of 16, 24 or 32 random bytes (make one with: ha-agent keygen)"}
			}
			out = append(out, k)
		}
	}
	return out, nil
}
