package geo

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/protocol"
)

// Mode says whether the geo manager may fail over by itself.
type Mode string

// Modes.
const (
	// ModeAuto moves the ticket when its holder's lease runs out, and moves
	// the service when the dead man's timer expires.
	ModeAuto Mode = "auto"
	// ModeManual never moves anything by itself: the ticket moves only by
	// Grant and Revoke, the service only by Confirm.
	ModeManual Mode = "manual"
)

// Defaults. The lease and acquire-after margin are booth's ideas; the dead
// man's timer is silhouette's, with its default of two hours.
const (
	DefaultTicket               = "geo"
	DefaultLease                = 60 * time.Second
	DefaultAcquireAfter         = 30 * time.Second
	DefaultDeadMan              = 2 * time.Hour
	DefaultSafetyMargin         = 30 * time.Second
	DefaultBeforeAcquireTimeout = 30 * time.Second
	DefaultServiceTimeout       = 5 * time.Minute
	DefaultHistory              = 50
)

// Voter is one geo voter: an agent that takes part in the geo raft group.
type Voter struct {
	// Node is the agent's node name, which is also its raft server ID.
	Node string `toml:"node" json:"node"`
	// Site is the site the agent belongs to.
	Site string `toml:"site" json:"site"`
	// Addr is the address the stream layer dials to reach the agent. The
	// geo package does not interpret it: with [NewTCPStreamLayer] it is
	// host:port, with the agent's own channel it may be a node name.
	Addr string `toml:"addr" json:"addr"`
	// Arbitrator marks the voter as the arbitrator (or one of them): it
	// votes, but its site never holds the ticket and never serves.
	Arbitrator bool `toml:"arbitrator,omitempty" json:"arbitrator,omitempty"`
}

// Config is one agent's geo configuration. Every voter must have the same
// Voters, Ticket, Mode and timings; the first leader writes them into the
// replicated state, and the state's values win over a node's own file.
type Config struct {
	// Node is this agent's node name; it must be one of Voters.
	Node string `toml:"node"`
	// Site is this agent's site; it must match this node's entry in Voters.
	Site string `toml:"site"`
	// Ticket names the ticket (booth's ticket name). Default "geo".
	Ticket string `toml:"ticket"`
	// Mode is "auto" (default) or "manual".
	Mode Mode `toml:"mode"`
	// Voters lists every geo voter of the deployment, this node included.
	Voters []Voter `toml:"voters"`
	// InitialHolder is the site given the ticket (and the service) when the
	// deployment's geo state is first created. Empty: no site holds the
	// ticket until an operator grants it.
	InitialHolder string `toml:"initial_holder"`

	// Lease is how long a renewal keeps the ticket (booth's expire).
	Lease time.Duration `toml:"lease"`
	// Renewal is how often the holder renews (booth's renewal-freq).
	// Default Lease/3.
	Renewal time.Duration `toml:"renewal"`
	// AcquireAfter is how long after a lease ran out another site may take
	// the ticket (booth's acquire-after).
	AcquireAfter time.Duration `toml:"acquire_after"`
	// DeadMan is the dead man's timer: how long a failover waits for an
	// operator before it happens by itself.
	DeadMan time.Duration `toml:"dead_man"`
	// SafetyMargin is how long before the earliest moment another site
	// could start serving by itself a serving site stops by itself. It must
	// cover the clocks' skew between sites plus the time StopServing takes.
	SafetyMargin time.Duration `toml:"safety_margin"`

	// BeforeAcquire is booth's before-acquire-handler: a program and its
	// arguments run before this site takes the ticket. A non-zero exit
	// vetoes. Its environment names the ticket and site (see [HookEnv]).
	BeforeAcquire []string `toml:"before_acquire"`
	// BeforeAcquireTimeout bounds BeforeAcquire; running out vetoes.
	BeforeAcquireTimeout time.Duration `toml:"before_acquire_timeout"`
	// ServiceTimeout bounds one StartServing or StopServing call.
	ServiceTimeout time.Duration `toml:"service_timeout"`
	// History is how many finished failovers the state keeps.
	History int `toml:"history"`

	// DataDir holds the raft log, snapshots and the service deadline. Empty
	// keeps everything in memory (tests only: a restart forgets the state).
	DataDir string `toml:"data_dir"`

	// Raft tunes the raft group. The defaults suit a WAN.
	Raft Tuning `toml:"raft"`
}

