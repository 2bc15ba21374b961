package failover

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/resource"
	"github.com/hatui/hatui/protocol"
)

// Status is what this engine knows, in the protocol's terms, for the
// agent to put in its snapshot's Cluster.
type Status struct {
	// Quorum is the cluster's voters as seen from here, with the risks an
	// operator must see.
	Quorum protocol.Quorum
	// Nodes are the voters with their flags; membership is this node's
	// view over all its heartbeat paths, and this node's entry carries
	// its links (one per peer and path).
	Nodes []protocol.Node
	// Group is the service group: the holder from the decision log, its
	// state, and this node's resources when it holds the group.
	Group protocol.Group
	// Failed are this node's failed actions.
	Failed []protocol.Failure
	// Epoch is the group's epoch in the decision log.
	Epoch uint64
	// Leader is the voter that leads the decision log, "" if none.
	Leader    string
	Activated bool
	// PendingActivate is an activate from the configuration that waits
	// for every voter to join (see State.AutoActivate).
	PendingActivate bool
	// Action is the operator action in progress, if any.
	Action *ActionRecord
}

// riskTwoNode is the sentence shown for two nodes at risk.
const riskTwoNode = "two nodes without fencing or witness: a network blip can cause split brain (allow_two_node_risk is set)"

// riskAgentCrash is the sentence shown for a node whose agent may die
// alone with nothing to stop its group.
func riskAgentCrash(node, group string) string {
	return fmt.Sprintf("%s has no watchdog and no node can fence it: if its agent dies alone, %s keeps running on %s while another node takes it over (allow_agent_crash_risk)", node, group, node)
}

// crashExposed lists the nodes whose agent could die alone with nothing
// to stop the group there: as their engines said hello in the log, and
// this node at once when it knows it is one (no watchdog, no fencing).
func (e *Engine) crashExposed(st *State) []string {
	out := st.crashExposed()
	if e.w != nil && e.unguarded() && !slices.Contains(out, e.cfg.Node) {
		if r := st.node(e.cfg.Node); r == nil || r.Inc != e.inc {
			out = append(out, e.cfg.Node)
		}
	}
	return out
}

