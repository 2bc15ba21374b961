package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Verbs.
const (
	verbStandby     = "standby"
	verbOnline      = "online"
	verbSwitchover  = "switchover"
	verbMaintenance = "maintenance"
	verbCleanup     = "cleanup"
	verbFence       = "fence"
	verbActivate    = "activate"
	verbDisable     = "disable"
	verbStop        = "stop"
)

// Switchover steps, as seed 004 names the procedure, and the disable
// steps.
const (
	stepRestoration = "restoration"
	stepActivation  = "activation"
	stepAuditing    = "auditing"
	stepCleanUp     = "clean-up"
	stepRelay       = "standby role relay"

	stepStandbySide = "disable standby side"
	stepActiveSide  = "disable active side"
	stepDeactivate  = "deactivate"
)

// Verbs lists the operator verbs Plan knows, with their usage.
func Verbs() map[string]string {
	return map[string]string{
		verbStandby:     "standby NODE: move the group away and keep it away",
		verbOnline:      "online NODE: let the node hold the group again",
		verbSwitchover:  "switchover [NODE]: planned move of the group; the target is made ready before the holder lets go",
		verbMaintenance: "maintenance NODE [on|off]: leave the node's resources unmanaged",
		verbCleanup:     "cleanup [NODE [RESOURCE]]: forget fail counts and failed actions",
		verbFence:       "fence NODE: power the node off through its fencing device",
		verbActivate:    "activate: check the cluster (dry run with --dry-run) and start managing it",
		verbDisable:     "disable: stop managing the cluster, standby side first; the active keeps running",
		verbStop:        "stop: take the cluster out of service, standby side first, then the active stops the group",
	}
}

// Job carries out an accepted action, reporting steps through progress.
// It has the shape of localapi.Job: convert with localapi.Job(job).
type Job func(ctx context.Context, progress func(protocol.Progress)) protocol.Result

// refusal builds a CodeRefused error in the form "VERB refused: WHY".
func refusal(verb, hint, format string, args ...any) *protocol.Error {
	return protocol.Errorf(protocol.CodeRefused, hint, "%s refused: %s", verb, fmt.Sprintf(format, args...))
}

func usage(verb string) *protocol.Error {
	return protocol.Errorf(protocol.CodeUsage, "usage: "+Verbs()[verb], "%s: wrong arguments", verb)
}

// steps reports numbered steps.
type steps struct {
	names    []string
	progress func(protocol.Progress)
	dry      bool
}

func (s *steps) report(i int, msg string) {
	if s.progress == nil {
		return
	}
	if s.dry {
		msg = "dry run: " + msg
	}
	s.progress(protocol.Progress{Step: s.names[i], Message: msg, Percent: float64(100*i) / float64(len(s.names))})
}

func ok(msg string) protocol.Result { return protocol.Result{OK: true, Message: msg} }

func failed(err error) protocol.Result {
	pe := protocol.AsError(err)
	if pe.Code == protocol.CodeInternal && !errors.As(err, new(*protocol.Error)) {
		pe = &protocol.Error{Code: protocol.CodeFailed, Message: err.Error()}
	}
	return protocol.Result{OK: false, Message: pe.Message, Error: pe}
}

