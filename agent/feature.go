package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hatui/hatui/agent/alert"

	"github.com/hashicorp/memberlist"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/agent/peer"
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
	// Pool is the local Serf pool.
	Pool() *membership.Pool
	// WrapGossip is what a feature's own Serf pool passes as
	// membership.Options.WrapTransport; nil outside the demo.
	WrapGossip() func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// Keys is the gossip keyring, primary key first; nil without keys.
	Keys() [][]byte
	// PeerAddr is this node's peer channel address as others dial it.
	PeerAddr() string
	// Stream serves channels of chanType on the peer channel as a raft
	// stream layer. It fails when the agent runs without a gossip key.
	Stream(chanType string) (*peer.Stream, error)
	// Do carries out an action as the agent itself would for an
	// operator (routed and forwarded), on behalf of by, and audited.
	Do(ctx context.Context, act protocol.Action, by string, progress func(protocol.Progress)) protocol.Result
	// Logger is the agent's log, for features' own lines.
	Logger() *slog.Logger
	// Audit appends to the node's audit log what a feature did by
	// itself or for someone (a geo failover at expiry: by "geo-manager").
	Audit(action, by, result, detail string)
	// Alert sends an alert to the configured targets (webhooks, e-mail)
	// without blocking; nothing happens without [alerts] targets.
	Alert(a alert.Alert)
	// MirrorFlags records this node's standby and maintenance flags as
	// a feature that owns them (local failover) decided them, so that
	// gossip and the node list show them. It does not audit: the
	// feature's action was.
	MirrorFlags(standby, maintenance bool, by string) error
}

// FeatureFunc builds a feature for an agent at start-up.
type FeatureFunc func(h Host) (Feature, error)

// Record implements Host.
func (a *Agent) Record(e protocol.Event) { a.record(e) }

// Changed implements Host.
func (a *Agent) Changed() { a.events.notify() }

// MetricsAddr is where the agent serves Prometheus metrics, "" when off.
func (a *Agent) MetricsAddr() string {
	if a.metrics == nil {
		return ""
	}
	return a.metrics.Addr()
}

// Deployment implements Host.
func (a *Agent) Deployment() *protocol.Snapshot { return a.Snapshot(protocol.ScopeDeployment) }

// Pool implements Host.
func (a *Agent) Pool() *membership.Pool { return a.pool }

// WrapGossip implements Host.
func (a *Agent) WrapGossip() func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	return a.opts.WrapGossip
}

// Keys implements Host.
func (a *Agent) Keys() [][]byte { return a.keys }

// PeerAddr implements Host.
func (a *Agent) PeerAddr() string {
	if a.pool != nil {
		return a.pool.LocalTags()[tagPeer]
	}
	return a.cfg.Peer.Advertise
}

// Stream implements Host.
func (a *Agent) Stream(chanType string) (*peer.Stream, error) {
	if a.peerLn == nil || a.dialer == nil {
		return nil, fmt.Errorf("the peer channel is off: this agent runs without a gossip key, and %s needs it", chanType)
	}
	return peer.NewStream(a.peerLn, a.dialer, chanType, a.PeerAddr())
}

// Do implements Host.
func (a *Agent) Do(ctx context.Context, act protocol.Action, by string, progress func(protocol.Progress)) protocol.Result {
	if progress == nil {
		progress = func(protocol.Progress) {}
	}
	c := localapi.Caller{User: by, Transport: "internal"}
	job, err := a.Plan(ctx, act, c)
	if err != nil {
		return protocol.Result{OK: false, Message: err.Error(), Error: protocol.AsError(err)}
	}
	return job(ctx, progress)
}

// Logger implements Host.
func (a *Agent) Logger() *slog.Logger { return a.slog }

// Audit implements Host.
func (a *Agent) Audit(action, by, result, detail string) {
	a.audited(protocol.Action{Verb: action}, localapi.Caller{User: by, Transport: "internal"}, result, detail)
}

// Alert implements Host.
func (a *Agent) Alert(al alert.Alert) {
	if a.alerts != nil {
		a.alerts.Send(al)
	}
}

// MirrorFlags implements Host.
func (a *Agent) MirrorFlags(standby, maintenance bool, by string) error {
	before := a.flags.get()
	if before.Standby == standby && before.Maintenance == maintenance {
		return nil
	}
	if _, err := a.flags.update(func(f *Flags) { f.Standby, f.Maintenance, f.By = standby, maintenance, by }); err != nil {
		return err
	}
	a.mu.Lock()
	a.change = time.Now()
	a.mu.Unlock()
	if err := a.pool.SetTags(a.tags(a.pool.LocalTags()[tagPeer])); err != nil {
		return fmt.Errorf("publishing %s's flags: %w", a.cfg.Node, err)
	}
	a.events.notify()
	return nil
}

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
