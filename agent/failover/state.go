package failover

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Phase is what the decision state says of the group.
type Phase string

// Phases.
const (
	// PhaseVacant: nobody holds the group.
	PhaseVacant Phase = "vacant"
	// PhaseAssigned: a holder is recorded and has not reported since.
	PhaseAssigned Phase = "assigned"
	PhaseStarting Phase = "starting"
	PhaseStarted  Phase = "started"
	PhaseStopping Phase = "stopping"
	// PhaseFailed: the holder could not start or stop the group.
	PhaseFailed Phase = "failed"
)

// Evidence is what justified the latest change of holder.
type Evidence string

// Evidence values.
const (
	// EvidenceVacant: nobody held the group.
	EvidenceVacant Evidence = "vacant"
	// EvidenceClaim: the holder confirmed, after an agent restart or a
	// self-fence, that it still holds the group; the epoch moves on so
	// that failure votes against the old epoch no longer count.
	EvidenceClaim Evidence = "claim"
	// EvidenceMajority: a majority of voters saw the old holder failed.
	EvidenceMajority Evidence = "majority"
	// EvidenceFenced: the old holder was verifiably powered off.
	EvidenceFenced Evidence = "fenced"
	// EvidenceTwoNodeRisk: two nodes without fencing or witness, and the
	// operator allowed it (allow_two_node_risk).
	EvidenceTwoNodeRisk Evidence = "two-node-risk"
	// EvidenceSwitchover: a planned handover by an operator.
	EvidenceSwitchover Evidence = "switchover"
)

// GroupRecord is the replicated truth about the group: who holds it, at
// which epoch. A node starts the group only after the log records it as
// holder at an epoch it took itself (see Engine).
type GroupRecord struct {
	Name   string `json:"name"`
	Holder string `json:"holder,omitempty"`
	// HolderInc is the incarnation of the holder's engine that took the
	// group: an engine that restarted must claim it again.
	HolderInc string    `json:"holder_inc,omitempty"`
	Epoch     uint64    `json:"epoch"`
	Phase     Phase     `json:"phase"`
	Reason    string    `json:"reason,omitempty"`
	Evidence  Evidence  `json:"evidence,omitempty"`
	Previous  string    `json:"previous,omitempty"`
	Changed   time.Time `json:"changed,omitzero"`
}

// Report is one voter's view of another.
type Report struct {
	Failed bool `json:"failed"`
	// Epoch is the group's epoch when the view was reported: a vote
	// counts only against the epoch it saw.
	Epoch uint64    `json:"epoch"`
	At    time.Time `json:"at,omitzero"`
}

// NodeRecord is the replicated state of one voter.
type NodeRecord struct {
	Name    string `json:"name"`
	Witness bool   `json:"witness,omitempty"`
	// Inc is the incarnation its engine last announced.
	Inc string `json:"inc,omitempty"`
	// Geo says the geo manager drives the cluster from this node (its
	// hello said so).
	Geo         bool `json:"geo,omitempty"`
	Standby     bool `json:"standby,omitempty"`
	Maintenance bool `json:"maintenance,omitempty"`
	// Disabled is set by cluster disable: the node no longer acts on
	// failures (a holder keeps its group, unmanaged).
	Disabled bool `json:"disabled,omitempty"`
	// Banned says why the node may not hold the group until a cleanup
	// (a resource reached its migration threshold, a start failed).
	Banned    string            `json:"banned,omitempty"`
	Fenced    bool              `json:"fenced,omitempty"`
	FencedAt  time.Time         `json:"fenced_at,omitzero"`
	FencedBy  string            `json:"fenced_by,omitempty"`
	FencedInc string            `json:"fenced_inc,omitempty"`
	Views     map[string]Report `json:"views,omitempty"`
	// Cleanup counts cleanup requests for this node; CleanupDone is the
	// last one its engine carried out.
	Cleanup         uint64 `json:"cleanup,omitempty"`
	CleanupDone     uint64 `json:"cleanup_done,omitempty"`
	CleanupResource string `json:"cleanup_resource,omitempty"`
	// Watchdog says that the node's agent feeds a watchdog, Fences which
	// voters it can fence, as its engine last said hello: whether a node
	// whose agent dies alone is reset or fenced before a takeover.
	Watchdog bool     `json:"watchdog,omitempty"`
	Fences   []string `json:"fences,omitempty"`
}