// Plan checks an operator action against the decision state now and
// returns the job that carries it out, or a *protocol.Error: CodeRefused
// with a hint when a safety rule forbids it (for example "switchover
// refused: pbx-a2 is in standby"), CodeUsage, CodeUnknownNode,
// CodeUnknownVerb. With a.DryRun the job reports its steps and runs only
// the checks among them; nothing is changed.
func (e *Engine) Plan(a protocol.Action) (Job, error) {
	st := e.fsm.state()
	if !st.Initialized {
		return nil, protocol.Errorf(protocol.CodeRefused, "wait a few seconds for the voters to elect a leader", "%s refused: the cluster has not formed yet", a.Verb)
	}
	node := func(i int) (string, error) {
		if i >= len(a.Args) {
			return "", usage(a.Verb)
		}
		n := a.Args[i]
		if st.node(n) == nil {
			return "", protocol.Errorf(protocol.CodeUnknownNode, "the voters are "+strings.Join(st.voterNames(), ", "), "%s is not a voter of cluster %s", n, st.Cluster)
		}
		return n, nil
	}
	switch a.Verb {
	case verbStandby, verbOnline:
		if len(a.Args) != 1 {
			return nil, usage(a.Verb)
		}
		n, err := node(0)
		if err != nil {
			return nil, err
		}
		return e.planStandby(st, n, a.Verb == verbStandby, a)
	case verbMaintenance:
		if len(a.Args) < 1 || len(a.Args) > 2 {
			return nil, usage(a.Verb)
		}
		n, err := node(0)
		if err != nil {
			return nil, err
		}
		on := true
		if len(a.Args) == 2 {
			switch a.Args[1] {
			case "on":
			case "off":
				on = false
			default:
				return nil, usage(a.Verb)
			}
		}
		if st.node(n).Witness {
			return nil, refusal(a.Verb, "", "%s is the witness: it has no resources", n)
		}
		return e.flagJob(a, []string{"record maintenance"}, &command{Op: opFlags, Node: n, Maint: &on},
			fmt.Sprintf("%s is %s", n, map[bool]string{true: "in maintenance: its resources are unmanaged", false: "out of maintenance: its resources are managed"}[on])), nil
	case verbSwitchover:
		if len(a.Args) > 1 {
			return nil, usage(a.Verb)
		}
		to := ""
		if len(a.Args) == 1 {
			var err error
			if to, err = node(0); err != nil {
				return nil, err
			}
		}
		return e.planSwitchover(st, to, a)
	case verbCleanup:
		if len(a.Args) > 2 {
			return nil, usage(a.Verb)
		}
		var targets []string
		res := ""
		if len(a.Args) >= 1 {
			n, err := node(0)
			if err != nil {
				return nil, err
			}
			targets = []string{n}
			if len(a.Args) == 2 {
				res = a.Args[1]
			}
		} else {
			for _, v := range st.Voters {
				if !v.Witness {
					targets = append(targets, v.Name)
				}
			}
		}
		return e.planCleanup(st, targets, res, a), nil
	case verbFence:
		if len(a.Args) != 1 {
			return nil, usage(a.Verb)
		}
		n, err := node(0)
		if err != nil {
			return nil, err
		}
		switch {
		case n == e.cfg.Node:
			return nil, refusal(a.Verb, "run it from another node's agent", "%s cannot fence itself", n)
		case e.deps.Fencer == nil || !e.deps.Fencer.CanFence(n):
			return nil, refusal(a.Verb, "configure a power switch or fence agent for "+n, "%s has no fencing device", n)
		}
		return e.planFence(n, a), nil
	case verbActivate:
		if len(a.Args) != 0 {
			return nil, usage(a.Verb)
		}
		return e.planActivate(st, a), nil
	case verbDisable, verbStop:
		if len(a.Args) != 0 {
			return nil, usage(a.Verb)
		}
		if !st.Activated && st.AutoActivate {
			return e.planCancelActivate(a), nil
		}
		if !st.Activated {
			return nil, refusal(a.Verb, "", "cluster %s is not activated", st.Cluster)
		}
		if act := st.action(); act != nil {
			return nil, busy(a.Verb, act)
		}
		return e.planDisable(a, a.Verb == verbStop), nil
	}
	return nil, protocol.Errorf(protocol.CodeUnknownVerb, "verbs: standby, online, switchover, maintenance, cleanup, fence, activate, disable",
		"the failover engine does not know the action %q", a.Verb)
}

func busy(verb string, act *ActionRecord) *protocol.Error {
	return protocol.Errorf(protocol.CodeBusy, "wait for it to end, or see status", "%s refused: %s %d is in progress (step %s, run by %s)", verb, act.Verb, act.ID, act.Step, act.Runner)
}

// waitFor waits until cond holds for the decision state, or timeout.
func (e *Engine) waitFor(ctx context.Context, timeout time.Duration, cond func(*State) bool) (*State, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		wait := e.fsm.changed.wait()
		st := e.fsm.state()
		if cond(st) {
			return st, true
		}
		t := time.NewTimer(e.tick * 4)
		select {
		case <-ctx.Done():
			t.Stop()
			return st, false
		case <-e.ctx.Done():
			t.Stop()
			return st, false
		case <-deadline.C:
			t.Stop()
			return st, false
		case <-wait:
		case <-t.C:
		}
		t.Stop()
	}
}

// moveTimeout bounds waiting for the group to move: a stop, a start and
// the takeover delay, with room for the log.
func (e *Engine) moveTimeout() time.Duration {
	start := time.Duration(0)
	if e.deps.Group != nil {
		for range e.deps.Group.Resources() {
			start += 20 * time.Second
		}
	}
	return e.cfg.Timing.StopBudget + max(start, e.cfg.Timing.StopBudget) + e.cfg.Timing.TakeoverDelay + 4*e.cfg.Raft.TransportTimeout
}

// flagJob commits one command.
func (e *Engine) flagJob(a protocol.Action, names []string, c *command, done string) Job {
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		s := &steps{names: names, progress: progress, dry: a.DryRun}
		s.report(0, "recording in the cluster's decision log")
		if a.DryRun {
			return ok("dry run: nothing was changed")
		}
		if _, err := e.propose(ctx, c); err != nil {
			return failed(err)
		}
		return ok(done)
	}
}

