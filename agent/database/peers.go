package database

import (
	"reflect"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/protocol"
)

// peerSeen is what this agent last knew of a peer's instance.
type peerSeen struct {
	last *pg.Position
	at   time.Time
}

// notePeers remembers each peer's position whenever it answers, so that
// a peer that goes away is shown where it was.
func (f *Feature) notePeers(polled []pg.PeerStatus) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ps := range polled {
		if ps.Err != nil || ps.Status == nil {
			continue
		}
		p := ps.Status.Position(ps.Peer.Node)
		f.seen[ps.Peer.Node] = &peerSeen{last: &p, at: now}
	}
}

// updateAbsent builds the rows of configured database peers that belong
// to this node's pool but whose agents are gone (failed or left): their
// own reports left the deployment view with them. One agent reports them,
// so that the view does not flicker between reporters: the live master's
// (it knows the slots), else the lowest-named live database node's. st
// is this node's status (nil when unreadable).
func (f *Feature) updateAbsent(polled []pg.PeerStatus, st *pg.Status) {
	pool := f.h.Pool()
	if pool == nil {
		return
	}
	members := map[string]struct {
		status protocol.Membership
		since  time.Time
	}{}
	for _, m := range pool.Members() {
		members[m.Name] = struct {
			status protocol.Membership
			since  time.Time
		}{m.Status, m.Since}
	}
	byNode := map[string]pg.PeerStatus{}
	for _, ps := range polled {
		byNode[ps.Peer.Node] = ps
	}
	// The reporter: among live database nodes (this one and the peers
	// whose agents are alive), a master first, then the lowest name.
	reporter, reporterIsMaster := f.node, st != nil && st.Role == pg.RoleMaster
	for _, p := range f.peers {
		if members[p.Node].status != protocol.MemberAlive {
			continue
		}
		ps := byNode[p.Node]
		isMaster := ps.Status != nil && ps.Status.Role == pg.RoleMaster
		if (isMaster && !reporterIsMaster) || (isMaster == reporterIsMaster && p.Node < reporter) {
			reporter, reporterIsMaster = p.Node, isMaster
		}
	}
	var rows []protocol.Database
	if reporter == f.node {
		f.mu.Lock()
		for _, p := range f.peers {
			m, ok := members[p.Node]
			if !ok || m.status == protocol.MemberAlive {
				continue
			}
			ps := byNode[p.Node]
			a := pg.Absent{Node: p.Node, SeenBy: f.node, Geo: p.Geo, Status: ps.Status, Err: ps.Err,
				Agent: string(m.status), AgentSince: m.since}
			if s := f.seen[p.Node]; s != nil {
				a.Last, a.LastSeen = s.last, s.at
			}
			if a.Last == nil && st != nil && st.Role == pg.RoleMaster {
				// Never seen by this agent: its slot here says where it was.
				for _, sl := range st.Slots {
					if sl.Name == pg.SlotName(p.Node) && sl.RestartLSN != 0 {
						a.Last = &pg.Position{Node: p.Node, SystemID: st.SystemID, Timeline: st.Timeline, LSN: sl.RestartLSN, Standby: true}
					}
				}
			}
			rows = append(rows, a.Database())
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	changed := !reflect.DeepEqual(f.absent, rows)
	f.absent = rows
	f.mu.Unlock()
	if changed {
		f.h.Changed()
	}
}
