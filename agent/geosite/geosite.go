// Package geosite is the geo manager as an ha-agent feature: it runs the
// geo library (agent/geo) on a geo voter with what the agent provides, and
// carries the geo verbs out wherever they arrive.
//
// On a node whose [geo] section is enabled the feature starts:
//
//   - the geo pool, a second Serf pool across the sites and the
//     arbitrator with WAN timings, encrypted with the gossip keyring. It
//     says which sites are reachable (a site with any alive member), which
//     decides whether a confirm is an ordered handover or the operator's
//     statement that the old site is down;
//   - the geo raft log, on the peer channel ("hatui-geo-raft@hatui"), so
//     that nothing about it is reachable without the deployment's key;
//   - the site's service: the local failover's "cluster activate" and
//     "cluster stop" (out of service, group stopped), or an exec pair of
//     commands. With several agents in a site only one drives it: the
//     node holding the site cluster's service group, else the first
//     alive, non-standby geo voter of the site by name.
//
// The verbs "geo confirm SITE", "geo abort", "geo grant SITE" and "geo
// revoke SITE" are carried out by a geo voter: the receiving agent when
// it is one, else the geo raft leader or another alive geo voter found in
// the deployment view. The voter's geo manager forwards the change to the
// raft leader itself.
//
// Events and alerts come from the agent that made a change happen, as the
// geo library reports them (the bidder for a pending failover, the leader
// for an expiry, the operator's agent for confirm, abort, grant and
// revoke): that agent alone knows who did it, and it is exactly one agent
// per change, where "every voter on applying" would alert three times and
// "the leader" would miss what happened while leadership moved.
package geosite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/geo"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
)

// Verbs of the feature, as the console spells them.
const (
	VerbConfirm = "geo confirm"
	VerbAbort   = "geo abort"
	VerbGrant   = "geo grant"
	VerbRevoke  = "geo revoke"
)

// ChanType is the peer channel type that carries the geo raft log.
const ChanType = "hatui-geo-raft@hatui"

// LinkPath is the path name of the geo pool in a node's links: each geo
// voter reports its view of the other geo voters there, which is also how
// an agent that is no geo voter finds one to route a geo verb to.
const LinkPath = "geo"

// Feature is the geo feature of one agent.
type Feature struct {
	h    agent.Host
	node string
	cfg  config.Geo
	log  *slog.Logger

	mgr    *geo.Manager     // nil when [geo] is not enabled
	pool   *membership.Pool // the geo pool; nil when not enabled
	alerts bool             // alert targets are configured

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New builds the geo feature from the node's configuration. It is an
// agent.FeatureFunc. When [geo] is not enabled the feature only knows the
// verbs, so that it routes them to a geo voter.
func New(h agent.Host) (agent.Feature, error) {
	c := h.Config()
	f := &Feature{h: h, node: c.Node, cfg: c.Geo}
	f.log = h.Logger().With("feature", "geo")
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if !c.Geo.Enabled {
		return f, nil
	}
	if err := f.start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the geo manager on %s: %w", c.Node, err)
	}
	return f, nil
}

// start runs the geo pool, the alert sender and the geo manager.
func (f *Feature) start() error {
	c := f.h.Config()
	lc := f.cfg.Library(c)
	// The library validates again in Open; doing it first keeps a refused
	// configuration from starting a pool that would then be torn down.
	if err := lc.Validate(); err != nil {
		return err
	}
	self, _ := f.cfg.Self(c.Node)
	keys := f.h.Keys()
	if len(keys) == 0 {
		return protocol.Errorf(protocol.CodeRefused, "set gossip.keys or gossip.key_file: the geo pool and the geo raft log are encrypted with them",
			"the geo manager needs the gossip key, and this agent runs without one")
	}
	// The agent owns the alert sender and its queue; every feature's
	// alerts go through it.
	f.alerts = c.Alerts.Configured()
	if err := f.startPool(keys, self); err != nil {
		return err
	}
	stream, err := f.h.Stream(ChanType)
	if err != nil {
		return fmt.Errorf("opening the geo raft channel: %w", err)
	}
	deps := geo.Deps{
		Stream:    stream,
		Reachable: f.reachable,
		Notifier:  geo.NotifyFunc(f.notify),
		Logger:    f.log,
	}
	if !self.Arbitrator {
		deps.Service, err = f.service(c)
		if err != nil {
			stream.Close()
			return err
		}
		deps.Driving = f.driving
	}
	m, err := geo.Open(lc, deps)
	if err != nil {
		// Open closes the stream only once it owns it.
		stream.Close()
		return err
	}
	f.mgr = m
	f.wg.Add(1)
	go f.watch()
	return nil
}

// watch wakes the agent's watchers when the geo state changes, so that
// consoles see the ticket move and the countdown start at once.
func (f *Feature) watch() {
	defer f.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var last string
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		if s := stateKey(f.mgr.Status()); s != last {
			last = s
			f.h.Changed()
		}
	}
}

