package lines

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/berofos"
)

// Verb names, as console/verb spells them.
const (
	VerbStatus   = "switch status"
	VerbSet      = "switch set"
	VerbDiscover = "switch discover"
	VerbPowerOn  = "power on"
	VerbPowerOff = "power off"
	VerbCycle    = "power cycle"
)

// Special POSITION words of "switch set".
const (
	PosFollow   = "follow"   // resume following the active node
	PosNormal   = "normal"   // the position that is not the failsafe
	PosFailover = "failover" // the device's failsafe position
)

// powerOpTimeout bounds a power verb: a cycle waits for the outlet to come
// back on.
const powerOpTimeout = time.Minute

// Verbs implements agent.Feature.
func (f *Feature) Verbs() []agent.Verb {
	return []agent.Verb{
		{Name: VerbStatus, Route: agent.RouteHere},
		{Name: VerbSet, Route: RouteSwitch},
		{Name: VerbDiscover, Route: agent.RouteHere},
		{Name: VerbPowerOn, Route: RouteOutlet},
		{Name: VerbPowerOff, Route: RouteOutlet},
		{Name: VerbCycle, Route: RouteOutlet},
	}
}

// Located is a switch found in a deployment snapshot, with the node that
// drives it.
type Located struct {
	Owner  string
	Site   string
	Switch protocol.Switch
}

// Switches lists every switch of the deployment with the node that drives
// it, in snapshot order.
func Switches(snap *protocol.Snapshot) []Located {
	var out []Located
	for _, s := range snap.Sites {
		for _, c := range s.Clusters {
			for _, sw := range c.Switches {
				out = append(out, Located{Owner: sw.Node, Site: s.Name, Switch: sw})
			}
		}
	}
	return out
}

