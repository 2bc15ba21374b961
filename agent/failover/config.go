package failover

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/resource"
)

// Config is one node's failover configuration. Every voter of a cluster
// (its nodes and its witness) must be given the same Cluster, Group,
// Voters, Timing, AllowTwoNodeRisk and AllowAgentCrashRisk: the first
// leader writes them into the replicated state, and a node whose
// configuration disagrees says so in an event.
type Config struct {
	// Cluster names the cluster; it is signed into every heartbeat, so
	// two clusters on one network never take each other's heartbeats.
	Cluster string `toml:"cluster"`
	// Node is this node's name, as in Voters.
	Node string `toml:"node"`
	// Group names the service group the nodes hold (the witness holds
	// nothing but still names it).
	Group string `toml:"group"`
	// Voters are the cluster's nodes and its optional witness, in order of
	// preference: when nobody holds the group, the first eligible node
	// takes it.
	Voters []Voter `toml:"voters"`
	// Timing is the failure detection and self-fencing timing; zero
	// fields take defaults (see DefaultTiming).
	Timing Timing `toml:"timing"`
	// Raft tunes the replication of decisions; zero fields take defaults.
	Raft RaftTiming `toml:"raft"`
	// AllowTwoNodeRisk lets two nodes without fencing or witness run.
	// With two Serf members a network blip shorter than the detection
	// time can already look like a failure, and then both nodes hold
	// the group: the status says so in Quorum.Risks.
	AllowTwoNodeRisk bool `toml:"allow_two_node_risk"`
	// AllowAgentCrashRisk lets a node that can hold the group run with
	// neither a watchdog (Deps.Kick) nor a fencing device. Its agent can
	// die alone (a bug, the OOM killer, a bad upgrade) and leave the
	// group running on the node while another node takes it over, and
	// nothing would stop it there: the status says so in Quorum.Risks.
	AllowAgentCrashRisk bool `toml:"allow_agent_crash_risk"`
	// Activate makes a new cluster active as soon as it first forms.
	// When false, nothing is started until an operator runs activate
	// (edgeBOX: activate after a dry run).
	Activate bool `toml:"activate"`
	// GeoDriven says the geo manager starts and stops this node's
	// cluster ("cluster activate", "cluster stop"). Announced to the
	// others, it keeps the cluster from activating itself on forming,
	// whatever the other voters' Activate says.
	GeoDriven bool `toml:"-"`
	// DataDir keeps the decision state (raft log and snapshots) across
	// restarts. Empty keeps it in memory, for tests and the demo only.
	DataDir string `toml:"data_dir"`
}

// Voter is one member of the cluster that takes part in decisions.
type Voter struct {
	Name string `toml:"name"`
	// Addr is host:port of the voter's failover listener (raft and
	// requests forwarded to the leader).
	Addr string `toml:"addr"`
	// Witness voters hold no group; a tiny machine at a third place
	// turns two nodes into a majority-deciding cluster.
	Witness bool `toml:"witness"`
}

// Timing is failure detection and self-fencing timing, in Heartbeat's
// terms (keepalive, deadtime, warntime, initdead) plus the two deadlines
// that keep two holders apart.
//
// # The timing rule
//
// Contact with a peer means two-way contact: a heartbeat of ours that the
// peer echoed (Serf's probes are two-way too). Let K be Keepalive, D
// DeadTime, S StopDeadline, B the stop budget (the longest the group's
// resources may take to stop) and T TakeoverDelay. Then:
//
//   - A peer is failed when every path has been without contact for D.
//   - A holder that has had contact with fewer than a majority of voters
//     (counting itself) for H = S − B begins to stop its group, and is
//     stopped by S after that contact was lost (self-fence).
//   - H ≤ D − K: the holder begins stopping before any voter, whose
//     contact with it ended at most K apart from the holder's own, can
//     call it failed. A failure vote is therefore never cast against a
//     holder that still runs, even if contact comes back later.
//   - T ≥ S + 2K, so T > S: a standby that took over on a majority's word
//     starts the group only T after the last contact any agreeing voter
//     had with the old holder, which is after the old holder stopped.
//     The 2K margin covers the spread of two nodes' views of one cut and
//     the difference of their clock rates.
//
// With fencing, a verified power-off replaces the wait: the group starts
// as soon as the takeover is recorded.
type Timing struct {
	// Keepalive is the interval between heartbeats on each path.
	Keepalive time.Duration `toml:"keepalive"`
	// WarnTime is how long a path may be silent before a late-heartbeat
	// warning.
	WarnTime time.Duration `toml:"warntime"`
	// DeadTime is how long every path must be silent before a peer is
	// failed.
	DeadTime time.Duration `toml:"deadtime"`
	// InitDead is DeadTime for peers not yet heard from since this agent
	// started (a booting peer needs longer).
	InitDead time.Duration `toml:"initdead"`
	// StopDeadline bounds the time from losing contact with a majority
	// to the group being stopped on the holder.
	StopDeadline time.Duration `toml:"stop_deadline"`
	// StopBudget is the longest the group's resources may take to stop;
	// zero means the sum of their stop timeouts.
	StopBudget time.Duration `toml:"stop_budget"`
	// TakeoverDelay is how long after the last contact with the old
	// holder a standby may start the group without fencing it.
	TakeoverDelay time.Duration `toml:"takeover_delay"`
	// FenceRetry is the pause between fencing attempts of a peer that
	// failed while holding the group.
	FenceRetry time.Duration `toml:"fence_retry"`
	// MonitorInterval is how often the resources' own monitors run on
	// the node that holds the group.
	MonitorInterval time.Duration `toml:"monitor_interval"`
}