// ActionRecord is an operator action in progress, kept in the state so
// that an agent that restarts half-way can resume or roll it back.
type ActionRecord struct {
	ID   uint64 `json:"id"`
	Verb string `json:"verb"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Runner is the node whose engine carries the action out, RunnerInc
	// the incarnation of that engine.
	Runner    string    `json:"runner"`
	RunnerInc string    `json:"runner_inc"`
	Step      string    `json:"step"`
	Epoch     uint64    `json:"epoch"`
	Started   time.Time `json:"started,omitzero"`
	// Prepared is "" while the target has not answered, "ok" when it is
	// ready, or why it is not.
	Prepared string   `json:"prepared,omitempty"`
	Acks     []string `json:"acks,omitempty"`
	Note     string   `json:"note,omitempty"`
	// Stop makes a disable stop the group too: the holder stops and
	// releases it once the standby side is disabled.
	Stop bool `json:"stop,omitempty"`
}

// State is the replicated decision state of one cluster.
type State struct {
	Initialized bool   `json:"initialized"`
	Cluster     string `json:"cluster"`
	// Voters are the voters in order of preference.
	Voters      []Voter `json:"voters"`
	TwoNodeRisk bool    `json:"two_node_risk,omitempty"`
	Activated   bool    `json:"activated"`
	// AutoActivate is an activate asked by the configuration (init) and
	// not yet carried out: the cluster activates by itself once every
	// voter has said hello and none of them is driven by the geo
	// manager. Any voter may win the init; waiting for all of them is
	// what keeps a witness with activate = true from putting a backup
	// site in service before its geo-driven node has joined.
	AutoActivate bool                     `json:"auto_activate,omitempty"`
	Group        GroupRecord              `json:"group"`
	Nodes        map[string]*NodeRecord   `json:"nodes"`
	Actions      map[uint64]*ActionRecord `json:"actions,omitempty"`
	NextAction   uint64                   `json:"next_action"`
	// Index is the raft index of the last command applied.
	Index uint64 `json:"index"`
}

func newState() *State {
	return &State{Nodes: map[string]*NodeRecord{}, Actions: map[uint64]*ActionRecord{}}
}

// clone returns a deep copy.
func (s *State) clone() *State {
	c := *s
	c.Voters = slices.Clone(s.Voters)
	c.Nodes = make(map[string]*NodeRecord, len(s.Nodes))
	for k, n := range s.Nodes {
		nn := *n
		nn.Views = maps.Clone(n.Views)
		nn.Fences = slices.Clone(n.Fences)
		c.Nodes[k] = &nn
	}
	c.Actions = make(map[uint64]*ActionRecord, len(s.Actions))
	for k, a := range s.Actions {
		aa := *a
		aa.Acks = slices.Clone(a.Acks)
		c.Actions[k] = &aa
	}
	return &c
}

// majority is how many voters make a majority.
func (s *State) majority() int { return len(s.Voters)/2 + 1 }

// voterNames lists the voters' names in preference order.
func (s *State) voterNames() []string {
	out := make([]string, len(s.Voters))
	for i, v := range s.Voters {
		out[i] = v.Name
	}
	return out
}

// node returns the record of n, or nil.
func (s *State) node(n string) *NodeRecord { return s.Nodes[n] }

// ineligible says why n may not hold the group now, "" when it may.
func (s *State) ineligible(n string) string {
	r := s.node(n)
	switch {
	case r == nil:
		return n + " is not a node of cluster " + s.Cluster
	case r.Witness:
		return n + " is the witness and holds no group"
	case !s.Activated:
		return s.notActivated()
	case r.Standby:
		return n + " is in standby"
	case r.Maintenance:
		return n + " is in maintenance"
	case r.Disabled:
		return n + " is disabled"
	case r.Fenced:
		return n + " is fenced"
	case r.Banned != "":
		return n + " may not hold " + s.Group.Name + " until a cleanup: " + r.Banned
	}
	return ""
}

// agreeing lists the voters whose current report says subject failed at
// the group's current epoch.
func (s *State) agreeing(subject string) []string {
	var out []string
	for _, v := range s.Voters {
		if v.Name == subject {
			continue
		}
		if r, ok := s.Nodes[v.Name].Views[subject]; ok && r.Failed && r.Epoch == s.Group.Epoch {
			out = append(out, v.Name)
		}
	}
	return out
}

// crashExposed lists the nodes that can hold the group and whose agent
// could die alone with nothing to stop the group on them before another
// node takes it over: no watchdog, and no voter that can fence them. Only
// nodes whose engine has said hello are known.
func (s *State) crashExposed() []string {
	var out []string
	for _, v := range s.Voters {
		n := s.node(v.Name)
		if v.Witness || n == nil || n.Inc == "" || n.Watchdog {
			continue
		}
		fenced := false
		for _, o := range s.Nodes {
			fenced = fenced || o.Name != v.Name && slices.Contains(o.Fences, v.Name)
		}
		if !fenced {
			out = append(out, v.Name)
		}
	}
	return out
}

// action returns the action in progress, if any.
func (s *State) action() *ActionRecord {
	for _, id := range slices.Sorted(maps.Keys(s.Actions)) {
		return s.Actions[id]
	}
	return nil
}

// command ops.
const (
	opInit        = "init"
	opHello       = "hello"
	opReport      = "report"
	opAcquire     = "acquire"
	opPhase       = "phase"
	opRelease     = "release"
	opFlags       = "flags"
	opCleanup     = "cleanup"
	opCleanupDone = "cleanup-done"
	opFenced      = "fenced"
	opActivate    = "activate"
	opDeactivate  = "deactivate"
	opDisable     = "disable-node"
	opBegin       = "action-begin"
	opStep        = "action-step"
	opPrepared    = "action-prepared"
	opAck         = "action-ack"
	opEnd         = "action-end"
)

// command is one entry of the decision log.
type command struct {
	Op string `json:"op"`
	// At is stamped by the leader; for display only, never for safety.
	At time.Time `json:"at,omitzero"`
	// By is the proposing node, Inc its engine's incarnation.
	By  string `json:"by"`
	Inc string `json:"inc,omitempty"`
	// Node is the node the command is about.
	Node     string        `json:"node,omitempty"`
	Subject  string        `json:"subject,omitempty"`
	Epoch    uint64        `json:"epoch,omitempty"`
	Holder   string        `json:"holder,omitempty"`
	Evidence Evidence      `json:"evidence,omitempty"`
	Failed   bool          `json:"failed,omitempty"`
	Phase    Phase         `json:"phase,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Ban      string        `json:"ban,omitempty"`
	Standby  *bool         `json:"standby,omitempty"`
	Maint    *bool         `json:"maintenance,omitempty"`
	On       bool          `json:"on,omitempty"`
	Resource string        `json:"resource,omitempty"`
	Seq      uint64        `json:"seq,omitempty"`
	Action   uint64        `json:"action,omitempty"`
	Record   *ActionRecord `json:"record,omitempty"`
	Step     string        `json:"step,omitempty"`
	// Hello only: what would stop this node's group if its agent died.
	Watchdog bool     `json:"watchdog,omitempty"`
	Fences   []string `json:"fences,omitempty"`
	// Hello only: the geo manager drives the cluster from this node.
	Geo bool `json:"geo,omitempty"`
	// Init only.
	Cluster  string  `json:"cluster,omitempty"`
	Group    string  `json:"group,omitempty"`
	Voters   []Voter `json:"voters,omitempty"`
	Risk     bool    `json:"risk,omitempty"`
	Activate bool    `json:"activate,omitempty"`
}

