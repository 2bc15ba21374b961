package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/resource"
)

// wantKind is what the engine wants of the local group.
type wantKind int

const (
	// wantUnmanaged: start nothing, stop nothing (maintenance, disabled).
	wantUnmanaged wantKind = iota
	// wantKeep: leave it as it is (while a claim is in flight).
	wantKeep
	wantStopped
	wantRunning
)

// want is the engine's wish for the local group.
type want struct {
	kind wantKind
	// epoch the group runs at (running), or is released at (release).
	epoch     uint64
	notBefore time.Time
	// release the group in the log after a clean stop, banning this node
	// when ban is set, then fence or reboot when then says so.
	release bool
	ban     string
	then    health.Action
	// deadline bounds the stop (self-fence: the stop deadline).
	deadline time.Time
	reason   string
}

// workerStatus is what the worker knows of the local group.
type workerStatus struct {
	running bool   // resources are (believed) running here
	epoch   uint64 // the epoch they were started or confirmed at
	busy    string // the operation in progress, "" when idle
	err     string // the last failure
	unclean bool   // a stop failed: resources may still run
}

// worker converges the local group to what the engine wants, one
// operation at a time. Monitors and health-check restarts run here too, so
// that they never overlap a start or stop.
type worker struct {
	e *Engine
	g *resource.Group

	kick chan struct{}

	mu       sync.Mutex
	want     want
	st       workerStatus
	cancelOp context.CancelFunc // cancels a start in progress
	released uint64             // epoch released at
	// stopped is the newest epoch at which the group stopped here (or
	// failed to start): it never starts again at that epoch, only after
	// the log gives it a newer one.
	stopped  uint64
	recovers []recoverReq
	phase    phaseReport

	guard *guard
	// inUse says why the group is not started although it should be:
	// another host still answers for it (see checkInUse); inUseEpoch is
	// the epoch that was said at, retry when to look again.
	inUse      string
	inUseEpoch uint64
	retry      time.Time
	// warmRetry is when a warm resource that failed to start here is
	// tried again; warmOn whether they were last started (true) or
	// stopped (false) here, for the events.
	warmRetry time.Time
	warmOn    bool
	// warmOK: this node may hold the group, so its warm resources run
	// here even while the group runs elsewhere (see setWarm).
	warmOK  bool
	warmWhy string
}

type recoverReq struct {
	resource, check, reason string
}

func newWorker(e *Engine) *worker {
	return &worker{e: e, g: e.deps.Group, kick: make(chan struct{}, 1), want: want{kind: wantUnmanaged},
		guard: newGuard(e.deps.Group, e.deps.Monitor)}
}

func (w *worker) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// set replaces the wish; a start in progress is cancelled when the group
// must now stop.
func (w *worker) set(nw want) {
	w.mu.Lock()
	old := w.want
	w.want = nw
	cancel := w.cancelOp
	w.mu.Unlock()
	if nw.kind == wantStopped && old.kind == wantRunning && cancel != nil {
		cancel()
	}
	if nw.kind != old.kind || nw.epoch != old.epoch || nw.release != old.release || !nw.notBefore.Equal(old.notBefore) {
		w.wake()
	}
}

func (w *worker) status() workerStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

func (w *worker) stoppedAt() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

func (w *worker) current() want {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.want
}

// requestRecover queues a restart of resource for a major check.
func (w *worker) requestRecover(r recoverReq) {
	w.mu.Lock()
	w.recovers = append(w.recovers, r)
	w.mu.Unlock()
	w.wake()
}

func (w *worker) run() {
	e := w.e
	ctx := e.ctx
	monitor := time.NewTicker(e.cfg.Timing.MonitorInterval)
	defer monitor.Stop()
	for {
		var wait time.Duration = time.Hour
		wt := w.current()
		switch wt.kind {
		case wantRunning:
			if d := time.Until(wt.notBefore); d > 0 && !w.status().running {
				wait = d
				break
			}
			w.ensureRunning(ctx, wt)
			w.mu.Lock()
			if d := time.Until(w.retry); !w.retry.IsZero() && d < wait {
				wait = max(d, time.Millisecond)
			}
			w.mu.Unlock()
		case wantStopped:
			w.ensureStopped(ctx, wt)
		}
		if d, ok := w.ensureWarm(ctx, w.current()); ok && d < wait {
			wait = d
		}
		if r, ok := w.nextRecover(); ok {
			w.recoverNow(ctx, r, true)
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.kick:
		case <-t.C:
		case <-monitor.C:
			w.monitor(ctx)
		}
		t.Stop()
	}
}