func switchNames(snap *protocol.Snapshot, kind string) string {
	var names []string
	for _, l := range Switches(snap) {
		if kind == "" || l.Switch.Kind == kind {
			names = append(names, l.Switch.Name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// FindSwitch returns the named switch of the deployment and its driving
// node, or a *protocol.Error.
func FindSwitch(snap *protocol.Snapshot, name string) (Located, error) {
	for _, l := range Switches(snap) {
		if l.Switch.Name == name {
			if l.Owner == "" {
				return l, protocol.Errorf(protocol.CodeUnreachable, "retry in a moment",
					"switch %s is reported, but not which node drives it", name)
			}
			return l, nil
		}
	}
	return Located{}, protocol.Errorf(protocol.CodeUsage, "switches of deployment "+snap.Deployment+": "+switchNames(snap, ""),
		"no switch named %q in deployment %s", name, snap.Deployment)
}

// RouteSwitch routes "switch set SWITCH POSITION" to the node that drives
// the switch.
func RouteSwitch(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	if len(a.Args) != 2 {
		return "", protocol.Errorf(protocol.CodeUsage, "usage: switch set SWITCH POSITION",
			"switch set takes a switch and a position, got %d arguments", len(a.Args))
	}
	l, err := FindSwitch(snap, a.Args[0])
	if err != nil {
		return "", err
	}
	if l.Switch.Kind != config.SwitchLine {
		return "", protocol.Errorf(protocol.CodeUsage, "use power on|off|cycle for power switches",
			"%s is a %s switch, not a line switch", l.Switch.Name, l.Switch.Kind)
	}
	return l.Owner, nil
}

// OutletRef is a power outlet found in a snapshot.
type OutletRef struct {
	Owner  string // node that drives the switch
	Switch string
	Outlet string
	Node   string // node the outlet powers, if known
}

func (o OutletRef) String() string {
	s := o.Switch + "/" + o.Outlet
	if o.Node != "" {
		s += " (" + o.Node + ")"
	}
	return s
}

// ResolveOutlet finds the outlet an OUTLET argument names, in this order:
// "SWITCH/OUTLET"; the node an outlet powers ("pbx-b2"); a power switch
// that has a single outlet ("power-b2"); an outlet name that only one
// power switch has. Anything else, or an ambiguous name, is a
// *protocol.Error listing what could be meant.
func ResolveOutlet(snap *protocol.Snapshot, arg string) (OutletRef, error) {
	var all []OutletRef
	switches := map[string]Located{}
	for _, l := range Switches(snap) {
		if l.Switch.Kind != config.SwitchPower {
			continue
		}
		switches[l.Switch.Name] = l
		for _, o := range l.Switch.Outlets {
			all = append(all, OutletRef{Owner: l.Owner, Switch: l.Switch.Name, Outlet: o.Name, Node: o.Node})
		}
	}
	var names []string
	for _, o := range all {
		names = append(names, o.String())
	}
	hint := "outlets of deployment " + snap.Deployment + ": none"
	if len(names) > 0 {
		hint = "outlets of deployment " + snap.Deployment + ": " + strings.Join(names, ", ")
	}
	pick := func(match func(OutletRef) bool, what string) (OutletRef, bool, error) {
		var found []OutletRef
		for _, o := range all {
			if match(o) {
				found = append(found, o)
			}
		}
		switch len(found) {
		case 0:
			return OutletRef{}, false, nil
		case 1:
			return found[0], true, nil
		}
		var s []string
		for _, o := range found {
			s = append(s, o.Switch+"/"+o.Outlet)
		}
		return OutletRef{}, true, protocol.Errorf(protocol.CodeUsage, "name one outlet as SWITCH/OUTLET: "+strings.Join(s, ", "),
			"%q names %d outlets (%s)", arg, len(found), what)
	}
	if arg == "" {
		return OutletRef{}, protocol.Errorf(protocol.CodeUsage, hint, "no outlet named")
	}
	if sw, out, ok := strings.Cut(arg, "/"); ok {
		if _, known := switches[sw]; !known {
			return OutletRef{}, protocol.Errorf(protocol.CodeUsage, "power switches: "+switchNames(snap, config.SwitchPower),
				"no power switch named %q in deployment %s", sw, snap.Deployment)
		}
		if o, ok, err := pick(func(o OutletRef) bool { return o.Switch == sw && o.Outlet == out }, "outlet"); ok || err != nil {
			return o, err
		}
		return OutletRef{}, protocol.Errorf(protocol.CodeUsage, hint, "power switch %s has no outlet %q", sw, out)
	}
	for _, try := range []struct {
		match func(OutletRef) bool
		what  string
	}{
		{func(o OutletRef) bool { return o.Node != "" && o.Node == arg }, "the node's outlets"},
		{func(o OutletRef) bool { return o.Switch == arg }, "the switch's outlets"},
		{func(o OutletRef) bool { return o.Outlet == arg }, "outlets of that name"},
	} {
		if o, ok, err := pick(try.match, try.what); ok || err != nil {
			return o, err
		}
	}
	return OutletRef{}, protocol.Errorf(protocol.CodeUsage, hint, "no power outlet %q in deployment %s", arg, snap.Deployment)
}

// RouteOutlet routes "power on|off|cycle OUTLET" to the node that drives
// the outlet's switch.
func RouteOutlet(snap *protocol.Snapshot, a protocol.Action) (string, error) {
	if len(a.Args) != 1 {
		return "", protocol.Errorf(protocol.CodeUsage, "usage: "+a.Verb+" OUTLET",
			"%s takes one outlet, got %d arguments", a.Verb, len(a.Args))
	}
	o, err := ResolveOutlet(snap, a.Args[0])
	if err != nil {
		return "", err
	}
	if o.Owner == "" {
		return "", protocol.Errorf(protocol.CodeUnreachable, "retry in a moment",
			"switch %s is reported, but not which node drives it", o.Switch)
	}
	return o.Owner, nil
}

// Plan implements agent.Feature.
func (f *Feature) Plan(ctx context.Context, a protocol.Action, c localapi.Caller) (localapi.Job, error) {
	switch a.Verb {
	case VerbStatus:
		return f.planStatus(a)
	case VerbSet:
		return f.planSet(a, c)
	case VerbDiscover:
		return f.planDiscover(a)
	case VerbPowerOn, VerbPowerOff, VerbCycle:
		return f.planPower(a, c)
	}
	return nil, protocol.Errorf(protocol.CodeUnknownVerb, "", "the switch feature does not carry out %q", a.Verb)
}

func (f *Feature) local(name string) *device {
	for _, d := range f.devs {
		if d.cfg.Name == name {
			return d
		}
	}
	return nil
}

func (f *Feature) notHere(name string) error {
	return protocol.Errorf(protocol.CodeRefused, "retry: the agents' views of the deployment differ for a moment",
		"switch %s is not driven by %s", name, f.h.Config().Node)
}

func who(c localapi.Caller) string {
	if c.User == "" {
		return "unknown user"
	}
	return c.User
}

func (f *Feature) planStatus(a protocol.Action) (localapi.Job, error) {
	if len(a.Args) > 1 {
		return nil, protocol.Errorf(protocol.CodeUsage, "usage: switch status [SWITCH]", "switch status takes at most one switch, got %d arguments", len(a.Args))
	}
	snap := f.h.Deployment()
	want := ""
	if len(a.Args) == 1 {
		want = a.Args[0]
		if _, err := FindSwitch(snap, want); err != nil && protocol.CodeOf(err) == protocol.CodeUsage {
			return nil, err
		}
	}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		// Switches this node drives are read afresh; the others come from
		// their drivers' reports, which follow every change.
		for _, d := range f.devs {
			if want == "" || d.cfg.Name == want {
				d.mu.Lock()
				following := d.ctrl != nil
				d.mu.Unlock()
				if !following {
					d.refresh(ctx)
				}
			}
		}
		snap := f.h.Deployment()
		var lines []string
		for _, l := range Switches(snap) {
			if want == "" || l.Switch.Name == want {
				lines = append(lines, describe(l))
			}
		}
		if len(lines) == 0 {
			return protocol.Result{OK: true, Message: "no switches in deployment " + snap.Deployment}
		}
		return protocol.Result{OK: true, Message: strings.Join(lines, "\n")}
	}, nil
}

// describe is one line of "switch status".
func describe(l Located) string {
	sw := l.Switch
	s := fmt.Sprintf("%s: %s switch (%s) driven by %s", sw.Name, sw.Kind, sw.Driver, l.Owner)
	switch {
	case !sw.Reachable:
		s += ": UNREACHABLE"
	case sw.Kind == config.SwitchLine && sw.Position != "":
		s += ": lines to " + sw.Position
	case sw.Kind == config.SwitchLine:
		s += ": position unknown"
	}
	if sw.Kind == config.SwitchLine && sw.Position != "" && !sw.Verified {
		s += " (not verified)"
	}
	for _, o := range sw.Outlets {
		state := "off"
		if o.On {
			state = "on"
		}
		if !o.Verified {
			state = "unknown"
		}
		s += fmt.Sprintf("; outlet %s", o.Name)
		if o.Node != "" {
			s += " (" + o.Node + ")"
		}
		s += " " + state
	}
	if sw.Error != "" {
		s += "; error: " + sw.Error
	}
	return s
}

// position turns the POSITION word of "switch set" into a device position.
func (d *device) position(word string) (switchdrv.Position, error) {
	if p, ok := d.cfg.Positions[word]; ok {
		return switchdrv.Position(p), nil
	}
	for _, p := range d.caps.Positions {
		if strings.EqualFold(string(p), word) {
			return p, nil
		}
	}
	switch word {
	case PosFailover:
		if d.caps.Failsafe != "" {
			return d.caps.Failsafe, nil
		}
	case PosNormal:
		if d.caps.Failsafe != "" && len(d.caps.Positions) == 2 {
			for _, p := range d.caps.Positions {
				if p != d.caps.Failsafe {
					return p, nil
				}
			}
		}
	}
	words := []string{}
	for n := range d.cfg.Positions {
		words = append(words, n)
	}
	slices.Sort(words)
	for _, p := range d.caps.Positions {
		words = append(words, string(p))
	}
	if d.caps.Failsafe != "" {
		words = append(words, PosFailover)
		if len(d.caps.Positions) == 2 {
			words = append(words, PosNormal)
		}
	}
	if d.cfg.Follow {
		words = append(words, PosFollow)
	}
	return "", protocol.Errorf(protocol.CodeUsage, "positions of "+d.cfg.Name+": "+strings.Join(words, ", "),
		"switch %s has no position %q", d.cfg.Name, word)
}

func (f *Feature) planSet(a protocol.Action, c localapi.Caller) (localapi.Job, error) {
	if len(a.Args) != 2 {
		return nil, protocol.Errorf(protocol.CodeUsage, "usage: switch set SWITCH POSITION",
			"switch set takes a switch and a position, got %d arguments", len(a.Args))
	}
	d := f.local(a.Args[0])
	if d == nil {
		return nil, f.notHere(a.Args[0])
	}
	if d.line == nil {
		return nil, protocol.Errorf(protocol.CodeUsage, "use power on|off|cycle for power switches", "%s is a power switch, not a line switch", d.cfg.Name)
	}
	node := f.h.Config().Node
	if a.Args[1] == PosFollow {
		if !d.cfg.Follow {
			return nil, protocol.Errorf(protocol.CodeRefused, "set follow = true for the switch in "+node+"'s config",
				"switch %s is not configured to follow the active node", d.cfg.Name)
		}
		return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
			msg := fmt.Sprintf("lines on %s follow the active node again", d.cfg.Name)
			if a.DryRun {
				return protocol.Result{OK: true, Message: "would resume: " + msg}
			}
			if err := d.setHeld(ctx, false); err != nil {
				return failed(err)
			}
			d.record(protocol.SevInfo, fmt.Sprintf("%s (by %s)", msg, who(c)))
			return protocol.Result{OK: true, Message: msg}
		}, nil
	}
	p, err := d.position(a.Args[1])
	if err != nil {
		return nil, err
	}
	target := string(p)
	if n := d.nodeAt(p); n != "" {
		target = fmt.Sprintf("%s (%s)", n, p)
	}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		if a.DryRun {
			return protocol.Result{OK: true, Message: fmt.Sprintf("would move the lines on %s to %s", d.cfg.Name, target)}
		}
		held := ""
		if d.cfg.Follow {
			d.mu.Lock()
			wasHeld := d.held
			d.mu.Unlock()
			if err := d.setHeld(ctx, true); err != nil {
				return failed(err)
			}
			held = fmt.Sprintf("; following the active node is paused: 'switch set %s follow' resumes it", d.cfg.Name)
			if !wasHeld {
				d.record(protocol.SevWarning, fmt.Sprintf("lines on %s held by hand: they no longer follow the active node (by %s)", d.cfg.Name, who(c)))
			}
		}
		progress(protocol.Progress{Step: "set", Message: fmt.Sprintf("moving the lines on %s to %s", d.cfg.Name, target), Percent: -1})
		octx, cancel := context.WithTimeout(ctx, d.f.o.OpTimeout+time.Second)
		st, err := d.line.SetPosition(octx, p)
		cancel()
		if err != nil {
			d.noteErr(err)
			d.record(protocol.SevCritical, fmt.Sprintf("cannot move the lines on %s to %s (by %s): %v", d.cfg.Name, target, who(c), err))
			return failed(err)
		}
		d.mu.Lock()
		d.lineSt = st
		d.mu.Unlock()
		d.noteErr(nil)
		note := "verified"
		if !st.Verified {
			note = "not verified: the device cannot report its position"
		}
		msg := fmt.Sprintf("lines on %s moved to %s (%s)", d.cfg.Name, target, note)
		d.record(protocol.SevWarning, fmt.Sprintf("%s (by %s)", msg, who(c)))
		return protocol.Result{OK: true, Message: msg + held}
	}, nil
}

// failed turns a device error into a failed result.
func failed(err error) protocol.Result {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		pe = switchdrv.ProtocolError(err)
	}
	return protocol.Result{OK: false, Message: err.Error(), Error: pe}
}

