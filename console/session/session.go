// Package session keeps the console connected to a deployment. It holds
// one watch open through the entry agent and one through a node of every
// other site, and merges them (package sides), because an agent in a
// site cut off from the others sees only its island: the countdown of a
// geo failover is visible only on the side that holds the geo majority.
// When the entry stops answering its watch moves to another member by
// itself and says so; a site watch moves among the nodes of its site.
// Actions go through the watch best placed for them: a geo decision
// through the majority side, anything else through the entry while it is
// connected.
package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/console/sides"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// ConnState says which agent the console talks through.
type ConnState struct {
	Via       string // node name of the agent, or the entry target before the first welcome
	Connected bool
	Note      string // what happened, for the operator
}

// Options configure a session.
type Options struct {
	// Entry is the first agent to reach, named as the operator typed it.
	Entry     string
	EntryDial client.DialFunc
	// Fallbacks are further entries the operator named, tried after the
	// entry and the members learned from the view.
	Fallbacks []Entry
	// Resolve returns a way to reach another node's agent learned from a
	// snapshot, or false when it cannot be reached from here. Without it
	// the session watches through the entry alone.
	Resolve func(protocol.Node) (client.DialFunc, bool)
	Client  client.Options
	// Callbacks; each is called from one goroutine at a time. The
	// snapshots they carry are the merged view.
	OnSnapshot func(*protocol.Snapshot)
	OnChange   func(protocol.Change)
	OnConn     func(ConnState)
	// DialTimeout bounds one connection attempt (default 5 s).
	DialTimeout time.Duration
	// Retry is the pause after every candidate failed (default 1 s); a
	// site watch waits up to ten times longer between rounds.
	Retry time.Duration
}

// Session is a self-healing connection to a deployment.
type Session struct {
	o Options

	mu      sync.Mutex
	entry   *watch            // the entry's watch
	sites   map[string]*watch // one watch per other site, by site
	merged  *protocol.Snapshot
	sent    bool                // OnSnapshot was called
	seen    map[string]struct{} // events passed on, so no side repeats them
	started context.Context     // Run's context, for the site watches
	cb      sync.Mutex          // serialises the callbacks
}

// watch is one watch held open through an agent.
type watch struct {
	site string // "" for the entry's watch
	conn *client.Conn
	last *protocol.Snapshot
}

// New returns a session; Run starts it.
func New(o Options) *Session {
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Retry == 0 {
		o.Retry = time.Second
	}
	if o.OnConn == nil {
		o.OnConn = func(ConnState) {}
	}
	if o.OnSnapshot == nil {
		o.OnSnapshot = func(*protocol.Snapshot) {}
	}
	if o.OnChange == nil {
		o.OnChange = func(protocol.Change) {}
	}
	return &Session{o: o, entry: &watch{}, sites: map[string]*watch{}, seen: map[string]struct{}{}}
}

// Entry is a way in to a deployment: a name for the operator and how to
// dial its agent.
type Entry struct {
	Name string
	Dial client.DialFunc
}

type candidate struct {
	name string
	dial client.DialFunc
}

// candidates lists where the entry's watch tries next: the entry first
// the first time, then every node alive in the view other than the one
// just lost, then the entry again.
func (s *Session) candidates(lost string) []candidate {
	s.mu.Lock()
	last := s.merged
	s.mu.Unlock()
	var out []candidate
	fallbacks := []candidate{{s.o.Entry, s.o.EntryDial}}
	for _, f := range s.o.Fallbacks {
		fallbacks = append(fallbacks, candidate{f.Name, f.Dial})
	}
	if last == nil {
		return fallbacks
	}
	for _, n := range last.Nodes() {
		if n.Name == lost || n.Member != protocol.MemberAlive || s.o.Resolve == nil {
			continue
		}
		if d, ok := s.o.Resolve(n); ok {
			out = append(out, candidate{n.Name, d})
		}
	}
	return append(out, fallbacks...)
}