// result is what applying a command gives.
type result struct {
	Err    *protocol.Error `json:"error,omitempty"`
	Epoch  uint64          `json:"epoch,omitempty"`
	Action uint64          `json:"action,omitempty"`
	Index  uint64          `json:"index,omitempty"`
}

func decodeCommand(b []byte) (*command, error) {
	var c command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decoding a failover command: %w", err)
	}
	if c.Op == "" {
		return nil, fmt.Errorf("decoding a failover command: no op")
	}
	return &c, nil
}

func refused(hint, format string, args ...any) result {
	return result{Err: protocol.Errorf(protocol.CodeRefused, hint, format, args...)}
}

// apply applies c to s and says how it went. It is deterministic: it
// reads nothing but s and c.
func (s *State) apply(c *command) result {
	if c.Op != opInit && !s.Initialized {
		return refused("wait for the cluster to form", "%s: the decision state is not initialised yet", c.Op)
	}
	if c.Node != "" && c.Op != opInit && s.node(c.Node) == nil {
		return result{Err: protocol.Errorf(protocol.CodeUnknownNode, "", "%s is not a voter of cluster %s", c.Node, s.Cluster)}
	}
	switch c.Op {
	case opInit:
		return s.applyInit(c)
	case opHello:
		n := s.node(c.Node)
		if n.Fenced && n.FencedInc != c.Inc {
			// It booted again after the fence: it is back.
			n.Fenced, n.FencedInc = false, ""
		}
		n.Inc = c.Inc
		n.Watchdog, n.Fences = c.Watchdog, slices.Clone(c.Fences)
		n.Geo = c.Geo
		s.settleActivation()
		return result{}
	case opReport:
		if s.node(c.Subject) == nil {
			return result{Err: protocol.Errorf(protocol.CodeUnknownNode, "", "%s is not a voter of cluster %s", c.Subject, s.Cluster)}
		}
		n := s.node(c.Node)
		if n.Views == nil {
			n.Views = map[string]Report{}
		}
		n.Views[c.Subject] = Report{Failed: c.Failed, Epoch: c.Epoch, At: c.At}
		return result{}
	case opAcquire:
		return s.applyAcquire(c)
	case opPhase:
		g := &s.Group
		if g.Holder != c.Node || g.Epoch != c.Epoch {
			return refused("", "%s does not hold %s at epoch %d (holder %q, epoch %d)", c.Node, g.Name, c.Epoch, g.Holder, g.Epoch)
		}
		g.Phase, g.Reason = c.Phase, c.Reason
		return result{Epoch: g.Epoch}
	case opRelease:
		g := &s.Group
		if g.Holder != c.Node || g.Epoch != c.Epoch {
			return refused("", "%s does not hold %s at epoch %d (holder %q, epoch %d)", c.Node, g.Name, c.Epoch, g.Holder, g.Epoch)
		}
		g.Previous, g.Holder, g.HolderInc = g.Holder, "", ""
		g.Phase, g.Reason, g.Changed = PhaseVacant, c.Reason, c.At
		if c.Ban != "" {
			s.node(c.Node).Banned = c.Ban
		}
		return result{Epoch: g.Epoch}
	case opFlags:
		n := s.node(c.Node)
		if n.Witness {
			return refused("standby and maintenance are for nodes that hold groups", "%s is the witness", c.Node)
		}
		if c.Standby != nil {
			n.Standby = *c.Standby
		}
		if c.Maint != nil {
			n.Maintenance = *c.Maint
		}
		return result{}
	case opCleanup:
		n := s.node(c.Node)
		n.Cleanup++
		n.CleanupResource = c.Resource
		return result{Action: n.Cleanup}
	case opCleanupDone:
		n := s.node(c.Node)
		if c.Seq > n.CleanupDone {
			n.CleanupDone = c.Seq
		}
		n.Banned = ""
		return result{}
	case opFenced:
		n := s.node(c.Node)
		n.Fenced, n.FencedAt, n.FencedBy, n.FencedInc = true, c.At, c.By, n.Inc
		return result{}
	case opActivate:
		s.Activated, s.AutoActivate = true, false
		for _, n := range s.Nodes {
			n.Disabled = false
		}
		return result{}
	case opDeactivate:
		s.Activated, s.AutoActivate = false, false
		return result{}
	case opDisable:
		s.node(c.Node).Disabled = c.On
		return result{}
	case opBegin, opStep, opPrepared, opAck, opEnd:
		return s.applyAction(c)
	}
	return result{Err: protocol.Errorf(protocol.CodeBadRequest, "", "unknown failover command %q", c.Op)}
}

