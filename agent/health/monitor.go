package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/resource/command"
	"github.com/hatui/hatui/protocol"
)

// State is a check's state after hysteresis.
type State string

// Check states.
const (
	// StateUnknown: not yet rise successes nor fall failures in a row
	// since the monitor started.
	StateUnknown State = "unknown"
	StateUp      State = "up"
	StateDown    State = "down"
)

// Result is one probe's outcome with the check's state after it.
type Result struct {
	Check    string
	Kind     string
	Resource string
	Class    Class
	State    State
	// Changed is set when this probe changed State.
	Changed bool
	// OK is this probe's own outcome.
	OK bool
	// Fails is the count of consecutive failures (0 after a success).
	Fails int
	// Output is what the probe saw, or why it failed, in one line.
	Output string
	At     time.Time
	Took   time.Duration
}

// Proto maps the result onto the wire type. A check is shown OK when up,
// or when still unknown and its last probe succeeded.
func (r Result) Proto() protocol.Check {
	return protocol.Check{
		Name:   r.Check,
		Kind:   r.Kind,
		Class:  string(r.Class),
		OK:     r.State == StateUp || (r.State == StateUnknown && r.OK),
		Fails:  r.Fails,
		Output: r.Output,
		At:     r.At,
	}
}

// Event is what a Monitor reports: exactly one of Result and Decision is
// set. A Result comes on every failed probe and whenever a check's state
// changes or its failure count returns to zero; a Decision follows the
// Result that prompted it.
type Event struct {
	Result   *Result
	Decision *Decision
}

// checkState is a check and its hysteresis counters.
type checkState struct {
	c     *Check
	state State
	fails int
	succ  int
	gen   uint64 // bumped by Suspend, Resume, Cleanup: in-flight probes are stale
	last  Result
	seen  bool
}

// Monitor runs checks on their intervals. Create with NewMonitor, read
// Events, call Run.
type Monitor struct {
	policy *Policy
	events chan Event

	mu        sync.Mutex
	checks    []*checkState
	suspended map[string]bool
	running   bool
}

// NewMonitor builds a monitor for checks. policy nil means a policy with
// the defaults. Check names must be unique.
func NewMonitor(checks []*Check, policy *Policy) (*Monitor, error) {
	if policy == nil {
		policy, _ = NewPolicy(PolicyConfig{})
	}
	m := &Monitor{policy: policy, events: make(chan Event, 64), suspended: map[string]bool{}}
	seen := map[string]bool{}
	for _, c := range checks {
		if seen[c.Name()] {
			return nil, fmt.Errorf("check %q is configured twice: check names must be unique", c.Name())
		}
		seen[c.Name()] = true
		m.checks = append(m.checks, &checkState{c: c, state: StateUnknown})
	}
	return m, nil
}

// Events is the channel results and decisions arrive on. It is closed
// when Run returns. Read it promptly: probes wait while it is full.
func (m *Monitor) Events() <-chan Event { return m.events }

// Policy is the monitor's policy.
func (m *Monitor) Policy() *Policy { return m.policy }

// Run probes every check on its interval, the first at once, until ctx
// ends. It may be called once.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("health monitor is already running: Run may be called once")
	}
	m.running = true
	m.mu.Unlock()
	defer close(m.events)
	var wg sync.WaitGroup
	for _, cs := range m.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.loop(ctx, cs)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	return ctx.Err()
}

