package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/geo"
	"github.com/hatui/hatui/protocol"
)

// Geo configures the geo manager (see agent/geo and agent/geosite): the geo
// pool, a second Serf pool across the sites and the arbitrator with WAN
// timings; the geo voters that replicate the ticket with raft over the peer
// channel; the ticket's timings; and how this site's service is started
// and stopped. Every geo voter of a deployment lists the same voters,
// ticket, mode and timings.
type Geo struct {
	Enabled bool `toml:"enabled"`
	// Bind is host:port of the geo pool's Serf listener (UDP and TCP).
	Bind string `toml:"bind"`
	// Advertise is the host:port the other sites dial, when it differs.
	Advertise string `toml:"advertise"`
	// Join lists host:port of other sites' geo pool listeners.
	Join []string `toml:"join"`

	// Ticket names the ticket (booth's ticket name); "geo" when empty.
	Ticket string `toml:"ticket"`
	// Mode is "auto" (the dead man's switch fails over at expiry) or
	// "manual" (never by itself).
	Mode string `toml:"mode"`
	// InitialHolder is the site given the ticket and the service when the
	// deployment's geo state is first created; empty: none until granted.
	InitialHolder string `toml:"initial_holder"`
	// DeadMan is how long staff have to confirm or abort a geo failover.
	DeadMan Duration `toml:"dead_man"`
	// Lease is how long a renewal keeps the ticket; Renewal how often the
	// holder renews (a third of the lease when unset); AcquireAfter how
	// long after a lease ran out another site may take the ticket.
	Lease        Duration `toml:"lease"`
	Renewal      Duration `toml:"renewal"`
	AcquireAfter Duration `toml:"acquire_after"`
	// SafetyMargin is how long before the earliest moment another site
	// could start by itself an isolated serving site stops by itself: it
	// covers clock skew plus the time stop_command takes. 30 s when unset.
	SafetyMargin Duration `toml:"safety_margin"`
	// BeforeAcquire is a program and its arguments run before this site
	// takes the ticket; a non-zero exit vetoes (booth's
	// before-acquire-handler).
	BeforeAcquire        []string `toml:"before_acquire"`
	BeforeAcquireTimeout Duration `toml:"before_acquire_timeout"`

	// Service says how this site's service is started and stopped:
	// "cluster" (the local failover's "cluster activate" and "cluster
	// disable"; the default when [failover] is enabled) or "exec"
	// (StartCommand and StopCommand). The arbitrator has none.
	Service string `toml:"service"`
	// StartCommand and StopCommand are argv arrays for service = "exec".
	// Both must be idempotent; StopCommand must return only once the
	// service is stopped.
	StartCommand []string `toml:"start_command"`
	StopCommand  []string `toml:"stop_command"`
	// ServiceTimeout bounds one start or stop; 5 min when unset.
	ServiceTimeout Duration `toml:"service_timeout"`

	// Arbitrator says this node is an arbitrator. Optional: the voter
	// entry says it too, and the two must agree.
	Arbitrator bool `toml:"arbitrator"`
	// Voters are every geo voter of the deployment, this node included.
	Voters []GeoVoter `toml:"voter"`

	// The geo pool's failure detection: memberlist's WAN profile, faster.
	// Zero keeps the default noted.
	ProbeInterval     Duration `toml:"probe_interval"`     // 1s
	ProbeTimeout      Duration `toml:"probe_timeout"`      // 500ms
	GossipInterval    Duration `toml:"gossip_interval"`    // 200ms
	SuspicionMult     int      `toml:"suspicion_mult"`     // 6
	ReconnectInterval Duration `toml:"reconnect_interval"` // 2s
	TCPTimeout        Duration `toml:"tcp_timeout"`        // 5s

	// Raft tunes the geo raft group; zero keeps the WAN defaults.
	Raft GeoRaft `toml:"raft"`
}

// GeoVoter is one geo voter.
type GeoVoter struct {
	Node string `toml:"node"`
	Site string `toml:"site"`
	// Addr is the voter's peer channel address (its [peer] advertise, or
	// its peer bind address), host:port: the geo raft log travels there.
	Addr       string `toml:"addr"`
	Arbitrator bool   `toml:"arbitrator"`
}

// GeoRaft are the geo raft group's timings; zero keeps the default noted.
type GeoRaft struct {
	HeartbeatTimeout   Duration `toml:"heartbeat_timeout"`    // 1s
	ElectionTimeout    Duration `toml:"election_timeout"`     // 1s
	LeaderLeaseTimeout Duration `toml:"leader_lease_timeout"` // 500ms
	CommitTimeout      Duration `toml:"commit_timeout"`       // 50ms
	TransportTimeout   Duration `toml:"transport_timeout"`    // 10s
}

// Geo services.
const (
	GeoServiceCluster = "cluster"
	GeoServiceExec    = "exec"
)

