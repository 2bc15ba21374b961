package geo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/raftmux"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/agent/raftstore"
	"github.com/hatui/hatui/protocol"
)

// Deps are what the agent gives the geo manager.
type Deps struct {
	// Stream carries raft and the geo manager's requests to the leader.
	// The manager owns it from Open on and closes it in Close.
	Stream raft.StreamLayer
	// Service drives this site's service. Required on service sites,
	// ignored on arbitrators.
	Service Service
	// Reachable returns the sites reachable now, as the Serf geo pool sees
	// them (a site is reachable when any of its agents is alive). It
	// decides whether a confirm or grant is an ordered handover or the
	// operator's statement that the old site is down. Nil counts every
	// site as reachable: handovers then always wait for the old site's
	// stop record or its self-stop deadline.
	Reachable func() map[string]bool
	// Notifier receives events for alerts and the audit log; may be nil.
	Notifier Notifier
	// Driving says whether this agent drives its site's service now, for
	// sites with several agents: the lead returns true on the local
	// cluster's active node only, so that one agent per site calls the
	// Service and writes the site's records. Nil: every agent drives.
	Driving func() bool
	// CanAcquire is an in-process before-acquire check, run after the
	// configured handler program; an error vetoes. May be nil.
	CanAcquire func(ctx context.Context, t TicketInfo) error
	// Logger receives the manager's log; nil discards it.
	Logger *slog.Logger
	// RaftLog receives raft's own log lines; nil discards them.
	RaftLog io.Writer
}

// localRole is what this agent believes its site's service is doing.
type localRole int

const (
	roleUnknown localRole = iota // after a start, until the first call
	roleServing
	roleStandby
)

// Manager is one agent's geo manager. Its methods are safe for concurrent
// use.
type Manager struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	arb     bool
	changed *signal
	fsm     *fsm
	stores  *raftstore.Stores
	mux     *raftmux.Mux
	trans   *raft.NetworkTransport
	raft    *raft.Raft

	observer *raft.Observer
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	retry     time.Duration // between failed attempts
	opTimeout time.Duration // for the manager's own proposals
	svcTick   time.Duration // longest sleep of the service loop

	drift sync.Once

	mu        sync.Mutex
	role      localRole
	know      knowledge
	syncIndex uint64
	closed    bool
}

// Open starts the geo manager: it opens (or creates) the raft state,
// joins the geo voters and starts driving this site's service.
func Open(cfg Config, deps Deps) (*Manager, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Stream == nil {
		return nil, protocol.Errorf(protocol.CodeUsage, "pass the agent's stream layer, or NewTCPStreamLayer", "geo: no stream layer")
	}
	arb := cfg.arbitrator()
	if !arb && deps.Service == nil {
		return nil, protocol.Errorf(protocol.CodeUsage, "pass the site's Service", "geo: node %s of service site %s has no Service to drive", cfg.Node, cfg.Site)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "geo", "node", cfg.Node)
	rawOut := deps.RaftLog
	if rawOut == nil {
		rawOut = io.Discard
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "geo-raft", Output: rawOut, Level: hclog.Info})

	m := &Manager{
		cfg:     cfg,
		deps:    deps,
		log:     log,
		arb:     arb,
		changed: newSignal(),
	}
	m.retry = min(max(cfg.Renewal/4, 10*time.Millisecond), 5*time.Second)
	m.opTimeout = cfg.Raft.TransportTimeout
	m.svcTick = min(max(min(cfg.Renewal, cfg.SafetyMargin/4), 5*time.Millisecond), 10*time.Second)
	m.fsm = newFSM(m.changed, log)
	if k, err := loadKnowledge(cfg.DataDir, cfg.Site); err != nil {
		log.Warn("geo: service deadline not restored", "error", err)
	} else {
		m.know = k
	}

	dir := ""
	if cfg.DataDir != "" {
		dir = filepath.Join(cfg.DataDir, "raft")
	}
	st, err := raftstore.Open(dir, "geo", hl)
	if err != nil {
		return nil, err
	}
	m.stores = st
	m.mux = raftmux.New(deps.Stream, "geo", connForward, cfg.Raft.TransportTimeout)
	m.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  m.mux.Layer(),
		MaxPool: 3,
		Timeout: cfg.Raft.TransportTimeout,
		Logger:  hl.Named("transport"),
	})
	fail := func(err error) (*Manager, error) {
		m.trans.Close()
		m.mux.Close()
		st.Close()
		return nil, err
	}
	rc := cfg.raftConfig(hl)
	existing, err := raft.HasExistingState(st.Logs, st.Stable, st.Snaps)
	if err != nil {
		return fail(fmt.Errorf("reading the geo raft state: %w", err))
	}
	if !existing {
		// Every voter bootstraps with the same configuration, which raft
		// allows; they then elect a leader among themselves.
		var conf raft.Configuration
		for _, v := range cfg.Voters {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.Node), Address: raft.ServerAddress(v.Addr)})
		}
		if err := raft.BootstrapCluster(rc, st.Logs, st.Stable, st.Snaps, m.trans, conf); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fail(fmt.Errorf("bootstrapping the geo raft group: %w", err))
		}
	}
	r, err := raft.NewRaft(rc, m.fsm, st.Logs, st.Stable, st.Snaps, m.trans)
	if err != nil {
		return fail(fmt.Errorf("starting geo raft: %w", err))
	}
	m.raft = r
	m.ctx, m.cancel = context.WithCancel(context.Background())

	obs := make(chan raft.Observation, 16)
	m.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(m.observer)
	m.mux.Start(func(c net.Conn) { serveForward(c, cfg.Raft.TransportTimeout, m.applyForwarded) })

	m.goLoop(func() {
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-obs:
				m.changed.notify()
			}
		}
	})
	m.goLoop(m.leaderLoop)
	if !arb {
		m.goLoop(m.ticketLoop)
		m.goLoop(m.serviceLoop)
	}
	log.Info("geo manager started", "site", cfg.Site, "arbitrator", arb, "voters", len(cfg.Voters), "existing_state", existing)
	return m, nil
}