// Status returns the engine's view now.
func (e *Engine) Status() Status {
	st := e.fsm.state()
	v := e.currentView()
	if v.Peers == nil {
		v = observe(e.deps.Paths, e.peers, e.cfg.Timing, e.started, time.Now())
	}
	out := Status{Epoch: st.Group.Epoch, Leader: e.rn.leader(), Activated: st.Activated, PendingActivate: st.AutoActivate, Action: st.action()}

	present := 1
	for _, n := range e.peers {
		if v.Peers[n].Up {
			present++
		}
	}
	maj := len(e.cfg.Voters)/2 + 1
	out.Quorum = protocol.Quorum{Source: "failover", Voters: len(e.cfg.Voters), Present: present, HasQuorum: present >= maj}
	switch e.mode {
	case modeRisk:
		out.Quorum.Risks = append(out.Quorum.Risks, riskTwoNode)
		if present < 2 {
			// No majority is asked for in this mode: the survivor takes
			// the group alone, which is the risk that was accepted.
			out.Quorum.HasQuorum = true
			out.Quorum.Risks = append(out.Quorum.Risks, fmt.Sprintf(
				"%s out of contact: %s decides alone, by allow_two_node_risk (no majority, no fencing); if %s still runs, both hold %s",
				strings.Join(e.peers, ", "), e.cfg.Node, strings.Join(e.peers, ", "), e.cfg.Group))
		}
	case modeFence:
		// Two nodes decide by fencing: that is a quorum of its own.
		out.Quorum.HasQuorum = true
		switch {
		case present >= 2:
		case st.Group.Holder == e.cfg.Node:
			// Nothing is to be taken over here: what is at stake is
			// that nobody would take over from this node.
			out.Quorum.Risks = append(out.Quorum.Risks, fmt.Sprintf("one node left: %s runs %s with no standby", e.cfg.Node, e.cfg.Group))
		default:
			out.Quorum.Risks = append(out.Quorum.Risks, "one node left: a takeover depends on the fencing device answering")
		}
	}
	if e.mode != modeFence && !out.Quorum.HasQuorum {
		out.Quorum.Risks = append(out.Quorum.Risks, fmt.Sprintf("no majority: %d of %d voters present, so nothing can be taken over", present, len(e.cfg.Voters)))
	}
	for _, n := range e.crashExposed(st) {
		out.Quorum.Risks = append(out.Quorum.Risks, riskAgentCrash(n, e.cfg.Group))
	}
	if onlySerf(e.deps.Paths) && len(e.cfg.Voters) == 2 {
		out.Quorum.Risks = append(out.Quorum.Risks, "Serf is the only heartbeat path: one broken switch looks like a failed node (add a serial or dedicated NIC path)")
	}

	g := st.Group
	for _, voter := range st.Voters {
		r := st.node(voter.Name)
		n := protocol.Node{Name: voter.Name, Cluster: e.cfg.Cluster, Addr: voter.Addr, Standby: r.Standby, Maintenance: r.Maintenance}
		if voter.Witness {
			n.Role = "witness"
		}
		pv := v.Peers[voter.Name]
		switch {
		case voter.Name == e.cfg.Node:
			n.Member = protocol.MemberAlive
			for _, p := range e.peers {
				n.Links = append(n.Links, v.Peers[p].Links...)
			}
		case pv.Up:
			n.Member = protocol.MemberAlive
		case pv.Failed:
			n.Member = protocol.MemberFailed
		default:
			n.Member = protocol.MemberUnknown
		}
		// A node that failed while it may still run the group, and is not
		// verifiably off, is unclean.
		n.Unclean = n.Member != protocol.MemberAlive && !r.Fenced && g.Holder == voter.Name
		n.State = protocol.DeriveState(n.Member, n.Standby, n.Maintenance, n.Unclean)
		e.mu.Lock()
		if ps, ok := e.prev[voter.Name]; ok {
			n.Since = ps.since
		}
		e.mu.Unlock()
		out.Nodes = append(out.Nodes, n)
	}

	// Before the decision log is initialised the state names no group;
	// the screen still needs to say which one is not running yet.
	name := g.Name
	if name == "" {
		name = e.cfg.Group
	}
	out.Group = protocol.Group{Name: name, Active: g.Holder}
	e.mu.Lock()
	blocked := e.blocked
	e.mu.Unlock()
	switch {
	case !st.Initialized:
		out.Group.State, out.Group.Reason = "unmanaged", "cluster "+e.cfg.Cluster+" has not formed yet"
	case !st.Activated:
		out.Group.State, out.Group.Reason = "unmanaged", st.notActivated()
	case g.Holder == "":
		out.Group.State, out.Group.Reason = "stopped", g.Reason
	case g.Holder != "" && st.node(g.Holder).Maintenance:
		out.Group.State, out.Group.Reason = "unmanaged", g.Holder+" is in maintenance"
	default:
		out.Group.State, out.Group.Reason = phaseWord(g.Phase), g.Reason
		if failedHolder := slices.ContainsFunc(out.Nodes, func(n protocol.Node) bool { return n.Name == g.Holder && n.Member == protocol.MemberFailed }); failedHolder {
			out.Group.State = "stopped"
			out.Group.Reason = g.Holder + " failed while holding it"
		}
	}
	if blocked != "" {
		out.Group.Reason = strings.TrimSpace(blocked)
	}
	if e.w != nil && g.Holder == e.cfg.Node {
		if why := e.w.inUseReason(g.Epoch); why != "" {
			out.Group.State, out.Group.Reason = "starting", why
		}
	}
	if e.w != nil {
		local := e.deps.Group.Status(e.cfg.Node)
		if g.Holder == e.cfg.Node || e.w.status().running {
			out.Group.Resources = local.Resources
		} else {
			// A warm standby: the warm resources run here too, ready for
			// the address (resource.Group.StartWarm).
			for _, r := range local.Resources {
				if r.Warm && r.State != resource.ResStopped {
					out.Group.Resources = append(out.Group.Resources, r)
				}
			}
		}
		if e.deps.Monitor != nil {
			for i := range out.Group.Resources {
				out.Group.Resources[i].Checks = e.deps.Monitor.Checks(out.Group.Resources[i].Name)
			}
		}
		if ws := e.w.status(); ws.unclean {
			out.Group.State = "failed"
			out.Group.Reason = ws.err + " (fence " + e.cfg.Node + ")"
		}
		out.Failed = e.deps.Group.Failed(e.cfg.Node)
	}
	return out
}

func phaseWord(p Phase) string {
	switch p {
	case PhaseAssigned, PhaseStarting:
		return "starting"
	case PhaseStarted:
		return "started"
	case PhaseStopping:
		return "stopping"
	case PhaseFailed:
		return "failed"
	}
	return "stopped"
}

func onlySerf(paths []Path) bool {
	for _, p := range paths {
		if p.Kind() != PathSerf {
			return false
		}
	}
	return true
}