// stateKey is what a console must be told about when it changes.
func stateKey(g protocol.Geo) string {
	s := fmt.Sprintf("%s|%s|%d|%s|%s", g.Mode, g.Ticket.Holder, g.Ticket.Term, g.Leader, g.Ticket.LeaseExpiry.Round(time.Second))
	if p := g.Pending; p != nil {
		s += fmt.Sprintf("|p:%s>%s@%s", p.From, p.To, p.Expires)
	}
	for _, site := range g.Sites {
		s += fmt.Sprintf("|%s:%t:%s:%s", site.Name, site.Reachable, site.GeoRole, site.ServiceRole)
	}
	return s + fmt.Sprintf("|h%d", len(g.History))
}

// Manager returns the geo manager; nil when [geo] is not enabled.
func (f *Feature) Manager() *geo.Manager { return f.mgr }

// Verbs implements agent.Feature.
func (f *Feature) Verbs() []agent.Verb {
	return []agent.Verb{
		{Name: VerbConfirm, Route: f.route},
		{Name: VerbAbort, Route: f.route},
		{Name: VerbGrant, Route: f.route},
		{Name: VerbRevoke, Route: f.route},
	}
}

// route carries a geo verb out here on a geo voter, else on the geo raft
// leader when it is alive in the deployment view, else on any alive geo
// voter (each forwards to the leader).
func (f *Feature) route(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	if f.mgr != nil {
		return "", nil
	}
	alive := map[string]bool{}
	var voters []string
	for _, s := range snap.Sites {
		for _, c := range s.Clusters {
			for _, n := range c.Nodes {
				if n.Member != protocol.MemberAlive {
					continue
				}
				alive[n.Name] = true
				if slices.ContainsFunc(n.Links, func(l protocol.Link) bool { return l.Path == LinkPath }) {
					voters = append(voters, n.Name)
				}
			}
		}
	}
	if snap.Geo != nil && snap.Geo.Leader != "" && alive[snap.Geo.Leader] {
		return snap.Geo.Leader, nil
	}
	if len(voters) == 0 {
		return "", protocol.Errorf(protocol.CodeUnreachable,
			"run it on a node with [geo] enabled, or check the network to the sites and the arbitrator",
			"%s needs a geo voter, and none is alive in deployment %s as %s sees it", a.Verb, snap.Deployment, f.node)
	}
	slices.Sort(voters)
	return voters[0], nil
}

// Plan implements agent.Feature.
func (f *Feature) Plan(ctx context.Context, a protocol.Action, c localapi.Caller) (localapi.Job, error) {
	if err := checkArgs(a); err != nil {
		return nil, err
	}
	if f.mgr == nil {
		return nil, protocol.Errorf(protocol.CodeRefused, "send it to a node with [geo] enabled (any geo voter or the arbitrator)",
			"%s is not a geo voter ([geo] is not enabled), so it cannot carry out %s", f.node, a.Verb)
	}
	who := c.User
	if who == "" {
		who = "unknown user"
	}
	if err := f.precheck(a); err != nil {
		return nil, err
	}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		if a.DryRun {
			return protocol.Result{OK: true, Message: fmt.Sprintf("would run %s as %s (dry run: nothing done); %s", a, who, f.describe())}
		}
		progress(protocol.Progress{Step: "geo", Message: fmt.Sprintf("asking the geo leader (%s) to commit %s", orNone(f.mgr.Leader()), a), Percent: -1})
		// The feature's context bounded by the session's deadline: a
		// console that hangs up must not leave the outcome to chance
		// halfway through a commit.
		jctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		defer cancel()
		var res geo.Result
		var err error
		switch a.Verb {
		case VerbConfirm:
			res, err = f.mgr.Confirm(jctx, a.Args[0], who)
		case VerbAbort:
			res, err = f.mgr.Abort(jctx, who)
		case VerbGrant:
			res, err = f.mgr.Grant(jctx, a.Args[0], who)
		case VerbRevoke:
			res, err = f.mgr.Revoke(jctx, a.Args[0], who)
		}
		if err != nil {
			pe := protocol.AsError(err)
			if pe.Code == protocol.CodeInternal {
				pe = &protocol.Error{Code: protocol.CodeFailed, Message: err.Error(), Hint: "see the event log and the geo status"}
			}
			return protocol.Result{OK: false, Message: pe.Message, Error: pe}
		}
		progress(protocol.Progress{Step: "geo", Message: "committed", Percent: 100})
		return protocol.Result{OK: true, Message: res.String()}
	}, nil
}

