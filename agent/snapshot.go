package agent

import (
	"slices"
	"sort"
	"time"

	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
)

// Snapshot implements localapi.Backend: the deployment as this agent
// sees it, or with protocol.ScopeNode only this node's own report.
func (a *Agent) Snapshot(scope protocol.Scope) *protocol.Snapshot {
	if scope == protocol.ScopeNode {
		return a.report()
	}
	snap := a.membershipSnapshot()
	own := a.report()
	mergeReport(snap, own)
	for _, r := range a.peers.reports() {
		mergeReport(snap, r)
	}
	for _, g := range a.peers.lastReports() {
		mergeLastSwitches(snap, g.report, g.asOf)
	}
	geoStandby(snap)
	serviceRisks(snap)
	snap.Island = a.island(own.Geo)
	return snap
}

// island says whether this agent is cut off from the majority of the geo
// voters, judged from its own geo view: the sites its geo pool reaches
// and the votes each site has.
func (a *Agent) island(g *protocol.Geo) *protocol.Island {
	if g == nil || !a.cfg.Geo.Enabled {
		return nil
	}
	votes := map[string]int{}
	for _, v := range a.cfg.Geo.Voters {
		votes[v.Site]++
	}
	is := &protocol.Island{Node: a.cfg.Node}
	for _, s := range g.Sites {
		is.Total += votes[s.Name]
		if s.Reachable {
			is.Sites = append(is.Sites, s.Name)
			is.Votes += votes[s.Name]
		} else {
			is.Unreached = append(is.Unreached, s.Name)
		}
	}
	if is.Total == 0 || is.Votes*2 > is.Total {
		return nil
	}
	return is
}

// report is this node's own part of the deployment: its node entry and
// what its features own.
func (a *Agent) report() *protocol.Snapshot {
	r := &protocol.Snapshot{
		Deployment: a.cfg.Deployment,
		From:       a.cfg.Node,
		Time:       time.Now().UTC(),
		Events:     localapi.OwnEvents(a.events.recent(50), a.cfg.Node),
	}
	self, err := a.member(a.cfg.Node)
	if err != nil {
		return r
	}
	n := nodeFromMember(self)
	r.Sites = []protocol.Site{{Name: n.Site, Clusters: []protocol.Cluster{{Name: n.Cluster, Site: n.Site, Nodes: []protocol.Node{n}}}}}
	for _, f := range a.allFeatures() {
		f.Report(r)
	}
	if risk := a.join.risk(); risk != "" {
		q := &r.Sites[0].Clusters[0].Quorum
		q.Risks = append(q.Risks, risk)
	}
	return r
}

// membershipSnapshot is the deployment as gossip alone shows it.
func (a *Agent) membershipSnapshot() *protocol.Snapshot {
	a.mu.Lock()
	lastChange := a.change
	a.mu.Unlock()
	snap := &protocol.Snapshot{
		Deployment: a.cfg.Deployment,
		From:       a.cfg.Node,
		Time:       time.Now().UTC(),
		Events:     a.events.recent(50),
	}
	type key struct{ site, cluster string }
	clusters := map[key]*protocol.Cluster{}
	for _, m := range a.members() {
		n := nodeFromMember(m)
		// The Serf link is this agent's: a path from here to the node. A
		// node has none to itself.
		n.Links[0].Peer = a.cfg.Node
		if n.Name == a.cfg.Node {
			n.Links = nil
		}
		k := key{n.Site, n.Cluster}
		c := clusters[k]
		if c == nil {
			c = &protocol.Cluster{Name: n.Cluster, Site: n.Site, LastChange: lastChange.UTC()}
			clusters[k] = c
		}
		c.Nodes = append(c.Nodes, n)
	}
	sites := map[string]*protocol.Site{}
	joinRisk := a.join.risk()
	for k, c := range clusters {
		c.Quorum = quorumOf(c.Nodes)
		if joinRisk != "" && slices.ContainsFunc(c.Nodes, func(n protocol.Node) bool { return n.Name == a.cfg.Node }) {
			// A node that never reached its peers sees a cluster of one:
			// that is not a quorum, whatever the count says.
			// The risk itself is in this node's report.
			c.Quorum.HasQuorum = false
		}
		s := sites[k.site]
		if s == nil {
			s = &protocol.Site{Name: k.site, Arbitrator: true}
			sites[k.site] = s
		}
		for _, n := range c.Nodes {
			if n.Role != "arbitrator" {
				s.Arbitrator = false
			}
		}
		s.Clusters = append(s.Clusters, *c)
	}
	for _, s := range sites {
		sort.Slice(s.Clusters, func(i, j int) bool { return s.Clusters[i].Name < s.Clusters[j].Name })
		snap.Sites = append(snap.Sites, *s)
	}
	sort.Slice(snap.Sites, func(i, j int) bool { return snap.Sites[i].Name < snap.Sites[j].Name })
	return snap
}

// members returns the pool's members of this deployment, sorted by name.
func (a *Agent) members() []membership.Member {
	if !a.poolReady.Load() {
		return nil // still starting: features may ask this early
	}
	var out []membership.Member
	for _, m := range a.pool.Members() {
		if m.Tags[tagDeployment] == a.cfg.Deployment {
			out = append(out, m)
		}
	}
	return out
}

// member finds a node of this deployment by name.
func (a *Agent) member(name string) (membership.Member, error) {
	for _, m := range a.members() {
		if m.Name == name {
			return m, nil
		}
	}
	return membership.Member{}, protocol.Errorf(protocol.CodeUnknownNode, "run 'status' to list the nodes",
		"no node named %q in deployment %s", name, a.cfg.Deployment)
}

func nodeFromMember(m membership.Member) protocol.Node {
	n := protocol.Node{
		Name:        m.Name,
		Site:        m.Tags[tagSite],
		Cluster:     m.Tags[tagCluster],
		Role:        m.Tags[tagRole],
		Addr:        m.Addr,
		Member:      m.Status,
		Standby:     m.Tags[tagStandby] == "1",
		Maintenance: m.Tags[tagMaint] == "1",
		Version:     m.Tags[tagVersion],
		Since:       m.Since.UTC(),
		Links: []protocol.Link{{
			Peer: m.Name, Path: "serf", Up: m.Status == protocol.MemberAlive,
		}},
	}
	n.State = protocol.DeriveState(n.Member, n.Standby, n.Maintenance, n.Unclean)
	return n
}

// quorumOf counts a cluster's voters. Until failover adds witnesses and
// fencing, every node is a voter and two voters are a shown risk.
func quorumOf(nodes []protocol.Node) protocol.Quorum {
	q := protocol.Quorum{Source: "membership"}
	for _, n := range nodes {
		if n.Member == protocol.MemberLeft {
			continue
		}
		q.Voters++
		if n.Member == protocol.MemberAlive {
			q.Present++
		}
	}
	q.HasQuorum = q.Present*2 > q.Voters
	// A guess about a cluster this agent sees none of would be about its
	// own view, not the cluster: its nodes' reports say more when they
	// come.
	if q.Voters == 2 && q.Present > 0 {
		q.Risks = append(q.Risks, "two nodes without witness: a network blip shorter than failure detection can look like a failure (split-brain risk)")
	}
	// No quorum is said by HasQuorum itself, with the count: a sentence
	// repeating it would show the same fact twice.
	return q
}