// Tuning holds raft's timings. Zero fields take the defaults noted.
type Tuning struct {
	HeartbeatTimeout   time.Duration `toml:"heartbeat_timeout"`    // 1s
	ElectionTimeout    time.Duration `toml:"election_timeout"`     // 1s
	LeaderLeaseTimeout time.Duration `toml:"leader_lease_timeout"` // 500ms
	CommitTimeout      time.Duration `toml:"commit_timeout"`       // 50ms
	TransportTimeout   time.Duration `toml:"transport_timeout"`    // 10s
	SnapshotInterval   time.Duration `toml:"snapshot_interval"`    // 2m
	SnapshotThreshold  uint64        `toml:"snapshot_threshold"`   // 1024
	TrailingLogs       uint64        `toml:"trailing_logs"`        // 1024
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Ticket == "" {
		c.Ticket = DefaultTicket
	}
	if c.Mode == "" {
		c.Mode = ModeAuto
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Renewal == 0 {
		c.Renewal = c.Lease / 3
	}
	if c.AcquireAfter == 0 {
		c.AcquireAfter = DefaultAcquireAfter
	}
	if c.DeadMan == 0 {
		c.DeadMan = DefaultDeadMan
	}
	if c.SafetyMargin == 0 {
		c.SafetyMargin = DefaultSafetyMargin
	}
	if c.BeforeAcquireTimeout == 0 {
		c.BeforeAcquireTimeout = DefaultBeforeAcquireTimeout
	}
	if c.ServiceTimeout == 0 {
		c.ServiceTimeout = DefaultServiceTimeout
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	t := &c.Raft
	if t.HeartbeatTimeout == 0 {
		t.HeartbeatTimeout = time.Second
	}
	if t.ElectionTimeout == 0 {
		t.ElectionTimeout = time.Second
	}
	if t.LeaderLeaseTimeout == 0 {
		t.LeaderLeaseTimeout = min(500*time.Millisecond, t.HeartbeatTimeout)
	}
	if t.CommitTimeout == 0 {
		t.CommitTimeout = 50 * time.Millisecond
	}
	if t.TransportTimeout == 0 {
		t.TransportTimeout = 10 * time.Second
	}
	if t.SnapshotInterval == 0 {
		t.SnapshotInterval = 2 * time.Minute
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = 1024
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = 1024
	}
	return c
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

const configHint = "fix the [geo] section of the node config; every geo voter needs the same voters, mode and timings"

// Validate checks a configuration (after [Config.WithDefaults]) and returns
// every problem found, joined. Each is a *protocol.Error: CodeUsage for a
// malformed setting, CodeRefused for a deployment the geo manager will not
// run because it cannot be safe (such as two voters and no arbitrator in
// auto mode).
func (c Config) Validate() error {
	var errs []error
	usage := func(format string, args ...any) {
		errs = append(errs, protocol.Errorf(protocol.CodeUsage, configHint, "geo config: "+format, args...))
	}
	checkName := func(what, v string) {
		if !nameRE.MatchString(v) {
			usage("%s %q is not a valid name (letters, digits, '.', '_', '-'; at most 63)", what, v)
		}
	}
	checkName("node", c.Node)
	checkName("site", c.Site)
	checkName("ticket", c.Ticket)
	if c.Mode != ModeAuto && c.Mode != ModeManual {
		usage("mode %q is neither %q nor %q", c.Mode, ModeAuto, ModeManual)
	}

	votes := map[string]int{}
	arbSite := map[string]bool{}
	nodes := map[string]bool{}
	addrs := map[string]bool{}
	var self *Voter
	for i := range c.Voters {
		v := &c.Voters[i]
		checkName(fmt.Sprintf("voters[%d].node", i), v.Node)
		checkName(fmt.Sprintf("voters[%d].site", i), v.Site)
		if v.Addr == "" {
			usage("voter %q has no addr", v.Node)
		}
		if nodes[v.Node] {
			usage("voter %q is listed twice", v.Node)
		}
		if v.Addr != "" && addrs[v.Addr] {
			usage("address %q is given to two voters", v.Addr)
		}
		nodes[v.Node], addrs[v.Addr] = true, true
		if a, seen := arbSite[v.Site]; seen && a != v.Arbitrator {
			usage("site %q has both arbitrator and non-arbitrator voters; an arbitrator site only votes", v.Site)
		}
		arbSite[v.Site] = v.Arbitrator
		votes[v.Site]++
		if v.Node == c.Node {
			self = v
		}
	}
	if len(c.Voters) == 0 {
		usage("no voters: list every geo voter, this node included")
	} else if self == nil {
		usage("this node %q is not among the voters", c.Node)
	} else if self.Site != c.Site {
		usage("this node is in site %q but its voter entry says %q", c.Site, self.Site)
	}
	var serviceSites, arbs []string
	for s, a := range arbSite {
		if a {
			arbs = append(arbs, s)
		} else {
			serviceSites = append(serviceSites, s)
		}
	}
	sort.Strings(serviceSites)
	if len(c.Voters) > 0 && len(serviceSites) < 2 {
		usage("geo redundancy needs at least two service sites, found %d (%s)", len(serviceSites), strings.Join(serviceSites, ", "))
	}
	if c.InitialHolder != "" {
		switch a, ok := arbSite[c.InitialHolder]; {
		case !ok:
			usage("initial_holder %q is not a site of any voter", c.InitialHolder)
		case a:
			usage("initial_holder %q is an arbitrator site, which never holds the ticket", c.InitialHolder)
		}
	}
	if c.Mode == ModeAuto && len(c.Voters) > 0 {
		if err := autoRefusal(votes, len(arbs) > 0); err != "" {
			errs = append(errs, protocol.Errorf(protocol.CodeRefused,
				"add an arbitrator at a third site (a small machine is enough), or set mode = \"manual\"",
				"geo config: %s", err))
		}
	}

	pos := func(name string, d time.Duration) {
		if d <= 0 {
			usage("%s must be positive (got %s)", name, d)
		}
	}
	pos("lease", c.Lease)
	pos("renewal", c.Renewal)
	pos("dead_man", c.DeadMan)
	pos("safety_margin", c.SafetyMargin)
	pos("before_acquire_timeout", c.BeforeAcquireTimeout)
	pos("service_timeout", c.ServiceTimeout)
	if c.AcquireAfter < 0 {
		usage("acquire_after must not be negative (got %s)", c.AcquireAfter)
	}
	if c.Renewal >= c.Lease && c.Lease > 0 {
		usage("renewal (%s) must be shorter than the lease (%s), a third of it is usual", c.Renewal, c.Lease)
	}
	if c.SafetyMargin >= c.DeadMan && c.DeadMan > 0 {
		usage("safety_margin (%s) must be shorter than dead_man (%s)", c.SafetyMargin, c.DeadMan)
	}
	if c.History < 1 || c.History > 10000 {
		usage("history must be between 1 and 10000 (got %d)", c.History)
	}
	if len(c.BeforeAcquire) > 0 && c.BeforeAcquire[0] == "" {
		usage("before_acquire names no program")
	}
	if c.Node != "" {
		rc := c.raftConfig(hclog.NewNullLogger())
		if err := raft.ValidateConfig(rc); err != nil {
			usage("raft timings: %v", err)
		}
	}
	return errors.Join(errs...)
}

// autoRefusal says why automatic failover would be unsafe with these
// votes per site, or "" when it is safe: losing any one site must leave a
// majority, or the surviving site could never take over and a split could
// leave each side guessing.
func autoRefusal(votes map[string]int, haveArbitrator bool) string {
	total := 0
	for _, n := range votes {
		total += n
	}
	if !haveArbitrator && total == 2 {
		return "two voters and no arbitrator: in auto mode neither site could tell a dead peer from a cut link"
	}
	for _, s := range slices.Sorted(maps.Keys(votes)) {
		if (total-votes[s])*2 <= total {
			if !haveArbitrator {
				return fmt.Sprintf("no arbitrator: losing site %q (%d of %d votes) leaves no majority, so the other site could never take over", s, votes[s], total)
			}
			return fmt.Sprintf("site %q has %d of %d votes: losing it leaves no majority; give the sites equal numbers of voters", s, votes[s], total)
		}
	}
	return ""
}

// raftConfig builds raft's configuration for this node.
func (c Config) raftConfig(logger hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.Node)
	rc.HeartbeatTimeout = c.Raft.HeartbeatTimeout
	rc.ElectionTimeout = c.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = c.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = c.Raft.CommitTimeout
	rc.SnapshotInterval = c.Raft.SnapshotInterval
	rc.SnapshotThreshold = c.Raft.SnapshotThreshold
	rc.TrailingLogs = c.Raft.TrailingLogs
	rc.Logger = logger
	rc.LogOutput = io.Discard
	return rc
}

// sites returns the configured sites with their votes, sorted by name.
func (c Config) sites() []SiteState {
	bySite := map[string]*SiteState{}
	for _, v := range c.Voters {
		s := bySite[v.Site]
		if s == nil {
			s = &SiteState{Name: v.Site, Arbitrator: v.Arbitrator}
			bySite[v.Site] = s
		}
		s.Voters++
	}
	out := make([]SiteState, 0, len(bySite))
	for _, s := range bySite {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// arbitrator reports whether this node's site is an arbitrator site.
func (c Config) arbitrator() bool {
	for _, v := range c.Voters {
		if v.Node == c.Node {
			return v.Arbitrator
		}
	}
	return false
}
