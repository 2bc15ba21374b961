package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/resource"
	"github.com/hatui/hatui/protocol"
)

// Deps are what the agent gives the engine.
type Deps struct {
	// Stream carries raft and requests forwarded to the leader; the
	// engine owns it from Open on and closes it in Close.
	Stream raft.StreamLayer
	// Key is the cluster key: it signs requests forwarded to the leader
	// (and should be the heartbeat paths' key). At least 16 bytes.
	Key []byte
	// Paths are the heartbeat paths to the other voters. The engine
	// closes them in Close.
	Paths []Path
	// Group is this node's service group; nil on the witness.
	Group *resource.Group
	// Monitor runs the group's health checks; may be nil. The engine runs
	// it and acts on its decisions: minor → event, major → restart the
	// resource (resource.Group.Recover), escalated or fatal → fail over,
	// fence or reboot.
	Monitor *health.Monitor
	// Fencer powers peers off; nil when there is no fencing.
	Fencer Fencer
	// Reboot is called for a fatal check whose action is reboot, after
	// the group was stopped and released; nil logs that it is missing.
	Reboot func()
	// Kick, when set, is called on every pass of the engine's loop (a
	// few times per keepalive) while the engine runs. Wire it to a
	// watchdog (/dev/watchdog with softdog, or systemd's WATCHDOG=1 with a
	// unit that resets the node) whose timeout plus the reset is shorter
	// than TakeoverDelay (a peer starts the group no sooner than that
	// after its last contact): an agent that hangs or dies leaves its
	// resources running, and without fencing only a reset stops them in
	// time. A node that can hold the group needs Kick or a Fencer, or
	// Config.AllowAgentCrashRisk.
	Kick func()
	// OnEvent receives every event; it must not block.
	OnEvent func(Event)
	// Logger receives the engine's log; nil discards it.
	Logger *slog.Logger
	// RaftLog receives raft's own log lines; nil discards them.
	RaftLog io.Writer
}

// mode is how the cluster decides without a failed holder.
type mode int

const (
	// modeQuorum: three or more voters; a majority decides and a holder
	// without a majority fences itself.
	modeQuorum mode = iota
	// modeFence: two nodes with fencing; the survivor powers the other
	// off before it takes over.
	modeFence
	// modeRisk: two nodes, no fencing, no witness, allowed explicitly.
	modeRisk
)

// Engine is one voter's local failover decision engine. Its methods are
// safe for concurrent use.
type Engine struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	inc     string
	started time.Time
	mode    mode
	peers   []string // the other voters
	tick    time.Duration

	fsm    *fsm
	rn     *raftNode
	events eventLog
	w      *worker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}

	mu          sync.Mutex
	view        view
	prev        map[string]peerState
	quorumLost  bool
	inflight    map[string]bool
	gates       map[uint64]time.Time
	leave       *leaveReq
	blocked     string // why this node does not take over although it should
	lastLeader  time.Time
	selfFenced  uint64 // epoch self-fenced at, 0 if not
	deposedSeen uint64
	// pendingAcq is this engine's last acquire proposal, acquiredAt the
	// newest epoch reported acquired: a proposal whose answer was lost
	// (a leader change) may still have committed, and is reported when
	// the log shows it.
	pendingAcq *command
	acquiredAt uint64
	resolved   map[uint64]bool
	cleaned    uint64 // the last cleanup request carried out here
	lastStep   time.Time
	graceUntil time.Time
	closed     bool
	mismatch   bool
}

// peerState is the last observed state of a peer, for change events.
type peerState struct {
	failed, late bool
	paths        map[string]bool
	since        time.Time // when failed last changed
}

// leaveReq is a local request to give the group up: a failed check or a
// resource past its migration threshold.
type leaveReq struct {
	reason string
	then   health.Action // fence or reboot after the release; "" none
}

