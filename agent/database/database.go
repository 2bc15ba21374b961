// Package database is the agent's database feature: it runs the node's
// PostgreSQL instance through the pg library and shows it to every console.
//
// At start it looks for an interrupted re-seed, restore or adoption (pg's
// journal and adoption record), records what happened and what it will do
// as an event, and does it. A node configured as a standby then follows
// the cold-start rule: with no master running anywhere it waits and
// touches nothing. A monitor reads the instance every few seconds (role,
// timeline, WAL position, lag, slot, streaming, the representative health
// query) into a protocol.Database that travels in the node's report, so
// the deployment view of any agent shows every node's database.
//
// A running standby is judged by pg.AssessStandby, from its own WAL
// receiver and the master's replication rows: one that streams under
// another name or without a slot is adopted as it runs (pg.Adopt: no copy,
// no restart); one catching up shows its progress and is left alone. Only
// data that cannot stream (pg.Cannot, seen on two readings in a row) is
// re-seeded by the agent itself, when [database] auto_reseed allows it,
// as a warning with an alert naming the reason and the fallback image;
// otherwise the row says "needs re-seed" and waits for an operator. A
// master's row carries its replication slots with the WAL each holds and
// pg_wal's file system, warned and alerted on before the disk fills. The
// row of a database node whose agent is gone is kept by one live agent
// (the master's, else the lowest-named), with its last known position.
//
// The verbs "promote NODE" and "reseed NODE" are carried out by NODE's own
// agent, wherever they arrive. Their refusals are pg's typed refusals,
// which already carry the protocol's codes and hints. A re-seed's progress
// goes both to the action that asked for it and into Database.Reseed, so
// every console watching sees the bar, not only the one that asked.
package database

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/alert"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/protocol"
)

// Verbs of the feature.
const (
	VerbPromote = "promote"
	VerbReseed  = "reseed"
)

// RoleStarting is the role shown while the instance is being set up
// (Options.Ready has not returned yet).
const RoleStarting = "starting"

// Options change how the feature is built; the zero value takes
// everything from the node's configuration.
type Options struct {
	// Config replaces the configuration's [database] section (the demo
	// builds its own). It must be valid: Enabled set, defaults filled.
	Config *config.Database
	// Ready, when set, is waited for before the instance is touched; the
	// database is shown as "starting" meanwhile. An error is shown as the
	// database's health and nothing else is done.
	Ready func(ctx context.Context) error
	// TryStart bounds how long existing standby data just started is
	// watched before the cold start says how it follows; pg's default
	// when zero. A slow standby is reported, never replaced.
	TryStart time.Duration
	// RetryAfter is how long the agent waits before trying again an
	// adoption or an automatic re-seed that failed; 5 min when zero.
	RetryAfter time.Duration
}

// New builds the database feature from the node's configuration. It is
// an agent.FeatureFunc. A node whose [database] is not enabled still
// knows the verbs (so it can route them) but refuses to carry them out.
func New(h agent.Host) (agent.Feature, error) { return NewWith(Options{})(h) }

// NewWith returns a FeatureFunc building the feature with options.
func NewWith(o Options) agent.FeatureFunc {
	return func(h agent.Host) (agent.Feature, error) {
		cfg := h.Config().Database
		if o.Config != nil {
			cfg = *o.Config
		}
		f := &Feature{h: h, node: h.Config().Node, cfg: cfg, opts: o, kick: make(chan struct{}, 1), started: time.Now()}
		f.ctx, f.cancel = context.WithCancel(context.Background())
		if !cfg.Enabled {
			return f, nil
		}
		if cfg.Monitor.Duration <= 0 {
			f.cfg.Monitor.Duration = config.DefaultDatabaseMonitor
		}
		if f.opts.RetryAfter <= 0 {
			f.opts.RetryAfter = 5 * time.Minute
		}
		f.in = &pg.Instance{
			Node: f.node, ConnInfo: cfg.ConnInfo, DataDir: cfg.DataDir, BinDir: cfg.BinDir,
			OSUser: cfg.OSUser, StartOptions: cfg.StartOptions, Geo: cfg.Geo,
			ImagesDir: cfg.Images.Dir, KeepImages: cfg.Images.Keep,
		}
		f.slots.WarnBytes, f.slots.WarnFraction = f.cfg.SlotWarn()
		f.slots.DiskAlertPercent = f.cfg.DiskAlertPercent()
		f.slots.Nodes = map[string]string{pg.SlotName(f.node): f.node}
		for _, p := range cfg.Peers {
			f.peers = append(f.peers, pg.Peer{Node: p.Node, ConnInfo: p.ConnInfo, Geo: p.Geo})
			f.slots.Nodes[pg.SlotName(p.Node)] = p.Node
		}
		f.follows = cfg.Standby || InFailoverGroup(h.Config())
		f.seen = map[string]*peerSeen{}
		f.alerted = map[string]string{}
		f.hq = pg.HealthQuery{SQL: cfg.Health.SQL, ConnInfo: cfg.Health.ConnInfo, Timeout: cfg.Health.Timeout.Duration, MinRows: cfg.Health.MinRows, Writes: cfg.Health.Writes}
		f.db = &protocol.Database{Node: f.node, Role: RoleStarting, Health: "the agent has not read the instance yet"}
		f.wg.Add(1)
		go f.run()
		return f, nil
	}
}