func (m *Manager) goLoop(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Close stops the manager: its loops, raft, the transport and the stores.
// It does not stop the site's service: an agent restart must not drop
// calls. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.raft.DeregisterObserver(m.observer)
	errs := []error{m.raft.Shutdown().Error(), m.trans.Close(), m.mux.Close(), m.stores.Close()}
	m.log.Info("geo manager stopped")
	return errors.Join(errs...)
}

// sleep waits until at, a state change or the end; false at the end.
func (m *Manager) sleep(wait <-chan struct{}, at time.Time) bool {
	t := time.NewTimer(max(time.Until(at), 2*time.Millisecond))
	defer t.Stop()
	select {
	case <-m.ctx.Done():
		return false
	case <-wait:
	case <-t.C:
	}
	return true
}

// reachable reports whether site is reachable, by the agent's Serf view.
func (m *Manager) reachable(site string) bool {
	if site == m.cfg.Site || m.deps.Reachable == nil {
		return true
	}
	return m.deps.Reachable()[site]
}

// isLeader reports whether this agent is the geo raft leader.
func (m *Manager) isLeader() bool { return m.raft.State() == raft.Leader }

var errNotLeader = errors.New("not the geo leader")

// outcomeUnknown is a proposal that may or may not have been committed:
// it must not be retried blindly, and what it did is learned from the
// state later.
type outcomeUnknown struct{ pe *protocol.Error }

func (e outcomeUnknown) Error() string { return e.pe.Error() }
func (e outcomeUnknown) Unwrap() error { return e.pe }

// isOutcomeUnknown reports whether err is an [outcomeUnknown].
func isOutcomeUnknown(err error) bool {
	var ou outcomeUnknown
	return errors.As(err, &ou)
}

// applyLocal stamps c with this leader's clock and applies it.
func (m *Manager) applyLocal(ctx context.Context, c *command) (*applyResult, error) {
	c.Now = time.Now().UTC().Round(0)
	b, err := c.encode()
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "", "%v", err)
	}
	if pre := m.fsm.precheck(b); pre.Err != nil {
		return pre, nil
	}
	timeout := m.cfg.Raft.TransportTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	f := m.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return nil, errNotLeader
		case errors.Is(err, raft.ErrLeadershipLost):
			return nil, outcomeUnknown{protocol.Errorf(protocol.CodeUnreachable, "see status for whether it took effect",
				"the geo leader lost its majority while committing %s: it may or may not have taken effect", c.Op)}
		}
		return nil, fmt.Errorf("committing geo %s: %w", c.Op, err)
	}
	res, ok := f.Response().(*applyResult)
	if !ok {
		return nil, protocol.Errorf(protocol.CodeInternal, "", "geo %s: the state machine gave %T", c.Op, f.Response())
	}
	return res, nil
}