// Open validates cfg, opens (or creates) the decision state in
// cfg.DataDir, and starts the engine.
func Open(cfg Config, deps Deps) (*Engine, error) {
	cfg = cfg.WithDefaults(StopBudget(deps.Group))
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	me, _ := cfg.voter(cfg.Node)
	switch {
	case deps.Stream == nil:
		return nil, errors.New("failover: no stream layer: pass the agent's authenticated stream layer, or NewTCPStreamLayer")
	case len(deps.Key) < 16:
		return nil, fmt.Errorf("failover: the cluster key is %d bytes: use at least 16 random bytes, the same on every voter", len(deps.Key))
	case me.Witness && deps.Group != nil:
		return nil, fmt.Errorf("failover: %s is the witness and holds no group: pass no Group", cfg.Node)
	case !me.Witness && deps.Group == nil:
		return nil, fmt.Errorf("failover: node %s has no Group to hold", cfg.Node)
	case deps.Group != nil && deps.Group.Name() != cfg.Group:
		return nil, fmt.Errorf("failover: the group is named %q but the config says %q", deps.Group.Name(), cfg.Group)
	case len(deps.Paths) == 0:
		return nil, errors.New("failover: no heartbeat paths: give at least the Serf pool (NewSerfPath)")
	}
	e := &Engine{
		cfg:      cfg,
		deps:     deps,
		inc:      strconv.FormatUint(incarnation(), 16),
		started:  time.Now(),
		kick:     make(chan struct{}, 1),
		prev:     map[string]peerState{},
		inflight: map[string]bool{},
		gates:    map[uint64]time.Time{},
		resolved: map[uint64]bool{},
		tick:     min(max(cfg.Timing.Keepalive/4, 5*time.Millisecond), 250*time.Millisecond),
	}
	e.lastLeader = e.started
	for _, v := range cfg.Voters {
		if v.Name != cfg.Node {
			e.peers = append(e.peers, v.Name)
		}
	}
	switch {
	case len(cfg.Voters) >= 3:
		e.mode = modeQuorum
	case deps.Fencer != nil && deps.Fencer.CanFence(e.peers[0]):
		e.mode = modeFence
	case cfg.AllowTwoNodeRisk:
		e.mode = modeRisk
	default:
		return nil, &ConfigError{Key: "allow_two_node_risk",
			Problem: "two nodes without fencing or witness: a network blip shorter than the detection time can make both hold the group",
			Want:    "a fencing device for each node, or a witness voter, or allow_two_node_risk = true to accept the risk"}
	}
	if err := cfg.CrashGuard(deps.Kick != nil, e.fences()); err != nil {
		return nil, err
	}
	e.log = deps.Logger
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "failover", "node", cfg.Node)
	e.events = eventLog{max: 500, sink: deps.OnEvent}
	e.fsm = newFSM(nil)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if deps.Group != nil {
		e.w = newWorker(e)
	}
	// What runs here is settled before the decision log is even opened:
	// an agent that died left its group running, and until the log
	// confirms this node holds it, it must not run (see reconcile).
	rn, err := openRaft(cfg, deps.Stream, deps.Key, e.fsm, deps.RaftLog, func(local *State) {
		if e.w != nil {
			e.w.reconcile(e.ctx, local)
		}
	})
	if err != nil {
		e.cancel()
		return nil, err
	}
	e.rn = rn
	if deps.Group != nil {
		e.goLoop(e.w.run)
		if deps.Monitor != nil {
			for _, r := range deps.Group.Resources() {
				deps.Monitor.Suspend(r.Name())
			}
			e.goLoop(func() { deps.Monitor.Run(e.ctx) })
			e.goLoop(e.healthLoop)
		}
	}
	e.goLoop(e.loop)
	e.log.Info("failover engine started", "voters", len(cfg.Voters), "mode", e.modeName())
	return e, nil
}

// unguarded reports whether nothing would stop this node's group if its
// agent died alone: no watchdog resets the node, and it has no fencing
// device (fencing is configured on every node for the others, so a node
// that can fence its peers is one they can fence).
func (e *Engine) unguarded() bool {
	return e.deps.Kick == nil && len(e.fences()) == 0
}

// fences lists the peers this node can fence.
func (e *Engine) fences() []string {
	var out []string
	for _, p := range e.peers {
		if e.deps.Fencer != nil && e.deps.Fencer.CanFence(p) {
			out = append(out, p)
		}
	}
	return out
}

func (e *Engine) modeName() string {
	return [...]string{"majority", "two nodes with fencing", "two nodes at risk"}[e.mode]
}

func (e *Engine) goLoop(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// Close stops the engine. The group is left as it is: an agent stopped
// for an upgrade must not take the PBX down (stop it first with standby
// for that). Close closes the stream layer and the paths.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	// Raft first, so that proposals in flight end at once.
	errs := []error{e.rn.get().Shutdown().Error()}
	e.wg.Wait()
	errs = append(errs, e.rn.close())
	for _, p := range e.deps.Paths {
		errs = append(errs, p.Close())
	}
	if e.deps.Monitor != nil {
		errs = append(errs, e.deps.Monitor.Close())
	}
	if e.w != nil {
		e.w.guard.close()
	}
	return errors.Join(errs...)
}

// Events returns the recent events, oldest first.
func (e *Engine) Events() []Event { return e.events.list() }

// Node is this engine's node name.
func (e *Engine) Node() string { return e.cfg.Node }

// Config returns the configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// State returns a copy of the replicated decision state as this node
// has applied it.
func (e *Engine) State() *State { return e.fsm.state() }

