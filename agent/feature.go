package agent

import (
	"context"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/protocol"
)

// Feature is a part of the agent beyond membership and flags: databases,
// switches, local failover, the geo manager. Each node runs the same
// features; a feature's verbs are carried out by the node its Verb's
// Route names, and its state travels in that node's report.
type Feature interface {
	// Verbs lists the action verbs the feature carries out.
	Verbs() []Verb
	// Plan checks an action routed to this node and returns its job, or
	// a *protocol.Error saying why it is refused.
	Plan(ctx context.Context, a protocol.Action, c localapi.Caller) (localapi.Job, error)
	// Report adds the feature's state to this node's own report: r holds
	// one site with one cluster holding this node.
	Report(r *protocol.Snapshot)
	// Close stops the feature.
	Close() error
}

// Verb is an action verb and where it is carried out.
type Verb struct {
	Name string
	// Route names the node whose agent carries the action out, given
	// the deployment as the receiving agent sees it; "" means the
	// receiving agent itself.
	Route func(snap *protocol.Snapshot, a protocol.Action) (string, error)
}

// RouteToNode routes an action to the node named by its first argument.
func RouteToNode(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	if len(a.Args) == 0 {
		return "", protocol.Errorf(protocol.CodeUsage, "usage: "+a.Verb+" NODE ...", "%s needs a node name", a.Verb)
	}
	if _, ok := snap.FindNode(a.Args[0]); !ok {
		return "", protocol.Errorf(protocol.CodeUnknownNode, "run 'status' to list the nodes",
			"no node named %q in deployment %s", a.Args[0], snap.Deployment)
	}
	return a.Args[0], nil
}

// RouteHere carries an action out on the receiving agent.
func RouteHere(*protocol.Snapshot, protocol.Action) (string, error) { return "", nil }

// Host is what a feature may use of its agent.
type Host interface {
	// Config is the node's configuration.
	Config() *config.Config
	// Record adds an event to the log and wakes the watchers.
	Record(e protocol.Event)
	// Changed wakes the watchers after a state change that needs no event.
	Changed()
	// Deployment returns the whole deployment as this agent sees it.
	Deployment() *protocol.Snapshot
}

// FeatureFunc builds a feature for an agent at start-up.
type FeatureFunc func(h Host) (Feature, error)

// Record implements Host.
func (a *Agent) Record(e protocol.Event) { a.record(e) }

// Changed implements Host.
func (a *Agent) Changed() { a.events.notify() }

// Deployment implements Host.
func (a *Agent) Deployment() *protocol.Snapshot { return a.Snapshot(protocol.ScopeDeployment) }

// flagFeature carries the node verbs (standby, online, maintenance) that
// every agent has.
type flagFeature struct{ a *Agent }

func (f flagFeature) Verbs() []Verb {
	var vs []Verb
	for name := range nodeVerbs {
		vs = append(vs, Verb{Name: name, Route: RouteToNode})
	}
	return vs
}

func (f flagFeature) Plan(ctx context.Context, act protocol.Action, c localapi.Caller) (localapi.Job, error) {
	return f.a.planFlags(act, c)
}

func (flagFeature) Report(*protocol.Snapshot) {}
func (flagFeature) Close() error              { return nil }
