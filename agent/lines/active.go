package lines

import "github.com/hatui/hatui/protocol"

// ActiveNode returns the node whose position a following line switch
// should connect, as the deployment snapshot snap shows the switch's
// cluster (site, cluster), or "" when there is none to follow (which moves
// nothing).
//
// The rule:
//
//  1. When the cluster reports service groups (local failover runs), the
//     lines follow the node holding the group named group, or the
//     cluster's first group when group is "". A group held by nobody
//     (stopped, failed, moving) gives "": the lines stay where they are
//     rather than guess.
//  2. Until then (no groups reported, or the named group is not
//     reported), the lines follow the first node of the cluster, in the
//     snapshot's order (by name), that is alive, not in standby, and has
//     a position in positions (any node when positions is empty). So
//     putting the active node in standby moves the lines to the next one,
//     and bringing it back online moves them back.
func ActiveNode(snap *protocol.Snapshot, site, cluster, group string, positions map[string]string) string {
	if snap == nil {
		return ""
	}
	var c *protocol.Cluster
	for i := range snap.Sites {
		if snap.Sites[i].Name != site {
			continue
		}
		for j := range snap.Sites[i].Clusters {
			if snap.Sites[i].Clusters[j].Name == cluster {
				c = &snap.Sites[i].Clusters[j]
			}
		}
	}
	if c == nil {
		return ""
	}
	for i, g := range c.Groups {
		if (group == "" && i == 0) || g.Name == group {
			return g.Active
		}
	}
	for _, n := range c.Nodes {
		if len(positions) > 0 {
			if _, ok := positions[n.Name]; !ok {
				continue
			}
		}
		if n.Member == protocol.MemberAlive && !n.Standby {
			return n.Name
		}
	}
	return ""
}