// Feature is the running database feature of one agent.
type Feature struct {
	h       agent.Host
	node    string
	cfg     config.Database
	opts    Options
	in      *pg.Instance // nil when the node runs no database
	peers   []pg.Peer
	hq      pg.HealthQuery
	slots   pg.SlotPolicy
	started time.Time
	// follows: when its instance is down and a master runs elsewhere,
	// it rejoins as a standby of it (a standby by configuration, or a
	// node whose failover group holds the database).
	follows bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}

	mu         sync.Mutex
	db         *protocol.Database // nil when the node runs no database
	ready      bool               // the start sequence has run: the monitor may read
	reseed     *protocol.Progress // the re-seed under way, shown to every watcher
	op         string             // the operation holding the instance, "" when none
	waiting    bool               // a cold-start standby waiting for a master
	lastMaster string             // the master last seen
	masterLSN  pg.LSN             // its last known WAL position

	// What the monitor learnt of this standby.
	meter     pg.CatchUpMeter
	cannot    *pg.Cannot // the last reading's evidence that the data cannot stream
	streak    int        // readings in a row with the same evidence
	needs     string     // "needs re-seed" shown: why, while waiting for an operator
	autoFail  failure    // the last automatic re-seed that failed
	adoptFail failure    // the last adoption that failed
	lastUp    time.Time  // when the instance last answered
	roleSince time.Time
	role      string
	keepSet   time.Time // when max_slot_wal_keep_size was last checked
	down      bool      // the last reading found the instance not running
	recvLSN   pg.LSN    // the standby's last position read (received or replayed)
	decision  string    // the last failover decision about this node, for the row

	// What the monitor learnt of the peers.
	seen    map[string]*peerSeen
	absent  []protocol.Database // rows for peers whose agents are gone
	alerted map[string]string   // condition → the message alerted, while it holds
}

// failure is an operation that failed, not retried until RetryAfter.
type failure struct {
	key string // what failed (the evidence it acted on)
	at  time.Time
	err string
}

func (x failure) recent(key string, d time.Duration) bool {
	return x.key == key && !x.at.IsZero() && time.Since(x.at) < d
}

// Verbs implements agent.Feature.
func (f *Feature) Verbs() []agent.Verb {
	return []agent.Verb{
		{Name: VerbPromote, Route: agent.RouteToNode},
		{Name: VerbReseed, Route: agent.RouteToNode},
	}
}

// Report implements agent.Feature.
func (f *Feature) Report(r *protocol.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil || len(r.Sites) == 0 || len(r.Sites[0].Clusters) == 0 {
		return
	}
	d := *f.db
	if f.reseed != nil {
		p := *f.reseed
		d.Reseed = &p
	}
	c := &r.Sites[0].Clusters[0]
	c.Databases = append(c.Databases, d)
	c.Databases = append(c.Databases, f.absent...)
}

// Close implements agent.Feature: it stops the monitor and cancels any
// operation under way (a re-seed rolls back).
func (f *Feature) Close() error {
	f.cancel()
	f.wg.Wait()
	return nil
}