// applyForwarded serves a request another voter forwarded to this leader.
func (m *Manager) applyForwarded(ctx context.Context, c *command) (*forwardReply, error) {
	if !m.isLeader() {
		return &forwardReply{NotLeader: true}, nil
	}
	res, err := m.applyLocal(ctx, c)
	if errors.Is(err, errNotLeader) {
		return &forwardReply{NotLeader: true}, nil
	}
	if err != nil {
		return nil, err
	}
	return &forwardReply{Result: res}, nil
}

// propose has c applied by the leader, wherever it is, retrying until ctx
// ends while there is no leader. A refusal by the rules is returned as its
// *protocol.Error.
func (m *Manager) propose(ctx context.Context, c *command) (*applyResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.Raft.TransportTimeout)
		defer cancel()
	}
	c.Node = m.cfg.Node
	var lastErr error
	for {
		wait := m.changed.wait()
		addr, id := m.raft.LeaderWithID()
		var res *applyResult
		var err error
		switch id {
		case "":
			err = errors.New("no leader elected")
		case raft.ServerID(m.cfg.Node):
			res, err = m.applyLocal(ctx, c)
		default:
			var rep *forwardReply
			dl, _ := ctx.Deadline()
			rep, err = forward(ctx, m.mux, m.cfg.Raft.TransportTimeout, addr, forwardRequest{From: m.cfg.Node, Cmd: c, Deadline: dl})
			switch {
			case err != nil:
			case rep.NotLeader:
				err = errNotLeader
			case rep.Err != nil && rep.Unknown:
				return nil, outcomeUnknown{rep.Err}
			case rep.Err != nil:
				return nil, rep.Err
			case rep.Result == nil:
				err = fmt.Errorf("the geo leader %s sent an empty reply", id)
			default:
				res = rep.Result
			}
		}
		if err == nil {
			if res.Err != nil {
				return res, res.Err
			}
			return res, nil
		}
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return nil, err
		}
		if errors.Is(err, errNoAnswer) {
			return nil, outcomeUnknown{protocol.Errorf(protocol.CodeUnreachable, "see status for whether it took effect before trying again",
				"geo %s: %v; it may or may not have taken effect", c.Op, err)}
		}
		lastErr = err
		t := time.NewTimer(m.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, protocol.Errorf(protocol.CodeUnreachable,
				"a geo decision needs a majority of the geo voters (the sites and the arbitrator): check the WAN links",
				"no geo leader reachable from %s (%v)", m.cfg.Node, lastErr)
		case <-m.ctx.Done():
			t.Stop()
			return nil, protocol.Errorf(protocol.CodeUnreachable, "", "the geo manager of %s is shutting down", m.cfg.Node)
		case <-wait:
			t.Stop()
		case <-t.C:
		}
	}
}

// opCtx bounds one of the manager's own proposals.
func (m *Manager) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.ctx, m.opTimeout)
}

// initCommand writes this node's settings into a new state.
func (m *Manager) initCommand() *command {
	votes := map[string]int{}
	arb := false
	for _, v := range m.cfg.Voters {
		votes[v.Site]++
		arb = arb || v.Arbitrator
	}
	return &command{Op: opInit, Init: &initArgs{
		Ticket:        m.cfg.Ticket,
		Mode:          m.cfg.Mode,
		Sites:         m.cfg.sites(),
		Lease:         m.cfg.Lease,
		AcquireAfter:  m.cfg.AcquireAfter,
		DeadMan:       m.cfg.DeadMan,
		History:       m.cfg.History,
		InitialHolder: m.cfg.InitialHolder,
		AutoRefusal:   autoRefusal(votes, arb),
	}}
}

// checkDrift logs, once, settings of this node's config that differ from
// the deployment's.
func (m *Manager) checkDrift(st *State) {
	if !st.Initialized {
		return
	}
	m.drift.Do(func() {
		c := m.cfg
		if st.Ticket != c.Ticket || st.Lease != c.Lease || st.AcquireAfter != c.AcquireAfter || st.DeadMan != c.DeadMan {
			m.log.Warn("geo: this node's config differs from the deployment's geo settings; the deployment's are used",
				"ticket", st.Ticket, "lease", st.Lease, "acquire_after", st.AcquireAfter, "dead_man", st.DeadMan,
				"config_ticket", c.Ticket, "config_lease", c.Lease, "config_acquire_after", c.AcquireAfter, "config_dead_man", c.DeadMan)
		}
	})
}