// Changed returns a channel closed at the next change of the decision
// state.
func (e *Engine) Changed() <-chan struct{} { return e.fsm.changed.wait() }

func (e *Engine) emit(ev Event) {
	ev.Group = e.cfg.Group
	e.events.add(ev)
	e.log.Info(ev.Message, "event", string(ev.Type), "epoch", ev.Epoch, "peer", ev.Peer)
}

func (e *Engine) event(t EventType, format string, args ...any) Event {
	ev := newEvent(e.cfg.Node, t, format, args...)
	return ev
}

func (e *Engine) kickLoop() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// async runs f in the background unless a run under key is in flight.
func (e *Engine) async(key string, f func(ctx context.Context)) {
	e.mu.Lock()
	if e.inflight[key] || e.closed {
		e.mu.Unlock()
		return
	}
	e.inflight[key] = true
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.inflight, key)
			e.mu.Unlock()
			e.kickLoop()
		}()
		f(e.ctx)
	}()
}

// propose commits c, bounded by the transport timeout, and returns once
// this node has applied it too, so that what follows reads its own write.
func (e *Engine) propose(ctx context.Context, c *command) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Raft.TransportTimeout)
	defer cancel()
	c.Inc = e.inc
	res, err := e.rn.propose(ctx, c)
	if res.Index > 0 {
		for {
			wait := e.fsm.changed.wait()
			if e.fsm.appliedIndex() >= res.Index {
				break
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return res, err
			}
		}
	}
	return res, err
}

func (e *Engine) loop() {
	t := time.NewTicker(e.tick)
	defer t.Stop()
	for {
		wait := e.fsm.changed.wait()
		e.step(time.Now())
		if e.deps.Kick != nil {
			e.deps.Kick()
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case <-wait:
		case <-e.kick:
		}
	}
}

// step looks at the paths and the decision state and acts.
func (e *Engine) step(now time.Time) {
	v := observe(e.deps.Paths, e.peers, e.cfg.Timing, e.started, now)
	st := e.fsm.state()
	e.mu.Lock()
	// After this process was stalled (a loaded machine, a VM paused), the
	// peers' heartbeats are still queued: their silence is ours. Give the
	// paths two keepalives before calling anyone failed. This only delays
	// takeovers; a holder's self-fence is never delayed.
	if !e.lastStep.IsZero() && now.Sub(e.lastStep) > 2*e.tick+e.cfg.Timing.Keepalive {
		e.graceUntil = now.Add(2 * e.cfg.Timing.Keepalive)
	}
	e.lastStep = now
	if now.Before(e.graceUntil) {
		for n, pv := range v.Peers {
			if pv.Failed && !e.prev[n].failed {
				pv.Failed = false
				v.Peers[n] = pv
			}
		}
	}
	e.view = v
	if e.rn.leader() != "" {
		e.lastLeader = now
	}
	e.mu.Unlock()
	e.viewEvents(st, v)
	if !st.Initialized {
		e.async("init", func(ctx context.Context) {
			e.propose(ctx, &command{Op: opInit, Cluster: e.cfg.Cluster, Group: e.cfg.Group, Voters: e.cfg.Voters,
				Risk: e.mode == modeRisk, Activate: e.cfg.Activate})
		})
		return
	}
	e.checkConfig(st)
	me := st.node(e.cfg.Node)
	if me == nil {
		return
	}
	if me.Inc != e.inc {
		e.async("hello", func(ctx context.Context) {
			e.propose(ctx, &command{Op: opHello, Node: e.cfg.Node, Watchdog: e.deps.Kick != nil, Fences: e.fences(), Geo: e.cfg.GeoDriven})
		})
	}
	e.report(st, v)
	e.leaderDuties(st, v)
	e.journal(st, v, now)
	if e.w != nil {
		e.decide(st, v, now)
		e.w.syncPhase(st)
	}
}

// checkConfig says once when the replicated cluster setup differs from
// this node's configuration.
func (e *Engine) checkConfig(st *State) {
	same := st.Cluster == e.cfg.Cluster && st.Group.Name == e.cfg.Group && slices.Equal(st.Voters, e.cfg.Voters)
	e.mu.Lock()
	first := !same && !e.mismatch
	e.mismatch = !same
	e.mu.Unlock()
	if first {
		e.emit(e.event(EvConfigMismatch, "this node's failover config differs from the cluster's (cluster %s, group %s, %d voters): every voter needs the same cluster, group and voters",
			st.Cluster, st.Group.Name, len(st.Voters)))
	}
}

