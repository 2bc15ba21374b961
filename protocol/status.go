package protocol

import (
	"encoding/json"
	"slices"
	"time"
)

// Snapshot is the state of a deployment as one agent sees it, shaped
// deployment → sites → clusters → nodes. Places that later parts fill
// (groups, databases, switches, geo) are typed now so that a console built
// against this version can show them when they appear.
type Snapshot struct {
	Deployment string    `json:"deployment"`
	From       string    `json:"from"` // the node whose agent answered
	Time       time.Time `json:"time"`
	Sites      []Site    `json:"sites"`
	Geo        *Geo      `json:"geo,omitempty"`
	// Events is the agent's recent event log, oldest first.
	Events []Event `json:"events,omitempty"`
	// Island is set when the answering agent is cut off from the
	// majority of the geo voters: what it shows of the sites it cannot
	// reach is the last it saw, and they may decide without it.
	Island *Island `json:"island,omitempty"`
	// Partition is set by a console that watches the deployment through
	// one entry per site when those entries do not see the same
	// deployment: agents never set it.
	Partition *Partition `json:"partition,omitempty"`
}

// Partition is what a console outside a partition sees: each side as its
// entry agent reports it, and which side's word the view is built on.
type Partition struct {
	// Sides are the distinct views, the quorum side first.
	Sides []Side `json:"sides"`
	// Quorum is the entry node of the side that holds the geo majority,
	// whose view the snapshot is; "" when no side does.
	Quorum string `json:"quorum,omitempty"`
}

// Side is one side of a partition as its entry agent sees it.
type Side struct {
	// Via is the entry node the console watches this side through.
	Via string `json:"via"`
	// Sites are the sites it reaches.
	Sites []string `json:"sites"`
	// Island is true when this side is cut off from the geo majority.
	Island bool `json:"island,omitempty"`
	// Holder is the site this side believes holds the geo ticket, and
	// LeaseExpiry when that belief runs out; Pending the geo failover it
	// sees, if any.
	Holder      string    `json:"holder,omitempty"`
	LeaseExpiry time.Time `json:"lease_expiry,omitempty"`
	Pending     *Failover `json:"pending,omitempty"`
}

// Island describes the part of the deployment an agent cut off from the
// geo majority still reaches.
type Island struct {
	// Node is the agent whose view this is.
	Node string `json:"node"`
	// Sites are the sites it reaches, its own included; Unreached the
	// others.
	Sites     []string `json:"sites"`
	Unreached []string `json:"unreached"`
	// Votes are the geo votes of the sites it reaches, of Total.
	Votes int `json:"votes"`
	Total int `json:"total"`
}

// Site is one location: a data centre, or the arbitrator's third site.
type Site struct {
	Name       string    `json:"name"`
	Arbitrator bool      `json:"arbitrator,omitempty"`
	Clusters   []Cluster `json:"clusters"`
}

// Cluster is a local cluster: nodes that fail over for each other.
type Cluster struct {
	Name  string `json:"name"`
	Site  string `json:"site"`
	Nodes []Node `json:"nodes"`
	// Quorum says whether the cluster can decide on its own, and the risk
	// when it cannot (two nodes without fencing or witness).
	Quorum    Quorum     `json:"quorum"`
	Groups    []Group    `json:"groups,omitempty"`
	Failed    []Failure  `json:"failed_actions,omitempty"`
	Databases []Database `json:"databases,omitempty"`
	Switches  []Switch   `json:"switches,omitempty"`
	// LastChange is when the membership or a flag last changed.
	LastChange time.Time `json:"last_change,omitempty"`
}

// Quorum describes the voters of a cluster.
type Quorum struct {
	Voters    int  `json:"voters"`  // configured voters: nodes plus witness
	Present   int  `json:"present"` // voters alive now
	HasQuorum bool `json:"has_quorum"`
	// Risks are plain sentences an operator must see, such as
	// "two nodes without fencing or witness: a network blip can cause split brain".
	Risks []string `json:"risks,omitempty"`
	// Source says who counted: "membership" (every Serf member a voter)
	// or "failover" (the cluster's configured voters, as local failover
	// sees them over all heartbeat paths).
	Source string `json:"source,omitempty"`
}

// Membership is what failure detection says of a node.
type Membership string

// Membership values.
const (
	MemberAlive   Membership = "alive"
	MemberFailed  Membership = "failed"
	MemberLeft    Membership = "left"
	MemberLeaving Membership = "leaving"
	MemberUnknown Membership = "unknown" // configured but never seen
)

// NodeState is the single word crm_mon would show for a node.
type NodeState string

