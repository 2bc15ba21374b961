package failover

import (
	"slices"
	"sort"
	"time"

	"github.com/hatui/hatui/protocol"
)

// peerView is what this node's paths say of one peer at one moment.
type peerView struct {
	Name string
	// Contact is the latest two-way contact on any path; zero if never.
	Contact time.Time
	// Up is set when some path has had contact within the dead time.
	Up bool
	// Failed is set when every path has been without contact for the
	// dead time (for a peer never heard from since this engine started:
	// for the init dead time).
	Failed bool
	// Late is set when no path has had contact for the warn time.
	Late  bool
	Links []protocol.Link
}

// view is this node's picture of its peers.
type view struct {
	At    time.Time
	Peers map[string]peerView
}

// observe asks every path about every peer.
func observe(paths []Path, peers []string, t Timing, started, now time.Time) view {
	v := view{At: now, Peers: make(map[string]peerView, len(peers))}
	for _, n := range peers {
		v.Peers[n] = peerView{Name: n}
	}
	for _, p := range paths {
		for _, l := range p.Links() {
			pv, ok := v.Peers[l.Peer]
			if !ok {
				continue
			}
			if l.Contact.After(pv.Contact) {
				pv.Contact = l.Contact
			}
			pv.Links = append(pv.Links, l.link(p.Kind(), now, t.DeadTime))
			v.Peers[l.Peer] = pv
		}
	}
	for n, pv := range v.Peers {
		pv.Up = up(pv.Contact, now, t.DeadTime)
		switch {
		case pv.Up:
		case pv.Contact.IsZero() || pv.Contact.Before(started):
			pv.Failed = now.Sub(started) >= t.InitDead
		default:
			pv.Failed = true
		}
		since := pv.Contact
		if since.Before(started) {
			since = started
		}
		pv.Late = now.Sub(since) >= t.WarnTime
		sort.Slice(pv.Links, func(i, j int) bool { return pv.Links[i].Path < pv.Links[j].Path })
		v.Peers[n] = pv
	}
	return v
}

// quorumContact is the last moment at which this node had contact with
// enough voters to make a majority with itself: the need-th latest
// contact among the other voters, where a voter not heard from since the
// engine started counts as in contact at the start. Zero when there are
// too few voters.
func (v view) quorumContact(voters []string, self string, majority int, started time.Time) time.Time {
	need := majority - 1
	if need <= 0 {
		return v.At
	}
	var cs []time.Time
	for _, n := range voters {
		if n == self {
			continue
		}
		c := v.Peers[n].Contact
		if c.Before(started) {
			c = started
		}
		cs = append(cs, c)
	}
	if len(cs) < need {
		return time.Time{}
	}
	slices.SortFunc(cs, func(a, b time.Time) int { return b.Compare(a) })
	return cs[need-1]
}

// alive reports whether the peer is up; the local node is always alive.
func (v view) alive(n, self string) bool {
	return n == self || v.Peers[n].Up
}

// failed reports whether the peer is failed on every path.
func (v view) failed(n, self string) bool {
	return n != self && v.Peers[n].Failed
}