func (m *Monitor) loop(ctx context.Context, cs *checkState) {
	spec := cs.c.spec
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		gen, skip := cs.gen, m.suspended[spec.Resource] && spec.Resource != ""
		m.mu.Unlock()
		if !skip {
			start := time.Now()
			out, err := cs.c.Probe(ctx)
			if ctx.Err() != nil {
				return
			}
			for _, ev := range m.record(cs, gen, start, out, err) {
				select {
				case m.events <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
		t.Reset(spec.Interval)
	}
}

// record applies one probe's outcome and returns the events to send.
func (m *Monitor) record(cs *checkState, gen uint64, start time.Time, out string, err error) []Event {
	spec := cs.c.spec
	m.mu.Lock()
	defer m.mu.Unlock()
	if cs.gen != gen || (spec.Resource != "" && m.suspended[spec.Resource]) {
		return nil // suspended or reset while the probe ran
	}
	now := time.Now()
	r := Result{Check: spec.Name, Kind: spec.Kind, Resource: spec.Resource, Class: spec.Class,
		OK: err == nil, At: now, Took: now.Sub(start)}
	prev, prevFails := cs.state, cs.fails
	emit := false
	var dec *Decision
	if err == nil {
		cs.fails = 0
		cs.succ++
		if cs.state != StateUp && cs.succ >= spec.Rise {
			cs.state = StateUp
		}
		r.Output = command.Summary([]byte(out))
		emit = cs.state != prev || prevFails > 0
	} else {
		cs.succ = 0
		cs.fails++
		if cs.state != StateDown && cs.fails >= spec.Fall {
			cs.state = StateDown
		}
		r.Output = command.Summary([]byte(err.Error()))
		emit = true
		if cs.fails%spec.Fall == 0 {
			f := Failure{Check: spec.Name, Kind: spec.Kind, Resource: spec.Resource, Class: spec.Class, OnFatal: spec.OnFatal,
				Fails: cs.fails, Down: prev != StateDown && cs.state == StateDown, Output: r.Output, At: now}
			if d, ok := m.policy.Decide(f); ok {
				dec = &d
			}
		}
	}
	r.State, r.Changed, r.Fails = cs.state, cs.state != prev, cs.fails
	cs.last, cs.seen = r, true
	var evs []Event
	if emit {
		evs = append(evs, Event{Result: &r})
	}
	if dec != nil {
		evs = append(evs, Event{Decision: dec})
	}
	return evs
}

// Suspend stops probing the checks of resource, as while the agent
// restarts it: a restart in progress is not a failure. Probes already
// running are discarded.
func (m *Monitor) Suspend(resource string) {
	if resource == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.suspended[resource] = true
	m.bump(resource, false)
}

// Resume probes the checks of resource again, counting afresh: the
// restarted service gets fall probes before it counts as failing again,
// and rise successes before it counts as up.
func (m *Monitor) Resume(resource string) {
	if resource == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.suspended, resource)
	m.bump(resource, false)
}

// Cleanup forgets the failures of resource's checks and the policy's
// restart count for it ("" for every resource), as Pacemaker's cleanup.
func (m *Monitor) Cleanup(resource string) {
	m.policy.Reset(resource)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bump(resource, true)
}

// bump resets the counters of resource's checks ("" all when all is set).
// m.mu must be held.
func (m *Monitor) bump(resource string, all bool) {
	for _, cs := range m.checks {
		if cs.c.spec.Resource == resource || (all && resource == "") {
			cs.gen++
			cs.fails, cs.succ = 0, 0
			if cs.seen {
				cs.last.Fails = 0
			}
		}
	}
}

// Results returns the last result of every check that has been probed,
// in configuration order.
func (m *Monitor) Results() []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Result
	for _, cs := range m.checks {
		if cs.seen {
			out = append(out, cs.last)
		}
	}
	return out
}

// Specs returns the configuration of every check, in order.
func (m *Monitor) Specs() []Spec {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Spec, len(m.checks))
	for i, cs := range m.checks {
		out[i] = cs.c.Spec()
	}
	return out
}

// Checks returns the last results of resource's checks as the protocol
// shows them (every check when resource is ""); checks not yet probed
// are listed as not OK with output "not probed yet".
func (m *Monitor) Checks(resource string) []protocol.Check {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []protocol.Check
	for _, cs := range m.checks {
		spec := cs.c.spec
		if resource != "" && spec.Resource != resource {
			continue
		}
		if !cs.seen {
			out = append(out, protocol.Check{Name: spec.Name, Kind: spec.Kind, Class: string(spec.Class), Output: "not probed yet"})
			continue
		}
		out = append(out, cs.last.Proto())
	}
	return out
}

// Close releases every check's resources. Call it after Run returned.
func (m *Monitor) Close() error {
	var errs []error
	for _, cs := range m.checks {
		errs = append(errs, cs.c.Close())
	}
	return errors.Join(errs...)
}