// siteCandidates lists the nodes of site to watch it through: those alive
// in the view first, then the others (a view cut off from the site sees
// them failed, and the console may still reach them).
func (s *Session) siteCandidates(site string) []candidate {
	s.mu.Lock()
	last := s.merged
	s.mu.Unlock()
	if last == nil || s.o.Resolve == nil {
		return nil
	}
	var alive, other []candidate
	for _, n := range last.Nodes() {
		if n.Site != site {
			continue
		}
		d, ok := s.o.Resolve(n)
		if !ok {
			continue
		}
		if n.Member == protocol.MemberAlive {
			alive = append(alive, candidate{n.Name, d})
		} else {
			other = append(other, candidate{n.Name, d})
		}
	}
	return append(alive, other...)
}

// Run keeps the session up until ctx ends.
func (s *Session) Run(ctx context.Context) error {
	s.mu.Lock()
	s.started = ctx
	s.mu.Unlock()
	lost, unreachable := "", ""
	for ctx.Err() == nil {
		connected := false
		var failed []string
		for _, c := range s.candidates(lost) {
			if ctx.Err() != nil {
				break
			}
			if lost != "" {
				s.conn(ConnState{Via: c.name, Note: fmt.Sprintf("%s stopped answering; trying %s", lost, c.name)})
			}
			conn, err := s.connect(ctx, c)
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
				continue
			}
			via := conn.Welcome().Node
			note := "connected through " + via
			if lost != "" && lost != via {
				note = fmt.Sprintf("reconnected through %s after %s stopped answering", via, lost)
			}
			connected, unreachable = true, ""
			err = s.follow(ctx, s.entry, conn, note)
			lost = via
			s.conn(ConnState{Via: via, Connected: false, Note: fmt.Sprintf("lost %s: %v", via, err)})
			break
		}
		if !connected {
			// Said once per different reason, not at every retry.
			if note := "no agent answers (" + strings.Join(failed, "; ") + "); retrying"; ctx.Err() == nil && len(failed) > 0 && note != unreachable {
				unreachable = note
				s.conn(ConnState{Via: s.o.Entry, Note: note})
			}
			sleep(ctx, s.o.Retry)
		}
	}
	return ctx.Err()
}