// checkArgs checks the verbs' argument counts.
func checkArgs(a protocol.Action) error {
	switch a.Verb {
	case VerbAbort:
		// The optional SITE is the pending failover's target as the
		// operator saw it, so that an abort never cancels another one.
		if len(a.Args) > 1 {
			return protocol.Errorf(protocol.CodeUsage, "usage: geo abort [SITE]", "geo abort takes at most the pending failover's target site, got %d arguments", len(a.Args))
		}
	case VerbConfirm, VerbGrant, VerbRevoke:
		if len(a.Args) != 1 {
			return protocol.Errorf(protocol.CodeUsage, "usage: "+a.Verb+" SITE", "%s takes one site name, got %d arguments", a.Verb, len(a.Args))
		}
	default:
		return protocol.Errorf(protocol.CodeUnknownVerb, "run 'help geo' in hatui", "the geo feature does not know %q", a.Verb)
	}
	return nil
}

// precheck refuses, before anything is committed, what the state this
// agent has already shows to be pointless. The leader checks again on
// the replicated state: these refusals only save a round trip and make
// the common mistakes a "refused" answer rather than a failed action.
func (f *Feature) precheck(a protocol.Action) error {
	g := f.mgr.Status()
	site := ""
	if len(a.Args) > 0 {
		site = a.Args[0]
		var names []string
		var found *protocol.GeoSite
		for i, s := range g.Sites {
			if !s.Arbitrator {
				names = append(names, s.Name)
			}
			if s.Name == site {
				found = &g.Sites[i]
			}
		}
		switch {
		case found == nil:
			return protocol.Errorf(protocol.CodeUsage, "the sites are: "+join(names), "no site named %q in the geo deployment", site)
		case found.Arbitrator:
			return protocol.Errorf(protocol.CodeRefused, "name a service site: "+join(names),
				"site %s is an arbitrator: it votes, but never holds the ticket and never serves", site)
		}
	}
	p := g.Pending
	switch a.Verb {
	case VerbConfirm:
		switch {
		case p == nil && g.Ticket.Holder == site:
			return protocol.Errorf(protocol.CodeRefused, "nothing to confirm: the service is where the ticket is",
				"site %s already holds ticket %s and no failover is pending", site, g.Ticket.Name)
		case p == nil:
			return protocol.Errorf(protocol.CodeRefused, "confirm only a pending failover, to the site it names; to move the ticket by hand use geo grant (manual mode)",
				"site %s does not hold ticket %s (holder: %s) and no geo failover is pending", site, g.Ticket.Name, orNone(g.Ticket.Holder))
		case p.To != site:
			return protocol.Errorf(protocol.CodeRefused, fmt.Sprintf("to move the service to %s, run: geo confirm %s; to keep it at %s, run: geo abort", p.To, p.To, p.From),
				"site %s does not hold ticket %s: the pending failover is from %s to %s", site, g.Ticket.Name, p.From, p.To)
		}
	case VerbAbort:
		if p == nil {
			return protocol.Errorf(protocol.CodeRefused, "abort only while a geo failover is pending (see the geo pane)",
				"no geo failover is pending: nothing to abort (ticket %s is held by %s)", g.Ticket.Name, orNone(g.Ticket.Holder))
		}
		if site != "" && p.To != site {
			return protocol.Errorf(protocol.CodeRefused, fmt.Sprintf("to keep the service at %s, run: geo abort %s", p.From, p.To),
				"the pending geo failover goes from %s to %s, not to %s: nothing aborted", p.From, p.To, site)
		}
	}
	return nil
}

// describe says, for a dry run, what the geo state is.
func (f *Feature) describe() string {
	g := f.mgr.Status()
	s := fmt.Sprintf("ticket %s held by %s (term %d, %s mode)", g.Ticket.Name, orNone(g.Ticket.Holder), g.Ticket.Term, g.Mode)
	if p := g.Pending; p != nil {
		s += fmt.Sprintf("; failover from %s to %s pending until %s", p.From, p.To, p.Expires.Format(time.RFC3339))
	}
	return s
}

// Report implements agent.Feature: the geo state as this voter sees it,
// and its view of the other geo voters as links of the "geo" path.
func (f *Feature) Report(r *protocol.Snapshot) {
	if f.mgr == nil {
		return
	}
	g := f.mgr.Status()
	r.Geo = &g
	if len(r.Sites) == 0 || len(r.Sites[0].Clusters) == 0 || len(r.Sites[0].Clusters[0].Nodes) == 0 {
		return
	}
	n := &r.Sites[0].Clusters[0].Nodes[0]
	n.Links = append(n.Links, f.links()...)
}

// Close implements agent.Feature. The site's service is left as it is:
// an agent restart must not drop calls.
func (f *Feature) Close() error {
	f.closeOnce.Do(func() {
		f.cancel()
		f.wg.Wait()
		var errs []error
		if f.mgr != nil {
			errs = append(errs, f.mgr.Close())
		}
		if f.pool != nil {
			// No graceful leave: it would wait for a broadcast that a cut
			// WAN never carries, and the others learn of the absence from
			// failure detection as they would after a crash.
			errs = append(errs, f.pool.Shutdown())
		}
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func join(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	out := xs[0]
	for _, x := range xs[1:] {
		out += ", " + x
	}
	return out
}