// leaderLoop does the leader's own duties: write the settings into a new
// state, and fail over when a dead man's timer runs out.
func (m *Manager) leaderLoop() {
	// uncertain is a failover whose expiry this agent committed without
	// learning the outcome (its leadership ended meanwhile).
	var uncertain *Failover
	for {
		wait := m.changed.wait()
		next := time.Now().Add(m.cfg.Renewal)
		if uncertain != nil {
			uncertain = m.announceUncertainExpiry(uncertain)
		}
		if m.isLeader() {
			next = m.leaderStep(&uncertain)
		}
		if !m.sleep(wait, next) {
			return
		}
	}
}

// announceUncertainExpiry reports the expiry of f once the state shows
// that it happened, and returns nil once the outcome is known.
func (m *Manager) announceUncertainExpiry(f *Failover) *Failover {
	st := m.fsm.state()
	if p := st.Pending; p != nil && p.From == f.From && p.To == f.To && p.Started.Equal(f.Started) {
		return f // still pending: not known yet
	}
	for _, h := range st.History {
		if h.From == f.From && h.To == f.To && h.Started.Equal(f.Started) && h.State == FailoverExpired {
			m.announceExpiry(&h)
		}
	}
	return nil
}

func (m *Manager) announceExpiry(f *Failover) {
	m.notify(Event{Kind: EventExpired, Site: f.To, From: f.From, To: f.To, Expires: f.Expires, Severity: protocol.SevCritical,
		Message: fmt.Sprintf("dead man's timer of the failover from %s to %s ran out unanswered: the service moves to %s by itself", f.From, f.To, f.To)})
}