// Defaults of the geo pool's timings.
const (
	DefaultGeoProbeInterval     = time.Second
	DefaultGeoProbeTimeout      = 500 * time.Millisecond
	DefaultGeoGossipInterval    = 200 * time.Millisecond
	DefaultGeoSuspicionMult     = 6
	DefaultGeoReconnectInterval = 2 * time.Second
	DefaultGeoTCPTimeout        = 5 * time.Second
)

// Self returns this node's voter entry, if any.
func (g *Geo) Self(node string) (GeoVoter, bool) {
	for _, v := range g.Voters {
		if v.Node == node {
			return v, true
		}
	}
	return GeoVoter{}, false
}

// Library returns the geo manager's configuration for this node: its
// voters, ticket, timings and data directory (state_dir/geo).
func (g *Geo) Library(c *Config) geo.Config {
	lc := geo.Config{
		Node:                 c.Node,
		Site:                 c.Site,
		Ticket:               g.Ticket,
		Mode:                 geo.Mode(g.Mode),
		InitialHolder:        g.InitialHolder,
		Lease:                g.Lease.Duration,
		Renewal:              g.Renewal.Duration,
		AcquireAfter:         g.AcquireAfter.Duration,
		DeadMan:              g.DeadMan.Duration,
		SafetyMargin:         g.SafetyMargin.Duration,
		BeforeAcquire:        g.BeforeAcquire,
		BeforeAcquireTimeout: g.BeforeAcquireTimeout.Duration,
		ServiceTimeout:       g.ServiceTimeout.Duration,
		DataDir:              filepath.Join(c.StateDir, "geo"),
		Raft: geo.Tuning{
			HeartbeatTimeout:   g.Raft.HeartbeatTimeout.Duration,
			ElectionTimeout:    g.Raft.ElectionTimeout.Duration,
			LeaderLeaseTimeout: g.Raft.LeaderLeaseTimeout.Duration,
			CommitTimeout:      g.Raft.CommitTimeout.Duration,
			TransportTimeout:   g.Raft.TransportTimeout.Duration,
		},
	}
	for _, v := range g.Voters {
		lc.Voters = append(lc.Voters, geo.Voter{Node: v.Node, Site: v.Site, Addr: v.Addr, Arbitrator: v.Arbitrator})
	}
	return lc.WithDefaults()
}

// libraryError is a configuration the geo library refuses (such as two
// voters and no arbitrator in auto mode): a *Error naming the key for
// the installer, which also carries the library's typed error
// (*protocol.Error, CodeRefused or CodeUsage) for errors.As and
// protocol.CodeOf.
type libraryError struct {
	cfg   *Error
	cause *protocol.Error
}

func (e *libraryError) Error() string   { return e.cfg.Error() }
func (e *libraryError) Unwrap() []error { return []error{e.cfg, e.cause} }