// DefaultTiming is Heartbeat's classic profile made a little faster: a
// heartbeat every 500 ms, a late warning at 2 s, failure at 3 s.
// StopDeadline and TakeoverDelay default from the stop budget by the
// timing rule.
var DefaultTiming = Timing{
	Keepalive:       500 * time.Millisecond,
	WarnTime:        2 * time.Second,
	DeadTime:        3 * time.Second,
	InitDead:        10 * time.Second,
	FenceRetry:      10 * time.Second,
	MonitorInterval: 10 * time.Second,
}

// RaftTiming tunes hashicorp/raft for a LAN.
type RaftTiming struct {
	HeartbeatTimeout   time.Duration `toml:"heartbeat_timeout"`
	ElectionTimeout    time.Duration `toml:"election_timeout"`
	LeaderLeaseTimeout time.Duration `toml:"leader_lease_timeout"`
	CommitTimeout      time.Duration `toml:"commit_timeout"`
	// TransportTimeout bounds one raft RPC and one forwarded request.
	TransportTimeout time.Duration `toml:"transport_timeout"`
}

// DefaultRaft suits a LAN: a lost leader is replaced in about a second.
var DefaultRaft = RaftTiming{
	HeartbeatTimeout:   500 * time.Millisecond,
	ElectionTimeout:    500 * time.Millisecond,
	LeaderLeaseTimeout: 250 * time.Millisecond,
	CommitTimeout:      20 * time.Millisecond,
	TransportTimeout:   2 * time.Second,
}

// ConfigError is a configuration that cannot work. It names the key and
// says what would work instead.
type ConfigError struct {
	Key     string // e.g. "timing.takeover_delay", "voters[1].addr"
	Problem string
	Want    string
	Err     error
}

// Error says which key is wrong, how, and what would work.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("failover config")
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Problem)
	if e.Want != "" {
		b.WriteString("; want " + e.Want)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

const nameWant = "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"

// WithDefaults returns c with zero timings filled in. stopBudget is the
// group's stop budget when Timing.StopBudget is zero (see StopBudget).
func (c Config) WithDefaults(stopBudget time.Duration) Config {
	t := &c.Timing
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.Keepalive, DefaultTiming.Keepalive)
	def(&t.DeadTime, max(DefaultTiming.DeadTime, 3*t.Keepalive))
	def(&t.WarnTime, min(DefaultTiming.WarnTime, t.DeadTime-t.Keepalive))
	def(&t.InitDead, max(DefaultTiming.InitDead, 2*t.DeadTime))
	if stopBudget <= 0 {
		// A witness has no group; its deadlines are never used.
		stopBudget = resource.DefaultStopTimeout
	}
	def(&t.StopBudget, stopBudget)
	// The longest hold the rule allows: more tolerance of blips.
	def(&t.StopDeadline, t.StopBudget+t.DeadTime-t.Keepalive)
	def(&t.TakeoverDelay, t.StopDeadline+2*t.Keepalive)
	def(&t.FenceRetry, DefaultTiming.FenceRetry)
	def(&t.MonitorInterval, DefaultTiming.MonitorInterval)
	r := &c.Raft
	def(&r.HeartbeatTimeout, DefaultRaft.HeartbeatTimeout)
	def(&r.ElectionTimeout, max(DefaultRaft.ElectionTimeout, r.HeartbeatTimeout))
	def(&r.LeaderLeaseTimeout, min(DefaultRaft.LeaderLeaseTimeout, r.HeartbeatTimeout))
	def(&r.CommitTimeout, DefaultRaft.CommitTimeout)
	def(&r.TransportTimeout, DefaultRaft.TransportTimeout)
	return c
}