// runSite keeps a watch open through a node of site until ctx ends.
func (s *Session) runSite(ctx context.Context, w *watch) {
	pause := s.o.Retry
	for ctx.Err() == nil {
		for _, c := range s.siteCandidates(w.site) {
			conn, err := s.connect(ctx, c)
			if err != nil {
				continue
			}
			pause = s.o.Retry
			s.follow(ctx, w, conn, "")
			break
		}
		sleep(ctx, pause)
		pause = min(2*pause, 10*s.o.Retry)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (s *Session) connect(ctx context.Context, c candidate) (*client.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.o.DialTimeout)
	defer cancel()
	return client.Connect(dctx, c.dial, s.o.Client)
}

// follow watches through conn until its connection ends, keeping w's
// view and publishing the merged one. note, for the entry's watch, is
// what to tell the operator once the first snapshot is in.
func (s *Session) follow(ctx context.Context, w *watch, conn *client.Conn, note string) error {
	defer conn.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snap, changes, err := conn.Watch(wctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	w.conn, w.last = conn, snap
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if w.conn == conn {
			w.conn = nil
			w.last = nil
		}
		s.mu.Unlock()
		s.publish(nil, false) // its side is no longer seen
	}()
	if w == s.entry {
		s.conn(ConnState{Via: conn.Welcome().Node, Connected: true, Note: note})
	}
	s.publish(snap.Events, w == s.entry)
	for ch := range changes {
		if ch.Snapshot != nil {
			s.mu.Lock()
			w.last = ch.Snapshot
			s.mu.Unlock()
		}
		s.publish(ch.Events, false)
	}
	if err := conn.Err(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch ended")
}

// publish merges the views, starts a watch for every site not yet
// watched, and passes the result on: as a snapshot when fresh is set
// (the entry's watch just began) or nothing was sent yet, else as a
// change carrying the events no other watch passed on already.
func (s *Session) publish(events []protocol.Event, fresh bool) {
	s.cb.Lock()
	defer s.cb.Unlock()
	s.mu.Lock()
	views := []*protocol.Snapshot{s.entry.last}
	for _, w := range s.sites {
		views = append(views, w.last)
	}
	primary := ""
	if s.entry.last != nil {
		primary = s.entry.last.From
	}
	merged := sides.Merge(views, primary)
	if merged == nil {
		s.mu.Unlock()
		return
	}
	s.merged = merged
	var fresh2 []protocol.Event
	for _, e := range events {
		k := e.Time.String() + "\x00" + e.Node + "\x00" + e.Kind + "\x00" + e.Message
		if _, ok := s.seen[k]; ok {
			continue
		}
		if len(s.seen) > 4096 {
			clear(s.seen)
		}
		s.seen[k] = struct{}{}
		fresh2 = append(fresh2, e)
	}
	s.spawn(merged)
	first := fresh || !s.sent
	s.sent = true
	s.mu.Unlock()
	if first {
		s.o.OnSnapshot(merged)
		return
	}
	s.o.OnChange(protocol.Change{Events: fresh2, Snapshot: merged})
}

// spawn starts a watch through each site the entry's agent is not in.
// Called with mu held.
func (s *Session) spawn(view *protocol.Snapshot) {
	if s.o.Resolve == nil || s.started == nil || s.entry.last == nil {
		return
	}
	own := ""
	for _, n := range s.entry.last.Nodes() {
		if n.Name == s.entry.last.From {
			own = n.Site
		}
	}
	for _, site := range view.Sites {
		if site.Name == own || site.Name == "" || s.sites[site.Name] != nil {
			continue
		}
		w := &watch{site: site.Name}
		s.sites[site.Name] = w
		go s.runSite(s.started, w)
	}
}

func (s *Session) conn(c ConnState) {
	s.cb.Lock()
	defer s.cb.Unlock()
	s.o.OnConn(c)
}

// ErrNotConnected is returned by Do while no agent answers.
var ErrNotConnected = &protocol.Error{Code: protocol.CodeUnreachable,
	Message: "not connected to any agent", Hint: "wait for the console to reconnect, then try again"}

// Do runs an action through the watch best placed for it (Route).
func (s *Session) Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error) {
	conn := s.route(a)
	if conn == nil {
		return protocol.Result{}, ErrNotConnected
	}
	return conn.Do(ctx, a, progress)
}

// History reads the deployment's history through the entry (any
// connected watch when it is down): every agent keeps the whole
// deployment's.
func (s *Session) History(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error) {
	conn := s.route(protocol.Action{})
	if conn == nil {
		return nil, ErrNotConnected
	}
	return conn.History(ctx, req)
}

// route picks the connection for an action among the session's watches.
func (s *Session) route(a protocol.Action) *client.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return route(a, s.merged, append([]*watch{s.entry}, s.watches()...))
}

// route picks the connection for an action. While the views disagree, a
// geo decision goes to the side that holds the geo majority (only it can
// carry it out), and an action naming a node to the side that reaches
// that node's site; otherwise the first connected watch (the entry's).
func route(a protocol.Action, merged *protocol.Snapshot, ws []*watch) *client.Conn {
	byFrom := func(node string) *client.Conn {
		for _, w := range ws {
			if w.conn != nil && w.last != nil && w.last.From == node {
				return w.conn
			}
		}
		return nil
	}
	if merged != nil && merged.Partition != nil {
		p := merged.Partition
		if strings.HasPrefix(a.Verb, "geo ") && p.Quorum != "" {
			if c := byFrom(p.Quorum); c != nil {
				return c
			}
		}
		for _, n := range merged.Nodes() {
			if slices.Contains(a.Args, n.Name) {
				if sd := sides.SiteSide(p, n.Site); sd != nil {
					if c := byFrom(sd.Via); c != nil {
						return c
					}
				}
			}
		}
	}
	for _, w := range ws {
		if w.conn != nil {
			return w.conn
		}
	}
	return nil
}