func (s *State) applyInit(c *command) result {
	if s.Initialized {
		return result{} // every voter may try; the first wins
	}
	if len(c.Voters) < 2 || !nameRE.MatchString(c.Group) {
		return result{Err: protocol.Errorf(protocol.CodeBadRequest, "", "init needs a group and at least two voters")}
	}
	s.Initialized, s.Cluster, s.TwoNodeRisk, s.AutoActivate = true, c.Cluster, c.Risk, c.Activate
	s.Voters = slices.Clone(c.Voters)
	s.Group = GroupRecord{Name: c.Group, Phase: PhaseVacant, Changed: c.At}
	for _, v := range c.Voters {
		if _, dup := s.Nodes[v.Name]; dup || !nameRE.MatchString(v.Name) {
			return result{Err: protocol.Errorf(protocol.CodeBadRequest, "", "init: voter %q is invalid or listed twice", v.Name)}
		}
		s.Nodes[v.Name] = &NodeRecord{Name: v.Name, Witness: v.Witness}
	}
	return result{}
}

// settleActivation carries out a pending activate from the configuration
// once every voter has said hello, or drops it when one of them is
// driven by the geo manager (which alone puts the cluster in service).
func (s *State) settleActivation() {
	if !s.AutoActivate {
		return
	}
	for _, v := range s.Voters {
		n := s.node(v.Name)
		if n != nil && n.Geo {
			s.AutoActivate = false
			return
		}
	}
	if len(s.autoActivateWaits()) == 0 {
		s.Activated, s.AutoActivate = true, false
	}
}

// autoActivateWaits lists the voters a pending activate waits for.
func (s *State) autoActivateWaits() []string {
	var out []string
	for _, v := range s.Voters {
		if n := s.node(v.Name); n == nil || n.Inc == "" {
			out = append(out, v.Name)
		}
	}
	return out
}