// reconcile settles, when the engine opens and before the decision log
// is even opened, what runs here: an agent that died (kill -9, the OOM
// killer, a bad upgrade) left its group running, and by now another node
// may hold it. Whatever of the group runs here is stopped at once, unless
// the node's own copy of the log says the group is not managed here
// (cluster not activated, node in maintenance or disabled), and it starts
// again only after the log confirms this node holds it at a newer epoch
// (decideHolder's claim). A stop that fails leaves the node unclean, as
// any failed stop does.
func (w *worker) reconcile(ctx context.Context, local *State) {
	e := w.e
	var found []string
	for _, p := range w.g.Monitor(ctx) {
		if p.Warm {
			continue // runs on every node that may hold the group: left running
		}
		if p.Status.State == resource.StateRunning || p.Status.State == resource.StateFailed {
			found = append(found, fmt.Sprintf("%s: %s", p.Resource, p.Status))
		}
	}
	if len(found) == 0 {
		return
	}
	what := strings.Join(found, "; ")
	if why := unmanagedLocally(local, e.cfg); why != "" {
		w.mu.Lock()
		w.st.running = true
		w.mu.Unlock()
		e.emit(e.event(EvStaleLeft, "%s was running here when the agent started (%s); left as it is: %s", w.g.Name(), what, why))
		return
	}
	epoch := local.Group.Epoch
	ev := e.event(EvStaleFound, "%s was running here when the agent started (%s): stopping it at once; it runs here again only when the decision log confirms %s holds it",
		w.g.Name(), what, e.cfg.Node)
	ev.Epoch = epoch
	e.emit(ev)
	w.suspendChecks()
	if err := w.g.Stop(ctx); err != nil {
		w.mu.Lock()
		w.st = workerStatus{running: true, epoch: epoch, err: err.Error(), unclean: true}
		w.mu.Unlock()
		ev := e.event(EvStopFailed, "stopping %s failed: %v; this node must be fenced before another takes the group", w.g.Name(), err)
		ev.Epoch = epoch
		e.emit(ev)
		return
	}
	w.mu.Lock()
	w.stopped = max(w.stopped, epoch)
	w.mu.Unlock()
	ev = e.event(EvStopped, "%s stopped here (found running at the agent's start, before the decision log)", w.g.Name())
	ev.Epoch = epoch
	e.emit(ev)
}

// unmanagedLocally says why, by this node's own copy of the decision log,
// nothing is to be started or stopped here; "" when the group is managed.
// A log that never formed counts as managed when the cluster activates
// itself on forming.
func unmanagedLocally(local *State, cfg Config) string {
	if !local.Initialized {
		if cfg.Activate {
			return ""
		}
		return "cluster " + cfg.Cluster + " has not formed yet and waits for an operator's activate"
	}
	me := local.node(cfg.Node)
	switch {
	case !local.Activated:
		return "cluster " + local.Cluster + " is not activated"
	case me != nil && me.Maintenance:
		return cfg.Node + " is in maintenance"
	case me != nil && me.Disabled:
		return cfg.Node + " is disabled"
	}
	return ""
}

func (w *worker) nextRecover() (recoverReq, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.recovers) == 0 {
		return recoverReq{}, false
	}
	r := w.recovers[0]
	w.recovers = w.recovers[1:]
	return r, true
}

func (w *worker) setBusy(op string) {
	w.mu.Lock()
	w.st.busy = op
	w.mu.Unlock()
}