// watches returns the site watches in a stable order. Called with mu held.
func (s *Session) watches() []*watch {
	var out []*watch
	for _, site := range slices.Sorted(maps.Keys(s.sites)) {
		out = append(out, s.sites[site])
	}
	return out
}

// Last returns the newest merged view, or nil before the first.
func (s *Session) Last() *protocol.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.merged
}

// Views is a one-shot look at a deployment through its entry and a node
// of every other site, for --exec: what a session shows, without the
// watches.
type Views struct {
	entry   *client.Conn
	resolve func(protocol.Node) (client.DialFunc, bool)
	opts    client.Options
	timeout time.Duration

	ws     []*watch
	merged *protocol.Snapshot
}

// NewViews returns views through entry; resolve reaches the other nodes
// (nil: the entry alone), each dial bounded by timeout.
func NewViews(entry *client.Conn, resolve func(protocol.Node) (client.DialFunc, bool), o client.Options, timeout time.Duration) *Views {
	return &Views{entry: entry, resolve: resolve, opts: o, timeout: timeout}
}

// Status asks the entry for its view and, the first time, one node of
// every other site for theirs (in parallel; one that does not answer is
// left out), and returns them merged. node, when set, asks for that
// node's own report through the entry instead.
func (v *Views) Status(ctx context.Context, node string) (*protocol.Snapshot, error) {
	snap, err := v.entry.Status(ctx, node)
	if err != nil || node != "" {
		return snap, err
	}
	if v.ws == nil {
		v.ws = []*watch{{conn: v.entry}}
		v.open(ctx, snap)
	}
	views := []*protocol.Snapshot{snap}
	for _, w := range v.ws[1:] {
		if s, err := w.conn.Status(ctx, ""); err == nil {
			w.last = s
			views = append(views, s)
		}
	}
	v.ws[0].last = snap
	v.merged = sides.Merge(views, snap.From)
	return v.merged, nil
}

// open connects to one node of each site the entry is not in.
func (v *Views) open(ctx context.Context, snap *protocol.Snapshot) {
	if v.resolve == nil {
		return
	}
	own := ""
	bySite := map[string][]protocol.Node{}
	for _, n := range snap.Nodes() {
		if n.Name == snap.From {
			own = n.Site
		}
		bySite[n.Site] = append(bySite[n.Site], n)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for site, nodes := range bySite {
		if site == own {
			continue
		}
		// Alive nodes first: a node this view sees failed may still be
		// reachable from the console.
		slices.SortStableFunc(nodes, func(a, b protocol.Node) int {
			return boolInt(b.Member == protocol.MemberAlive) - boolInt(a.Member == protocol.MemberAlive)
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range nodes {
				d, ok := v.resolve(n)
				if !ok {
					continue
				}
				dctx, cancel := context.WithTimeout(ctx, v.timeout)
				c, err := client.Connect(dctx, d, v.opts)
				cancel()
				if err == nil {
					mu.Lock()
					v.ws = append(v.ws, &watch{site: site, conn: c})
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Do runs an action through the view best placed for it: while the views
// disagree, a geo decision goes to the side with the geo majority.
func (v *Views) Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error) {
	if strings.HasPrefix(a.Verb, "geo ") {
		if _, err := v.Status(ctx, ""); err != nil {
			return protocol.Result{}, err
		}
	}
	c := v.entry
	if v.ws != nil {
		if r := route(a, v.merged, v.ws); r != nil {
			c = r
		}
	}
	return c.Do(ctx, a, progress)
}

// Close closes the connections Views opened (not the entry's).
func (v *Views) Close() {
	for _, w := range v.ws {
		if w.conn != v.entry {
			w.conn.Close()
		}
	}
}
