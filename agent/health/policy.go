package health

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Restart limits of a major check's resource: three restarts in fifteen
// minutes, then escalate. A PBX that needs a fourth restart within a
// quarter of an hour is better served by its peer.
const (
	DefaultMaxRestarts   = 3
	DefaultRestartWindow = 15 * time.Minute
)

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// MaxRestarts is how many restarts of one resource a window allows;
	// zero means DefaultMaxRestarts.
	MaxRestarts int
	// RestartWindow is the sliding window restarts are counted in; zero
	// means DefaultRestartWindow.
	RestartWindow time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Failure is a check failing, as the Monitor hands it to the Policy.
type Failure struct {
	Check    string
	Kind     string
	Resource string
	Class    Class
	OnFatal  Action
	// Fails is the count of consecutive failures so far.
	Fails int
	// Down is set when this failure turned the check down (its fall-th
	// consecutive failure); later calls while it stays down have it unset.
	Down   bool
	Output string
	At     time.Time
}

// Decision is what the agent should do about a failing check.
type Decision struct {
	Action   Action
	Check    string
	Resource string
	Class    Class
	// Escalated is set when a major check's resource has used up its
	// restarts and the decision is the fatal action instead.
	Escalated bool
	// Restart is, for ActionRestart, which restart this is within the
	// window (1 for the first); MaxRestarts and Window are the limits.
	Restart     int
	MaxRestarts int
	Window      time.Duration
	// Reason is one line for the event log and the operator.
	Reason string
	At     time.Time
}

// Policy turns failures into decisions by fault class. It counts restarts
// per resource in a sliding window, so that several major checks guarding
// the same resource share its restart budget. Safe for concurrent use.
type Policy struct {
	cfg PolicyConfig

	mu        sync.Mutex
	restarts  map[string][]time.Time
	escalated map[string]bool
}

// NewPolicy validates cfg and builds a Policy.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	if cfg.MaxRestarts < 0 {
		return nil, fmt.Errorf("max restarts %d is negative: use 0 for the default %d", cfg.MaxRestarts, DefaultMaxRestarts)
	}
	if cfg.RestartWindow < 0 {
		return nil, fmt.Errorf("restart window %s is negative: use 0 for the default %s", cfg.RestartWindow, DefaultRestartWindow)
	}
	if cfg.MaxRestarts == 0 {
		cfg.MaxRestarts = DefaultMaxRestarts
	}
	if cfg.RestartWindow == 0 {
		cfg.RestartWindow = DefaultRestartWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Policy{cfg: cfg, restarts: map[string][]time.Time{}, escalated: map[string]bool{}}, nil
}

// Decide returns the decision for f, and false when nothing is to be
// done: a minor or fatal check acts once, when it goes down; a major
// check asks for a restart each time (the Monitor calls again after every
// further fall failures) until its resource's restarts in the window are
// used up, then escalates once.
func (p *Policy) Decide(f Failure) (Decision, bool) {
	d := Decision{Check: f.Check, Resource: f.Resource, Class: f.Class, At: f.At,
		MaxRestarts: p.cfg.MaxRestarts, Window: p.cfg.RestartWindow}
	if d.At.IsZero() {
		d.At = p.cfg.Now()
	}
	onFatal := f.OnFatal
	if onFatal == "" {
		onFatal = ActionFailover
	}
	why := fmt.Sprintf("%s check %q failed %d times: %s", f.Class, f.Check, f.Fails, f.Output)
	switch f.Class {
	case Minor:
		if !f.Down {
			return d, false
		}
		d.Action, d.Reason = ActionLog, why
		return d, true
	case Fatal:
		if !f.Down {
			return d, false
		}
		d.Action, d.Reason = onFatal, why+"; "+string(onFatal)
		return d, true
	case Major:
	default:
		return d, false
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	key := f.Resource
	if f.Down {
		p.escalated[key] = false
	}
	if p.escalated[key] {
		return d, false
	}
	now := p.cfg.Now()
	cut := now.Add(-p.cfg.RestartWindow)
	p.restarts[key] = slices.DeleteFunc(p.restarts[key], func(t time.Time) bool { return !t.After(cut) })
	if n := len(p.restarts[key]); n < p.cfg.MaxRestarts {
		p.restarts[key] = append(p.restarts[key], now)
		d.Action, d.Restart = ActionRestart, n+1
		d.Reason = fmt.Sprintf("%s; restart %s (%d of %d within %s)", why, f.Resource, n+1, p.cfg.MaxRestarts, p.cfg.RestartWindow)
		return d, true
	}
	p.escalated[key] = true
	d.Action, d.Escalated = onFatal, true
	d.Reason = fmt.Sprintf("%s; %s already restarted %d times within %s: %s", why, f.Resource, p.cfg.MaxRestarts, p.cfg.RestartWindow, onFatal)
	return d, true
}

// Restarts is how many restarts of resource the window holds now.
func (p *Policy) Restarts(resource string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	cut := p.cfg.Now().Add(-p.cfg.RestartWindow)
	n := 0
	for _, t := range p.restarts[resource] {
		if t.After(cut) {
			n++
		}
	}
	return n
}

// Reset forgets resource's restarts and escalation (cleanup); "" resets
// every resource.
func (p *Policy) Reset(resource string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if resource == "" {
		clear(p.restarts)
		clear(p.escalated)
		return
	}
	delete(p.restarts, resource)
	delete(p.escalated, resource)
}