func (w *worker) ensureRunning(ctx context.Context, wt want) {
	e := w.e
	st := w.status()
	if st.running && st.epoch == wt.epoch && st.err == "" {
		return
	}
	if wt.epoch <= w.stoppedAt() && !st.running {
		// Stopped at this epoch already (released, self-fenced, failed
		// to start): a decision made on an older view of the log.
		if st.err != "" && !st.unclean {
			w.release(wt.epoch, "start failed: "+st.err, "start failed: "+st.err, "")
		}
		return
	}
	if st.err != "" && st.epoch == wt.epoch {
		// This epoch's start failed: hand the group on (again, if the
		// first release did not commit).
		if !st.unclean {
			w.release(wt.epoch, "start failed: "+st.err, "start failed: "+st.err, "")
		}
		return
	}
	if st.running && w.g.Status(e.cfg.Node).State == resource.GroupStarted {
		// Confirmed by a claim while it kept running.
		w.mu.Lock()
		w.st.epoch = wt.epoch
		w.mu.Unlock()
		w.reportPhase(wt.epoch, PhaseStarted, "")
		return
	}
	if w.checkInUse(ctx, wt) {
		return
	}
	if now := w.current(); now.kind != wt.kind || now.epoch != wt.epoch {
		return // the wish changed while the probe ran
	}
	octx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.cancelOp = cancel
	w.mu.Unlock()
	defer func() {
		cancel()
		w.mu.Lock()
		w.cancelOp = nil
		w.mu.Unlock()
	}()
	w.setBusy("starting")
	w.reportPhase(wt.epoch, PhaseStarting, "")
	ev := e.event(EvStarting, "starting %s (epoch %d)", w.g.Name(), wt.epoch)
	ev.Epoch = wt.epoch
	e.emit(ev)
	err := w.g.Start(octx)
	w.setBusy("")
	if err == nil {
		w.mu.Lock()
		w.st = workerStatus{running: true, epoch: wt.epoch}
		w.mu.Unlock()
		w.resumeChecks()
		ev := e.event(EvStarted, "%s started here (epoch %d)", w.g.Name(), wt.epoch)
		ev.Epoch = wt.epoch
		e.emit(ev)
		w.reportPhase(wt.epoch, PhaseStarted, "")
		return
	}
	var se *resource.StartError
	unclean := errors.As(err, &se) && se.Rollback != nil
	w.mu.Lock()
	w.st = workerStatus{running: unclean, epoch: wt.epoch, err: err.Error(), unclean: unclean}
	w.stopped = max(w.stopped, wt.epoch)
	w.mu.Unlock()
	if octx.Err() != nil && ctx.Err() == nil {
		// Cancelled because the group must stop now: not a failure of
		// this node.
		w.mu.Lock()
		w.st.err = ""
		w.mu.Unlock()
		return
	}
	ev = e.event(EvStartFailed, "starting %s failed: %v", w.g.Name(), err)
	ev.Epoch = wt.epoch
	e.emit(ev)
	if unclean {
		w.reportPhase(wt.epoch, PhaseFailed, "start failed and its rollback too: fence "+e.cfg.Node+": "+err.Error())
		return
	}
	// A failed start bans this node (resource: start failure is fatal)
	// and hands the group to the next one.
	w.release(wt.epoch, "start failed: "+err.Error(), "start failed: "+err.Error(), "")
}

func (w *worker) ensureStopped(ctx context.Context, wt want) {
	e := w.e
	st := w.status()
	if st.running {
		sctx := ctx
		// Past the deadline the stop is still owed: it is retried bounded
		// by the resources' own stop timeouts, never by a deadline that
		// would fail every attempt at once and leave the group running.
		if !wt.deadline.IsZero() && time.Now().Before(wt.deadline) {
			var cancel context.CancelFunc
			sctx, cancel = context.WithDeadline(ctx, wt.deadline)
			defer cancel()
		}
		w.suspendChecks()
		w.setBusy("stopping")
		if wt.release {
			w.reportPhase(wt.epoch, PhaseStopping, wt.reason)
		}
		ev := e.event(EvStopping, "stopping %s: %s", w.g.Name(), wt.reason)
		ev.Epoch = wt.epoch
		e.emit(ev)
		err := w.g.Stop(sctx)
		w.setBusy("")
		if err != nil {
			w.mu.Lock()
			w.st.err, w.st.unclean = err.Error(), true
			w.mu.Unlock()
			ev := e.event(EvStopFailed, "stopping %s failed: %v; this node must be fenced before another takes the group", w.g.Name(), err)
			ev.Epoch = wt.epoch
			e.emit(ev)
			if wt.release {
				w.reportPhase(wt.epoch, PhaseFailed, "stop failed: fence "+e.cfg.Node+": "+err.Error())
			}
			return
		}
		w.mu.Lock()
		w.stopped = max(w.stopped, st.epoch, wt.epoch)
		w.st = workerStatus{}
		w.mu.Unlock()
		ev = e.event(EvStopped, "%s stopped here (%s)", w.g.Name(), wt.reason)
		ev.Epoch = wt.epoch
		e.emit(ev)
	}
	if wt.release && !w.status().unclean {
		w.release(wt.epoch, wt.ban, wt.reason, wt.then)
	}
}