func (e *Engine) planStandby(st *State, n string, standby bool, a protocol.Action) (Job, error) {
	r := st.node(n)
	if r.Witness {
		return nil, refusal(a.Verb, "", "%s is the witness: it never holds the group", n)
	}
	if standby && st.Group.Holder == n && !a.Force {
		v := e.currentView()
		if next := e.preferred(st, v, n); next == "" {
			return nil, refusal(a.Verb, "bring another node online first, or repeat with --force to stop the service",
				"%s holds %s and no other node can take it: the service would stop", n, st.Group.Name)
		}
	}
	names := []string{"record " + a.Verb, "move group"}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		s := &steps{names: names, progress: progress, dry: a.DryRun}
		s.report(0, fmt.Sprintf("setting %s %s", n, a.Verb))
		if a.DryRun {
			s.report(1, "would wait for "+st.Group.Name+" to settle")
			return ok("dry run: nothing was changed")
		}
		if _, err := e.propose(ctx, &command{Op: opFlags, Node: n, Standby: &standby}); err != nil {
			return failed(err)
		}
		if !standby {
			s.report(1, n+" may hold "+st.Group.Name+" again")
			now := e.fsm.state()
			if !now.Activated {
				// Nothing starts in a cluster that is not activated (a
				// geo backup site): there is nothing to wait for.
				return ok(fmt.Sprintf("%s is online (cluster %s is not activated: %s starts when it is)", n, now.Cluster, st.Group.Name))
			}
			if now.Group.Holder == "" {
				got, done := e.waitFor(ctx, e.moveTimeout(), func(st *State) bool { return !st.Activated || st.Group.Phase == PhaseStarted })
				if done && got.Group.Phase == PhaseStarted {
					return ok(fmt.Sprintf("%s is online; %s runs on %s", n, got.Group.Name, got.Group.Holder))
				}
				return ok(fmt.Sprintf("%s is online; %s has not started (holder %s, %s): see status", n, got.Group.Name, orNobody(got.Group.Holder), got.Group.Phase))
			}
			return ok(n + " is online")
		}
		if st.Group.Holder != n {
			return ok(n + " is in standby")
		}
		s.report(1, fmt.Sprintf("waiting for %s to leave %s", st.Group.Name, n))
		got, done := e.waitFor(ctx, e.moveTimeout(), func(st *State) bool {
			return st.Group.Holder != n && (st.Group.Phase == PhaseStarted || st.Group.Holder == "" && e.preferred(st, e.currentView(), n) == "")
		})
		if !done {
			return failed(protocol.Errorf(protocol.CodeFailed, "see status", "%s is in standby, but %s has not moved yet (holder %s, %s)", n, got.Group.Name, orNobody(got.Group.Holder), got.Group.Phase))
		}
		if got.Group.Holder == "" {
			return ok(fmt.Sprintf("%s is in standby; %s is stopped: no node can hold it", n, got.Group.Name))
		}
		return ok(fmt.Sprintf("%s is in standby; %s runs on %s", n, got.Group.Name, got.Group.Holder))
	}, nil
}

func (e *Engine) planSwitchover(st *State, to string, a protocol.Action) (Job, error) {
	g := st.Group
	from := g.Holder
	v := e.currentView()
	if from == "" {
		return nil, refusal(a.Verb, "start it first (online a node, or activate)", "nobody holds %s", g.Name)
	}
	if act := st.action(); act != nil {
		return nil, busy(a.Verb, act)
	}
	if to == "" {
		to = e.preferred(st, v, from)
		if to == "" {
			return nil, refusal(a.Verb, "bring another node online", "no node other than %s can hold %s", from, g.Name)
		}
	}
	switch {
	case to == from:
		return nil, refusal(a.Verb, "", "%s already holds %s", to, g.Name)
	case st.node(from).Maintenance:
		return nil, refusal(a.Verb, "take "+from+" out of maintenance first", "%s is in maintenance: its resources are unmanaged", from)
	case g.Phase != PhaseStarted:
		return nil, refusal(a.Verb, "wait for it to settle, or see status", "%s is %s on %s, not started", g.Name, g.Phase, from)
	}
	if why := st.ineligible(to); why != "" {
		hint := ""
		switch r := st.node(to); {
		case r.Standby:
			hint = "bring " + to + " online first"
		case r.Banned != "":
			hint = "run cleanup " + to + " first"
		case r.Maintenance:
			hint = "take " + to + " out of maintenance first"
		}
		return nil, refusal(a.Verb, hint, "%s", why)
	}
	if !v.alive(to, e.cfg.Node) || !v.alive(from, e.cfg.Node) {
		return nil, refusal(a.Verb, "a switchover needs both nodes reachable; check the links (status)", "%s cannot reach both %s and %s", e.cfg.Node, from, to)
	}
	rec := ActionRecord{Verb: verbSwitchover, From: from, To: to, Runner: e.cfg.Node, RunnerInc: e.inc, Step: stepRestoration, Epoch: g.Epoch}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		s := &steps{names: []string{stepRestoration, stepActivation, stepAuditing, stepCleanUp, stepRelay}, progress: progress, dry: a.DryRun}
		if a.DryRun {
			s.report(0, fmt.Sprintf("would check that %s is ready to take %s", to, g.Name))
			s.report(1, fmt.Sprintf("would have %s stop %s, then %s start it", from, g.Name, to))
			s.report(2, "would check that it runs on "+to+" only")
			s.report(3, "would close the switchover record")
			s.report(4, from+" would become the standby")
			return ok("dry run: nothing was changed")
		}
		res, err := e.propose(ctx, &command{Op: opBegin, Record: &rec})
		if err != nil {
			return failed(err)
		}
		rec.ID = res.Action
		return e.runSwitchover(ctx, rec, stepRestoration, s)
	}, nil
}