func (f *Feature) planPower(a protocol.Action, c localapi.Caller) (localapi.Job, error) {
	if len(a.Args) != 1 {
		return nil, protocol.Errorf(protocol.CodeUsage, "usage: "+a.Verb+" OUTLET",
			"%s takes one outlet, got %d arguments", a.Verb, len(a.Args))
	}
	ref, err := ResolveOutlet(f.h.Deployment(), a.Args[0])
	if err != nil {
		return nil, err
	}
	d := f.local(ref.Switch)
	if d == nil {
		return nil, f.notHere(ref.Switch)
	}
	if d.power == nil {
		return nil, protocol.Errorf(protocol.CodeUsage, "use switch set for line switches", "%s is a line switch, not a power switch", d.cfg.Name)
	}
	self := f.h.Config().Node
	if a.Verb != VerbPowerOn && ref.Node == self && !a.Force {
		return nil, protocol.Errorf(protocol.CodeRefused, "run it from another node's agent, or force it",
			"outlet %s powers %s, whose agent would cut its own power", ref, self)
	}
	what := map[string]string{VerbPowerOn: "switched on", VerbPowerOff: "switched off", VerbCycle: "power-cycled"}[a.Verb]
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		if a.DryRun {
			return protocol.Result{OK: true, Message: fmt.Sprintf("would have outlet %s %s", ref, what)}
		}
		progress(protocol.Progress{Step: "power", Message: fmt.Sprintf("outlet %s: %s", ref, a.Verb), Percent: -1})
		octx, cancel := context.WithTimeout(ctx, powerOpTimeout)
		var st switchdrv.PowerState
		var err error
		switch a.Verb {
		case VerbPowerOn:
			st, err = d.power.SetPower(octx, ref.Outlet, true)
		case VerbPowerOff:
			st, err = switchdrv.Fence(octx, d.power, ref.Outlet)
		case VerbCycle:
			st, err = d.power.Cycle(octx, ref.Outlet)
		}
		cancel()
		if err != nil {
			d.refresh(ctx)
			d.record(protocol.SevCritical, fmt.Sprintf("outlet %s could not be %s (by %s): %v", ref, what, who(c), err))
			return failed(err)
		}
		d.mu.Lock()
		states := slices.Clone(d.powerSt)
		if i := slices.IndexFunc(states, func(s switchdrv.PowerState) bool { return s.Outlet == st.Outlet }); i >= 0 {
			states[i] = st
		} else {
			states = append(states, st)
		}
		d.powerSt = states
		d.mu.Unlock()
		d.noteErr(nil)
		msg := fmt.Sprintf("outlet %s %s, read back %s", ref, what, st.Power)
		if !st.Verified {
			msg = fmt.Sprintf("outlet %s %s (not verified)", ref, what)
		}
		d.record(protocol.SevWarning, fmt.Sprintf("%s (by %s)", msg, who(c)))
		return protocol.Result{OK: true, Message: msg}
	}, nil
}

