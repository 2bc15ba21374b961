// Package follow makes a line switch follow the PBX: it moves the phone
// lines to whichever node is active for the service group, feeds the
// switch's hardware watchdog, and reports what it does as events.
//
// It does better than the known watchdog daemon (SARK's, see
// shared/reference/devices.md), which flips after one failed check and back
// after one good one:
//
//   - Hysteresis. A new active node must be observed Confirm (N) times in a
//     row before the lines move, and a move back to the position the lines
//     last left needs ConfirmBack (M) observations. A source that flaps
//     never moves the relay.
//   - Read-back. On a switch that reports its position, every observation
//     also reads it, and a switch found elsewhere (its watchdog fired, a
//     person pressed a button) is put back, as an event of its own.
//   - Watchdog. Kicks go out every half watchdog timeout, on their own
//     timer, so a slow HTTP request never starves the watchdog.
//   - Events only on change: moved, move failed, switch reachable again,
//     watchdog ok / failed, started, stopped. A switch that stays
//     unreachable for an hour is one event, not 3600.
//
// # When the agent or its node dies
//
// The controller stops, so the kicks stop. What happens next is the
// device's: a berofos whose watchdog is enabled moves the lines to A–D when
// its timeout passes, and an unpowered berofos connects A–D too; a Rhino
// card keeps its relay while its node is up, and falls to NC when the node
// that powers it goes down. Cable the node that is normally active to the
// side the device leaves on failure (B on a berofos, NO on a Rhino), so the
// device's own default takes the lines to the standby. See the switchdrv
// README for each device.
package follow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hatui/hatui/switchdrv"
)

// Config configures a Controller.
type Config struct {
	// Switch is the line switch to move.
	Switch switchdrv.LineSwitch
	// Watchdog, if not nil, is kicked every KickEvery.
	Watchdog switchdrv.Watchdog
	// Positions maps each node to the switch position that connects the
	// lines to it.
	Positions map[string]switchdrv.Position
	// Active returns the node active for the group now, or "" when none
	// is (the agent wires this to its failover state). An error or "" is
	// not an observation: it neither moves the lines nor counts towards
	// a move.
	Active func(ctx context.Context) (string, error)
	// Interval between observations (1 s).
	Interval time.Duration
	// Confirm is N: observations of a new active node before moving (3).
	Confirm int
	// ConfirmBack is M: observations before moving back to the position
	// the lines last left (5).
	ConfirmBack int
	// KickEvery is the kick period; half the watchdog's timeout when zero.
	KickEvery time.Duration
	// Local, if set, is this node: the watchdog is kicked only while it is
	// the active node, so that the device's watchdog also covers the case
	// where this node's agent lives but the group moved away.
	Local string
	// OpTimeout bounds each device call (5 s).
	OpTimeout time.Duration
	// OnEvent receives events, one at a time, from the controller's
	// goroutines. It must not block for long.
	OnEvent func(Event)
}

// EventKind says what happened.
type EventKind string

// Event kinds.
const (
	EventStarted        EventKind = "starting"
	EventMoved          EventKind = "moved"           // lines moved to a new active node
	EventCorrected      EventKind = "corrected"       // lines found elsewhere and put back
	EventMoveFailed     EventKind = "move failed"     // the switch did not move (Err says why)
	EventSwitchFailed   EventKind = "switch failed"   // reading the switch failed (Err says why)
	EventSwitchOK       EventKind = "switch ok"       // the switch answers again
	EventWatchdogOK     EventKind = "watchdog ok"     // kicks are accepted (again)
	EventWatchdogFailed EventKind = "watchdog failed" // a kick failed, or the device says it fired
	EventUnknownNode    EventKind = "unknown node"    // the active node has no position
	EventStopped        EventKind = "stopped"
)

// Event is one change, for the agent's event log and alerts.
type Event struct {
	Time    time.Time
	Kind    EventKind
	Node    string             // the active node concerned, if any
	From    switchdrv.Position // for moves
	To      switchdrv.Position
	Err     error
	Message string // one sentence for the operator
}

// Status is a snapshot of the controller, for the status screen.
type Status struct {
	Active    string             // the confirmed active node the lines follow
	Candidate string             // a different node being observed
	Streak    int                // observations of Candidate so far
	Position  switchdrv.Position // last known position
	Verified  bool               // Position was read from the device
	Watchdog  switchdrv.WatchdogState
	Err       error // last device error, nil when the switch answers
	Writes    int   // positions set since start
	Kicks     int   // successful kicks since start
	Steps     int   // observations since start
}