// release records in the log that this node gave the group up, then
// carries out the fence or reboot a fatal check asked for.
func (w *worker) release(epoch uint64, ban, reason string, then health.Action) {
	w.mu.Lock()
	done := w.released == epoch
	w.mu.Unlock()
	if done {
		return
	}
	e := w.e
	e.async(fmt.Sprintf("release/%d", epoch), func(ctx context.Context) {
		if _, err := e.propose(ctx, &command{Op: opRelease, Node: e.cfg.Node, Epoch: epoch, Ban: ban, Reason: reason}); err != nil {
			return
		}
		w.mu.Lock()
		w.released = epoch
		w.mu.Unlock()
		e.mu.Lock()
		if ban != "" {
			e.leave = nil
		}
		e.mu.Unlock()
		ev := e.event(EvReleased, "%s released %s at epoch %d: %s", e.cfg.Node, e.cfg.Group, epoch, reason)
		ev.Epoch = epoch
		e.emit(ev)
		w.after(then)
	})
}

// after carries out the fence or reboot a fatal check asked for.
func (w *worker) after(then health.Action) {
	e := w.e
	switch then {
	case health.ActionFence:
		e.async("self-fence-device", func(ctx context.Context) {
			if e.deps.Fencer == nil || !e.deps.Fencer.CanFence(e.cfg.Node) {
				e.emit(e.event(EvEscalated, "a fatal check asked to fence %s, but it has no fencing device: the group was released instead", e.cfg.Node))
				return
			}
			e.fence(ctx, e.cfg.Node, "a fatal check asked for it")
		})
	case health.ActionReboot:
		e.async("reboot", func(context.Context) {
			if e.deps.Reboot == nil {
				e.emit(e.event(EvEscalated, "a fatal check asked to reboot %s, but no reboot hook is configured: the group was released instead", e.cfg.Node))
				return
			}
			e.deps.Reboot()
		})
	}
}

// reportPhase sets the phase the log should show; syncPhase writes it.
// Level-triggered, so that phases reported in quick succession never
// land in the log out of order.
func (w *worker) reportPhase(epoch uint64, ph Phase, reason string) {
	w.mu.Lock()
	w.phase = phaseReport{epoch: epoch, phase: ph, reason: reason}
	w.mu.Unlock()
	w.e.kickLoop()
}

type phaseReport struct {
	epoch  uint64
	phase  Phase
	reason string
}

// syncPhase proposes the wanted phase when the log shows another one.
func (w *worker) syncPhase(st *State) {
	w.mu.Lock()
	p := w.phase
	w.mu.Unlock()
	e := w.e
	g := st.Group
	if p.epoch == 0 || g.Holder != e.cfg.Node || g.Epoch != p.epoch || g.Phase == p.phase && g.Reason == p.reason {
		return
	}
	e.async("phase", func(ctx context.Context) {
		e.propose(ctx, &command{Op: opPhase, Node: e.cfg.Node, Epoch: p.epoch, Phase: p.phase, Reason: p.reason})
	})
}

// monitor runs the resources' monitors: a failed resource of a running
// group is restarted, or the group leaves at the migration threshold; a
// resource running where the group is not is stopped.
func (w *worker) monitor(ctx context.Context) {
	wt := w.current()
	if wt.kind == wantUnmanaged || wt.kind == wantKeep {
		return
	}
	st := w.status()
	for _, p := range w.g.Monitor(ctx) {
		switch {
		case p.Failed && st.running && p.Migrate:
			w.e.requestLeave(fmt.Sprintf("%s failed %d times (migration threshold)", p.Resource, p.FailCount), "")
		case p.Failed && st.running:
			w.recoverNow(ctx, recoverReq{resource: p.Resource, reason: p.Status.String()}, false)
		case p.Failed && p.Warm:
			w.restartWarm(ctx, recoverReq{resource: p.Resource, reason: p.Status.String()}, false)
		case p.Unexpected && !st.running && wt.kind == wantStopped:
			w.mu.Lock()
			w.st.running = true // stop it on the next pass
			w.mu.Unlock()
			w.wake()
		}
	}
}