func (g *Geo) validate(c *Config) error {
	bad := func(key, problem, want string) error {
		return &Error{File: c.File, Key: "geo." + key, Problem: problem, Expected: want}
	}
	if g.Mode != "auto" && g.Mode != "manual" {
		return bad("mode", fmt.Sprintf("%q is not a mode", g.Mode), `"auto" or "manual"`)
	}
	if g.DeadMan.Duration <= 0 {
		return bad("dead_man", "must be positive", "a duration such as \"2h\"")
	}
	if g.Lease.Duration <= 0 {
		return bad("lease", "must be positive", "a duration such as \"10s\"")
	}
	if g.AcquireAfter.Duration < 0 {
		return bad("acquire_after", "must not be negative", "a duration such as \"5s\"")
	}
	if !g.Enabled {
		return nil
	}

	if err := checkHostPort(g.Bind); err != nil {
		return bad("bind", err.Error(), "host:port such as 10.0.1.1:7950 (not the gossip port)")
	}
	if g.Bind == c.Gossip.Bind {
		return bad("bind", fmt.Sprintf("%s is also gossip.bind", g.Bind), "a port of its own for the geo pool, such as 7950")
	}
	if g.Advertise != "" {
		if err := checkHostPort(g.Advertise); err != nil {
			return bad("advertise", err.Error(), "host:port such as 203.0.113.1:7950")
		}
	}
	for i, j := range g.Join {
		if err := checkHostPort(j); err != nil {
			return bad(fmt.Sprintf("join[%d]", i), err.Error(), "host:port of another site's geo pool, such as 10.0.2.1:7950")
		}
	}
	for i, v := range g.Voters {
		key := fmt.Sprintf("voter[%d]", i)
		if !nameRE.MatchString(v.Node) {
			return bad(key+".node", fmt.Sprintf("%q is not a valid node name", v.Node), nameForm)
		}
		if !nameRE.MatchString(v.Site) {
			return bad(key+".site", fmt.Sprintf("%q is not a valid site name", v.Site), nameForm)
		}
		if err := checkHostPort(v.Addr); err != nil {
			return bad(key+".addr", err.Error(), "the voter's peer channel address, host:port such as 10.0.1.1:7947")
		}
	}
	self, ok := g.Self(c.Node)
	if !ok {
		return bad("voter", fmt.Sprintf("this node (%s) is not among the geo voters", c.Node),
			"a [[geo.voter]] entry (node, site, addr, arbitrator) for every geo voter, this node included")
	}
	if self.Site != c.Site {
		return bad("voter", fmt.Sprintf("this node's voter entry says site %q, but the node is in site %q", self.Site, c.Site), "the node's own site in its [[geo.voter]] entry")
	}
	if g.Arbitrator && !self.Arbitrator {
		return bad("arbitrator", "geo.arbitrator is set but this node's voter entry is not an arbitrator", "arbitrator = true in this node's [[geo.voter]] entry too, or drop geo.arbitrator")
	}
	for _, d := range []struct {
		key string
		v   *Duration
		def time.Duration
		min time.Duration
	}{
		{"probe_interval", &g.ProbeInterval, DefaultGeoProbeInterval, 10 * time.Millisecond},
		{"probe_timeout", &g.ProbeTimeout, DefaultGeoProbeTimeout, 5 * time.Millisecond},
		{"gossip_interval", &g.GossipInterval, DefaultGeoGossipInterval, 5 * time.Millisecond},
		{"reconnect_interval", &g.ReconnectInterval, DefaultGeoReconnectInterval, 100 * time.Millisecond},
		{"tcp_timeout", &g.TCPTimeout, DefaultGeoTCPTimeout, 100 * time.Millisecond},
	} {
		if d.v.Duration == 0 {
			d.v.Duration = d.def
		}
		if d.v.Duration < d.min {
			return bad(d.key, fmt.Sprintf("%v is too short", d.v.Duration), fmt.Sprintf("a duration of at least %v", d.min))
		}
	}
	if g.ProbeTimeout.Duration >= g.ProbeInterval.Duration {
		return bad("probe_timeout", fmt.Sprintf("%v is not shorter than geo.probe_interval (%v)", g.ProbeTimeout, g.ProbeInterval),
			"a timeout shorter than the probe interval, typically half of it")
	}
	if g.SuspicionMult == 0 {
		g.SuspicionMult = DefaultGeoSuspicionMult
	}
	if g.SuspicionMult < 1 || g.SuspicionMult > 20 {
		return bad("suspicion_mult", fmt.Sprintf("%d is out of range", g.SuspicionMult), "a whole number from 1 to 20 (6 is the WAN default)")
	}

	if g.Service == "" && c.Failover.Enabled {
		g.Service = GeoServiceCluster
	}
	switch {
	case self.Arbitrator:
		if g.Service != "" && g.Service != GeoServiceCluster {
			return bad("service", "an arbitrator never serves", "no service on the arbitrator")
		}
	case g.Service == GeoServiceCluster:
		if len(g.StartCommand) > 0 || len(g.StopCommand) > 0 {
			return bad("start_command", `set with service = "cluster"`, `service = "exec" to use the commands, or drop them`)
		}
	case g.Service == GeoServiceExec:
		for key, argv := range map[string][]string{"start_command": g.StartCommand, "stop_command": g.StopCommand} {
			if len(argv) == 0 || strings.TrimSpace(argv[0]) == "" {
				return bad(key, "missing", `a program and its arguments, such as ["systemctl", "start", "asterisk"]`)
			}
		}
	case g.Service == "":
		return bad("service", "missing: this site's service has no way to be started", `"cluster" (with [failover] enabled) or "exec" with start_command and stop_command`)
	default:
		return bad("service", fmt.Sprintf("%q is not a service", g.Service), `"cluster" or "exec"`)
	}

	// The geo library's own rules, so that check-config catches what the
	// agent would refuse at start.
	if err := g.Library(c).Validate(); err != nil {
		var pes []*protocol.Error
		collectProtocol(err, &pes)
		if len(pes) == 0 {
			return bad("voter", err.Error(), "a valid geo deployment")
		}
		pe := pes[0]
		problem := strings.TrimPrefix(pe.Message, "geo config: ")
		key := "voter"
		if w, _, _ := strings.Cut(problem, " "); libraryKeys[w] {
			key = w
		}
		e := &Error{File: c.File, Key: "geo." + key, Problem: problem, Expected: pe.Hint}
		return &libraryError{cfg: e, cause: pe}
	}
	return nil
}

// libraryKeys are the keys the geo library's messages start with.
var libraryKeys = map[string]bool{
	"ticket": true, "mode": true, "initial_holder": true, "lease": true, "renewal": true, "acquire_after": true,
	"dead_man": true, "safety_margin": true, "before_acquire": true, "before_acquire_timeout": true, "service_timeout": true,
}

// collectProtocol gathers the *protocol.Error values of a joined error,
// refusals first (they matter most to the installer).
func collectProtocol(err error, out *[]*protocol.Error) {
	var refused, other []*protocol.Error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *protocol.Error
		if errors.As(err, &pe) {
			if pe.Code == protocol.CodeRefused {
				refused = append(refused, pe)
			} else {
				other = append(other, pe)
			}
		}
	}
	walk(err)
	*out = append(refused, other...)
}
