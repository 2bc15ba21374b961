package resource

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/protocol"
)

// DefaultMigrationThreshold is how many failures of one resource make its
// group leave the node. Pacemaker's default (INFINITY) would restart a
// crash-looping PBX forever; three restarts and then the peer is the safer
// choice for a telephony service.
const DefaultMigrationThreshold = 3

// FailCountInfinity is the fail count of a resource whose start or stop
// failed, as Pacemaker's INFINITY: the group must leave the node (start
// failure) or the node must be fenced (stop failure) until cleanup.
const FailCountInfinity = 1000000

// Group states, as protocol.Group spells them.
const (
	GroupStopped  = "stopped"
	GroupStarting = "starting"
	GroupStarted  = "started"
	GroupStopping = "stopping"
	GroupFailed   = "failed"
)

// Resource states in protocol.Resource.
const (
	ResStopped  = "stopped"
	ResStarting = "starting"
	ResStarted  = "started"
	ResStopping = "stopping"
	ResFailed   = "failed"
)

// GroupConfig tunes a group's failure handling.
type GroupConfig struct {
	// MigrationThreshold is how many failures of one resource on this
	// node make the group leave it (Pacemaker's migration-threshold).
	// Zero means DefaultMigrationThreshold; negative means never, except
	// that a failed start or stop always does.
	MigrationThreshold int
	// FailureTimeout forgets failures older than this (Pacemaker's
	// failure-timeout). Zero keeps them until Cleanup.
	FailureTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrMigrationThreshold is wrapped by Recover's error when a resource has
// failed too often on this node to be restarted here.
var ErrMigrationThreshold = errors.New("migration threshold reached")

// Group is a service group: resources started in order and stopped in
// reverse, with fail counts. Its methods are safe for concurrent use;
// operations (Start, Stop, Recover) run one at a time.
type Group struct {
	name string
	res  []Resource
	cfg  GroupConfig

	op sync.Mutex // held for the whole of Start, Stop, Recover

	mu       sync.Mutex
	state    string
	reason   string
	rstate   map[string]string
	fails    map[string][]time.Time
	infinite map[string]time.Time
	failed   []protocol.Failure
	// warm are the resources that run on every node that may hold the
	// group (see StartWarm); Stop leaves them running.
	warm map[string]bool
}

// NewGroup builds a group of resources, in start order. Resource names
// must be unique.
func NewGroup(name string, resources []Resource, cfg GroupConfig) (*Group, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("group %q: not a valid group name: use 1 to 63 letters, digits, '.', '_' or '-'", name)
	}
	if len(resources) == 0 {
		return nil, fmt.Errorf("group %q has no resources: list at least one", name)
	}
	if cfg.MigrationThreshold == 0 {
		cfg.MigrationThreshold = DefaultMigrationThreshold
	}
	if cfg.FailureTimeout < 0 {
		return nil, fmt.Errorf("group %q: negative failure timeout %s: use 0 to keep failures until cleanup", name, cfg.FailureTimeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Group{
		name:     name,
		res:      slices.Clone(resources),
		cfg:      cfg,
		state:    GroupStopped,
		rstate:   map[string]string{},
		fails:    map[string][]time.Time{},
		infinite: map[string]time.Time{},
		warm:     map[string]bool{},
	}
	for i, r := range resources {
		g.warm[r.Name()] = IsWarm(r)
		if slices.IndexFunc(resources[:i], func(o Resource) bool { return o.Name() == r.Name() }) >= 0 {
			return nil, fmt.Errorf("group %q lists resource %q twice: a resource can appear once", name, r.Name())
		}
		g.rstate[r.Name()] = ResStopped
	}
	return g, nil
}

// Name is the group's name.
func (g *Group) Name() string { return g.name }

// Resources returns the group's resources in start order.
func (g *Group) Resources() []Resource { return slices.Clone(g.res) }

// StartError is a group start that failed and was rolled back.
type StartError struct {
	Group    string
	Resource string // the resource whose start failed
	Err      error  // why
	// RolledBack lists the resources stopped by the rollback, in the order
	// they were stopped (the failed one first).
	RolledBack []string
	// Rollback holds the errors of stops that failed during rollback; nil
	// when the rollback was clean. If not nil the node may still hold part
	// of the group and must be fenced before the peer takes it.
	Rollback error
}

func (e *StartError) Error() string {
	s := fmt.Sprintf("group %q: start of resource %q failed: %v", e.Group, e.Resource, e.Err)
	if e.Rollback != nil {
		return s + "; rollback failed, the node must be fenced: " + e.Rollback.Error()
	}
	return s + "; rolled back (stopped " + strings.Join(e.RolledBack, ", ") + ")"
}

// Unwrap returns the start error and any rollback error.
func (e *StartError) Unwrap() []error {
	if e.Rollback == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Rollback}
}

// StopError is a group stop in which some resources failed to stop. The
// node may still hold them: it must be fenced before the peer takes over.
type StopError struct {
	Group  string
	Failed []string
	Err    error
}

func (e *StopError) Error() string {
	return fmt.Sprintf("group %q: stop of %s failed, the node must be fenced before a peer takes the group: %v",
		e.Group, strings.Join(e.Failed, ", "), e.Err)
}

// Unwrap returns the stop errors.
func (e *StopError) Unwrap() error { return e.Err }

// Start starts every resource in order. When one fails, the ones already
// started and the failed one are stopped in reverse order and the error
// is a *StartError naming the resource and the cause. A failed start sets
// the resource's fail count to FailCountInfinity (Pacemaker's
// start-failure-is-fatal), so the group must move.
func (g *Group) Start(ctx context.Context) error {
	g.op.Lock()
	defer g.op.Unlock()
	g.setState(GroupStarting, "")
	if err := g.startFrom(ctx, 0); err != nil {
		return err
	}
	g.setState(GroupStarted, "")
	return nil
}

// startFrom starts resources from index i on, rolling back down to i on
// failure.
func (g *Group) startFrom(ctx context.Context, from int) error {
	for i := from; i < len(g.res); i++ {
		r := g.res[i]
		if g.warmStarted(r.Name()) {
			// Already running here, watched by its monitor and checks:
			// the takeover only adds what moves.
			continue
		}
		g.setRes(r.Name(), ResStarting)
		err := r.Start(ctx)
		if err == nil {
			g.setRes(r.Name(), ResStarted)
			continue
		}
		g.setRes(r.Name(), ResFailed)
		g.recordInfinite(r.Name(), "start", err)
		// Roll back with the caller's values but not its cancellation:
		// a start cancelled half-way must still not leave half a group.
		rctx := context.WithoutCancel(ctx)
		se := &StartError{Group: g.name, Resource: r.Name(), Err: err}
		var rb []error
		for j := i; j >= from; j-- {
			q := g.res[j]
			if j != i && g.warm[q.Name()] {
				continue // stays warm: it does not move with the group
			}
			se.RolledBack = append(se.RolledBack, q.Name())
			if err := g.stopOne(rctx, q); err != nil {
				rb = append(rb, err)
			}
		}
		g.setRes(r.Name(), ResFailed)
		se.Rollback = errors.Join(rb...)
		g.setState(GroupFailed, se.Error())
		return se
	}
	return nil
}

// stopOne stops r, recording a failed stop.
func (g *Group) stopOne(ctx context.Context, r Resource) error {
	g.setRes(r.Name(), ResStopping)
	if err := r.Stop(ctx); err != nil {
		g.setRes(r.Name(), ResFailed)
		g.recordInfinite(r.Name(), "stop", err)
		return err
	}
	g.setRes(r.Name(), ResStopped)
	return nil
}

// Stop stops every resource in reverse order. A resource that fails to
// stop does not stop the others from being stopped (the address and the
// rest should go even if one service hangs), and the error is a
// *StopError: the node must be fenced.
func (g *Group) Stop(ctx context.Context) error {
	g.op.Lock()
	defer g.op.Unlock()
	g.setState(GroupStopping, "")
	if err := g.stopDownTo(ctx, 0, ""); err != nil {
		g.setState(GroupFailed, err.Error())
		return err
	}
	g.setState(GroupStopped, "")
	return nil
}

// stopDownTo stops the resources from the last down to index to, in
// reverse, except the warm ones other than also (which stay running).
func (g *Group) stopDownTo(ctx context.Context, to int, also string) error {
	var errs []error
	var failed []string
	for i := len(g.res) - 1; i >= to; i-- {
		if n := g.res[i].Name(); g.warm[n] && n != also {
			continue
		}
		if err := g.stopOne(ctx, g.res[i]); err != nil {
			errs = append(errs, err)
			failed = append(failed, g.res[i].Name())
		}
	}
	if len(errs) > 0 {
		return &StopError{Group: g.name, Failed: failed, Err: errors.Join(errs...)}
	}
	return nil
}

// Recover restarts resource name and the resources after it in the group
// (which depend on it): they are stopped in reverse, then started in order.
// It refuses, wrapping ErrMigrationThreshold, when the resource's fail
// count has reached the migration threshold: the group must move. Recover
// does not count a failure itself; record the failure that prompted it
// with RecordFailure (Monitor records the ones it finds).
func (g *Group) Recover(ctx context.Context, name string) error {
	g.op.Lock()
	defer g.op.Unlock()
	idx := g.index(name)
	if idx < 0 {
		return g.unknown(name)
	}
	if n, migrate := g.failState(name); migrate {
		return fmt.Errorf("group %q: resource %q failed %s on this node (threshold %d): %w; run cleanup %s to allow restarts here",
			g.name, name, countWord(n), g.cfg.MigrationThreshold, ErrMigrationThreshold, name)
	}
	g.setState(GroupStarting, "recovering "+name)
	if err := g.stopDownTo(ctx, idx, name); err != nil {
		g.setState(GroupFailed, err.Error())
		return err
	}
	if err := g.startFrom(ctx, idx); err != nil {
		return err
	}
	g.setState(GroupStarted, "")
	return nil
}

func countWord(n int) string {
	if n >= FailCountInfinity {
		return "INFINITY times"
	}
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// InUse runs the in-use probes of the group's resources at once (see
// InUse) and returns one line for each resource another host still
// answers for. A probe that could not run is in err; its resource is not
// counted as in use (its start then fails on the same cause, with the
// error saying why).
func (g *Group) InUse(ctx context.Context) (busy []string, err error) {
	type answer struct {
		who string
		err error
	}
	answers := make([]answer, len(g.res))
	var wg sync.WaitGroup
	for i, r := range g.res {
		wg.Go(func() {
			who, err := InUse(ctx, r)
			answers[i] = answer{who, err}
		})
	}
	wg.Wait()
	var errs []error
	for _, a := range answers {
		if a.who != "" {
			busy = append(busy, a.who)
		}
		errs = append(errs, a.err)
	}
	return busy, errors.Join(errs...)
}

// Probe is one resource's monitor result within its group.
type Probe struct {
	Resource string
	Type     string
	Status   Status
	// Failed is set when the group is started and the resource is not
	// running; the failure has been counted.
	Failed bool
	// Unexpected is set when the group is stopped and the resource runs
	// anyway (started by hand, or left over): the caller should stop it.
	// A warm resource is never unexpected.
	Unexpected bool
	// Warm is set for a warm resource (see StartWarm). With Failed and
	// the group not started, it is a warm standby that died: restart it
	// here with RestartWarm, the group does not move.
	Warm      bool
	FailCount int
	// Migrate is set when the fail count has reached the threshold: the
	// group must leave this node rather than restart the resource here.
	Migrate bool
}

// Monitor runs every resource's monitor, in order. When the group is
// started, a resource that is not running counts as a failure.
func (g *Group) Monitor(ctx context.Context) []Probe {
	out := make([]Probe, 0, len(g.res))
	for _, r := range g.res {
		st := r.Monitor(ctx)
		p := Probe{Resource: r.Name(), Type: r.Type(), Status: st, Warm: g.warm[r.Name()]}
		g.mu.Lock()
		state, rs := g.state, g.rstate[r.Name()]
		g.mu.Unlock()
		switch {
		case state == GroupStarted && st.State != StateRunning:
			p.Failed = true
			g.RecordFailure(r.Name(), "monitor", st.String())
			g.setRes(r.Name(), ResFailed)
		case p.Warm && state != GroupStarted && rs == ResStarted && st.State != StateRunning:
			p.Failed = true
			g.RecordFailure(r.Name(), "monitor (warm)", st.String())
			g.setRes(r.Name(), ResFailed)
		case state == GroupStopped && st.State == StateRunning && !p.Warm:
			p.Unexpected = true
		}
		p.FailCount, p.Migrate = g.failState(r.Name())
		out = append(out, p)
	}
	return out
}

// RecordFailure counts one failure of a resource during op ("monitor",
// "health sip-pbx"...) and returns its fail count and whether the group
// must now leave the node.
func (g *Group) RecordFailure(name, op, reason string) (count int, migrate bool) {
	if g.index(name) < 0 {
		return 0, false
	}
	now := g.cfg.Now()
	g.mu.Lock()
	g.fails[name] = append(g.fails[name], now)
	g.addFailed(name, op, reason, now)
	g.mu.Unlock()
	return g.failState(name)
}

func (g *Group) recordInfinite(name, op string, err error) {
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.infinite[name] = now
	g.addFailed(name, op, err.Error(), now)
}

// addFailed appends to the failed-actions list, keeping the latest per
// resource and op as crm_mon does. g.mu must be held.
func (g *Group) addFailed(name, op, reason string, at time.Time) {
	g.failed = slices.DeleteFunc(g.failed, func(f protocol.Failure) bool { return f.Resource == name && f.Op == op })
	g.failed = append(g.failed, protocol.Failure{Resource: name, Op: op, Reason: reason, At: at})
}

// FailCount is the resource's current fail count on this node.
func (g *Group) FailCount(name string) int {
	n, _ := g.failState(name)
	return n
}

func (g *Group) failState(name string) (count int, migrate bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	if g.cfg.FailureTimeout > 0 {
		cut := now.Add(-g.cfg.FailureTimeout)
		g.fails[name] = slices.DeleteFunc(g.fails[name], func(t time.Time) bool { return t.Before(cut) })
		if t, ok := g.infinite[name]; ok && t.Before(cut) {
			delete(g.infinite, name)
		}
	}
	if _, ok := g.infinite[name]; ok {
		return FailCountInfinity, true
	}
	count = len(g.fails[name])
	return count, g.cfg.MigrationThreshold > 0 && count >= g.cfg.MigrationThreshold
}

// NeedsMigration returns the first resource whose fail count has reached
// the threshold, if any.
func (g *Group) NeedsMigration() (string, bool) {
	for _, r := range g.res {
		if _, m := g.failState(r.Name()); m {
			return r.Name(), true
		}
	}
	return "", false
}

// Cleanup forgets the fail counts and failed actions of resource name, or
// of every resource when name is "" (Pacemaker's crm_resource --cleanup).
func (g *Group) Cleanup(name string) error {
	if name != "" && g.index(name) < 0 {
		return g.unknown(name)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.res {
		n := r.Name()
		if name != "" && n != name {
			continue
		}
		delete(g.fails, n)
		delete(g.infinite, n)
		g.failed = slices.DeleteFunc(g.failed, func(f protocol.Failure) bool { return f.Resource == n })
		if g.rstate[n] == ResFailed {
			// Unknown until the next monitor says; stopped is what a
			// cleaned-up resource of a not-started group shows.
			if g.state == GroupStarted {
				g.rstate[n] = ResStarted
			} else {
				g.rstate[n] = ResStopped
			}
		}
	}
	return nil
}

// Status is the group as the protocol shows it, for node (the node this
// agent runs on). Active is left for the caller, who knows which node
// holds the group.
func (g *Group) Status(node string) protocol.Group {
	out := protocol.Group{Name: g.name}
	counts := make([]int, len(g.res))
	for i, r := range g.res {
		counts[i], _ = g.failState(r.Name())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out.State, out.Reason = g.state, g.reason
	for i, r := range g.res {
		out.Resources = append(out.Resources, protocol.Resource{
			Name: r.Name(), Type: r.Type(), Node: node, State: g.rstate[r.Name()], FailCount: counts[i], Warm: g.warm[r.Name()],
		})
	}
	return out
}

// Failed returns the failed actions (latest per resource and operation),
// oldest first, for node.
func (g *Group) Failed(node string) []protocol.Failure {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := slices.Clone(g.failed)
	for i := range out {
		out[i].Node = node
	}
	return out
}

func (g *Group) index(name string) int {
	return slices.IndexFunc(g.res, func(r Resource) bool { return r.Name() == name })
}

func (g *Group) unknown(name string) error {
	names := make([]string, len(g.res))
	for i, r := range g.res {
		names[i] = r.Name()
	}
	return fmt.Errorf("group %q has no resource %q: it has %s", g.name, name, strings.Join(names, ", "))
}

func (g *Group) setState(s, reason string) {
	g.mu.Lock()
	g.state, g.reason = s, reason
	g.mu.Unlock()
}

func (g *Group) setRes(name, s string) {
	g.mu.Lock()
	g.rstate[name] = s
	g.mu.Unlock()
}