// runSwitchover carries a switchover out from step on.
func (e *Engine) runSwitchover(ctx context.Context, rec ActionRecord, from string, s *steps) protocol.Result {
	id := rec.ID
	end := func(note string) {
		e.propose(context.WithoutCancel(ctx), &command{Op: opEnd, Action: id, Reason: note})
	}
	order := []string{stepRestoration, stepActivation, stepAuditing, stepCleanUp}
	at := slices.Index(order, from)
	if at < 0 {
		at = 0
	}
	if at <= 0 {
		s.report(0, fmt.Sprintf("asking %s whether it is ready to take %s", rec.To, e.cfg.Group))
		st, done := e.waitFor(ctx, 2*e.cfg.Raft.TransportTimeout+e.cfg.Timing.DeadTime, func(st *State) bool {
			a := st.Actions[id]
			return a == nil || a.Prepared != ""
		})
		a := st.Actions[id]
		switch {
		case a == nil:
			return failed(protocol.Errorf(protocol.CodeFailed, "see status", "switchover %d was ended by someone else", id))
		case !done:
			end("rolled back: " + rec.To + " did not answer")
			e.emit(e.event(EvRolledBack, "switchover %d rolled back at %s: %s did not answer; %s keeps %s", id, stepRestoration, rec.To, rec.From, e.cfg.Group))
			return failed(protocol.Errorf(protocol.CodeFailed, "check "+rec.To+"'s agent and links", "switchover failed at %s: %s did not say it is ready; %s keeps %s", stepRestoration, rec.To, rec.From, e.cfg.Group))
		case a.Prepared != "ok":
			end("rolled back: " + a.Prepared)
			e.emit(e.event(EvRolledBack, "switchover %d rolled back at %s: %s", id, stepRestoration, a.Prepared))
			return failed(protocol.Errorf(protocol.CodeFailed, "fix it and try again", "switchover failed at %s: %s is not ready: %s; %s keeps %s", stepRestoration, rec.To, a.Prepared, rec.From, e.cfg.Group))
		}
		e.emit(e.event(EvAction, "switchover %d: %s is ready to take %s", id, rec.To, e.cfg.Group))
	}
	if at <= 1 {
		s.report(1, fmt.Sprintf("%s stops %s, then %s starts it", rec.From, e.cfg.Group, rec.To))
		if at < 1 {
			if _, err := e.propose(ctx, &command{Op: opStep, Action: id, Step: stepActivation}); err != nil {
				return failed(err)
			}
		}
		// Past this point a restart resumes rather than rolls back, so do
		// not give up when the caller goes away.
		ctx = context.WithoutCancel(ctx)
		st, done := e.waitFor(ctx, e.moveTimeout(), func(st *State) bool {
			g := st.Group
			return g.Holder == rec.To && (g.Phase == PhaseStarted || g.Phase == PhaseFailed) || g.Holder == rec.From && g.Phase == PhaseFailed
		})
		g := st.Group
		if !done || g.Phase == PhaseFailed {
			end("failed at activation")
			return failed(protocol.Errorf(protocol.CodeFailed, "see status and the failed actions", "switchover failed at %s: %s is %s on %s (%s)", stepActivation, g.Name, g.Phase, orNobody(g.Holder), g.Reason))
		}
	}
	s.report(2, fmt.Sprintf("checking that %s runs on %s only", e.cfg.Group, rec.To))
	e.propose(ctx, &command{Op: opStep, Action: id, Step: stepAuditing})
	st := e.fsm.state()
	if g := st.Group; g.Holder != rec.To || g.Phase != PhaseStarted || g.Previous != rec.From {
		end("audit failed")
		return failed(protocol.Errorf(protocol.CodeFailed, "see status", "switchover audit failed: %s is %s on %s (previous holder %s)", g.Name, g.Phase, orNobody(g.Holder), orNobody(g.Previous)))
	}
	s.report(3, "closing the switchover record")
	end("done")
	relay := rec.From + " is now the standby"
	if why := st.ineligible(rec.From); why != "" {
		relay = rec.From + " cannot be the standby: " + why
	}
	s.report(4, relay)
	e.emit(e.event(EvAction, "switchover %d done: %s runs on %s; %s", id, e.cfg.Group, rec.To, relay))
	return ok(fmt.Sprintf("%s moved from %s to %s; %s", e.cfg.Group, rec.From, rec.To, relay))
}

