package cluster

import (
	"slices"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/protocol"
)

// Verbs implements agent.Feature. The node verbs are claimed only on a
// node that runs failover: elsewhere the agent's own flags keep them, and
// both route to the node named, so a request lands on the right one.
func (f *Feature) Verbs() []agent.Verb {
	vs := []agent.Verb{
		{Name: "cleanup", Route: routeCleanup},
		{Name: "switchover", Route: routeSwitchover},
		{Name: "fence", Route: routeFence},
		{Name: "cluster activate", Route: routeCluster},
		{Name: "cluster disable", Route: routeCluster},
		{Name: "cluster stop", Route: routeCluster},
	}
	if f.eng != nil {
		for _, n := range []string{"standby", "online", "maintenance"} {
			vs = append(vs, agent.Verb{Name: n, Route: agent.RouteToNode})
		}
	}
	return vs
}

func usage(verb, form string) *protocol.Error {
	return protocol.Errorf(protocol.CodeUsage, "usage: "+verb+" "+form, "%s needs %s", verb, form)
}

// clusterOf returns the cluster named.
func clusterOf(snap *protocol.Snapshot, name string) (*protocol.Cluster, bool) {
	for i := range snap.Sites {
		for j := range snap.Sites[i].Clusters {
			if c := &snap.Sites[i].Clusters[j]; c.Name == name {
				return c, true
			}
		}
	}
	return nil, false
}

// voterIn picks the node of c to carry an action out: prefer, then the
// group's holder, then any alive node, never skip.
func voterIn(c *protocol.Cluster, prefer, skip string) (string, error) {
	alive := func(name string) bool {
		i := slices.IndexFunc(c.Nodes, func(n protocol.Node) bool { return n.Name == name })
		return name != "" && name != skip && i >= 0 && c.Nodes[i].Member == protocol.MemberAlive
	}
	if alive(prefer) {
		return prefer, nil
	}
	for _, g := range c.Groups {
		if alive(g.Active) {
			return g.Active, nil
		}
	}
	for _, n := range c.Nodes {
		if alive(n.Name) {
			return n.Name, nil
		}
	}
	return "", protocol.Errorf(protocol.CodeUnreachable, "check the cluster's network and power",
		"no node of cluster %s answers", c.Name)
}

func routeCluster(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	if len(a.Args) != 1 {
		return "", usage(a.Verb, "CLUSTER")
	}
	c, ok := clusterOf(snap, a.Args[0])
	if !ok {
		return "", protocol.Errorf(protocol.CodeUsage, "run 'status' to list the clusters", "no cluster named %q in deployment %s", a.Args[0], snap.Deployment)
	}
	return voterIn(c, "", "")
}

// groupCluster finds the cluster of the named group.
func groupCluster(snap *protocol.Snapshot, group string) (*protocol.Cluster, bool) {
	for i := range snap.Sites {
		for j := range snap.Sites[i].Clusters {
			c := &snap.Sites[i].Clusters[j]
			if slices.ContainsFunc(c.Groups, func(g protocol.Group) bool { return g.Name == group }) {
				return c, true
			}
		}
	}
	return nil, false
}

func routeSwitchover(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	if len(a.Args) < 1 || len(a.Args) > 2 {
		return "", usage(a.Verb, "GROUP [NODE]")
	}
	c, ok := groupCluster(snap, a.Args[0])
	if !ok {
		return "", protocol.Errorf(protocol.CodeUsage, "run 'status' to list the groups", "no service group named %q", a.Args[0])
	}
	return voterIn(c, "", "")
}

func routeFence(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	if len(a.Args) != 1 {
		return "", usage(a.Verb, "NODE")
	}
	n, ok := snap.FindNode(a.Args[0])
	if !ok {
		return "", protocol.Errorf(protocol.CodeUnknownNode, "run 'status' to list the nodes", "no node named %q in deployment %s", a.Args[0], snap.Deployment)
	}
	c, _ := clusterOf(snap, n.Cluster)
	if c == nil {
		return "", protocol.Errorf(protocol.CodeUnknownNode, "", "node %s has no cluster", n.Name)
	}
	// Never the node to be fenced: it may be the one misbehaving.
	return voterIn(c, "", n.Name)
}

// routeCleanup: "cleanup RESOURCE [NODE]" goes to NODE, else to the
// holder of the group with that resource (or of that name).
func routeCleanup(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	switch len(a.Args) {
	case 2:
		return agent.RouteToNode(snap, protocol.Action{Verb: a.Verb, Args: a.Args[1:]})
	case 1:
	default:
		return "", usage(a.Verb, "RESOURCE [NODE]")
	}
	for i := range snap.Sites {
		for j := range snap.Sites[i].Clusters {
			c := &snap.Sites[i].Clusters[j]
			for _, g := range c.Groups {
				if g.Name == a.Args[0] || slices.ContainsFunc(g.Resources, func(r protocol.Resource) bool { return r.Name == a.Args[0] }) {
					return voterIn(c, g.Active, "")
				}
			}
		}
	}
	return "", protocol.Errorf(protocol.CodeUsage, "name the node too: cleanup RESOURCE NODE", "no running group has a resource named %q", a.Args[0])
}