// viewEvents turns changes of the view into events.
func (e *Engine) viewEvents(st *State, v view) {
	var evs []Event
	e.mu.Lock()
	for _, n := range e.peers {
		pv := v.Peers[n]
		old, seen := e.prev[n]
		cur := peerState{failed: pv.Failed, late: pv.Late && !pv.Failed, paths: map[string]bool{}, since: old.since}
		if !seen || cur.failed != old.failed {
			cur.since = v.At
		}
		for _, l := range pv.Links {
			cur.paths[l.Path] = l.Up
		}
		if seen {
			for path, upNow := range cur.paths {
				if was, ok := old.paths[path]; ok && was != upNow {
					if upNow {
						evs = append(evs, e.peerEvent(EvPathUp, n, "%s path to %s is up", path, n))
					} else {
						evs = append(evs, e.peerEvent(EvPathDown, n, "%s path to %s is down (%s)", path, n, linkDetail(pv.Links, path)))
					}
				}
			}
		}
		switch {
		case cur.failed && !old.failed:
			evs = append(evs, e.peerEvent(EvPeerFailed, n, "%s failed: every heartbeat path is silent", n))
		case !cur.failed && old.failed && pv.Up:
			evs = append(evs, e.peerEvent(EvPeerAlive, n, "%s answers again", n))
		}
		if cur.late && !old.late {
			evs = append(evs, e.peerEvent(EvLateHeartbeat, n, "late heartbeat from %s: nothing for %s", n, e.cfg.Timing.WarnTime))
		}
		e.prev[n] = cur
	}
	if e.mode == modeQuorum && st.Initialized {
		qc := v.quorumContact(e.cfg.voterNames(), e.cfg.Node, len(e.cfg.Voters)/2+1, e.started)
		lost := v.At.Sub(qc) >= e.cfg.Timing.DeadTime
		if lost != e.quorumLost {
			e.quorumLost = lost
			if lost {
				evs = append(evs, e.event(EvQuorumLost, "no contact with a majority of the %d voters", len(e.cfg.Voters)))
			} else {
				evs = append(evs, e.event(EvQuorumBack, "contact with a majority of the voters again"))
			}
		}
	}
	e.mu.Unlock()
	for _, ev := range evs {
		e.emit(ev)
	}
}

func (e *Engine) peerEvent(t EventType, peer, format string, args ...any) Event {
	ev := e.event(t, format, args...)
	ev.Peer = peer
	return ev
}

func linkDetail(ls []protocol.Link, path string) string {
	for _, l := range ls {
		if l.Path == path {
			return l.Detail
		}
	}
	return ""
}

// voterNames lists the configured voters' names.
func (c Config) voterNames() []string {
	out := make([]string, len(c.Voters))
	for i, v := range c.Voters {
		out[i] = v.Name
	}
	return out
}

// report keeps this node's replicated views of the other voters current.
func (e *Engine) report(st *State, v view) {
	me := st.node(e.cfg.Node)
	for _, n := range e.peers {
		if st.node(n) == nil {
			continue
		}
		failed := v.failed(n, e.cfg.Node)
		cur, ok := me.Views[n]
		if ok && cur.Failed == failed && (!failed || cur.Epoch == st.Group.Epoch) {
			continue
		}
		if !ok && !failed {
			continue
		}
		epoch := st.Group.Epoch
		e.async("report/"+n, func(ctx context.Context) {
			e.propose(ctx, &command{Op: opReport, Node: e.cfg.Node, Subject: n, Failed: failed, Epoch: epoch})
		})
	}
}

// leaderDuties adds back voters that were left out of the raft
// configuration by a forced recovery, once they answer.
func (e *Engine) leaderDuties(st *State, v view) {
	if !e.rn.isLeader() {
		return
	}
	servers, err := e.rn.servers()
	if err != nil {
		return
	}
	for _, voter := range e.cfg.Voters {
		if slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == voter.Name }) || !v.alive(voter.Name, e.cfg.Node) {
			continue
		}
		e.async("addvoter/"+voter.Name, func(ctx context.Context) {
			pctx, cancel := context.WithTimeout(ctx, e.cfg.Raft.TransportTimeout)
			defer cancel()
			if err := e.rn.ping(pctx, voter); err != nil {
				return
			}
			if err := e.rn.addVoter(voter); err != nil {
				e.log.Warn("adding a voter back failed", "voter", voter.Name, "error", err)
				return
			}
			e.emit(e.peerEvent(EvVoterAdded, voter.Name, "%s answers again and is a voter again", voter.Name))
		})
	}
}

// gate returns when the group may start at epoch (zero: now).
func (e *Engine) gate(epoch uint64) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gates[epoch]
}

func (e *Engine) setGate(epoch uint64, at time.Time) {
	e.mu.Lock()
	e.gates[epoch] = at
	for old := range e.gates {
		if old+8 < epoch {
			delete(e.gates, old)
		}
	}
	e.mu.Unlock()
}

