// Package lines is the agent feature for line switches and power switches:
// it opens the devices of the node's [[switch]] tables (switchdrv), makes
// line switches follow the active node (switchdrv/follow), reports every
// switch in the node's status, and carries out the console's verbs
// "switch status", "switch set", "switch discover" and "power on|off|cycle".
//
// Each device is driven by one node, the one whose config names it. Any
// agent accepts a verb about any switch: the verb's Route finds the
// driving node (protocol.Switch.Node) in the deployment snapshot and the
// agent forwards the action there.
//
// A manual "switch set" on a following switch holds the lines where they
// were put: following pauses (the hardware watchdog is still kicked)
// until "switch set NAME follow".
package lines

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/follow"

	// Devices are opened by driver name from the node config.
	_ "github.com/hatui/hatui/switchdrv/drivers"
)

// Options tune the feature beyond the node config.
type Options struct {
	// DiscoverTarget is where "switch discover" sends its berofos
	// discovery request: "" broadcasts on the local segment
	// (255.255.255.255:50123), "host:port" asks one device.
	DiscoverTarget string
	// DiscoverWait is how long discovery collects replies (2 s).
	DiscoverWait time.Duration
	// OpTimeout bounds each device call (5 s).
	OpTimeout time.Duration
}

// New opens the node's switches with default options. It is an
// agent.FeatureFunc.
func New(h agent.Host) (agent.Feature, error) { return NewWith(Options{})(h) }

// NewWith returns a FeatureFunc that opens the node's switches with o.
func NewWith(o Options) agent.FeatureFunc {
	if o.DiscoverWait <= 0 {
		o.DiscoverWait = 2 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	return func(h agent.Host) (agent.Feature, error) {
		f := &Feature{h: h, o: o}
		f.ctx, f.cancel = context.WithCancel(context.Background())
		for i := range h.Config().Switches {
			d, err := f.open(h.Config().Switches[i])
			if err != nil {
				f.Close()
				return nil, err
			}
			f.devs = append(f.devs, d)
		}
		return f, nil
	}
}

// Feature is the switch feature of one agent.
type Feature struct {
	h    agent.Host
	o    Options
	devs []*device

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
}

// device is one configured switch and what is known of it.
type device struct {
	f     *Feature
	cfg   config.Switch
	dev   switchdrv.Device
	line  switchdrv.LineSwitch  // nil for a power switch
	power switchdrv.PowerSwitch // nil for a line switch
	wd    switchdrv.Watchdog    // nil when the device has none
	caps  switchdrv.Capabilities

	mu       sync.Mutex
	held     bool          // following paused by a manual set
	wake     chan struct{} // closed when the mode changes
	runDone  chan struct{} // closed when the current mode's loop returns
	ctrl     *follow.Controller
	lineSt   switchdrv.LineState
	powerSt  []switchdrv.PowerState
	err      error
	last     string // digest of the last reported state, to wake watchers on change only
	errShown string // the error last recorded as an event
}

func (f *Feature) open(sc config.Switch) (*device, error) {
	dev, err := switchdrv.Open(sc.Driver, sc.DriverOptions())
	if err != nil {
		return nil, fmt.Errorf("opening switch %s: %w", sc.Name, err)
	}
	d := &device{f: f, cfg: sc, dev: dev, wake: make(chan struct{})}
	if sc.Kind == config.SwitchPower {
		if d.power, err = switchdrv.AsPowerSwitch(dev); err != nil {
			dev.Close()
			return nil, fmt.Errorf("opening switch %s: %w", sc.Name, err)
		}
		return d, nil
	}
	if d.line, err = switchdrv.AsLineSwitch(dev); err != nil {
		dev.Close()
		return nil, fmt.Errorf("opening switch %s: %w", sc.Name, err)
	}
	d.caps = d.line.Capabilities()
	if w, ok := dev.(switchdrv.Watchdog); ok && d.caps.Watchdog {
		d.wd = w
	}
	if sc.Follow {
		// Check the positions now, so a bad config stops the start
		// rather than a goroutine later.
		if _, err := d.newController(); err != nil {
			dev.Close()
			return nil, fmt.Errorf("switch %s: %w", sc.Name, err)
		}
	}
	return d, nil
}

// start runs the devices' loops. It is called from the first Report,
// because following needs the deployment view, which the agent can give
// only once its membership is up: a report is the proof that it is.
func (f *Feature) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started || f.closed {
		return
	}
	f.started = true
	for _, d := range f.devs {
		f.wg.Go(func() { d.run(f.ctx) })
	}
}

