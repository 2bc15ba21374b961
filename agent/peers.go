package agent

import (
	"context"
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
	closed  bool
}

type peerWatch struct {
	addr   string
	cancel context.CancelFunc
	report *protocol.Snapshot
}

func newPeerReports(a *Agent) *peerReports {
	relayed, err := a.hist.Newest()
	if err != nil {
		a.logger.Printf("history: %v (events peers reported before this start may be recorded twice)", err)
		relayed = map[string]time.Time{}
	}
	return &peerReports{a: a, watchers: map[string]*peerWatch{}, relayed: relayed}
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
	for _, m := range members {
		if m.Name != p.a.cfg.Node && m.Status == protocol.MemberAlive && m.Tags[tagPeer] != "" {
			live[m.Name] = m.Tags[tagPeer]
		}
	}
	changed := false
	for name, w := range p.watchers {
		if addr, ok := live[name]; !ok || addr != w.addr {
			w.cancel()
			delete(p.watchers, name)
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
	p.relay(name, snap.Events)
	p.set(w, snap)
	for ch := range changes {
		p.relay(name, ch.Events)
		if ch.Snapshot != nil {
			p.set(w, ch.Snapshot)
		}
		if ctx.Err() != nil {
			return
		}
	}
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

func (p *peerReports) set(w *peerWatch, snap *protocol.Snapshot) {
	p.mu.Lock()
	w.report = snap
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

func (p *peerReports) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for name, w := range p.watchers {
		w.cancel()
		delete(p.watchers, name)
	}
}