func (e *Engine) setBlocked(why string) {
	e.mu.Lock()
	e.blocked = why
	e.mu.Unlock()
}

// currentView returns the latest view.
func (e *Engine) currentView() view {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.view
}

// preferred returns the first node in preference order that may hold the
// group and that this node sees alive, skipping skip; "" if none.
func (e *Engine) preferred(st *State, v view, skip string) string {
	for _, voter := range st.Voters {
		n := voter.Name
		if n == skip || st.ineligible(n) != "" || !v.alive(n, e.cfg.Node) {
			continue
		}
		return n
	}
	return ""
}

// decide drives this node's group from the decision state.
func (e *Engine) decide(st *State, v view, now time.Time) {
	me := st.node(e.cfg.Node)
	g := st.Group
	if len(e.w.g.Warm()) > 0 {
		why := st.ineligible(e.cfg.Node)
		if me != nil && me.Banned != "" && !me.Standby && !me.Fenced && st.Activated && !me.Maintenance && !me.Disabled {
			why = "" // banned for the group's failures: the warm ones still run
		}
		e.w.setWarm(why == "", why)
	}
	switch {
	case !st.Activated:
		e.w.set(want{kind: wantUnmanaged, reason: st.notActivated()})
		return
	case me.Maintenance:
		e.w.set(want{kind: wantUnmanaged, reason: e.cfg.Node + " is in maintenance"})
		return
	case me.Disabled:
		e.w.set(want{kind: wantUnmanaged, reason: e.cfg.Node + " is disabled"})
		return
	}
	if g.Holder == e.cfg.Node {
		e.decideHolder(st, v, now)
		return
	}
	e.mu.Lock()
	e.leave = nil // a leave request is for the holder only
	e.mu.Unlock()
	ws := e.w.status()
	if ws.running && ws.epoch != 0 && g.Epoch > ws.epoch {
		e.mu.Lock()
		first := e.deposedSeen != g.Epoch
		e.deposedSeen = g.Epoch
		e.mu.Unlock()
		if first {
			ev := e.peerEvent(EvDeposed, g.Holder, "%s holds %s at epoch %d: stopping it here", orNobody(g.Holder), g.Name, g.Epoch)
			ev.Epoch = g.Epoch
			e.emit(ev)
		}
	}
	e.w.set(want{kind: wantStopped, reason: "held by " + orNobody(g.Holder)})
	if st.ineligible(e.cfg.Node) != "" {
		return
	}
	if _, ok := e.quorate(st, v, now); !ok {
		return // it would only have to fence itself again
	}
	act := st.action()
	if g.Holder == "" {
		if act != nil && act.Verb == verbDisable {
			return // a group released for a stop stays released
		}
		if act != nil && act.Verb == verbSwitchover {
			if act.To == e.cfg.Node && act.Step == stepActivation {
				e.acquire(&command{Op: opAcquire, Node: e.cfg.Node, Epoch: g.Epoch, Evidence: EvidenceSwitchover, Action: act.ID,
					Reason: fmt.Sprintf("switchover %d from %s", act.ID, act.From)})
			}
			return
		}
		if e.preferred(st, v, "") == e.cfg.Node {
			e.acquire(&command{Op: opAcquire, Node: e.cfg.Node, Epoch: g.Epoch, Evidence: EvidenceVacant, Reason: "nobody held it"})
		}
		return
	}
	x := g.Holder
	if !v.failed(x, e.cfg.Node) || st.node(x).Maintenance {
		return
	}
	if e.preferred(st, v, x) != e.cfg.Node {
		return
	}
	epoch := g.Epoch
	e.async("takeover", func(ctx context.Context) { e.takeover(ctx, x, epoch) })
}

func orNobody(n string) string {
	if n == "" {
		return "nobody"
	}
	return n
}

// acquire proposes c in the background and, when it commits, lets the
// group start at once.
func (e *Engine) acquire(c *command) {
	e.async("acquire", func(ctx context.Context) {
		e.mu.Lock()
		e.pendingAcq = c
		e.mu.Unlock()
		res, err := e.propose(ctx, c)
		if err != nil {
			return // decideHolder reports it if it committed after all
		}
		e.reportAcquired(res.Epoch, c, true)
	})
}

// reportAcquired says, once per epoch, that this node holds the group.
func (e *Engine) reportAcquired(epoch uint64, c *command, gate bool) {
	e.mu.Lock()
	if epoch <= e.acquiredAt {
		e.mu.Unlock()
		return
	}
	e.acquiredAt = epoch
	e.mu.Unlock()
	if gate {
		e.setGate(epoch, time.Now())
	}
	ev := e.event(EvAcquired, "%s holds %s at epoch %d (%s: %s)", e.cfg.Node, e.cfg.Group, epoch, c.Evidence, c.Reason)
	ev.Epoch = epoch
	e.emit(ev)
}