// hold is how long a holder may lack a majority before it begins to stop.
func (t Timing) hold() time.Duration { return t.StopDeadline - t.StopBudget }

// Validate checks c (after WithDefaults) and returns every problem found,
// joined, each a *ConfigError.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, problem, want string) {
		errs = append(errs, &ConfigError{Key: key, Problem: problem, Want: want})
	}
	if !nameRE.MatchString(c.Cluster) {
		bad("cluster", fmt.Sprintf("%q is not a valid cluster name", c.Cluster), nameWant)
	}
	if !nameRE.MatchString(c.Group) {
		bad("group", fmt.Sprintf("%q is not a valid group name", c.Group), nameWant)
	}
	seen := map[string]bool{}
	addrs := map[string]string{}
	nodes, witnesses := 0, 0
	for i, v := range c.Voters {
		key := fmt.Sprintf("voters[%d]", i)
		if !nameRE.MatchString(v.Name) {
			bad(key+".name", fmt.Sprintf("%q is not a valid node name", v.Name), nameWant)
		}
		if seen[v.Name] {
			bad(key+".name", fmt.Sprintf("%q is listed twice", v.Name), "each voter once")
		}
		seen[v.Name] = true
		if _, _, err := net.SplitHostPort(v.Addr); err != nil || v.Addr == "" {
			bad(key+".addr", fmt.Sprintf("%q is not host:port", v.Addr), "the address of the voter's failover listener, such as \"10.0.3.251:7960\"")
		} else if o, dup := addrs[v.Addr]; dup {
			bad(key+".addr", fmt.Sprintf("%s is also %s's address", v.Addr, o), "one address per voter")
		}
		addrs[v.Addr] = v.Name
		if v.Witness {
			witnesses++
		} else {
			nodes++
		}
	}
	switch {
	case nodes < 2:
		bad("voters", fmt.Sprintf("%d node(s) can hold the group", nodes), "at least two nodes that are not witnesses")
	case witnesses > 1:
		bad("voters", fmt.Sprintf("%d witnesses", witnesses), "at most one witness: more voters belong as nodes")
	}
	if !seen[c.Node] {
		bad("node", fmt.Sprintf("%q is not one of the voters", c.Node), "this node's name as listed in voters")
	}

	t := c.Timing
	k, d := t.Keepalive, t.DeadTime
	switch {
	case k <= 0:
		bad("timing.keepalive", fmt.Sprintf("%s is not a positive duration", k), "a heartbeat interval such as \"500ms\"")
	case d < 3*k:
		bad("timing.deadtime", fmt.Sprintf("deadtime %s is less than three keepalives (%s)", d, 3*k),
			fmt.Sprintf("at least %s, so that a lost heartbeat or two is not a failure", 3*k))
	}
	if t.WarnTime < k || t.WarnTime >= d {
		bad("timing.warntime", fmt.Sprintf("warntime %s is not between keepalive %s and deadtime %s", t.WarnTime, k, d),
			"a late-heartbeat warning after at least one keepalive and before the deadtime")
	}
	if t.InitDead < d {
		bad("timing.initdead", fmt.Sprintf("initdead %s is shorter than deadtime %s", t.InitDead, d), "at least the deadtime (a booting peer needs longer)")
	}
	if t.StopBudget <= 0 {
		bad("timing.stop_budget", fmt.Sprintf("%s is not a positive duration", t.StopBudget), "the longest the group may take to stop, or 0 for the sum of its stop timeouts")
	}
	if k > 0 && d >= 3*k && t.StopBudget > 0 {
		h := t.hold()
		switch {
		case h < 2*k:
			bad("timing.stop_deadline", fmt.Sprintf("stop deadline %s minus the stop budget %s leaves the holder %s to notice it lost the majority, less than two keepalives (%s)",
				t.StopDeadline, t.StopBudget, h, 2*k),
				fmt.Sprintf("a stop deadline of at least %s (or shorter resource stop timeouts)", t.StopBudget+2*k))
		case h > d-k:
			bad("timing.stop_deadline", fmt.Sprintf("stop deadline %s minus the stop budget %s lets the holder run %s without a majority, but it must begin stopping within deadtime − keepalive (%s) so that no voter can call it failed while it runs",
				t.StopDeadline, t.StopBudget, h, d-k),
				fmt.Sprintf("a stop deadline of at most %s", t.StopBudget+d-k))
		}
	}
	switch {
	case t.TakeoverDelay <= t.StopDeadline:
		bad("timing.takeover_delay", fmt.Sprintf("takeover delay %s is not longer than the stop deadline %s: a standby could start the group before a cut-off holder has stopped it",
			t.TakeoverDelay, t.StopDeadline),
			fmt.Sprintf("a takeover delay of at least %s (stop deadline + 2 × keepalive)", t.StopDeadline+2*k))
	case t.TakeoverDelay < t.StopDeadline+2*k:
		bad("timing.takeover_delay", fmt.Sprintf("takeover delay %s exceeds the stop deadline %s by less than two keepalives: the two ends of a cut may see it up to a keepalive apart",
			t.TakeoverDelay, t.StopDeadline),
			fmt.Sprintf("a takeover delay of at least %s", t.StopDeadline+2*k))
	}
	if t.FenceRetry <= 0 {
		bad("timing.fence_retry", fmt.Sprintf("%s is not a positive duration", t.FenceRetry), "a pause such as \"10s\"")
	}
	if t.MonitorInterval <= 0 {
		bad("timing.monitor_interval", fmt.Sprintf("%s is not a positive duration", t.MonitorInterval), "an interval such as \"10s\"")
	}
	r := c.Raft
	switch {
	case r.HeartbeatTimeout < 5*time.Millisecond:
		bad("raft.heartbeat_timeout", fmt.Sprintf("%s is too short", r.HeartbeatTimeout), "at least 5ms")
	case r.ElectionTimeout < r.HeartbeatTimeout:
		bad("raft.election_timeout", fmt.Sprintf("%s is shorter than the heartbeat timeout %s", r.ElectionTimeout, r.HeartbeatTimeout), "at least the heartbeat timeout")
	case r.LeaderLeaseTimeout < 5*time.Millisecond || r.LeaderLeaseTimeout > r.HeartbeatTimeout:
		bad("raft.leader_lease_timeout", fmt.Sprintf("%s is not between 5ms and the heartbeat timeout %s", r.LeaderLeaseTimeout, r.HeartbeatTimeout), "half the heartbeat timeout")
	case r.CommitTimeout < time.Millisecond:
		bad("raft.commit_timeout", fmt.Sprintf("%s is too short", r.CommitTimeout), "at least 1ms")
	case r.TransportTimeout <= 0:
		bad("raft.transport_timeout", fmt.Sprintf("%s is not a positive duration", r.TransportTimeout), "a timeout such as \"2s\"")
	}
	return errors.Join(errs...)
}

