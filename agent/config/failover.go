package config

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
)

// Failover configures local failover of the cluster's service group (see
// agent/failover). Every voter of a cluster lists the same voters, timing
// and group; the witness lists them too and sets Witness.
type Failover struct {
	Enabled bool `toml:"enabled"`
	// Group names the service group; unique in the deployment, such as
	// "pbx-a".
	Group string `toml:"group"`
	// Voters are the cluster's voters, this node included: the nodes that
	// can hold the group, and at most one witness.
	Voters []FailoverVoter `toml:"voter"`
	// AllowTwoNodeRisk lets two nodes run with neither fencing nor
	// witness; status and console then show the split-brain risk.
	AllowTwoNodeRisk bool `toml:"allow_two_node_risk"`
	// AllowAgentCrashRisk lets a node run with neither a watchdog nor
	// fencing: its agent may die alone and leave the group running while
	// another node takes it over. Status and console show the risk.
	AllowAgentCrashRisk bool `toml:"allow_agent_crash_risk"`
	// Activate puts the cluster in service when it first forms; otherwise
	// it waits for "cluster activate".
	Activate bool `toml:"activate"`
	// MigrationThreshold is how many failures of a resource make the
	// holder hand the group on (0: never by count).
	MigrationThreshold int `toml:"migration_threshold"`
	// FailureTimeout forgets a resource's failures after this long
	// without a new one (0: never).
	FailureTimeout Duration `toml:"failure_timeout"`
	// MaxRestarts and RestartWindow bound the restarts a major check may
	// cause before it escalates to a failover.
	MaxRestarts   int      `toml:"max_restarts"`
	RestartWindow Duration `toml:"restart_window"`
	// Watchdog is a watchdog device (/dev/watchdog) the agent feeds while
	// it runs: an agent that hangs or dies resets its node before a peer
	// may take over the group it still runs. WatchdogTimeout is its
	// timeout (whole seconds; default: the largest that resets the node
	// before the takeover delay runs out).
	Watchdog        string   `toml:"watchdog"`
	WatchdogTimeout Duration `toml:"watchdog_timeout"`

	Timing    FailoverTiming     `toml:"timing"`
	Raft      FailoverRaft       `toml:"raft"`
	Paths     []HeartbeatPath    `toml:"path"`
	Resources []FailoverResource `toml:"resource"`
	Checks    []FailoverCheck    `toml:"check"`
}

// FailoverVoter is one voter of the cluster.
type FailoverVoter struct {
	Name string `toml:"name"`
	// Addr is the voter's peer channel address (its [peer] advertise, or
	// its peer bind address), host:port: the decision log travels there.
	Addr    string `toml:"addr"`
	Witness bool   `toml:"witness"`
}

// FailoverTiming are heartbeat-style timings; zero keeps the default
// (see agent/failover.Timing).
type FailoverTiming struct {
	Keepalive       Duration `toml:"keepalive"`
	WarnTime        Duration `toml:"warntime"`
	DeadTime        Duration `toml:"deadtime"`
	InitDead        Duration `toml:"initdead"`
	StopDeadline    Duration `toml:"stop_deadline"`
	StopBudget      Duration `toml:"stop_budget"`
	TakeoverDelay   Duration `toml:"takeover_delay"`
	FenceRetry      Duration `toml:"fence_retry"`
	MonitorInterval Duration `toml:"monitor_interval"`
}

// FailoverRaft are the decision log's raft timings; zero keeps the
// default.
type FailoverRaft struct {
	HeartbeatTimeout   Duration `toml:"heartbeat_timeout"`
	ElectionTimeout    Duration `toml:"election_timeout"`
	LeaderLeaseTimeout Duration `toml:"leader_lease_timeout"`
	CommitTimeout      Duration `toml:"commit_timeout"`
	TransportTimeout   Duration `toml:"transport_timeout"`
}