func (e *Engine) planCleanup(st *State, targets []string, res string, a protocol.Action) Job {
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		names := make([]string, len(targets))
		for i, n := range targets {
			names[i] = "cleanup " + n
		}
		s := &steps{names: names, progress: progress, dry: a.DryRun}
		var missing []string
		for i, n := range targets {
			what := "every resource"
			if res != "" {
				what = res
			}
			s.report(i, fmt.Sprintf("forgetting the fail counts of %s on %s", what, n))
			if a.DryRun {
				continue
			}
			r, err := e.propose(ctx, &command{Op: opCleanup, Node: n, Resource: res})
			if err != nil {
				return failed(err)
			}
			seq := r.Action
			if _, done := e.waitFor(ctx, 2*e.cfg.Raft.TransportTimeout+e.cfg.Timing.DeadTime, func(st *State) bool { return st.node(n).CleanupDone >= seq }); !done {
				missing = append(missing, n)
			}
		}
		if a.DryRun {
			return ok("dry run: nothing was changed")
		}
		if len(missing) > 0 {
			return failed(protocol.Errorf(protocol.CodeFailed, "they clean up when their agents answer again", "cleanup requested, but %s did not confirm", strings.Join(missing, ", ")))
		}
		return ok("fail counts cleared on " + strings.Join(targets, ", "))
	}
}

func (e *Engine) planFence(n string, a protocol.Action) Job {
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		s := &steps{names: []string{"fence", "record"}, progress: progress, dry: a.DryRun}
		s.report(0, "powering "+n+" off and reading the outlet back")
		if a.DryRun {
			s.report(1, "would record "+n+" as fenced")
			return ok("dry run: nothing was changed")
		}
		if err := e.fence(ctx, n, "an operator asked for it"); err != nil {
			return failed(protocol.Errorf(protocol.CodeFailed, "check the fencing device; do not take over by hand", "fencing %s failed: %v", n, err))
		}
		s.report(1, "recording "+n+" as fenced")
		if err := e.decideWithout(ctx, n, true); err != nil {
			return failed(protocol.Errorf(protocol.CodeFailed, "", "%s is off, but recording it failed: %v", n, err))
		}
		return ok(n + " is fenced: its power is verifiably off")
	}
}

// checker is a fencer that can say whether its devices answer.
type checker interface {
	Check(ctx context.Context) error
}

func (e *Engine) planActivate(st *State, a protocol.Action) Job {
	names := []string{"check voters", "check decision log", "check fencing", "check group", "activate", "start group"}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		s := &steps{names: names, progress: progress}
		var problems []string
		v := e.currentView()
		var down []string
		for _, n := range e.peers {
			if !v.alive(n, e.cfg.Node) {
				down = append(down, n)
			}
		}
		if len(down) > 0 {
			problems = append(problems, "not reachable: "+strings.Join(down, ", "))
			s.report(0, "not reachable: "+strings.Join(down, ", "))
		} else {
			s.report(0, fmt.Sprintf("all %d voters answer on every configured path", len(e.cfg.Voters)))
		}
		leader := e.rn.leader()
		if leader == "" {
			problems = append(problems, "no leader of the decision log")
			s.report(1, "no leader elected")
		} else {
			s.report(1, "leader is "+leader)
		}
		switch c, isChecker := e.deps.Fencer.(checker); {
		case e.deps.Fencer == nil:
			s.report(2, "no fencing configured ("+e.modeName()+")")
		case !isChecker:
			s.report(2, "fencing configured; its devices cannot be checked without fencing")
		default:
			if err := c.Check(ctx); err != nil {
				problems = append(problems, err.Error())
				s.report(2, err.Error())
			} else {
				s.report(2, "fencing devices answer")
			}
		}
		if e.w != nil {
			if ws := e.w.status(); ws.unclean || ws.err != "" {
				problems = append(problems, "the group on "+e.cfg.Node+": "+ws.err)
				s.report(3, ws.err)
			} else {
				s.report(3, "the group's resources are consistent on "+e.cfg.Node)
			}
		} else {
			s.report(3, e.cfg.Node+" is the witness: no resources")
		}
		if len(problems) > 0 {
			return failed(protocol.Errorf(protocol.CodeFailed, "fix these and run activate --dry-run again", "activate: the checks failed: %s", strings.Join(problems, "; ")))
		}
		if a.DryRun {
			s.dry = true
			s.report(4, "would activate cluster "+e.cfg.Cluster)
			s.report(5, "would start "+e.cfg.Group+" on the first eligible node")
			return ok("dry run passed: nothing was changed")
		}
		if st.Activated {
			return ok("cluster " + e.cfg.Cluster + " is already active")
		}
		s.report(4, "activating cluster "+e.cfg.Cluster)
		if _, err := e.propose(ctx, &command{Op: opActivate}); err != nil {
			return failed(err)
		}
		s.report(5, "waiting for "+e.cfg.Group+" to start")
		got, done := e.waitFor(ctx, e.moveTimeout(), func(st *State) bool { return st.Group.Phase == PhaseStarted })
		if !done {
			return failed(protocol.Errorf(protocol.CodeFailed, "see status", "cluster %s is active, but %s has not started (%s on %s)", e.cfg.Cluster, e.cfg.Group, got.Group.Phase, orNobody(got.Group.Holder)))
		}
		return ok(fmt.Sprintf("cluster %s is active; %s runs on %s", e.cfg.Cluster, e.cfg.Group, got.Group.Holder))
	}
}