// CrashGuard checks that something stops this node's group if its agent
// dies alone (a bug, the OOM killer, a bad upgrade), before another node
// takes the group over: a watchdog that resets the node, or fencing (a
// node that can fence the others is taken to be fenceable by them, as
// fencing is set up on every node). fences are the voters this node can
// fence. Without either, only AllowAgentCrashRisk lets it run. The
// witness holds nothing and needs neither.
func (c Config) CrashGuard(watchdog bool, fences []string) error {
	me, ok := c.voter(c.Node)
	if !ok || me.Witness || watchdog || len(fences) > 0 || c.AllowAgentCrashRisk {
		return nil
	}
	return &ConfigError{Key: "allow_agent_crash_risk",
		Problem: fmt.Sprintf("%s has neither a watchdog nor a fencing device: if its agent dies alone (a bug, the OOM killer, a bad upgrade), %s keeps running on %s while another node takes it over, and nothing stops it there",
			c.Node, c.Group, c.Node),
		Want: "a watchdog (failover.watchdog = \"/dev/watchdog\"; softdog will do), a fencing device for the other nodes ([[switch]]), or allow_agent_crash_risk = true to accept the risk"}
}

// voter returns the named voter.
func (c Config) voter(name string) (Voter, bool) {
	i := slices.IndexFunc(c.Voters, func(v Voter) bool { return v.Name == name })
	if i < 0 {
		return Voter{}, false
	}
	return c.Voters[i], true
}

// GroupSpec describes a service group, its health checks and their
// failure policy, as the node configuration states them.
type GroupSpec struct {
	Name      string
	Resources []resource.Spec
	Checks    []health.Spec
	// MigrationThreshold and FailureTimeout are resource.GroupConfig's.
	MigrationThreshold int
	FailureTimeout     time.Duration
	// Policy is the health policy (restart limits); zero takes defaults.
	Policy health.PolicyConfig
}