// Instance is the instance the feature manages; nil when the node runs
// no database.
func (f *Feature) Instance() *pg.Instance { return f.in }

func (f *Feature) event(sev protocol.Severity, format string, args ...any) {
	f.h.Record(protocol.Event{Node: f.node, Kind: "database", Severity: sev, Message: fmt.Sprintf(format, args...)})
}

// alert records an event and sends an alert with the same words.
func (f *Feature) alert(sev protocol.Severity, kind, subject, message string) {
	f.event(sev, "%s", message)
	c := f.h.Config()
	f.h.Alert(alert.Alert{Time: time.Now().UTC(), Site: c.Site, Node: f.node, Kind: kind, Severity: string(sev),
		Subject: fmt.Sprintf("%s/%s: %s", c.Site, f.node, subject), Message: message + "\n\nSee hatui's database pane for the state of every database."})
}

// alertOnce alerts about a condition once while it holds (and again when
// its variant changes, such as the reason a re-seed is needed);
// clearAlert forgets it.
func (f *Feature) alertOnce(cond, variant string, sev protocol.Severity, kind, subject, message string) {
	f.mu.Lock()
	v, held := f.alerted[cond]
	f.alerted[cond] = variant
	f.mu.Unlock()
	if !held || v != variant {
		f.alert(sev, kind, subject, message)
	}
}

// clearAlert forgets a condition that no longer holds, saying so once.
func (f *Feature) clearAlert(cond, message string) {
	f.mu.Lock()
	_, was := f.alerted[cond]
	delete(f.alerted, cond)
	f.mu.Unlock()
	if was && message != "" {
		f.event(protocol.SevInfo, "%s", message)
	}
}

// run is the feature's life: wait until ready, recover, cold start, then
// monitor until Close.
func (f *Feature) run() {
	defer f.wg.Done()
	if f.opts.Ready != nil {
		if err := f.opts.Ready(f.ctx); err != nil {
			if f.ctx.Err() == nil {
				f.set(pg.DownDatabase(pg.View{Node: f.node, Geo: f.cfg.Geo}, fmt.Errorf("setting up the database failed: %w", err)))
				f.event(protocol.SevCritical, "database on %s could not be set up: %v", f.node, err)
			}
			return
		}
	}
	for _, w := range f.cfg.Warnings() {
		f.event(protocol.SevWarning, "database on %s: %s", f.node, w)
	}
	f.recover()
	f.mu.Lock()
	f.ready = true
	f.mu.Unlock()
	f.poll()
	if f.follows {
		f.coldStart()
	}
	if every := f.cfg.Images.Every.Duration; every > 0 {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.in.ScheduleImages(f.ctx, every, func(img pg.Image, err error) {
				if err != nil {
					f.event(protocol.SevWarning, "fallback image of %s failed: %v", f.node, err)
				}
			})
		}()
	}
	t := time.NewTicker(f.cfg.Monitor.Duration)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
		f.mu.Lock()
		waiting := (f.waiting || f.follows && f.down) && f.op == ""
		f.mu.Unlock()
		if waiting {
			f.coldStart()
		}
		f.poll()
	}
}

// begin claims the instance for an operation; false when another holds it.
func (f *Feature) begin(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.op != "" {
		return false
	}
	f.op = op
	return true
}

func (f *Feature) end() {
	f.mu.Lock()
	f.op = ""
	f.reseed = nil
	f.mu.Unlock()
	f.h.Changed()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// spawn runs fn as operation op in the background, unless another
// operation holds the instance.
func (f *Feature) spawn(op string, fn func()) bool {
	if !f.begin(op) {
		return false
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.end()
		fn()
	}()
	return true
}

func (f *Feature) busy() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.op
}

func (f *Feature) setReseed(p *protocol.Progress) {
	f.mu.Lock()
	f.reseed = p
	f.mu.Unlock()
	f.h.Changed()
}