// Close stops the loops (a following switch stops being kicked: its
// device's own failsafe applies) and closes the devices.
func (f *Feature) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	for _, d := range f.devs {
		d.dev.Close()
	}
	return nil
}

// Report adds this node's switches to its report, and a link per switch
// saying that this node drives it.
func (f *Feature) Report(r *protocol.Snapshot) {
	f.start()
	if len(f.devs) == 0 || len(r.Sites) == 0 || len(r.Sites[0].Clusters) == 0 {
		return
	}
	c := &r.Sites[0].Clusters[0]
	for _, d := range f.devs {
		sw := d.status()
		sw.Node = f.h.Config().Node
		c.Switches = append(c.Switches, sw)
	}
}

// status describes the device for the status screen.
func (d *device) status() protocol.Switch {
	d.mu.Lock()
	ctrl, st, pst, err := d.ctrl, d.lineSt, slices.Clone(d.powerSt), d.err
	d.mu.Unlock()
	if d.power != nil {
		return switchdrv.PowerStatus(d.cfg.Name, d.cfg.Driver, pst, err, func(o string) string { return d.cfg.Outlets[o] })
	}
	if ctrl != nil {
		cs := ctrl.Status()
		st = switchdrv.LineState{Position: cs.Position, Verified: cs.Verified, Watchdog: cs.Watchdog}
		err = cs.Err
	}
	s := switchdrv.LineStatus(d.cfg.Name, d.cfg.Driver, st, err, d.nodeAt)
	// What the device does by itself when this node stops driving it:
	// the console shows it beside a driver that is gone.
	s.Watchdog = string(st.Watchdog)
	if d.wd != nil && d.cfg.Follow {
		s.WatchdogTimeout = d.wd.WatchdogTimeout()
	}
	if fs := d.caps.Failsafe; fs != "" {
		s.Failsafe = string(fs)
		if n := d.nodeAt(fs); n != "" {
			s.Failsafe = n
		}
	}
	return s
}

// nodeAt returns the node the lines reach at position p, or "".
func (d *device) nodeAt(p switchdrv.Position) string {
	for node, pos := range d.cfg.Positions {
		if switchdrv.Position(pos) == p {
			return node
		}
	}
	return ""
}

// changed wakes the watchers when the reported state differs from the
// last one reported.
func (d *device) changed() {
	s := fmt.Sprintf("%+v", d.status())
	d.mu.Lock()
	same := s == d.last
	d.last = s
	d.mu.Unlock()
	if !same {
		d.f.h.Changed()
	}
}

// run follows or polls, as the device's mode says, until ctx ends.
func (d *device) run(ctx context.Context) {
	for ctx.Err() == nil {
		d.mu.Lock()
		following := d.cfg.Follow && !d.held
		wake := d.wake
		done := make(chan struct{})
		d.runDone = done
		d.mu.Unlock()

		mctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		go func() {
			select {
			case <-wake:
				cancel()
			case <-stop:
			}
		}()
		if following {
			d.follow(mctx)
		} else {
			d.poll(mctx)
		}
		close(stop)
		cancel()
		close(done)
	}
}

// setHeld changes the mode and waits until the previous mode's loop has
// stopped, so that the caller alone drives the device afterwards.
func (d *device) setHeld(ctx context.Context, held bool) error {
	d.mu.Lock()
	if d.held == held {
		d.mu.Unlock()
		return nil
	}
	d.held = held
	close(d.wake)
	d.wake = make(chan struct{})
	done := d.runDone
	d.mu.Unlock()
	if done == nil {
		return nil // not started yet
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s to stop following: %w", d.cfg.Name, ctx.Err())
	}
}

func (d *device) newController() (*follow.Controller, error) {
	pos := map[string]switchdrv.Position{}
	for n, p := range d.cfg.Positions {
		pos[n] = switchdrv.Position(p)
	}
	h := d.f.h
	cfg := h.Config()
	return follow.New(follow.Config{
		Switch:    d.line,
		Watchdog:  d.wd,
		Positions: pos,
		Active: func(context.Context) (string, error) {
			return ActiveNode(h.Deployment(), cfg.Site, cfg.Cluster, d.cfg.Group, d.cfg.Positions), nil
		},
		Interval:    d.cfg.PollInterval(),
		Confirm:     d.cfg.Confirm,
		ConfirmBack: d.cfg.ConfirmBack,
		Local:       cfg.Node,
		OpTimeout:   d.f.o.OpTimeout,
		OnEvent:     d.onFollowEvent,
	})
}