func (m *Manager) leaderStep(uncertain **Failover) time.Time {
	now := time.Now()
	st := m.fsm.state()
	ctx, cancel := m.opCtx()
	defer cancel()
	if !st.Initialized {
		res, err := m.applyLocal(ctx, m.initCommand())
		if err == nil && res.Err != nil {
			err = res.Err
		}
		if err != nil {
			m.log.Warn("geo: writing the initial settings failed", "error", err)
			return now.Add(m.retry)
		}
		m.log.Info("geo: initial settings written", "ticket", m.cfg.Ticket, "mode", m.cfg.Mode, "holder", m.cfg.InitialHolder)
		return now
	}
	m.checkDrift(st)
	next := now.Add(m.cfg.Renewal)
	p := st.Pending
	if st.Mode != ModeAuto || p == nil {
		return next
	}
	if now.Before(p.Expires) {
		return minTime(next, p.Expires)
	}
	res, err := m.applyLocal(ctx, &command{Op: opExpire, Node: m.cfg.Node})
	if err == nil && res.Err != nil {
		err = res.Err
	}
	if err != nil {
		m.log.Warn("geo: failing over at the dead man's timer's expiry failed", "error", err)
		if isOutcomeUnknown(err) {
			f := *p
			*uncertain = &f
		}
		return now.Add(m.retry)
	}
	*uncertain = nil
	if f := res.Failover; f != nil {
		m.announceExpiry(f)
	}
	return now
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ticketLoop keeps this site's side of the ticket: renew it while held,
// take it when the holder's lease ran out, and learn after a start that
// the local state is up to date.
func (m *Manager) ticketLoop() {
	var t ticketTimes
	for {
		wait := m.changed.wait()
		next := m.ticketStep(&t)
		if !m.sleep(wait, next) {
			return
		}
	}
}

type ticketTimes struct {
	nextSync, nextRenew, nextBid time.Time
	leaseLost                    bool
	lastVeto                     string
	// uncertain is the term of a bid whose reply was lost (0: none).
	uncertain uint64
	// lapsedSeen is when this agent first saw the lease of (lapsedTerm,
	// lapsedLease) lapsed.
	lapsedTerm  uint64
	lapsedLease time.Time
	lapsedSeen  time.Time
}

func (m *Manager) ticketStep(t *ticketTimes) time.Time {
	now := time.Now()
	site := m.cfg.Site
	next := now.Add(m.cfg.Renewal)
	soon := func(at time.Time) { next = minTime(next, at) }
	ctx, cancel := m.opCtx()
	defer cancel()

	st := m.fsm.state()
	ack := m.ackedMode()
	m.checkDrift(st)

	if st.Holder == site {
		if !now.Before(t.nextRenew) {
			if _, err := m.propose(ctx, &command{Op: opRenew, Site: site, Term: st.Term, Mode: ack}); err != nil {
				m.log.Debug("geo: renewing the lease failed", "error", err)
				t.nextRenew = now.Add(m.backoff(err))
			} else {
				t.nextRenew = now.Add(m.cfg.Renewal)
			}
		}
		soon(t.nextRenew)
		if cur := m.fsm.state(); cur.Holder == site && st.Mode == ModeAuto {
			if time.Now().Before(cur.LeaseExpiry) {
				t.leaseLost = false
				soon(cur.LeaseExpiry)
			} else if !t.leaseLost {
				t.leaseLost = true
				m.notify(Event{Kind: EventLeaseLost, Site: site, Severity: protocol.SevCritical,
					Message: fmt.Sprintf("site %s could not renew ticket %s through a majority: its lease ran out at %s; another site may take the ticket from %s",
						site, cur.Ticket, cur.LeaseExpiry.Format(time.RFC3339), cur.LeaseExpiry.Add(cur.AcquireAfter).Format(time.RFC3339))})
			}
		}
	} else {
		t.leaseLost = false
	}

	// Learn, once after starting, that the local state is up to date. The
	// renewal above comes first: it cannot wait.
	if m.getSyncIndex() == 0 {
		if !now.Before(t.nextSync) {
			if res, err := m.propose(ctx, &command{Op: opSync}); err == nil {
				m.setSyncIndex(res.Index)
			} else {
				t.nextSync = now.Add(m.retry)
			}
		}
		soon(t.nextSync)
	}
	if !st.Initialized {
		return minTime(next, now.Add(m.retry))
	}
	m.announceUncertainBid(st, t)

	if st.Mode == ModeAuto && st.Holder != "" && st.Holder != site {
		free := st.LeaseExpiry.Add(st.AcquireAfter)
		// This agent must also have watched the lease lapsed for the
		// acquire-after margin on its own monotonic clock: after a pause
		// of the agent (or of its machine), the holder's pending renewal
		// gets that long to land before anyone bids.
		if t.lapsedTerm != st.Term || !t.lapsedLease.Equal(st.LeaseExpiry) || now.Before(st.LeaseExpiry) {
			t.lapsedTerm, t.lapsedLease, t.lapsedSeen = st.Term, st.LeaseExpiry, time.Time{}
		}
		if t.lapsedSeen.IsZero() && !now.Before(st.LeaseExpiry) {
			t.lapsedSeen = now
		}
		if !t.lapsedSeen.IsZero() {
			free = maxTime(free, t.lapsedSeen.Add(st.AcquireAfter))
		}
		switch {
		case now.Before(free):
			soon(free)
		case now.Before(t.nextBid):
			soon(t.nextBid)
		case ack != ModeAuto || !servingKnowAuto(st):
			t.nextBid = now.Add(m.retry)
			soon(t.nextBid)
		default:
			m.bid(st, t)
			soon(t.nextBid)
		}
	}

	return next
}

// backoff is how long to wait after a failed proposal: a refusal comes
// from a view of the state that was out of date, which a state change
// (that wakes the loops anyway) fixes; anything else is retried soon.
func (m *Manager) backoff(err error) time.Duration {
	if protocol.CodeOf(err) == protocol.CodeRefused {
		return m.cfg.Renewal
	}
	return m.retry
}

// servingKnowAuto reports whether every site recorded serving has
// acknowledged auto mode, without which the leader refuses a move.
func servingKnowAuto(st *State) bool {
	for _, o := range st.Sites {
		if o.Serving && !o.KnowsAuto {
			return false
		}
	}
	return true
}

// bid runs the before-acquire checks and asks the leader for the ticket.
func (m *Manager) bid(st *State, t *ticketTimes) {
	now := time.Now()
	site := m.cfg.Site
	info := TicketInfo{Ticket: st.Ticket, Site: site, Node: m.cfg.Node, Holder: st.Holder, Term: st.Term, LeaseExpiry: st.LeaseExpiry}
	if err := m.beforeAcquire(m.ctx, info); err != nil {
		t.nextBid = now.Add(m.cfg.Renewal)
		if msg := err.Error(); msg != t.lastVeto {
			t.lastVeto = msg
			m.notify(Event{Kind: EventVetoed, Site: site, From: st.Holder, To: site, Severity: protocol.SevWarning, Message: msg})
		}
		return
	}
	t.lastVeto = ""
	// The handler may have used up the step's time: a fresh bound.
	ctx, cancel := m.opCtx()
	defer cancel()
	res, err := m.propose(ctx, &command{Op: opAcquire, Site: site, Term: st.Term, Mode: m.ackedMode()})
	if err != nil {
		m.log.Debug("geo: taking the ticket failed", "error", err)
		t.nextBid = now.Add(m.backoff(err))
		if isOutcomeUnknown(err) {
			t.uncertain = st.Term
		}
		return
	}
	m.announceBid(st, res)
}

// announceBid reports what a successful bid did.
func (m *Manager) announceBid(st *State, res *applyResult) {
	site := m.cfg.Site
	if f := res.Superseded; f != nil {
		m.notify(Event{Kind: EventAborted, Site: f.From, From: f.From, To: f.To, Who: "geo", Severity: protocol.SevWarning,
			Message: fmt.Sprintf("pending failover from %s to %s ended: %s", f.From, f.To, f.Reason)})
	}
	if f := res.Failover; f != nil {
		m.notify(Event{Kind: EventPending, Site: site, From: f.From, To: f.To, Expires: f.Expires, Severity: protocol.SevCritical,
			Message: fmt.Sprintf("geo failover pending: ticket %s moved from %s to %s (%s); the service moves to %s at %s unless confirmed or aborted before",
				st.Ticket, st.Holder, site, f.Reason, site, f.Expires.Format(time.RFC3339))})
	} else {
		m.log.Info("geo: took the ticket", "ticket", st.Ticket, "from", st.Holder, "term", res.Term)
	}
}

// announceUncertainBid reports a bid whose reply was lost once the state
// shows that it won (at least once: if another agent of this site won the
// same term, the event may come twice).
func (m *Manager) announceUncertainBid(st *State, t *ticketTimes) {
	if t.uncertain == 0 || st.Term <= t.uncertain {
		return
	}
	won := st.Term == t.uncertain+1 && st.Holder == m.cfg.Site
	prev := *st
	prev.Holder, prev.Term = "", t.uncertain
	t.uncertain = 0
	if !won {
		return
	}
	res := &applyResult{Term: st.Term}
	if st.Pending != nil && st.Pending.To == m.cfg.Site {
		f := *st.Pending
		res.Failover = &f
		prev.Holder = f.From
	}
	m.announceBid(&prev, res)
}

// serviceLoop drives this site's service role. It alone calls the
// Service and writes the site's serve and stop records, so that they are
// ordered the way it acted.
func (m *Manager) serviceLoop() {
	var sv svcTimes
	for {
		wait := m.changed.wait()
		next := m.serviceStep(&sv)
		// Whatever the step was waiting for, wake at the self-stop
		// deadline while the service may run.
		if m.getRole() != roleStandby {
			st := m.fsm.state()
			know := m.knowledge()
			if dl, limited := st.serviceDeadline(m.cfg.Site, m.cfg.SafetyMargin); limited && st.Service == m.cfg.Site {
				next = minTime(next, dl)
			} else if !m.isFresh(st) && know.Limited {
				next = minTime(next, know.Deadline)
			}
		}
		if !m.sleep(wait, next) {
			return
		}
	}
}

// knowledge returns this agent's current knowledge.
func (m *Manager) knowledge() knowledge {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.know
}

type svcTimes struct {
	nextTry, nextRecord, nextAck time.Time
	// seen is the index of this agent's last record: until the local
	// state has applied it, the local state cannot show it.
	seen uint64
	// stopGen is the serve generation this agent saw before it last
	// stopped the service; its stop record names it.
	stopGen   uint64
	stopGenOK bool
}

func (m *Manager) serviceStep(sv *svcTimes) time.Time {
	now := time.Now()
	site, margin := m.cfg.Site, m.cfg.SafetyMargin
	next := now.Add(m.svcTick)
	soon := func(at time.Time) { next = minTime(next, at) }
	st := m.fsm.state()
	know := m.updateKnowledge(st)
	if m.deps.Driving != nil && !m.deps.Driving() {
		// Another agent of this site drives the service.
		m.setRole(roleUnknown)
		sv.stopGenOK = false
		return next
	}
	role := m.getRole()

	if !m.isFresh(st) {
		// Just started: the local state may be older than the truth, so
		// only the deadline is acted on (it is never later than the true
		// one); the service is otherwise left as it is.
		if role == roleStandby {
			return next
		}
		if know.Site == "" {
			// Nothing known (a new deployment, or the deadline file was
			// lost): another site may serve, so this one must not.
			if !m.stopService(sv, st, "the agent started without knowing the geo state", stopInitial) {
				return now.Add(m.retry)
			}
			return now
		}
		if !know.Limited {
			return next
		}
		if now.Before(know.Deadline) {
			soon(know.Deadline)
			return next
		}
		if !m.stopService(sv, st, "its deadline passed before it could reach a majority after starting", stopSelf) {
			return now.Add(m.retry)
		}
		return now
	}

	me := st.site(site)
	want, why := st.wantServe(site, now, margin)
	// lagging: the local state has not applied this agent's own last
	// record yet (it may never, if the site was cut off just after), so
	// it can only stop on it, never record anything: that would repeat
	// the record.
	lagging := st.Index < sv.seen
	// recordedOther: the record says serving under a start this agent did
	// not stop (another agent's, or one from before a restart).
	recordedOther := me != nil && me.Serving && (!sv.stopGenOK || sv.stopGen != me.Gen)
	switch {
	case !want && role != roleStandby, !want && recordedOther && !lagging:
		kind := stopOrdered
		if st.Service == site {
			kind = stopSelf
		}
		if !m.stopService(sv, st, why, kind) {
			return now.Add(m.retry)
		}
		return now
	case lagging:
		if st.Service == site && role != roleStandby {
			if dl, limited := st.serviceDeadline(site, margin); limited {
				soon(dl)
			}
		}
		return minTime(next, now.Add(m.retry))
	case want && role != roleServing:
		return m.startStep(sv, st, role)
	case want && me != nil && !me.Serving:
		// The record says stopped although this agent started the
		// service: another agent of the site stopped it since.
		m.setRole(roleUnknown)
		return now
	case want && me != nil && !me.KnowsAuto && st.Holder != site && st.Mode == ModeAuto && m.ackedMode() == ModeAuto && !now.Before(sv.nextAck):
		// Acknowledge auto mode (the holder does it with its renewals; a
		// site a failover is pending away from does it here).
		ctx, cancel := m.svcCtx(st)
		defer cancel()
		if res, err := m.propose(ctx, &command{Op: opServe, Site: site, Mode: ModeAuto}); err != nil {
			sv.nextAck = now.Add(m.backoff(err))
		} else {
			sv.seen = res.Index
		}
	}

	if role == roleStandby && me != nil && me.Serving && sv.stopGenOK && sv.stopGen == me.Gen && !now.Before(sv.nextRecord) {
		ctx, cancel := m.svcCtx(st)
		defer cancel()
		if res, err := m.propose(ctx, &command{Op: opStopped, Site: site, Gen: sv.stopGen, Mode: m.ackedMode()}); err != nil {
			m.log.Debug("geo: recording the stop failed", "error", err)
			sv.nextRecord = now.Add(m.backoff(err))
			soon(sv.nextRecord)
		} else {
			sv.seen = res.Index
		}
	}
	if st.Service == site && role != roleStandby {
		if dl, limited := st.serviceDeadline(site, margin); limited {
			soon(dl)
		}
	}
	return next
}

// svcCtx bounds a proposal of the service loop: never past the moment
// the site must stop by itself, since a loop blocked on an unreachable
// leader would otherwise miss it.
func (m *Manager) svcCtx(st *State) (context.Context, context.CancelFunc) {
	ctx, cancel := m.opCtx()
	if m.getRole() == roleStandby || st.Service != m.cfg.Site {
		return ctx, cancel
	}
	dl, limited := st.serviceDeadline(m.cfg.Site, m.cfg.SafetyMargin)
	if !limited {
		return ctx, cancel
	}
	ctx2, cancel2 := context.WithDeadline(ctx, dl)
	return ctx2, func() { cancel2(); cancel() }
}

// startStep records the start of service and starts it.
func (m *Manager) startStep(sv *svcTimes, st *State, role localRole) time.Time {
	now := time.Now()
	site := m.cfg.Site
	if now.Before(sv.nextTry) {
		return sv.nextTry
	}
	ctx, cancel := m.svcCtx(st)
	defer cancel()
	res, err := m.propose(ctx, &command{Op: opServe, Site: site, Mode: m.ackedMode()})
	if err != nil {
		if protocol.CodeOf(err) == protocol.CodeBusy {
			m.log.Debug("geo: waiting to start serving", "reason", err)
		} else {
			m.log.Warn("geo: recording the start of service failed", "error", err)
		}
		sv.nextTry = now.Add(m.retry)
		for _, o := range st.Sites {
			if o.Name != site && o.Serving && !o.StopBy.IsZero() && o.StopBy.After(now) {
				sv.nextTry = minTime(sv.nextTry, o.StopBy)
			}
		}
		return sv.nextTry
	}
	sv.seen = res.Index
	if m.fsm.state().Service != site {
		return now // moved on while the record was being committed
	}
	sv.stopGenOK = false
	if !m.startService() {
		sv.nextTry = now.Add(m.retry)
		return sv.nextTry
	}
	return now
}

// startService starts the site's service.
func (m *Manager) startService() bool {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ServiceTimeout)
	defer cancel()
	prev := m.getRole()
	if err := m.deps.Service.StartServing(ctx); err != nil {
		m.setRole(roleUnknown)
		m.log.Error("geo: starting the service failed", "error", err)
		return false
	}
	m.setRole(roleServing)
	if prev != roleServing {
		m.notify(Event{Kind: EventStarted, Site: m.cfg.Site, Severity: protocol.SevWarning,
			Message: fmt.Sprintf("site %s provides service", m.cfg.Site)})
	}
	return true
}