// quorate reports whether this node has had contact with a majority of
// voters within the hold time, and since when it has not. Always true
// with two voters, which decide by fencing or at risk.
func (e *Engine) quorate(st *State, v view, now time.Time) (time.Time, bool) {
	if e.mode != modeQuorum {
		return now, true
	}
	qc := v.quorumContact(st.voterNames(), e.cfg.Node, st.majority(), e.started)
	return qc, now.Sub(qc) < e.cfg.Timing.hold()
}

// decideHolder drives the group on the node the log says holds it.
func (e *Engine) decideHolder(st *State, v view, now time.Time) {
	g := st.Group
	me := e.cfg.Node
	if g.HolderInc == e.inc {
		e.mu.Lock()
		c := e.pendingAcq
		e.mu.Unlock()
		if c != nil {
			e.reportAcquired(g.Epoch, c, false)
		}
	}
	if why := st.ineligible(me); why != "" {
		e.w.set(want{kind: wantStopped, release: true, epoch: g.Epoch, reason: why})
		return
	}
	if act := st.action(); act != nil && act.Verb == verbSwitchover && act.From == me && act.Step == stepActivation {
		e.w.set(want{kind: wantStopped, release: true, epoch: g.Epoch, reason: fmt.Sprintf("switchover %d to %s", act.ID, act.To)})
		return
	}
	if act := st.action(); act != nil && act.Verb == verbDisable && act.Stop && act.Step == stepActiveSide {
		e.w.set(want{kind: wantStopped, release: true, epoch: g.Epoch, reason: fmt.Sprintf("cluster %s stopped (action %d)", st.Cluster, act.ID)})
		return
	}
	e.mu.Lock()
	leave := e.leave
	e.mu.Unlock()
	if leave != nil {
		e.w.set(want{kind: wantStopped, release: true, ban: leave.reason, epoch: g.Epoch, reason: leave.reason, then: leave.then})
		return
	}
	if qc, ok := e.quorate(st, v, now); !ok {
		e.mu.Lock()
		first := e.selfFenced != g.Epoch
		e.selfFenced = g.Epoch
		e.mu.Unlock()
		if first && e.w.status().running {
			ev := e.event(EvSelfFence, "self-fence: no contact with a majority of voters since %s; stopping %s before anyone may take it over",
				qc.Format("15:04:05.000"), g.Name)
			ev.Epoch = g.Epoch
			e.emit(ev)
		}
		e.w.set(want{kind: wantStopped, reason: "self-fence: no contact with a majority of voters", deadline: qc.Add(e.cfg.Timing.StopDeadline)})
		return
	}
	if g.HolderInc != e.inc || e.w.stoppedAt() >= g.Epoch {
		// Taken by an earlier run of this agent, assigned by another
		// node, or given up by a self-fence (the others may have voted it
		// away meanwhile): confirm through the log at a newer epoch
		// before running it.
		e.w.set(want{kind: wantKeep, reason: "claiming " + g.Name})
		e.claim(st, v)
		return
	}
	e.w.set(want{kind: wantRunning, epoch: g.Epoch, notBefore: e.gate(g.Epoch), reason: "held here"})
}

// claim has the log confirm this node as holder at a newer epoch. In the
// two-node modes a claim cannot commit while the peer is gone: the peer
// is fenced (or, at two-node risk, waited out) and the raft group is
// recovered alone first.
func (e *Engine) claim(st *State, v view) {
	epoch := st.Group.Epoch
	peerFailed := e.mode != modeQuorum && v.failed(e.peers[0], e.cfg.Node)
	e.async("claim", func(ctx context.Context) {
		defer e.setBlocked("")
		c := &command{Op: opAcquire, Node: e.cfg.Node, Epoch: epoch, Holder: e.cfg.Node, Evidence: EvidenceClaim, Reason: "confirmed after a restart or a self-fence"}
		res, err := e.propose(ctx, c)
		if err != nil && peerFailed && e.rn.leader() == "" {
			if ferr := e.recoverAlone(ctx, e.peers[0], v.Peers[e.peers[0]].Contact); ferr != nil {
				e.setBlocked(ferr.Error())
				return
			}
			res, err = e.propose(ctx, c)
		}
		if err != nil {
			return
		}
		e.setGate(res.Epoch, time.Now())
		ev := e.event(EvAcquired, "%s confirmed as holder of %s at epoch %d", e.cfg.Node, e.cfg.Group, res.Epoch)
		ev.Epoch = res.Epoch
		e.emit(ev)
	})
}