// Controller runs the loop. Create it with New.
type Controller struct {
	cfg  Config
	caps switchdrv.Capabilities

	stepMu sync.Mutex // one step at a time
	evMu   sync.Mutex // one event at a time

	mu         sync.Mutex
	target     string             // confirmed active node
	candidate  string             // unconfirmed new active
	streak     int                // observations of candidate
	left       switchdrv.Position // position the lines last moved away from
	applied    switchdrv.Position // last position set successfully (for switches without read-back)
	pos        switchdrv.Position
	verified   bool
	wd         switchdrv.WatchdogState
	lastErr    error
	errShown   string // message of the last error event, to report each once
	unknown    string // last unknown node reported
	kickFailed *bool  // nil before the first kick
	writes     int
	kicks      int
	steps      int
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Controller, error) {
	if cfg.Switch == nil || cfg.Active == nil {
		return nil, errors.New("follow: Switch and Active are required")
	}
	caps := cfg.Switch.Capabilities()
	for node, p := range cfg.Positions {
		if !caps.Has(p) {
			return nil, fmt.Errorf("follow: node %s: %s has no position %q (it has %v)", node, cfg.Switch.Name(), p, caps.Positions)
		}
	}
	if len(cfg.Positions) == 0 {
		return nil, errors.New("follow: Positions must map at least one node to a position")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Confirm <= 0 {
		cfg.Confirm = 3
	}
	if cfg.ConfirmBack <= 0 {
		cfg.ConfirmBack = 5
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.Watchdog != nil && cfg.KickEvery <= 0 {
		cfg.KickEvery = cfg.Watchdog.WatchdogTimeout() / 2
		if cfg.KickEvery <= 0 {
			return nil, fmt.Errorf("follow: %s reports no watchdog timeout; set KickEvery", cfg.Watchdog.Name())
		}
	}
	return &Controller{cfg: cfg, caps: caps}, nil
}

func (c *Controller) emit(e Event) {
	if c.cfg.OnEvent == nil {
		return
	}
	e.Time = time.Now()
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.cfg.OnEvent(e)
}

// Status returns a snapshot.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		Active: c.target, Candidate: c.candidate, Streak: c.streak,
		Position: c.pos, Verified: c.verified, Watchdog: c.wd, Err: c.lastErr,
		Writes: c.writes, Kicks: c.kicks, Steps: c.steps,
	}
}

