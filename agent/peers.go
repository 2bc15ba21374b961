package agent

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
)

// peerReports keeps a node-scope watch open to every live peer, so that
// this agent can answer for the whole deployment: what a node owns
// (databases, switches, its view of groups, its own events) is reported
// by that node and merged here. One connection per peer suits the tens of
// nodes of a telephony deployment; it is the first thing to revisit for
// hundreds.
type peerReports struct {
	a        *Agent
	mu       sync.Mutex
	watchers map[string]*peerWatch
	// relayed is, per peer, the time of the newest event relayed from it:
	// it outlives reconnections (and, read back from the history, this
	// agent's restarts), so that events a peer raised while its watch was
	// being re-established are relayed once, not lost or doubled.
	relayed map[string]time.Time
	// gone keeps the last report of a peer that stopped answering, for as
	// long as it is a member and has not reported again: what it owned
	// that exists apart from it (a switch) must stay on the screen.
	gone   map[string]lastReport
	closed bool
}

type peerWatch struct {
	addr   string
	cancel context.CancelFunc
	report *protocol.Snapshot
	// lost is when the watch's connection last broke; zero while it is
	// up. The report was current until then.
	lost time.Time
}

// lastReport is a gone peer's last report and until when it was known to
// be current.
type lastReport struct {
	report *protocol.Snapshot
	asOf   time.Time
}

func newPeerReports(a *Agent) *peerReports {
	relayed, err := a.hist.Newest()
	if err != nil {
		a.logger.Printf("history: %v (events peers reported before this start may be recorded twice)", err)
		relayed = map[string]time.Time{}
	}
	return &peerReports{a: a, watchers: map[string]*peerWatch{}, relayed: relayed, gone: map[string]lastReport{}}
}

// reconcile starts watches for live peers and drops those of peers that
// are gone. It never blocks on the network.
func (p *peerReports) reconcile(members []membership.Member) {
	if p.a.dialer == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	live := map[string]string{}
	known := map[string]bool{}
	for _, m := range members {
		known[m.Name] = true
		if m.Name != p.a.cfg.Node && m.Status == protocol.MemberAlive && m.Tags[tagPeer] != "" {
			live[m.Name] = m.Tags[tagPeer]
		}
	}
	changed := false
	for name, w := range p.watchers {
		if addr, ok := live[name]; !ok || addr != w.addr {
			w.cancel()
			delete(p.watchers, name)
			if w.report != nil {
				asOf := w.lost
				if asOf.IsZero() {
					asOf = time.Now()
				}
				p.gone[name] = lastReport{report: w.report, asOf: asOf.UTC()}
			}
			changed = true
		}
	}
	for name := range p.gone {
		if !known[name] {
			delete(p.gone, name) // no longer a member: it was removed
			changed = true
		}
	}
	for name, addr := range live {
		if _, ok := p.watchers[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := &peerWatch{addr: addr, cancel: cancel}
		p.watchers[name] = w
		go p.follow(ctx, name, w)
	}
	if changed {
		go p.a.Changed()
	}
}

// follow keeps one peer's report current until ctx ends.
func (p *peerReports) follow(ctx context.Context, name string, w *peerWatch) {
	for ctx.Err() == nil {
		p.followOnce(ctx, name, w)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (p *peerReports) followOnce(ctx context.Context, name string, w *peerWatch) {
	dctx, cancel := context.WithTimeout(ctx, p.a.cfg.Peer.Timeout.Duration)
	conn, err := dialPeer(dctx, p.a.dialer, w.addr, p.a.cfg.Node, "", "")
	if err != nil {
		cancel()
		return
	}
	defer conn.Close()
	cancel()
	// The watch lives as long as the follower; only its first answer is
	// bounded, by closing the connection if it does not come in time.
	timer := time.AfterFunc(p.a.cfg.Peer.Timeout.Duration, func() { conn.Close() })
	snap, changes, err := conn.WatchScope(ctx, protocol.ScopeNode)
	timer.Stop()
	if err != nil {
		return
	}
	defer p.lost(w)
	p.relay(name, snap.Events)
	p.set(name, w, snap)
	for ch := range changes {
		p.relay(name, ch.Events)
		if ch.Snapshot != nil {
			p.set(name, w, ch.Snapshot)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// lost notes when a watch that had a report broke.
func (p *peerReports) lost(w *peerWatch) {
	p.mu.Lock()
	if w.lost.IsZero() {
		w.lost = time.Now()
	}
	p.mu.Unlock()
}

// relay records a peer's own events newer than the last relayed from it.
func (p *peerReports) relay(peer string, evs []protocol.Event) {
	p.mu.Lock()
	last := p.relayed[peer]
	var fresh []protocol.Event
	for _, e := range evs {
		if e.Time.After(last) {
			fresh = append(fresh, e)
			last = e.Time
		}
	}
	p.relayed[peer] = last
	p.mu.Unlock()
	for _, e := range fresh {
		e.Relayed = true
		p.a.record(e)
	}
}

func (p *peerReports) set(name string, w *peerWatch, snap *protocol.Snapshot) {
	p.mu.Lock()
	w.report, w.lost = snap, time.Time{}
	delete(p.gone, name) // it answers again: its own report stands
	p.mu.Unlock()
	p.a.Changed()
}

// reports returns the current report of every followed peer.
func (p *peerReports) reports() []*protocol.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*protocol.Snapshot
	for _, w := range p.watchers {
		if w.report != nil {
			out = append(out, w.report)
		}
	}
	return out
}

// lastReports returns the last report of every peer that stopped
// answering and is still a member, with the time until which it was
// current.
func (p *peerReports) lastReports() []lastReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]lastReport, 0, len(p.gone))
	for _, g := range p.gone {
		out = append(out, g)
	}
	// In name order, so that the view does not change with map order.
	slices.SortFunc(out, func(a, b lastReport) int { return strings.Compare(a.report.From, b.report.From) })
	return out
}

func (p *peerReports) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for name, w := range p.watchers {
		w.cancel()
		delete(p.watchers, name)
	}
}