// stopKind says why the service stops.
type stopKind int

const (
	stopOrdered stopKind = iota // another site is designated
	stopSelf                    // its deadline passed: it stops by itself
	stopInitial                 // a start without any knowledge
)

// stopService stops the site's service, noting the serve generation st
// shows for the stop record.
func (m *Manager) stopService(sv *svcTimes, st *State, why string, kind stopKind) bool {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ServiceTimeout)
	defer cancel()
	prev := m.getRole()
	sv.stopGenOK = false
	if err := m.deps.Service.StopServing(ctx); err != nil {
		m.setRole(roleUnknown)
		m.log.Error("geo: stopping the service failed", "error", err, "reason", why)
		return false
	}
	if me := st.site(m.cfg.Site); me != nil && st.Initialized {
		sv.stopGen, sv.stopGenOK = me.Gen, true
	}
	sv.nextRecord = time.Time{}
	m.setRole(roleStandby)
	switch {
	case kind == stopSelf && prev != roleStandby:
		m.notify(Event{Kind: EventSelfStop, Site: m.cfg.Site, Severity: protocol.SevCritical,
			Message: fmt.Sprintf("site %s stopped serving by itself: %s", m.cfg.Site, why)})
	case prev == roleServing:
		m.notify(Event{Kind: EventStopped, Site: m.cfg.Site, Severity: protocol.SevWarning,
			Message: fmt.Sprintf("site %s stopped serving: %s", m.cfg.Site, why)})
	default:
		m.log.Info("geo: service stopped", "reason", why)
	}
	return true
}