// Run observes and kicks until ctx ends. It returns nil then: a device
// that fails is reported as events, never a reason to stop.
func (c *Controller) Run(ctx context.Context) error {
	c.emit(Event{Kind: EventStarted, Message: fmt.Sprintf("lines on %s follow the active node", c.cfg.Switch.Name())})
	defer c.emit(Event{Kind: EventStopped, Message: fmt.Sprintf("%s no longer follows the active node; the device's own default applies", c.cfg.Switch.Name())})
	var wg sync.WaitGroup
	if c.cfg.Watchdog != nil {
		wg.Go(func() {
			t := time.NewTicker(c.cfg.KickEvery)
			defer t.Stop()
			for {
				c.Kick(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		c.Step(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// Kick kicks the watchdog once if this node should (see Config.Local) and
// reports whether it tried. Run calls it every KickEvery.
func (c *Controller) Kick(ctx context.Context) bool {
	if c.cfg.Watchdog == nil {
		return false
	}
	c.mu.Lock()
	skip := c.cfg.Local != "" && c.target != c.cfg.Local
	c.mu.Unlock()
	if skip {
		return false
	}
	kctx, cancel := context.WithTimeout(ctx, min(c.cfg.OpTimeout, c.cfg.KickEvery))
	err := c.cfg.Watchdog.Kick(kctx)
	cancel()
	if ctx.Err() != nil {
		return true // stopping: a kick cut short is not a watchdog failure
	}
	failed := err != nil
	c.mu.Lock()
	changed := c.kickFailed == nil || *c.kickFailed != failed
	c.kickFailed = &failed
	if !failed {
		c.kicks++
	}
	c.mu.Unlock()
	if changed {
		if failed {
			c.emit(Event{Kind: EventWatchdogFailed, Err: err,
				Message: fmt.Sprintf("cannot kick the watchdog of %s: %v; the device will move the lines when it times out", c.cfg.Watchdog.Name(), err)})
		} else {
			c.emit(Event{Kind: EventWatchdogOK, Message: fmt.Sprintf("watchdog of %s is being kicked", c.cfg.Watchdog.Name())})
		}
	}
	return true
}

// Step makes one observation: it asks who is active, counts towards a
// move, reads the switch and moves it if it must. Run calls it every
// Interval; tests call it directly.
func (c *Controller) Step(ctx context.Context) {
	c.stepMu.Lock()
	defer c.stepMu.Unlock()
	c.mu.Lock()
	c.steps++
	c.mu.Unlock()

	actx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	node, err := c.cfg.Active(actx)
	cancel()
	if err == nil && node != "" {
		c.observe(ctx, node)
	} else {
		// No observation: a streak towards a move must be unbroken.
		c.mu.Lock()
		c.candidate, c.streak = "", 0
		c.mu.Unlock()
	}
	c.reconcile(ctx)
}

// observe counts one observation of node as active.
func (c *Controller) observe(ctx context.Context, node string) {
	pos, ok := c.cfg.Positions[node]
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.candidate, c.streak = "", 0
		if c.unknown != node {
			c.unknown = node
			c.mu.Unlock()
			c.emit(Event{Kind: EventUnknownNode, Node: node,
				Message: fmt.Sprintf("active node %s has no position on %s: lines left where they are", node, c.cfg.Switch.Name())})
			c.mu.Lock()
		}
		return
	}
	c.unknown = ""
	if node == c.target {
		c.candidate, c.streak = "", 0
		return
	}
	if c.target == "" && c.verified && c.pos == pos {
		// At start the lines already go to the active node: adopt it,
		// there is nothing to move.
		c.target, c.candidate, c.streak, c.applied = node, "", 0, pos
		return
	}
	if node == c.candidate {
		c.streak++
	} else {
		c.candidate, c.streak = node, 1
	}
	need := c.cfg.Confirm
	if c.left != "" && pos == c.left {
		need = c.cfg.ConfirmBack
	}
	if c.streak >= need {
		c.target, c.candidate, c.streak = node, "", 0
	}
}

// reconcile reads the switch and moves it to the target's position when it
// is elsewhere.
func (c *Controller) reconcile(ctx context.Context) {
	c.mu.Lock()
	target, applied, prevPos := c.target, c.applied, c.pos
	c.mu.Unlock()

	var st switchdrv.LineState
	var err error
	if c.caps.ReadBack || target == "" {
		octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
		st, err = c.cfg.Switch.LineState(octx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.failed(EventSwitchFailed, target, err, fmt.Sprintf("cannot read %s", c.cfg.Switch.Name()))
			return
		}
		c.noteState(st)
	}
	if target == "" {
		c.ok()
		return
	}
	want := c.cfg.Positions[target]
	current := applied
	if c.caps.ReadBack {
		current = st.Position
	}
	if current == want {
		c.ok()
		return
	}
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	st, err = c.cfg.Switch.SetPosition(octx, want)
	cancel()
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	if err != nil {
		c.mu.Lock()
		c.applied = ""
		c.mu.Unlock()
		c.failed(EventMoveFailed, target, err, fmt.Sprintf("cannot move the lines on %s to %s (%s)", c.cfg.Switch.Name(), target, want))
		return
	}
	c.noteState(st)
	c.mu.Lock()
	from := prevPos
	if c.caps.ReadBack {
		from = current
	}
	moved := applied != want
	c.applied = want
	if from != "" && from != want {
		c.left = from
	}
	c.mu.Unlock()
	c.ok()
	kind, verb := EventMoved, "moved"
	if c.caps.ReadBack && !moved {
		kind, verb = EventCorrected, "found elsewhere and put back"
	}
	note := ""
	if !st.Verified {
		note = " (not verified: the device cannot report its position)"
	}
	c.emit(Event{Kind: kind, Node: target, From: from, To: want,
		Message: fmt.Sprintf("lines on %s %s to %s (%s)%s", c.cfg.Switch.Name(), verb, target, want, note)})
}

// noteState records a state read from or returned by the switch, and
// reports a watchdog that fired.
func (c *Controller) noteState(st switchdrv.LineState) {
	c.mu.Lock()
	c.pos, c.verified = st.Position, st.Verified
	fired := st.Watchdog == switchdrv.WatchdogFailed && c.wd != switchdrv.WatchdogFailed
	rearmed := c.wd == switchdrv.WatchdogFailed && st.Watchdog == switchdrv.WatchdogOn
	c.wd = st.Watchdog
	c.mu.Unlock()
	if fired {
		c.emit(Event{Kind: EventWatchdogFailed, Message: fmt.Sprintf("the watchdog of %s fired: it moved the lines to its failsafe side", c.cfg.Switch.Name())})
	}
	if rearmed {
		c.emit(Event{Kind: EventWatchdogOK, Message: fmt.Sprintf("the watchdog of %s is armed again", c.cfg.Switch.Name())})
	}
}

// failed records a device error and reports it if it differs from the last
// one reported.
func (c *Controller) failed(kind EventKind, node string, err error, what string) {
	c.mu.Lock()
	c.lastErr = err
	msg := string(kind) + err.Error()
	changed := c.errShown != msg
	c.errShown = msg
	c.mu.Unlock()
	if changed {
		c.emit(Event{Kind: kind, Node: node, Err: err, Message: fmt.Sprintf("%s: %v", what, err)})
	}
}

// ok records that the switch answered, and reports the recovery.
func (c *Controller) ok() {
	c.mu.Lock()
	recovered := c.errShown != ""
	c.lastErr, c.errShown = nil, ""
	c.mu.Unlock()
	if recovered {
		c.emit(Event{Kind: EventSwitchOK, Message: fmt.Sprintf("%s answers again", c.cfg.Switch.Name())})
	}
}

// Latest adapts a channel of active-node names to Config.Active: each call
// drains what the channel holds and returns the newest name, or the last
// one seen when nothing new came. It never blocks.
func Latest(ch <-chan string) func(context.Context) (string, error) {
	var mu sync.Mutex
	last := ""
	return func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		for {
			select {
			case n, ok := <-ch:
				if !ok {
					return last, nil
				}
				last = n
			default:
				return last, nil
			}
		}
	}
}