// recoverNow restarts a failed resource of the running group: for a
// major check (count: record the failure) or a resource monitor (the
// group already counted it).
func (w *worker) recoverNow(ctx context.Context, r recoverReq, count bool) {
	e := w.e
	if !w.status().running || w.current().kind != wantRunning {
		if w.warmHere(r.resource) {
			w.restartWarm(ctx, r, count)
		}
		return
	}
	if count {
		w.g.RecordFailure(r.resource, "health "+r.check, r.reason)
	}
	if busy := w.inUseBeforeRecover(ctx, r.resource); busy != "" {
		// Our own address went, and another host answers for it now:
		// adding it back would put it on two nodes. Hand the group on;
		// whoever takes it probes before it starts.
		e.emit(e.event(EvInUse, "not restarting %s: %s; %s leaves %s", r.resource, busy, e.cfg.Node, e.cfg.Group))
		e.requestLeave(fmt.Sprintf("%s: %s", r.resource, busy), "")
		return
	}
	if e.deps.Monitor != nil {
		e.deps.Monitor.Suspend(r.resource)
		defer e.deps.Monitor.Resume(r.resource)
	}
	w.setBusy("restarting " + r.resource)
	err := w.g.Recover(ctx, r.resource)
	w.setBusy("")
	if err == nil {
		e.emit(e.event(EvRestart, "restarted %s: %s", r.resource, r.reason))
		return
	}
	var se *resource.StartError
	var ste *resource.StopError
	switch {
	case errors.Is(err, resource.ErrMigrationThreshold):
		e.requestLeave(err.Error(), "")
	case errors.As(err, &ste), errors.As(err, &se) && se.Rollback != nil:
		w.mu.Lock()
		w.st.err, w.st.unclean = err.Error(), true
		w.mu.Unlock()
		e.emit(e.event(EvStopFailed, "restarting %s failed: %v; this node must be fenced before another takes the group", r.resource, err))
	default:
		// The start failed and was rolled back: part of the group is
		// down, and a failed start bans the node.
		w.mu.Lock()
		w.st.running = w.g.Status(e.cfg.Node).State != resource.GroupStopped
		w.mu.Unlock()
		e.requestLeave("restart of "+r.resource+" failed: "+err.Error(), "")
	}
}

// suspendChecks suspends the checks of the resources a stop of the group
// stops: the warm ones keep running, and their checks with them.
func (w *worker) suspendChecks() {
	if m := w.e.deps.Monitor; m != nil {
		for _, r := range w.g.Resources() {
			if !resource.IsWarm(r) {
				m.Suspend(r.Name())
			}
		}
	}
}

func (w *worker) resumeChecks() {
	if m := w.e.deps.Monitor; m != nil {
		for _, r := range w.g.Resources() {
			m.Resume(r.Name())
		}
	}
}

// requestLeave asks the holder to give the group up.
func (e *Engine) requestLeave(reason string, then health.Action) {
	e.mu.Lock()
	if e.leave == nil {
		e.leave = &leaveReq{reason: reason, then: then}
	}
	e.mu.Unlock()
	e.emit(e.event(EvEscalated, "%s leaves %s: %s", e.cfg.Node, e.cfg.Group, reason))
	e.kickLoop()
}

// healthLoop acts on the health monitor's decisions.
func (e *Engine) healthLoop() {
	for ev := range e.deps.Monitor.Events() {
		d := ev.Decision
		if d == nil {
			continue
		}
		if d.Action != health.ActionLog && e.w.warmHere(d.Resource) {
			// A warm standby that fails here is restarted here; the
			// group, which runs elsewhere, does not move.
			e.w.requestRecover(recoverReq{resource: d.Resource, check: d.Check, reason: d.Reason})
			continue
		}
		switch d.Action {
		case health.ActionLog:
			e.emit(e.event(EvCheckFailed, "%s", d.Reason))
		case health.ActionRestart:
			e.w.requestRecover(recoverReq{resource: d.Resource, check: d.Check, reason: d.Reason})
		case health.ActionFailover, health.ActionFence, health.ActionReboot:
			then := d.Action
			if then == health.ActionFailover {
				then = ""
			}
			e.requestLeave(d.Reason, then)
		}
	}
}