// BuildGroup validates spec and builds the group and its health monitor
// (nil when there are no checks). Every error names the group and the
// resource or check at fault, with the form wanted; the errors of
// agent/resource and agent/health are wrapped, so errors.As finds their
// *ConfigError.
func BuildGroup(spec GroupSpec) (*resource.Group, *health.Monitor, error) {
	var errs []error
	var res []resource.Resource
	for _, s := range spec.Resources {
		r, err := resource.New(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", spec.Name, err))
			continue
		}
		res = append(res, r)
	}
	var checks []*health.Check
	for _, s := range spec.Checks {
		c, err := health.New(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", spec.Name, err))
			continue
		}
		if s.Resource != "" && !slices.ContainsFunc(spec.Resources, func(r resource.Spec) bool { return r.Name == s.Resource }) {
			errs = append(errs, fmt.Errorf("group %q: check %q guards resource %q, which the group does not have: name one of its resources", spec.Name, s.Name, s.Resource))
		}
		if err := warmCheck(spec, s); err != nil {
			errs = append(errs, err)
		}
		checks = append(checks, c)
	}
	closeChecks := func() {
		for _, c := range checks {
			c.Close()
		}
	}
	if len(errs) > 0 {
		closeChecks()
		return nil, nil, errors.Join(errs...)
	}
	g, err := resource.NewGroup(spec.Name, res, resource.GroupConfig{MigrationThreshold: spec.MigrationThreshold, FailureTimeout: spec.FailureTimeout})
	if err != nil {
		closeChecks()
		return nil, nil, err
	}
	if len(checks) == 0 {
		return g, nil, nil
	}
	pol, err := health.NewPolicy(spec.Policy)
	if err != nil {
		closeChecks()
		return nil, nil, fmt.Errorf("group %q: health policy: %w", spec.Name, err)
	}
	m, err := health.NewMonitor(checks, pol)
	if err != nil {
		closeChecks()
		return nil, nil, fmt.Errorf("group %q: %w", spec.Name, err)
	}
	return g, m, nil
}

// StopBudget is the longest g's resources may take to stop: the sum of
// their stop timeouts (resource.DefaultStopTimeout for resources not
// built by resource.New). Warm resources do not count: a stop of the
// group (a release, a self-fence) leaves them running, and only the
// address and the other cold resources go.
func StopBudget(g *resource.Group) time.Duration {
	if g == nil {
		return 0
	}
	var sum time.Duration
	for _, r := range g.Resources() {
		if resource.IsWarm(r) {
			continue // a stop of the group leaves it running
		}
		if s, ok := resource.SpecOf(r); ok {
			sum += s.StopTimeout
		} else {
			sum += resource.DefaultStopTimeout
		}
	}
	return sum
}

// warmCheck refuses a check of a warm resource that asks one of the
// group's virtual IPs: the holder answers there for every node, so the
// check could not tell a warm standby that died from a healthy one (and
// on the holder it would restart the PBX for a fault of the address).
func warmCheck(spec GroupSpec, c health.Spec) error {
	i := slices.IndexFunc(spec.Resources, func(r resource.Spec) bool { return r.Name == c.Resource })
	if i < 0 || !spec.Resources[i].Warm {
		return nil
	}
	addr := c.Params["address"]
	if addr == "" {
		addr = c.Params["url"]
	}
	for _, r := range spec.Resources {
		if r.Type != "vip" {
			continue
		}
		ip := strings.TrimSpace(r.Params["ip"])
		if j := strings.IndexByte(ip, '/'); j >= 0 {
			ip = ip[:j]
		}
		if ip != "" && hostIs(addr, ip) {
			return &ConfigError{Key: fmt.Sprintf("check %q", c.Name),
				Problem: fmt.Sprintf("it guards warm resource %q but asks the virtual IP %s, which only the holder has: it cannot tell a warm standby that died from one that runs", c.Resource, ip),
				Want:    "the warm service's own address on this node (its node address or 127.0.0.1; let the PBX listen there too), or a process check"}
		}
	}
	return nil
}

// hostIs reports whether address (host:port, a URL, or a bare host) names
// host ip.
func hostIs(address, ip string) bool {
	a := address
	if i := strings.Index(a, "://"); i >= 0 {
		a = a[i+3:]
		if j := strings.IndexAny(a, "/?#"); j >= 0 {
			a = a[:j]
		}
	}
	if h, _, err := net.SplitHostPort(a); err == nil {
		a = h
	}
	return strings.Trim(a, "[]") == ip
}