// HeartbeatPath is a heartbeat path besides Serf: a serial cable or a
// dedicated interface.
type HeartbeatPath struct {
	// Kind is "serial" or "nic".
	Kind string `toml:"kind"`
	// Serial: Device (such as /dev/ttyS1), Baud (19200 when 0) and the
	// node at the other end of the cable.
	Device string `toml:"device"`
	Baud   int    `toml:"baud"`
	Peer   string `toml:"peer"`
	// NIC: this node's UDP address on the dedicated interface, and each
	// peer's.
	Local string            `toml:"local"`
	Peers map[string]string `toml:"peers"`
	// Interval between heartbeats on this path (the keepalive when 0).
	Interval Duration `toml:"interval"`
}

// FailoverResource is one resource of the group, in start order.
type FailoverResource struct {
	Name           string            `toml:"name"`
	Type           string            `toml:"type"`
	Params         map[string]string `toml:"params"`
	StartTimeout   Duration          `toml:"start_timeout"`
	StopTimeout    Duration          `toml:"stop_timeout"`
	MonitorTimeout Duration          `toml:"monitor_timeout"`
	// Warm runs the resource on every node that may hold the group, not
	// only on the holder: a PBX that listens on the virtual IP before the
	// address arrives (the agent sets net.ipv4.ip_nonlocal_bind), so that
	// a takeover or switchover moves only the address. Never on a vip.
	Warm bool `toml:"warm"`
}

// FailoverCheck is one health check of the group.
type FailoverCheck struct {
	Name     string `toml:"name"`
	Kind     string `toml:"kind"`
	Resource string `toml:"resource"`
	// Class is "minor", "major" or "fatal" (minor when empty).
	Class string `toml:"class"`
	// OnFatal is "failover" (default), "fence" or "reboot".
	OnFatal  string            `toml:"on_fatal"`
	Interval Duration          `toml:"interval"`
	Timeout  Duration          `toml:"timeout"`
	Rise     int               `toml:"rise"`
	Fall     int               `toml:"fall"`
	Params   map[string]string `toml:"params"`
}

// Witness reports whether this node is the cluster's witness.
func (f *Failover) Witness(node string) bool {
	i := slices.IndexFunc(f.Voters, func(v FailoverVoter) bool { return v.Name == node })
	return i >= 0 && f.Voters[i].Witness
}

// validate checks what the file alone can tell; the failover package
// checks the rest (timings against each other, resource parameters,
// check kinds) when the agent starts, and its errors name the keys too.
func (f *Failover) validate(c *Config) error {
	if !f.Enabled {
		return nil
	}
	bad := func(key, problem, expected string) error {
		return &Error{File: c.File, Key: "failover." + key, Problem: problem, Expected: expected}
	}
	if !nameRE.MatchString(f.Group) {
		return bad("group", fmt.Sprintf("%q is not a valid group name", f.Group), nameForm+", unique in the deployment, such as \"pbx-a\"")
	}
	if !slices.ContainsFunc(f.Voters, func(v FailoverVoter) bool { return v.Name == c.Node }) {
		return bad("voter", fmt.Sprintf("this node (%s) is not among the voters", c.Node), "a [[failover.voter]] entry for every voter of the cluster, this node included")
	}
	for i, v := range f.Voters {
		if _, _, err := net.SplitHostPort(v.Addr); err != nil {
			return bad(fmt.Sprintf("voter[%d].addr", i), fmt.Sprintf("%q is not host:port", v.Addr), "the voter's peer channel address, such as \"10.0.0.2:7947\"")
		}
	}
	if f.Watchdog != "" && !filepath.IsAbs(f.Watchdog) {
		return bad("watchdog", fmt.Sprintf("%q is not an absolute path", f.Watchdog), "the watchdog device, such as /dev/watchdog")
	}
	for i, p := range f.Paths {
		if p.Kind != "serial" && p.Kind != "nic" {
			return bad(fmt.Sprintf("path[%d].kind", i), fmt.Sprintf("%q is not a heartbeat path kind", p.Kind), `"serial" or "nic" (Serf is always a path)`)
		}
	}
	if f.Witness(c.Node) {
		if len(f.Resources) > 0 || len(f.Checks) > 0 {
			return bad("resource", "the witness lists resources or checks", "no [[failover.resource]] or [[failover.check]] on the witness: it never holds the group")
		}
		return nil
	}
	if len(f.Resources) == 0 {
		return bad("resource", "no resources", "at least one [[failover.resource]] (virtual IP, service) in start order")
	}
	return nil
}