// setWarm says whether this node may hold the group (activated, not in
// standby, maintenance or disabled, not fenced), so that its warm
// resources run here; reason says why not.
func (w *worker) setWarm(ok bool, reason string) {
	w.mu.Lock()
	changed := w.warmOK != ok
	w.warmOK, w.warmWhy = ok, reason
	w.mu.Unlock()
	if changed {
		w.wake()
	}
}

// warmHere reports whether name is a warm resource of a group that does
// not run here: its failures are restarted here, the group never moves
// for them.
func (w *worker) warmHere(name string) bool {
	if !slices.Contains(w.g.Warm(), name) {
		return false
	}
	return !w.status().running || w.current().kind != wantRunning
}

// ensureWarm keeps the group's warm resources running on a node that may
// hold the group and does not (started at formation, again after a
// failure), and stops them where it may not (standby, not activated is
// left alone as unmanaged). It returns how soon it wants to run again,
// when it does.
func (w *worker) ensureWarm(ctx context.Context, wt want) (time.Duration, bool) {
	e := w.e
	warm := w.g.Warm()
	if len(warm) == 0 || wt.kind == wantUnmanaged || wt.kind == wantKeep || wt.kind == wantRunning {
		return 0, false
	}
	if w.status().running {
		return 0, false // the group itself runs here (or is being stopped)
	}
	w.mu.Lock()
	retry, on := w.warmRetry, w.warmOn
	w.mu.Unlock()
	w.mu.Lock()
	ok := w.warmOK
	w.mu.Unlock()
	if !ok {
		if !w.g.WarmRunning() {
			return 0, false
		}
		if m := e.deps.Monitor; m != nil {
			for _, n := range warm {
				m.Suspend(n)
			}
		}
		err := w.g.StopWarm(ctx)
		w.mu.Lock()
		w.warmOn = false
		w.mu.Unlock()
		if err != nil {
			e.emit(e.event(EvWarmFailed, "stopping the warm %s here failed: %v", strings.Join(warm, ", "), err))
		} else {
			w.mu.Lock()
			why := w.warmWhy
			w.mu.Unlock()
			e.emit(e.event(EvWarmStopped, "warm %s stopped here: %s", strings.Join(warm, ", "), why))
		}
		return 0, false
	}
	if !w.g.WarmPending() {
		return 0, false
	}
	if d := time.Until(retry); d > 0 {
		return d, true
	}
	w.setBusy("starting warm " + strings.Join(warm, ", "))
	err := w.g.StartWarm(ctx)
	w.setBusy("")
	if m := e.deps.Monitor; m != nil {
		for _, r := range w.g.Status(e.cfg.Node).Resources {
			if r.Warm && r.State == resource.ResStarted {
				m.Resume(r.Name)
			}
		}
	}
	if err != nil {
		d := e.cfg.Timing.MonitorInterval
		w.mu.Lock()
		w.warmRetry = time.Now().Add(d)
		w.mu.Unlock()
		e.emit(e.event(EvWarmFailed, "starting the warm %s here failed: %v", strings.Join(warm, ", "), err))
		return d, true
	}
	w.mu.Lock()
	w.warmOn, w.warmRetry = true, time.Time{}
	w.mu.Unlock()
	if !on {
		e.emit(e.event(EvWarm, "warm %s running here, ready for %s's address (%s)", strings.Join(warm, ", "), w.g.Name(), wt.reason))
	}
	return 0, false
}

// restartWarm restarts a warm resource that failed on a node that does
// not run the group, and says so; the group stays where it is.
func (w *worker) restartWarm(ctx context.Context, r recoverReq, count bool) {
	e := w.e
	if count {
		w.g.RecordFailure(r.resource, "health "+r.check+" (warm)", r.reason)
	}
	if m := e.deps.Monitor; m != nil {
		m.Suspend(r.resource)
		defer m.Resume(r.resource)
	}
	w.setBusy("restarting warm " + r.resource)
	err := w.g.RestartWarm(ctx, r.resource)
	w.setBusy("")
	if err != nil {
		e.emit(e.event(EvWarmFailed, "warm %s failed here (%s) and could not be restarted: %v; %s stays where it runs", r.resource, r.reason, err, w.g.Name()))
		return
	}
	e.emit(e.event(EvRestart, "restarted warm %s here: %s (%s stays where it runs)", r.resource, r.reason, w.g.Name()))
}