// planCancelActivate drops an activate from the configuration that still
// waits for every voter: a disable or stop before the cluster ever
// activated leaves it inactive until an explicit activate.
func (e *Engine) planCancelActivate(a protocol.Action) Job {
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		if a.DryRun {
			return ok("dry run: would cancel the activate pending until every voter has joined")
		}
		if _, err := e.propose(ctx, &command{Op: opDeactivate}); err != nil {
			return failed(err)
		}
		return ok("cluster " + e.cfg.Cluster + " stays inactive: the activate pending until every voter joined is cancelled")
	}
}

func (e *Engine) planDisable(a protocol.Action, stop bool) Job {
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		s := &steps{names: []string{stepStandbySide, stepActiveSide, stepDeactivate}, progress: progress, dry: a.DryRun}
		if a.DryRun {
			s.report(0, "would disable every node that does not hold the group, and wait for each to confirm")
			if stop {
				s.report(1, "would have the holder stop the group and release it, then disable it")
			} else {
				s.report(1, "would disable the holder; its group keeps running, unmanaged")
			}
			s.report(2, "would stop managing the cluster")
			return ok("dry run: nothing was changed")
		}
		rec := ActionRecord{Verb: verbDisable, Stop: stop, Runner: e.cfg.Node, RunnerInc: e.inc, Step: stepStandbySide, Epoch: e.fsm.state().Group.Epoch}
		res, err := e.propose(ctx, &command{Op: opBegin, Record: &rec})
		if err != nil {
			return failed(err)
		}
		rec.ID = res.Action
		return e.runDisable(context.WithoutCancel(ctx), rec, s)
	}
}

// runDisable disables the standby side first, then the active side: a
// standby still managing while the active stops being managed could take
// over (edgeBOX: shut Heartbeat down on the slave first).
func (e *Engine) runDisable(ctx context.Context, rec ActionRecord, s *steps) protocol.Result {
	st := e.fsm.state()
	holder := st.Group.Holder
	var standbys []string
	for _, v := range st.Voters {
		if v.Name != holder {
			standbys = append(standbys, v.Name)
		}
	}
	s.report(0, "disabling "+strings.Join(standbys, ", "))
	for _, n := range standbys {
		if _, err := e.propose(ctx, &command{Op: opDisable, Node: n, On: true}); err != nil {
			return failed(err)
		}
	}
	got, done := e.waitFor(ctx, 2*e.cfg.Raft.TransportTimeout+e.cfg.Timing.DeadTime, func(st *State) bool {
		a := st.Actions[rec.ID]
		return a != nil && len(a.Acks) >= len(standbys)
	})
	note := "all confirmed"
	if !done {
		var missing []string
		if a := got.Actions[rec.ID]; a != nil {
			for _, n := range standbys {
				if !slices.Contains(a.Acks, n) {
					missing = append(missing, n)
				}
			}
		}
		// The log forbids them to take over now, whether or not they
		// heard: a takeover must be committed, and the log refuses it.
		note = strings.Join(missing, ", ") + " did not confirm; the decision log refuses any takeover by them"
	}
	e.emit(e.event(EvAction, "disable: standby side disabled (%s)", note))
	if rec.Stop {
		return e.runStop(ctx, rec, s, holder)
	}
	s.report(1, "disabling "+orNobody(holder)+"; its group keeps running, unmanaged")
	e.propose(ctx, &command{Op: opStep, Action: rec.ID, Step: stepActiveSide})
	if holder != "" {
		if _, err := e.propose(ctx, &command{Op: opDisable, Node: holder, On: true}); err != nil {
			return failed(err)
		}
	}
	e.emit(e.event(EvAction, "disable: active side %s disabled", orNobody(holder)))
	s.report(2, "no longer managing cluster "+e.cfg.Cluster)
	e.propose(ctx, &command{Op: opStep, Action: rec.ID, Step: stepDeactivate})
	if _, err := e.propose(ctx, &command{Op: opDeactivate}); err != nil {
		return failed(err)
	}
	e.propose(ctx, &command{Op: opEnd, Action: rec.ID, Reason: "done"})
	return ok(fmt.Sprintf("cluster %s is disabled; %s keeps running on %s, unmanaged", e.cfg.Cluster, e.cfg.Group, orNobody(holder)))
}