// takeover takes the group from x, which this node sees failed on every
// path, by the cluster's mode.
func (e *Engine) takeover(ctx context.Context, x string, epoch uint64) {
	still := func() bool {
		st := e.fsm.state()
		v := e.currentView()
		return st.Group.Holder == x && st.Group.Epoch == epoch && v.failed(x, e.cfg.Node) && e.preferred(st, v, x) == e.cfg.Node
	}
	contact := func() time.Time { return e.currentView().Peers[x].Contact }
	defer e.setBlocked("")
	if !still() {
		return
	}
	ev := e.peerEvent(EvTakeoverWait, x, "%s failed while holding %s (epoch %d): taking over (%s)", x, e.cfg.Group, epoch, e.modeName())
	ev.Epoch = epoch
	e.emit(ev)
	var c *command
	var gate func(committed time.Time) time.Time
	switch e.mode {
	case modeQuorum:
		c, gate = e.quorumEvidence(ctx, x, epoch, still, contact)
	case modeFence:
		c, gate = e.fenceEvidence(ctx, x, still)
	case modeRisk:
		c, gate = e.riskEvidence(ctx, x, still, contact)
	}
	if c == nil {
		return
	}
	c.Op, c.Node, c.Epoch, c.Holder = opAcquire, e.cfg.Node, epoch, x
	// The gate must be in place before the commit can be applied here:
	// the loop starts the group as soon as it sees this node as holder.
	at := gate(time.Now())
	e.setGate(epoch+1, at)
	res, err := e.propose(ctx, c)
	if err != nil {
		e.log.Info("takeover not committed", "from", x, "error", err)
		return
	}
	e.setBlocked("")
	ev = e.peerEvent(EvAcquired, x, "%s took %s over from %s at epoch %d (%s); starting %s",
		e.cfg.Node, e.cfg.Group, x, res.Epoch, c.Evidence, startWhen(at))
	ev.Epoch = res.Epoch
	e.emit(ev)
	e.kickLoop()
}

func startWhen(at time.Time) string {
	if d := time.Until(at); d > 0 {
		return "in " + d.Round(time.Millisecond).String()
	}
	return "now"
}