func (f *Feature) planDiscover(a protocol.Action) (localapi.Job, error) {
	if len(a.Args) != 0 {
		return nil, protocol.Errorf(protocol.CodeUsage, "usage: switch discover", "switch discover takes no arguments")
	}
	target := f.o.DiscoverTarget
	where := target
	if where == "" {
		where = fmt.Sprintf("the local segment (broadcast, port %d)", berofos.UDPPort)
	}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		if a.DryRun {
			return protocol.Result{OK: true, Message: "would look for berofos switches on " + where}
		}
		progress(protocol.Progress{Step: "discover", Message: "looking for berofos switches on " + where, Percent: -1})
		devs, err := berofos.Discover(ctx, berofos.DiscoverOptions{Target: target, Wait: f.o.DiscoverWait})
		var de *berofos.DiscoverError
		if err != nil && !errors.As(err, &de) {
			return protocol.Result{OK: false, Message: err.Error(), Error: protocol.Errorf(protocol.CodeFailed,
				"check the node's network; discovery needs UDP port 50123", "%v", err)}
		}
		var lines []string
		for _, d := range devs {
			lines = append(lines, "berofos "+d.String())
		}
		if len(lines) == 0 {
			lines = append(lines, "no berofos answered on "+where)
		}
		if de != nil {
			lines = append(lines, "warning: "+de.Error())
		}
		return protocol.Result{OK: true, Message: strings.Join(lines, "\n")}
	}, nil
}