// runStop is the rest of a stopping disable: the holder, told by the
// action's step, stops the group and releases it (nobody may acquire it
// while a disable runs, and the standby side is disabled already); then
// every node is disabled and the cluster deactivated.
func (e *Engine) runStop(ctx context.Context, rec ActionRecord, s *steps, holder string) protocol.Result {
	s.report(1, orNobody(holder)+" stops "+e.cfg.Group)
	if _, err := e.propose(ctx, &command{Op: opStep, Action: rec.ID, Step: stepActiveSide}); err != nil {
		return failed(err)
	}
	wait := e.cfg.Timing.StopBudget + 2*e.cfg.Raft.TransportTimeout + e.cfg.Timing.DeadTime
	got, released := e.waitFor(ctx, wait, func(st *State) bool { return st.Group.Holder == "" })
	if !released {
		// The standby side stays disabled: nobody takes the group over
		// while its holder may still run it.
		e.propose(ctx, &command{Op: opEnd, Action: rec.ID, Reason: "the holder did not stop the group"})
		return failed(fmt.Errorf("stop of cluster %s: %s did not stop %s within %v (%s); the other nodes stay disabled",
			e.cfg.Cluster, orNobody(got.Group.Holder), e.cfg.Group, wait, orNobody(got.Group.Reason)))
	}
	e.emit(e.event(EvAction, "stop: %s stopped and released %s", orNobody(holder), e.cfg.Group))
	if holder != "" {
		if _, err := e.propose(ctx, &command{Op: opDisable, Node: holder, On: true}); err != nil {
			return failed(err)
		}
	}
	s.report(2, "no longer managing cluster "+e.cfg.Cluster)
	e.propose(ctx, &command{Op: opStep, Action: rec.ID, Step: stepDeactivate})
	if _, err := e.propose(ctx, &command{Op: opDeactivate}); err != nil {
		return failed(err)
	}
	e.propose(ctx, &command{Op: opEnd, Action: rec.ID, Reason: "done"})
	return ok(fmt.Sprintf("cluster %s is stopped: %s runs nowhere; cluster activate starts it again", e.cfg.Cluster, e.cfg.Group))
}

// journal takes part in actions in progress: the target of a switchover
// says whether it is ready, disabled nodes confirm, cleanups run here,
// and actions whose runner restarted or died are resumed or rolled back.
func (e *Engine) journal(st *State, v view, now time.Time) {
	me := st.node(e.cfg.Node)
	if me.Cleanup > me.CleanupDone {
		seq, res := me.Cleanup, me.CleanupResource
		e.async("cleanup", func(ctx context.Context) {
			e.mu.Lock()
			done := e.cleaned >= seq
			e.cleaned = max(e.cleaned, seq)
			e.mu.Unlock()
			if !done {
				if err := e.cleanupLocal(res); err != nil {
					e.emit(e.event(EvAction, "cleanup on %s: %v", e.cfg.Node, err))
				}
			}
			e.propose(ctx, &command{Op: opCleanupDone, Node: e.cfg.Node, Seq: seq})
		})
	}
	act := st.action()
	if act == nil {
		return
	}
	switch {
	case act.Verb == verbSwitchover && act.Step == stepRestoration && act.To == e.cfg.Node && act.Prepared == "":
		id, from := act.ID, act.From
		e.async("prepare", func(ctx context.Context) {
			e.propose(ctx, &command{Op: opPrepared, Node: e.cfg.Node, Action: id, Reason: e.readiness(from)})
		})
	case act.Verb == verbDisable && me.Disabled && !slices.Contains(act.Acks, e.cfg.Node):
		id := act.ID
		e.async("ack", func(ctx context.Context) {
			e.propose(ctx, &command{Op: opAck, Node: e.cfg.Node, Action: id})
		})
	}
	e.mu.Lock()
	done := e.resolved[act.ID]
	e.mu.Unlock()
	orphan := act.Runner == e.cfg.Node && act.RunnerInc != e.inc && me.Inc == e.inc
	adopt := act.Runner != e.cfg.Node && v.failed(act.Runner, e.cfg.Node) && e.rn.isLeader()
	if done || !(orphan || adopt) {
		return
	}
	e.mu.Lock()
	e.resolved[act.ID] = true
	e.mu.Unlock()
	rec := *act
	e.async(fmt.Sprintf("resolve/%d", act.ID), func(ctx context.Context) { e.resolve(ctx, rec, adopt) })
}