// quorumEvidence waits for a majority of voters to see x failed. With a
// fencing device for x, x is fenced as well and the group starts without
// waiting; without one, the group starts by the timing rule. Without a
// majority nothing is taken over, fencing or not: a fenced node that
// boots again could form the old majority with a voter we cannot reach.
func (e *Engine) quorumEvidence(ctx context.Context, x string, epoch uint64, still func() bool, contact func() time.Time) (*command, func(time.Time) time.Time) {
	canFence := e.deps.Fencer != nil && e.deps.Fencer.CanFence(x)
	t := e.cfg.Timing
	for {
		if !still() {
			return nil, nil
		}
		st := e.fsm.state()
		if agree := st.agreeing(x); len(agree) >= st.majority() && slices.Contains(agree, e.cfg.Node) {
			break
		}
		e.setBlocked(fmt.Sprintf("waiting for a majority of voters to see %s failed (%d of %d do)", x, len(st.agreeing(x)), st.majority()))
		if !e.sleep(ctx, e.tick) {
			return nil, nil
		}
	}
	if canFence {
		if err := e.fence(ctx, x, "it failed while holding "+e.cfg.Group); err == nil && e.recordFenced(ctx, x) == nil {
			return &command{Evidence: EvidenceFenced, Reason: x + " failed and was fenced"}, func(time.Time) time.Time { return time.Now() }
		}
	}
	last := contact()
	seen := time.Now()
	return &command{Evidence: EvidenceMajority, Reason: "a majority of voters see " + x + " failed"}, func(time.Time) time.Time {
		// T after the last contact any agreeing voter had with x: ours
		// is last; each other's was at least the dead time before its
		// report, which was in the log when we looked.
		return latest(last.Add(t.TakeoverDelay), seen.Add(t.TakeoverDelay-t.DeadTime))
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fenceEvidence fences x, retrying while it fails: the group stays
// stopped, and the status says why, until a fence is verified.
func (e *Engine) fenceEvidence(ctx context.Context, x string, still func() bool) (*command, func(time.Time) time.Time) {
	for {
		if !still() {
			e.setBlocked("")
			return nil, nil
		}
		err := e.recoverAlone(ctx, x, time.Time{})
		if err == nil {
			return &command{Evidence: EvidenceFenced, Reason: x + " failed and was fenced"}, func(time.Time) time.Time { return time.Now() }
		}
		e.setBlocked(fmt.Sprintf("%s failed while holding %s and fencing it failed: %v; %s stays stopped until a fence succeeds (retry in %s)",
			x, e.cfg.Group, err, e.cfg.Group, e.cfg.Timing.FenceRetry))
		if !e.sleep(ctx, e.cfg.Timing.FenceRetry) {
			return nil, nil
		}
	}
}

// riskEvidence waits the takeover delay after the last contact, then
// takes the group alone: the explicitly allowed two-node risk.
func (e *Engine) riskEvidence(ctx context.Context, x string, still func() bool, contact func() time.Time) (*command, func(time.Time) time.Time) {
	t := e.cfg.Timing
	for {
		if !still() {
			return nil, nil
		}
		last := contact()
		if last.IsZero() {
			last = e.started
		}
		if wait := time.Until(last.Add(t.TakeoverDelay)); wait > 0 {
			e.setBlocked(fmt.Sprintf("%s failed: taking over in %s (two nodes without fencing or witness)", x, wait.Round(time.Millisecond)))
			if !e.sleep(ctx, min(wait, e.tick*4)) {
				return nil, nil
			}
			continue
		}
		if err := e.recoverAlone(ctx, x, last); err != nil {
			e.setBlocked(err.Error())
			if !e.sleep(ctx, t.FenceRetry) {
				return nil, nil
			}
			continue
		}
		return &command{Evidence: EvidenceTwoNodeRisk, Reason: x + " failed (two nodes without fencing or witness)"}, func(time.Time) time.Time { return time.Now() }
	}
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fence powers x off through the fencer and records it in the log when a
// leader can be reached.
func (e *Engine) fence(ctx context.Context, x, why string) error {
	if e.deps.Fencer == nil || !e.deps.Fencer.CanFence(x) {
		return fmt.Errorf("no fencing device for %s", x)
	}
	e.emit(e.peerEvent(EvFencing, x, "fencing %s: %s", x, why))
	if err := e.deps.Fencer.Fence(ctx, x); err != nil {
		e.emit(e.peerEvent(EvFenceFailed, x, "fencing %s failed: %v", x, err))
		return err
	}
	e.emit(e.peerEvent(EvFenced, x, "%s is fenced: its power is verifiably off", x))
	return nil
}

// recordFenced writes x's fence into the log.
func (e *Engine) recordFenced(ctx context.Context, x string) error {
	_, err := e.propose(ctx, &command{Op: opFenced, Node: x})
	return err
}

// recoverAlone makes this node able to decide without x: x is fenced
// when a device can, and when no leader answers the raft group is
// recovered with this voter alone. At two-node risk nothing is fenced.
func (e *Engine) recoverAlone(ctx context.Context, x string, lastContact time.Time) error {
	fenced := false
	if e.deps.Fencer != nil && e.deps.Fencer.CanFence(x) {
		if err := e.fence(ctx, x, "it must be off before "+e.cfg.Node+" can decide alone"); err != nil {
			return err
		}
		fenced = true
	} else if e.mode != modeRisk {
		return fmt.Errorf("%s cannot be fenced (no fencing device) and no majority is reachable", x)
	}
	return e.decideWithout(ctx, x, fenced)
}

// decideWithout makes the log writable without x, which is fenced (or
// gone at two-node risk), recording the fence: through the leader if one
// answers, else by recovering the raft group with this voter alone.
func (e *Engine) decideWithout(ctx context.Context, x string, fenced bool) error {
	if e.rn.leader() != "" {
		if !fenced {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, e.cfg.Raft.HeartbeatTimeout*2)
		err := e.recordFenced(pctx, x)
		cancel()
		if err == nil {
			return nil
		}
	}
	// Forcing is safe only when the voters we cannot reach, with x
	// (off now, but it may boot again), cannot form a majority of the
	// old configuration without us: with two voters, x alone never can.
	lost := 1
	v := e.currentView()
	for _, n := range e.peers {
		if n != x && !v.alive(n, e.cfg.Node) {
			lost++
		}
	}
	if lost >= len(e.cfg.Voters)/2+1 {
		return fmt.Errorf("%s and %d other unreachable voters could form a majority without this node: it cannot decide alone", x, lost-1)
	}
	if err := e.rn.forceAlone(); err != nil {
		return err
	}
	ev := e.peerEvent(EvForced, x, "raft recovered with %s alone (%s is %s); the other voters are added back when they answer",
		e.cfg.Node, x, map[bool]string{true: "fenced", false: "gone, two-node risk"}[fenced])
	e.emit(ev)
	deadline := time.Now().Add(10 * e.cfg.Raft.ElectionTimeout)
	for !e.rn.isLeader() {
		if time.Now().After(deadline) || !e.sleep(ctx, 5*time.Millisecond) {
			return errors.New("raft did not elect this node after recovering alone")
		}
	}
	if fenced {
		if err := e.recordFenced(ctx, x); err != nil {
			return fmt.Errorf("recording the fence of %s: %w", x, err)
		}
	}
	return nil
}