func (m *Manager) getRole() localRole {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.role
}

func (m *Manager) setRole(r localRole) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.role = r
}

func (m *Manager) getSyncIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncIndex
}

func (m *Manager) setSyncIndex(i uint64) {
	m.mu.Lock()
	m.syncIndex = i
	m.mu.Unlock()
	m.changed.notify()
}

// isFresh reports whether st is at least as new as what the leader had
// committed when this agent first reached it after starting.
func (m *Manager) isFresh(st *State) bool {
	i := m.getSyncIndex()
	return i > 0 && st.Index >= i
}

// ackedMode is the mode this site's deadline on disk is computed for,
// which is the mode it acknowledges to the others.
func (m *Manager) ackedMode() Mode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.know.Mode
}

// updateKnowledge derives this site's knowledge from st, saves it when it
// changed and is not older than what is saved, and returns the newest.
func (m *Manager) updateKnowledge(st *State) knowledge {
	k := deriveKnowledge(st, m.cfg.Site, m.cfg.SafetyMargin)
	fresh := m.isFresh(st)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !st.Initialized || (st.Index < m.know.Index && !fresh) {
		return m.know
	}
	if k.same(m.know) {
		m.know.Index = k.Index
		return m.know
	}
	if err := saveKnowledge(m.cfg.DataDir, k); err != nil {
		m.log.Error("geo: saving the service deadline failed; keeping the older one", "error", err)
		return m.know
	}
	m.know = k
	return k
}