// set stores a new reading and wakes the watchers when it differs.
func (f *Feature) set(d protocol.Database) {
	f.mu.Lock()
	old := *f.db
	d.Reseed = nil
	changed := !reflect.DeepEqual(old, d)
	*f.db = d
	op := f.op
	f.mu.Unlock()
	if !changed {
		return
	}
	if old.Role != d.Role && old.Role != RoleStarting {
		sev := protocol.SevInfo
		switch {
		case op != "":
			// Expected: the operation stops and restarts the server.
		case d.Role == "down":
			sev = protocol.SevCritical
		case d.Role == "master":
			sev = protocol.SevWarning
		}
		during := ""
		if op != "" {
			during = " during the " + op
		}
		f.event(sev, "database on %s is now %s (was %s)%s%s", f.node, d.Role, old.Role, timelineNote(d), during)
		return // the event wakes the watchers
	}
	f.h.Changed()
}

func timelineNote(d protocol.Database) string {
	if d.Timeline == 0 {
		return ""
	}
	return fmt.Sprintf(", timeline %d", d.Timeline)
}

// Plan implements agent.Feature.
func (f *Feature) Plan(ctx context.Context, a protocol.Action, c localapi.Caller) (localapi.Job, error) {
	if len(a.Args) != 1 {
		return nil, protocol.Errorf(protocol.CodeUsage, "usage: "+a.Verb+" NODE", "%s takes one node name, got %d arguments", a.Verb, len(a.Args))
	}
	if f.in == nil {
		return nil, protocol.Errorf(protocol.CodeRefused, "run it on a node with a [database] section",
			"%s runs no database (its [database] section is not enabled)", f.node)
	}
	op := pg.OpReseed
	if a.Verb == VerbPromote {
		op = "promote"
	}
	if held := f.busy(); held != "" {
		return nil, &pg.RefusedError{Op: op, Node: f.node, Reason: pg.ReasonBusy,
			Message: fmt.Sprintf("a %s holds the database on %s", held, f.node), Hint: "wait for it to finish, then retry"}
	}
	who := c.User
	if who == "" {
		who = "unknown user"
	}
	switch a.Verb {
	case VerbPromote:
		return f.planPromote(ctx, a, who)
	case VerbReseed:
		return f.planReseed(ctx, a, who)
	}
	return nil, protocol.Errorf(protocol.CodeUnknownVerb, "run 'help' in hatui to list the verbs", "the database feature does not know %q", a.Verb)
}

// planReseed makes every refusal decision of the re-seed, the space
// check included, before the action is accepted: a refusal (exit 2 for
// --exec) changes nothing. pg makes them again when the job runs.
func (f *Feature) planReseed(ctx context.Context, a protocol.Action, who string) (localapi.Job, error) {
	f.mu.Lock()
	// The operator asks on the evidence the console shows: data of
	// another system needs no force when the agent found it cannot stream.
	otherSystem := f.cannot != nil && f.cannot.Reason == pg.CannotOtherSystem
	f.mu.Unlock()
	opts := pg.ReseedOptions{Peers: f.peers, Force: a.Force, MaxRate: f.cfg.MaxRate, AllowOtherSystem: otherSystem}
	plan, err := f.in.PlanReseed(ctx, opts)
	if err != nil {
		return nil, err
	}
	master := plan.Master
	return func(_ context.Context, progress func(protocol.Progress)) protocol.Result {
		if a.DryRun {
			return protocol.Result{OK: true, Message: fmt.Sprintf("%s %s (dry run: nothing done)", f.node, plan)}
		}
		if !f.begin("re-seed") {
			return refusedResult(&pg.RefusedError{Op: pg.OpReseed, Node: f.node, Reason: pg.ReasonBusy,
				Message: "another operation started first", Hint: "wait for it to finish, then retry"})
		}
		defer f.end()
		f.event(protocol.SevWarning, "re-seed of %s from %s started by %s", f.node, master.Node, who)
		// The feature's context, not the session's: a console that drops
		// its connection must not abort an irreversible operation halfway
		// (it would roll back safely, but the operator asked for it).
		opts.Reason = "asked by " + who
		opts.Progress = func(p protocol.Progress) {
			f.setReseed(&p)
			progress(p)
		}
		res, err := f.in.Reseed(f.ctx, opts)
		if err != nil {
			f.event(protocol.SevCritical, "re-seed of %s failed: %v", f.node, err)
			return refusedResult(err)
		}
		msg := fmt.Sprintf("%s re-seeded from %s in %s; streaming on timeline %d", f.node, res.Master, res.Took.Round(time.Millisecond), res.Timeline)
		if res.Previous != nil {
			msg += "; the previous data directory is fallback image " + res.Previous.ID
		}
		for _, img := range res.Pruned {
			msg += "; pruned older fallback image " + img.ID + " first to make room (rotation would have removed it)"
		}
		f.mu.Lock()
		f.needs, f.cannot, f.streak, f.autoFail = "", nil, 0, failure{}
		f.mu.Unlock()
		f.clearAlert("needs-reseed", "")
		f.event(protocol.SevInfo, "%s", msg)
		return protocol.Result{OK: true, Message: msg}
	}, nil
}

