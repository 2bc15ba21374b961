package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"

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
					g.Resources = append(slices.Clone(g.Resources), warmOf(c.Groups[i].Resources, g.Active)...)
					c.Groups[i] = g
				default:
					// A warm standby's report adds its warm resources to
					// the holder's group.
					c.Groups[i].Resources = append(slices.DeleteFunc(slices.Clone(c.Groups[i].Resources), func(x protocol.Resource) bool {
						return x.Warm && x.Node == r.From
					}), warmOf(g.Resources, c.Groups[i].Active)...)
				}
				if i < 0 {
					i = len(c.Groups) - 1
				}
				sortResources(&c.Groups[i])
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

// warmOf returns the warm resources in rs of nodes other than holder:
// the warm standbys a group's own report does not list.
func warmOf(rs []protocol.Resource, holder string) []protocol.Resource {
	var out []protocol.Resource
	for _, x := range rs {
		if x.Warm && x.Node != "" && x.Node != holder {
			out = append(out, x)
		}
	}
	return out
}

// sortResources puts g's resources in an order that does not depend on
// the order reports arrived in: the holder's first, as it lists them,
// then each warm standby's by node.
func sortResources(g *protocol.Group) {
	slices.SortStableFunc(g.Resources, func(a, b protocol.Resource) int {
		ah, bh := a.Node == "" || a.Node == g.Active, b.Node == "" || b.Node == g.Active
		switch {
		case ah && bh:
			return 0
		case ah:
			return -1
		case bh:
			return 1
		}
		return strings.Compare(a.Node, b.Node)
	})
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

// mergeLastSwitches adds the switches of a peer that stopped answering,
// from its last report, unless a live report has them: a device does not
// vanish with the node that drives it. They are marked stale, known as
// of asOf, and unverified, since nobody reads them now.
func mergeLastSwitches(dst, r *protocol.Snapshot, asOf time.Time) {
	for _, rs := range r.Sites {
		for _, rc := range rs.Clusters {
			c := findCluster(dst, rs.Name, rc.Name)
			if c == nil {
				continue
			}
			for _, sw := range rc.Switches {
				if slices.ContainsFunc(c.Switches, func(x protocol.Switch) bool { return x.Name == sw.Name }) {
					continue
				}
				sw.Stale, sw.AsOf, sw.Verified = true, asOf, false
				sw.Outlets = slices.Clone(sw.Outlets)
				for i := range sw.Outlets {
					sw.Outlets[i].Verified = false
				}
				c.Switches = append(c.Switches, sw)
			}
		}
	}
}

// geoStandbyReason is a geo-driven group's reason at a site that does not
// serve: the normal state of a backup site, not a fault.
const geoStandbyReason = "backup site: not serving (geo)"

// geoStandby says, for the groups of geo sites that do not serve, why
// their cluster is not active: the geo manager keeps it so. The failover
// engine only knows that its cluster is not activated, which reads as a
// fault. And where the geo state says a site serves while its group runs
// nowhere, it says that, as a risk: each line alone would look normal.
func geoStandby(s *protocol.Snapshot) {
	if s.Geo == nil {
		return
	}
	for _, gs := range s.Geo.Sites {
		if gs.Arbitrator {
			continue
		}
		serving := gs.ServiceRole == "serving"
		reason := geoStandbyReason
		switch p := s.Geo.Pending; {
		case s.Geo.Ticket.Holder == "":
			reason = "no site holds the geo ticket yet: none serves"
		case p != nil && p.To == gs.Name && (p.State == "" || p.State == "pending"):
			reason = "failover to " + gs.Name + " pending: serves once confirmed"
		case gs.GeoRole == "primary":
			reason = "geo primary, not serving yet"
		}
		for i := range s.Sites {
			if s.Sites[i].Name != gs.Name {
				continue
			}
			for j := range s.Sites[i].Clusters {
				c := &s.Sites[i].Clusters[j]
				for k := range c.Groups {
					g := &c.Groups[k]
					switch {
					case serving && g.Name != "" && g.State != "started" && g.State != "starting":
						risk := fmt.Sprintf("the geo state has site %s serving, but %s is %s", gs.Name, g.Name, g.State)
						if g.Reason != "" {
							risk += " (" + g.Reason + ")"
						}
						if risk += ": nothing serves there"; !slices.Contains(c.Quorum.Risks, risk) {
							c.Quorum.Risks = append(c.Quorum.Risks, risk)
						}
					case !serving && g.Active == "" && g.State == "unmanaged":
						// Only a group nobody holds and nobody manages: one
						// in maintenance or failed says its own reason.
						g.State, g.Reason = "standby", reason
					}
				}
			}
		}
	}
}

// serviceRisks flags, per cluster, a database master on a node other
// than the one its group runs on: each line looks normal alone, together
// they are an old master back as master beside the service on the other
// node (until the database follows the service), and two masters are a
// split brain.
func serviceRisks(s *protocol.Snapshot) {
	for i := range s.Sites {
		for j := range s.Sites[i].Clusters {
			c := &s.Sites[i].Clusters[j]
			var masters []string
			for _, d := range c.Databases {
				if d.Role == "master" {
					masters = append(masters, d.Node)
				}
			}
			var risks []string
			if len(masters) > 1 {
				risks = append(risks, fmt.Sprintf("%d database masters (%s): writes on each are lost to the other; keep one, re-seed the others",
					len(masters), strings.Join(masters, ", ")))
			}
			for _, g := range c.Groups {
				if g.State != "started" || g.Active == "" || len(masters) == 0 || slices.Contains(masters, g.Active) {
					continue
				}
				// Only a node that runs a database can be where the
				// master should be.
				if !slices.ContainsFunc(c.Databases, func(d protocol.Database) bool { return d.Node == g.Active }) {
					continue
				}
				risks = append(risks, fmt.Sprintf("database master on %s but %s runs on %s: the database did not follow the service; 'switchover %s %s' puts them together again",
					strings.Join(masters, ", "), g.Name, g.Active, g.Name, masters[0]))
			}
			for _, r := range risks {
				if !slices.Contains(c.Quorum.Risks, r) {
					c.Quorum.Risks = append(c.Quorum.Risks, r)
				}
			}
		}
	}
}