// Node states, as crm_mon spells them: upper case is trouble.
const (
	StateOnline      NodeState = "online"
	StateStandby     NodeState = "standby"
	StateMaintenance NodeState = "maintenance"
	StateOffline     NodeState = "OFFLINE"
	StateUnclean     NodeState = "UNCLEAN"
)

// Node is one machine running ha-agent.
type Node struct {
	Name    string     `json:"name"`
	Site    string     `json:"site"`
	Cluster string     `json:"cluster"`
	Role    string     `json:"role,omitempty"` // e.g. "pbx", "witness", "arbitrator"
	Addr    string     `json:"addr,omitempty"`
	Member  Membership `json:"member"`
	State   NodeState  `json:"state"`
	Standby bool       `json:"standby"`
	// Maintenance means the node's resources are unmanaged: nothing is
	// started or stopped on it.
	Maintenance bool `json:"maintenance"`
	// Unclean means the node failed while it may still hold resources and
	// has not been verifiably fenced.
	Unclean bool              `json:"unclean,omitempty"`
	Version string            `json:"version,omitempty"`
	Links   []Link            `json:"links,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	Since   time.Time         `json:"since,omitempty"` // when Member last changed
}

// DeriveState computes crm_mon's word for a node from its parts.
func DeriveState(m Membership, standby, maintenance, unclean bool) NodeState {
	switch {
	case m != MemberAlive && unclean:
		return StateUnclean
	case m != MemberAlive:
		return StateOffline
	case maintenance:
		return StateMaintenance
	case standby:
		return StateStandby
	}
	return StateOnline
}

// Link is one heartbeat path to a peer (edgeBOX link diagnostics).
type Link struct {
	Peer     string        `json:"peer"`
	Path     string        `json:"path"` // "serf", "serial", "nic"
	Up       bool          `json:"up"`
	LastSeen time.Time     `json:"last_seen,omitempty"`
	RTT      time.Duration `json:"rtt_ns,omitempty"`
	Detail   string        `json:"detail,omitempty"`
}

// Group is a service group: resources that run together on one node.
type Group struct {
	Name      string     `json:"name"`
	Active    string     `json:"active,omitempty"` // node holding the group, "" if none
	State     string     `json:"state"`            // "started", "stopped", "starting", "stopping", "failed", "unmanaged", "standby" (a geo site that does not serve)
	Resources []Resource `json:"resources,omitempty"`
	Reason    string     `json:"reason,omitempty"` // why it is in its state, when not started
}

// Resource is one part of a group (virtual IP, service, database...).
type Resource struct {
	Name      string  `json:"name"`
	Type      string  `json:"type"`
	Node      string  `json:"node,omitempty"`
	State     string  `json:"state"`
	FailCount int     `json:"fail_count,omitempty"`
	Checks    []Check `json:"checks,omitempty"`
	// Warm is set for a resource that runs on every node that may hold
	// the group, ready to serve as soon as the address arrives: on a
	// node other than the group's holder it is a warm standby, and
	// "started" there is its healthy state.
	Warm bool `json:"warm,omitempty"`
}

// Check is the last result of a health check.
type Check struct {
	Name   string    `json:"name"`
	Kind   string    `json:"kind"`  // "process", "tcp", "sip", "http", "sql", "exec"
	Class  string    `json:"class"` // "minor", "major", "fatal"
	OK     bool      `json:"ok"`
	Fails  int       `json:"fails,omitempty"`
	Output string    `json:"output,omitempty"`
	At     time.Time `json:"at,omitempty"`
}

// Failure is a failed action, as crm_mon lists them.
type Failure struct {
	Resource string    `json:"resource"`
	Node     string    `json:"node"`
	Op       string    `json:"op"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Geo is the geo manager's view: the ticket, the dead man's timer, the sites.
type Geo struct {
	Mode    string     `json:"mode"` // "auto" or "manual"
	Ticket  Ticket     `json:"ticket"`
	Pending *Failover  `json:"pending,omitempty"`
	Sites   []GeoSite  `json:"sites"`
	Leader  string     `json:"leader,omitempty"`
	History []Failover `json:"history,omitempty"`
}

// Ticket says which site should provide service.
type Ticket struct {
	Name        string    `json:"name"`
	Holder      string    `json:"holder,omitempty"`
	Term        uint64    `json:"term"`
	LeaseExpiry time.Time `json:"lease_expiry,omitempty"`
}

// Failover is a geo failover, pending or done. Its timer is the dead man's
// switch: at Expires the failover happens unless confirmed or aborted.
type Failover struct {
	From    string    `json:"from"`
	To      string    `json:"to"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
	State   string    `json:"state"` // "pending", "confirmed", "aborted", "expired"
	By      string    `json:"by,omitempty"`
}

// GeoSite is one site from the geo manager's point of view.
type GeoSite struct {
	Name        string `json:"name"`
	Arbitrator  bool   `json:"arbitrator,omitempty"`
	Reachable   bool   `json:"reachable"`
	GeoRole     string `json:"geo_role"`     // what the ticket says: "primary", "backup"
	ServiceRole string `json:"service_role"` // what the site does: "serving", "standby"
}

// Database is one PostgreSQL instance.
type Database struct {
	Node string `json:"node"`
	// Role is "master", "standby", "geo-standby", "down", "starting", or
	// "unknown" (no agent reports it and it has not been reached yet).
	Role       string    `json:"role"`
	Timeline   int       `json:"timeline,omitempty"`
	SystemID   string    `json:"system_id,omitempty"`
	LSN        string    `json:"lsn,omitempty"`
	Upstream   string    `json:"upstream,omitempty"`
	LagBytes   int64     `json:"lag_bytes"`
	LagSeconds *float64  `json:"lag_seconds,omitempty"` // nil when idle or unknown
	Slot       string    `json:"slot,omitempty"`
	Streaming  bool      `json:"streaming"`
	Healthy    bool      `json:"healthy"`
	Health     string    `json:"health,omitempty"`
	Reseed     *Progress `json:"reseed,omitempty"`
	// Since is when Role began, when known: for "down", since when the
	// instance has been down (the last time it was seen up).
	Since *time.Time `json:"since,omitempty"`
	// SeenBy is set when the node's own agent does not report the
	// instance: the row is what SeenBy's agent last knew of it (its last
	// known position, since when it is down). A row from the node's own
	// agent always replaces it.
	SeenBy string `json:"seen_by,omitempty"`
	// CatchUp is a standby's progress while it replays a backlog.
	CatchUp *CatchUp `json:"catch_up,omitempty"`
	// NeedsReseed says why the data cannot stream from the master, when
	// the agent does not re-seed it by itself and waits for an operator.
	NeedsReseed string `json:"needs_reseed,omitempty"`
	// Slots are a master's replication slots, with the WAL each holds.
	Slots []ReplicationSlot `json:"slots,omitempty"`
	// WALDisk is the file system of a master's pg_wal, which a slot
	// whose standby stays away fills.
	WALDisk *Disk `json:"wal_disk,omitempty"`
	// Notices are conditions an operator should see, each with what to do.
	Notices []Notice `json:"notices,omitempty"`
}

// CatchUp is a standby's progress towards its master.
type CatchUp struct {
	// BytesBehind is the master's WAL the standby has not replayed.
	BytesBehind int64 `json:"bytes_behind"`
	// RateBytes is how fast the gap closes, in bytes per second; 0 until
	// two readings are known, negative when the gap grows.
	RateBytes float64 `json:"rate_bytes_per_second"`
	// ETASeconds estimates the time left; nil while the gap does not close.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// Since is when the standby began catching up.
	Since time.Time `json:"since"`
}

// ReplicationSlot is one replication slot on a master.
type ReplicationSlot struct {
	Name string `json:"name"`
	// Node is the standby the slot serves, when known.
	Node   string `json:"node,omitempty"`
	Active bool   `json:"active"`
	// RetainedBytes is the WAL the slot keeps from being recycled.
	RetainedBytes int64 `json:"retained_bytes"`
	// WALStatus is PostgreSQL's: "reserved", "extended", "unreserved", "lost".
	WALStatus string `json:"wal_status,omitempty"`
	// SafeBytes is how much more WAL may be written before
	// max_slot_wal_keep_size invalidates the slot; nil when unlimited.
	SafeBytes *int64 `json:"safe_bytes,omitempty"`
	// Warning says RetainedBytes is past the configured threshold.
	Warning bool `json:"warning,omitempty"`
}

// Disk is the space of one file system.
type Disk struct {
	Path        string  `json:"path"`
	TotalBytes  int64   `json:"total_bytes"`
	FreeBytes   int64   `json:"free_bytes"`
	UsedPercent float64 `json:"used_percent"`
}

// Notice is a condition an operator should see, and what to do about it.
type Notice struct {
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// Switch is a line switch or a power switch.
type Switch struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"` // "line" or "power"
	Driver    string   `json:"driver"`
	Node      string   `json:"node,omitempty"`     // the node that drives the device
	Position  string   `json:"position,omitempty"` // line switch: the node the lines go to
	Verified  bool     `json:"verified"`
	Reachable bool     `json:"reachable"`
	Outlets   []Outlet `json:"outlets,omitempty"`
	Error     string   `json:"error,omitempty"`
	// Watchdog is a line switch's hardware watchdog as last read: "on"
	// (armed: the device acts by itself when its driver stops kicking
	// it), "off", "failed" (it fired: the lines are at Failsafe); "" when
	// the device has none.
	Watchdog string `json:"watchdog,omitempty"`
	// WatchdogTimeout is how long the armed watchdog waits for a kick.
	WatchdogTimeout time.Duration `json:"watchdog_timeout_ns,omitempty"`
	// Failsafe is where a line switch sends the lines by itself when its
	// watchdog fires or it loses power: the node there, or the device's
	// position when no node is; "" when the lines stay where they are.
	Failsafe string `json:"failsafe,omitempty"`
	// Stale is set when the driving node does not answer: the switch is
	// shown from that node's last report, as it was known at AsOf, so a
	// device never drops off the screen with its driver.
	Stale bool      `json:"stale,omitempty"`
	AsOf  time.Time `json:"as_of,omitzero"`
}

// Outlet is one socket of a power switch.
type Outlet struct {
	Name     string `json:"name"`
	Node     string `json:"node,omitempty"`
	On       bool   `json:"on"`
	Verified bool   `json:"verified"`
}

// Severity grades an event.
type Severity string

// Severities.
const (
	SevInfo     Severity = "info"
	SevWarning  Severity = "warning"
	SevCritical Severity = "critical"
)

// Event is one line of the event log.
type Event struct {
	Time     time.Time `json:"time"`
	Node     string    `json:"node,omitempty"`
	Kind     string    `json:"kind"` // e.g. "member", "standby", "action", "failover"
	Severity Severity  `json:"severity"`
	Message  string    `json:"message"`
	// Relayed marks an event this agent learned from another agent's
	// report, so it is never relayed back.
	Relayed bool `json:"relayed,omitempty"`
	// User and Result are set on audit entries (kind "audit"): who asked
	// for the action and how it ended ("ok", "refused", "failed").
	User   string `json:"user,omitempty"`
	Result string `json:"result,omitempty"`
}

// FindNode returns the node with the given name and whether it exists.
func (s *Snapshot) FindNode(name string) (Node, bool) {
	for _, n := range s.Nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Nodes returns every node of the snapshot in site, cluster, name order.
func (s *Snapshot) Nodes() []Node {
	var out []Node
	for _, site := range s.Sites {
		for _, c := range site.Clusters {
			out = append(out, c.Nodes...)
		}
	}
	return out
}

// Clusters returns every cluster of the snapshot in site, cluster order.
func (s *Snapshot) Clusters() []Cluster {
	var out []Cluster
	for _, site := range s.Sites {
		out = append(out, site.Clusters...)
	}
	return out
}

// Fingerprint returns bytes that differ between two snapshots only when
// something an operator acts on differs. It leaves out what is merely fresh
// (when the snapshot was taken, when a heartbeat or a check last arrived,
// a link's round trip time), so a watch that sends only on a new
// fingerprint stays silent while nothing happens, however often its agent
// is woken.
func (s *Snapshot) Fingerprint() []byte {
	if s == nil {
		return nil
	}
	c := *s
	c.Time = time.Time{}
	c.Sites = make([]Site, len(s.Sites))
	for i, site := range s.Sites {
		site.Clusters = slices.Clone(site.Clusters)
		for j := range site.Clusters {
			cl := &site.Clusters[j]
			cl.Nodes = slices.Clone(cl.Nodes)
			for k := range cl.Nodes {
				n := &cl.Nodes[k]
				n.Links = slices.Clone(n.Links)
				for l := range n.Links {
					n.Links[l].LastSeen, n.Links[l].RTT = time.Time{}, 0
				}
			}
			cl.Groups = slices.Clone(cl.Groups)
			for k := range cl.Groups {
				g := &cl.Groups[k]
				g.Resources = slices.Clone(g.Resources)
				for r := range g.Resources {
					res := &g.Resources[r]
					res.Checks = slices.Clone(res.Checks)
					for x := range res.Checks {
						res.Checks[x].At = time.Time{}
					}
				}
			}
		}
		c.Sites[i] = site
	}
	b, err := json.Marshal(&c)
	if err != nil {
		// Every field marshals; never report "unchanged" on a surprise.
		return []byte(err.Error() + time.Now().String())
	}
	return b
}