// planPromote decides with pg.CheckPromote, on what this agent can see
// now: the other candidates' positions and whether the old master still
// runs.
func (f *Feature) planPromote(ctx context.Context, a protocol.Action, who string) (localapi.Job, error) {
	self, err := f.in.Position(ctx)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeFailed, "check that the database's data directory and programs are in place",
			"reading the position of %s: %v", f.node, err)
	}
	req := f.promoteRequest(ctx, a.Force)
	if err := pg.CheckPromote(ctx, self, f.node, f.cfg.Geo, req); err != nil {
		return nil, err
	}
	return func(_ context.Context, progress func(protocol.Progress)) protocol.Result {
		if a.DryRun {
			return protocol.Result{OK: true, Message: fmt.Sprintf("would promote %s at %s (dry run: nothing done)", f.node, self)}
		}
		if !f.begin("promote") {
			return refusedResult(&pg.RefusedError{Op: "promote", Node: f.node, Reason: pg.ReasonBusy,
				Message: "another operation started first", Hint: "wait for it to finish, then retry"})
		}
		defer f.end()
		progress(protocol.Progress{Step: "promote", Message: "pg_promote on " + f.node, Percent: -1})
		st, err := f.in.Promote(f.ctx, f.promoteRequest(f.ctx, a.Force))
		if err != nil {
			f.event(protocol.SevCritical, "promote of %s failed: %v", f.node, err)
			return refusedResult(err)
		}
		forced := ""
		if a.Force {
			forced = " with force"
		}
		msg := fmt.Sprintf("%s promoted to master on timeline %d by %s%s", f.node, st.Timeline, who, forced)
		f.event(protocol.SevWarning, "%s", msg)
		return protocol.Result{OK: true, Message: msg}
	}, nil
}

// promoteRequest gathers what a promotion rests on. The old master counts
// as gone when every peer answers and none is a master; an unreachable
// last master might still be writing, so it does not count.
func (f *Feature) promoteRequest(ctx context.Context, force bool) pg.PromoteRequest {
	f.mu.Lock()
	lastMaster, lsn := f.lastMaster, f.masterLSN
	f.mu.Unlock()
	req := pg.PromoteRequest{Force: force, LastMasterLSN: lsn, MaxLagBytes: f.cfg.PromoteMaxLagBytes}
	var running, unreachable []string
	for _, ps := range pg.PollPeers(ctx, f.peers) {
		switch {
		case ps.Err != nil:
			unreachable = append(unreachable, ps.Peer.Node)
		case ps.Status.Role == pg.RoleMaster:
			running = append(running, ps.Peer.Node)
		default:
			req.Peers = append(req.Peers, ps.Status.Position(ps.Peer.Node))
		}
	}
	req.CheckOldMaster = func(context.Context) (bool, string, error) {
		switch {
		case len(running) > 0:
			return false, strings.Join(running, ", ") + " still runs as master", nil
		case len(unreachable) > 0:
			return false, fmt.Sprintf("%s cannot be reached, so it may still be writing (last master seen: %s)",
				strings.Join(unreachable, ", "), orNone(lastMaster)), nil
		}
		return true, "every peer answers and none is a master", nil
	}
	return req
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// refusedResult turns an error into a failed result, keeping a refusal's
// code and hint.
func refusedResult(err error) protocol.Result {
	pe := protocol.AsError(err)
	var r *pg.RefusedError
	if !errors.As(err, &r) && pe.Code == protocol.CodeInternal {
		pe = &protocol.Error{Code: protocol.CodeFailed, Message: err.Error(), Hint: "see the event log and the database's log"}
	}
	return protocol.Result{OK: false, Message: err.Error(), Error: pe}
}
