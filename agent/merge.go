package agent

import (
	"slices"

	"github.com/hatui/hatui/protocol"
)

// mergeReport folds one node's own report into the deployment snapshot.
// Each kind of state has one owner, so there is nothing to reconcile: a
// database and a node's links belong to their node, a switch to the node
// that drives it, a group's state to the node that holds it (any node of
// the cluster when none does), the geo state to whoever reports it first
// (it is replicated).
func mergeReport(dst, r *protocol.Snapshot) {
	if dst.Geo == nil && r.Geo != nil {
		dst.Geo = r.Geo
	}
	for _, rs := range r.Sites {
		for _, rc := range rs.Clusters {
			c := findCluster(dst, rs.Name, rc.Name)
			if c == nil {
				continue // a member we do not know yet: gossip will bring it
			}
			for _, rn := range rc.Nodes {
				for i := range c.Nodes {
					n := &c.Nodes[i]
					if n.Name != rn.Name {
						continue
					}
					if rn.Name == r.From && n.Member == protocol.MemberAlive {
						// A node's own report is pushed over the peer channel
						// the moment its flags change; gossip brings the same
						// tags later. The owner's word is the fresher one.
						n.Standby, n.Maintenance = rn.Standby, rn.Maintenance
						n.State = protocol.DeriveState(n.Member, n.Standby, n.Maintenance, n.Unclean)
					}
					if rn.Unclean && n.Member != protocol.MemberAlive && !n.Unclean {
						// Failover knows the node may still hold the group.
						n.Unclean = true
						n.State = protocol.DeriveState(n.Member, n.Standby, n.Maintenance, true)
					}
					for _, l := range rn.Links {
						if l.Path != "serf" {
							n.Links = append(n.Links, l)
						}
					}
				}
			}
			for _, g := range rc.Groups {
				i := slices.IndexFunc(c.Groups, func(x protocol.Group) bool { return x.Name == g.Name })
				switch {
				case i < 0:
					c.Groups = append(c.Groups, g)
				case g.Active == r.From:
					c.Groups[i] = g
				}
			}
			for _, d := range rc.Databases {
				if i := slices.IndexFunc(c.Databases, func(x protocol.Database) bool { return x.Node == d.Node }); i >= 0 {
					c.Databases[i] = d
				} else {
					c.Databases = append(c.Databases, d)
				}
			}
			for _, sw := range rc.Switches {
				if i := slices.IndexFunc(c.Switches, func(x protocol.Switch) bool { return x.Name == sw.Name }); i >= 0 {
					c.Switches[i] = sw
				} else {
					c.Switches = append(c.Switches, sw)
				}
			}
			for _, f := range rc.Failed {
				if !slices.Contains(c.Failed, f) {
					c.Failed = append(c.Failed, f)
				}
			}
			if rc.Quorum.Source == "failover" {
				switch {
				case c.Quorum.Source != "failover":
					// The failover voters' count replaces the gossip guess.
					c.Quorum = protocol.Quorum{Source: "failover", Voters: rc.Quorum.Voters, Present: rc.Quorum.Present, HasQuorum: rc.Quorum.HasQuorum}
				case rc.Quorum.HasQuorum && (!c.Quorum.HasQuorum || rc.Quorum.Present > c.Quorum.Present):
					// A cut-off voter sees less than the majority does.
					c.Quorum.Present, c.Quorum.HasQuorum = rc.Quorum.Present, true
				}
			}
			for _, risk := range rc.Quorum.Risks {
				if !slices.Contains(c.Quorum.Risks, risk) {
					c.Quorum.Risks = append(c.Quorum.Risks, risk)
				}
			}
			slices.Sort(c.Quorum.Risks) // the same text whichever report came first
		}
	}
}

func findCluster(s *protocol.Snapshot, site, cluster string) *protocol.Cluster {
	for i := range s.Sites {
		if s.Sites[i].Name != site {
			continue
		}
		for j := range s.Sites[i].Clusters {
			if s.Sites[i].Clusters[j].Name == cluster {
				return &s.Sites[i].Clusters[j]
			}
		}
	}
	return nil
}