// follow runs a follow controller until ctx ends.
func (d *device) follow(ctx context.Context) {
	ctrl, err := d.newController()
	if err != nil {
		// open checked the same config: this cannot happen, but if it
		// does, say so and poll instead of spinning.
		d.record(protocol.SevCritical, fmt.Sprintf("switch %s cannot follow the active node: %v", d.cfg.Name, err))
		d.poll(ctx)
		return
	}
	d.mu.Lock()
	d.ctrl = ctrl
	d.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		// The controller reports moves as events; a first read or a
		// position change without one must still reach the watchers.
		t := time.NewTicker(d.cfg.PollInterval())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d.changed()
			}
		}
	})
	ctrl.Run(ctx)
	wg.Wait()
	cs := ctrl.Status()
	d.mu.Lock()
	d.ctrl = nil
	d.lineSt = switchdrv.LineState{Position: cs.Position, Verified: cs.Verified, Watchdog: cs.Watchdog}
	d.err = cs.Err
	d.mu.Unlock()
}

func (d *device) onFollowEvent(e follow.Event) {
	d.mu.Lock()
	held := d.held
	d.mu.Unlock()
	if e.Kind == follow.EventStopped && held {
		// Held by hand: the hold's own event says so, and the watchdog
		// is still kicked, so "the device's own default applies" would
		// be wrong.
		return
	}
	sev := protocol.SevInfo
	switch e.Kind {
	case follow.EventMoveFailed, follow.EventWatchdogFailed:
		sev = protocol.SevCritical
	case follow.EventSwitchFailed, follow.EventUnknownNode, follow.EventCorrected:
		sev = protocol.SevWarning
	}
	d.record(sev, e.Message)
	d.changed()
}

func (d *device) record(sev protocol.Severity, msg string) {
	d.f.h.Record(protocol.Event{Node: d.f.h.Config().Node, Kind: "switch", Severity: sev, Message: msg})
}

// poll reads the device every interval until ctx ends, and kicks the
// watchdog of a following switch that is held, so the hold outlives the
// watchdog's timeout.
func (d *device) poll(ctx context.Context) {
	var kick <-chan time.Time
	if d.wd != nil && d.cfg.Follow {
		if every := d.wd.WatchdogTimeout() / 2; every > 0 {
			t := time.NewTicker(every)
			defer t.Stop()
			kick = t.C
			d.kick(ctx)
		}
	}
	t := time.NewTicker(d.cfg.PollInterval())
	defer t.Stop()
	for {
		d.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-kick:
			d.kick(ctx)
		case <-t.C:
		}
	}
}

func (d *device) kick(ctx context.Context) {
	kctx, cancel := context.WithTimeout(ctx, d.f.o.OpTimeout)
	defer cancel()
	if err := d.wd.Kick(kctx); err != nil && ctx.Err() == nil {
		d.noteErr(fmt.Errorf("kicking the watchdog: %w", err))
	}
}

// refresh reads the device once and records what it says.
func (d *device) refresh(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, d.f.o.OpTimeout)
	defer cancel()
	if d.line != nil {
		st, err := d.line.LineState(octx)
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		if err == nil {
			d.lineSt = st
		} else {
			d.lineSt.Verified = false
		}
		d.mu.Unlock()
		d.noteErr(err)
		return
	}
	outlets, err := d.power.Outlets(octx)
	var states []switchdrv.PowerState
	for _, o := range outlets {
		st, perr := d.power.Power(octx, o)
		if perr != nil {
			st = switchdrv.PowerState{Outlet: o}
			if err == nil {
				err = perr
			}
		}
		states = append(states, st)
	}
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	d.powerSt = states
	d.mu.Unlock()
	d.noteErr(err)
}

// noteErr records the result of a device call: an error that differs from
// the last one, or the recovery, is an event; every change of the
// reported state wakes the watchers.
func (d *device) noteErr(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	d.mu.Lock()
	d.err = err
	shown := d.errShown
	d.errShown = msg
	d.mu.Unlock()
	switch {
	case msg != "" && msg != shown:
		d.record(protocol.SevWarning, fmt.Sprintf("switch %s: %v", d.cfg.Name, err))
	case msg == "" && shown != "":
		d.record(protocol.SevInfo, fmt.Sprintf("switch %s answers again", d.cfg.Name))
	}
	d.changed()
}