// readiness says "ok" when this node can take the group from from now,
// or why not.
func (e *Engine) readiness(from string) string {
	st := e.fsm.state()
	if why := st.ineligible(e.cfg.Node); why != "" {
		return why
	}
	if e.w == nil {
		return e.cfg.Node + " is the witness"
	}
	ws := e.w.status()
	switch {
	case ws.unclean:
		return e.cfg.Node + " may still run part of the group: " + ws.err
	case ws.running:
		return e.cfg.Node + " already runs part of the group"
	}
	if !e.currentView().alive(from, e.cfg.Node) {
		return e.cfg.Node + " cannot reach " + from
	}
	for _, r := range e.deps.Group.Resources() {
		if n := e.deps.Group.FailCount(r.Name()); n > 0 {
			return fmt.Sprintf("%s failed %d times on %s: run cleanup %s first", r.Name(), n, e.cfg.Node, e.cfg.Node)
		}
	}
	return "ok"
}

// cleanupLocal forgets fail counts here.
func (e *Engine) cleanupLocal(res string) error {
	if e.deps.Group == nil {
		return nil
	}
	if err := e.deps.Group.Cleanup(res); err != nil {
		return err
	}
	if e.deps.Monitor != nil {
		e.deps.Monitor.Cleanup(res)
	}
	e.mu.Lock()
	e.leave = nil
	e.mu.Unlock()
	if e.w != nil {
		e.w.mu.Lock()
		if !e.w.st.unclean {
			e.w.st.err = ""
		}
		e.w.mu.Unlock()
	}
	e.emit(e.event(EvAction, "cleanup on %s: fail counts of %s cleared", e.cfg.Node, orAll(res)))
	return nil
}

func orAll(res string) string {
	if res == "" {
		return "every resource"
	}
	return res
}

// resolve finishes an action whose runner is gone: a switchover whose
// holder has not let go is rolled back (the holder keeps the group);
// anything further along is resumed.
func (e *Engine) resolve(ctx context.Context, rec ActionRecord, adopted bool) {
	why := "this agent restarted"
	if adopted {
		why = rec.Runner + " failed"
	}
	st := e.fsm.state()
	switch rec.Verb {
	case verbSwitchover:
		g := st.Group
		if rec.Step == stepRestoration || rec.Step == stepActivation && g.Holder == rec.From && g.Epoch == rec.Epoch {
			e.propose(ctx, &command{Op: opEnd, Action: rec.ID, Reason: "rolled back: " + why})
			e.emit(e.event(EvRolledBack, "switchover %d (%s → %s) was cut off at %s because %s; %s had not let go, so it is rolled back: %s keeps %s",
				rec.ID, rec.From, rec.To, rec.Step, why, rec.From, orNobody(g.Holder), g.Name))
			return
		}
		e.emit(e.event(EvResumed, "switchover %d (%s → %s) was cut off at %s because %s; %s had let go, so it is resumed",
			rec.ID, rec.From, rec.To, rec.Step, why, rec.From))
		if _, err := e.propose(ctx, &command{Op: opStep, Action: rec.ID, Step: rec.Step, Reason: "resumed"}); err != nil {
			return
		}
		e.runSwitchover(ctx, rec, rec.Step, &steps{names: []string{stepRestoration, stepActivation, stepAuditing, stepCleanUp, stepRelay}})
	case verbDisable:
		e.emit(e.event(EvResumed, "disable %d was cut off at %s because %s; it is resumed", rec.ID, rec.Step, why))
		if _, err := e.propose(ctx, &command{Op: opStep, Action: rec.ID, Step: rec.Step, Reason: "resumed"}); err != nil {
			return
		}
		e.runDisable(ctx, rec, &steps{names: []string{stepStandbySide, stepActiveSide, stepDeactivate}})
	default:
		e.propose(ctx, &command{Op: opEnd, Action: rec.ID, Reason: "rolled back: " + why})
		e.emit(e.event(EvRolledBack, "%s %d was cut off because %s; it is rolled back", rec.Verb, rec.ID, why))
	}
}