// notActivated says why the cluster is not activated.
func (s *State) notActivated() string {
	if s.AutoActivate {
		return "cluster " + s.Cluster + " activates once every voter has joined (waiting for " + strings.Join(s.autoActivateWaits(), ", ") + ")"
	}
	return "cluster " + s.Cluster + " is not activated"
}

func (s *State) applyAcquire(c *command) result {
	g := &s.Group
	if c.Epoch != g.Epoch || c.Holder != g.Holder {
		return refused("the group changed meanwhile: look again", "%s changed: it is at epoch %d held by %q, not epoch %d held by %q",
			g.Name, g.Epoch, g.Holder, c.Epoch, c.Holder)
	}
	why := s.ineligible(c.Node)
	old := g.Holder
	switch c.Evidence {
	case EvidenceClaim:
		if old != c.Node {
			return refused("", "%s cannot claim %s: %q holds it", c.Node, g.Name, old)
		}
	case EvidenceVacant:
		if old != "" {
			return refused("", "%s is held by %s", g.Name, old)
		}
		if a := s.action(); a != nil && a.Verb == verbSwitchover && a.To != c.Node {
			return refused("wait for the switchover to end", "%s is reserved for %s by switchover %d", g.Name, a.To, a.ID)
		}
	case EvidenceSwitchover:
		a := s.Actions[c.Action]
		if old != "" || a == nil || a.To != c.Node {
			return refused("", "no switchover hands %s to %s", g.Name, c.Node)
		}
	case EvidenceMajority:
		if old == "" || old == c.Node {
			return refused("", "%s is not held by another node", g.Name)
		}
		if s.node(old).Maintenance {
			return refused("take "+old+" out of maintenance first", "%s is in maintenance: its resources are unmanaged", old)
		}
		if agree := s.agreeing(old); len(agree) < s.majority() || !slices.Contains(agree, c.Node) {
			return refused("a takeover needs a majority of voters to see the holder failed",
				"only %d of %d voters (%s) see %s failed at epoch %d; %d needed",
				len(agree), len(s.Voters), strings.Join(agree, ", "), old, g.Epoch, s.majority())
		}
	case EvidenceFenced:
		if old == "" || old == c.Node {
			return refused("", "%s is not held by another node", g.Name)
		}
		if !s.node(old).Fenced {
			return refused("fence it first", "%s is not recorded as fenced", old)
		}
	case EvidenceTwoNodeRisk:
		if !s.TwoNodeRisk || len(s.Voters) != 2 || old == "" || old == c.Node {
			return refused("", "a takeover at two-node risk needs two voters and allow_two_node_risk")
		}
	default:
		return result{Err: protocol.Errorf(protocol.CodeBadRequest, "", "unknown evidence %q", c.Evidence)}
	}
	if why != "" {
		return refused("", "%s cannot hold %s: %s", c.Node, g.Name, why)
	}
	if old != "" && old != c.Node {
		// From vacant, Previous keeps the node that released it.
		g.Previous = old
	}
	g.Holder, g.HolderInc, g.Epoch = c.Node, c.Inc, g.Epoch+1
	g.Phase, g.Evidence, g.Reason, g.Changed = PhaseAssigned, c.Evidence, c.Reason, c.At
	return result{Epoch: g.Epoch}
}

func (s *State) applyAction(c *command) result {
	if c.Op == opBegin {
		if c.Record == nil {
			return result{Err: protocol.Errorf(protocol.CodeBadRequest, "", "action-begin without a record")}
		}
		if a := s.action(); a != nil {
			return result{Err: protocol.Errorf(protocol.CodeBusy, "wait for it to finish, or see status",
				"%s is in progress (action %d, step %s, run by %s)", a.Verb, a.ID, a.Step, a.Runner)}
		}
		s.NextAction++
		a := *c.Record
		a.ID, a.Started = s.NextAction, c.At
		s.Actions[a.ID] = &a
		return result{Action: a.ID}
	}
	a := s.Actions[c.Action]
	if a == nil {
		return refused("", "action %d is not in progress", c.Action)
	}
	switch c.Op {
	case opStep:
		a.Step, a.Note = c.Step, c.Reason
		if c.Inc != "" {
			a.Runner, a.RunnerInc = c.By, c.Inc
		}
	case opPrepared:
		if c.Node != a.To {
			return refused("", "%s is not the target of action %d", c.Node, a.ID)
		}
		a.Prepared = c.Reason
	case opAck:
		if !slices.Contains(a.Acks, c.Node) {
			a.Acks = append(a.Acks, c.Node)
		}
	case opEnd:
		delete(s.Actions, a.ID)
	}
	return result{Action: a.ID}
}
