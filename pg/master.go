package pg

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// PeerTimeout bounds how long one peer may take to answer a status query
// while looking for the master.
var PeerTimeout = 5 * time.Second

// PeerStatus is a peer and what it answered.
type PeerStatus struct {
	Peer   Peer
	Status *Status // nil when unreachable
	Err    error
}

// PollPeers queries every peer at once, each bounded by PeerTimeout.
func PollPeers(ctx context.Context, peers []Peer) []PeerStatus {
	out := make([]PeerStatus, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, PeerTimeout)
			defer cancel()
			s, err := QueryStatus(cctx, p.ConnInfo)
			out[i] = PeerStatus{Peer: p, Status: s, Err: err}
		}()
	}
	wg.Wait()
	return out
}

// FindMaster returns the one reachable peer that is not in recovery. It
// refuses (ReasonNoMaster, ReasonManyMasters) otherwise: copying from a
// guess, or from one side of a split brain, is how data is lost. op and
// node name the operation for the refusal.
func FindMaster(ctx context.Context, op, node string, peers []Peer) (Peer, *Status, error) {
	if len(peers) == 0 {
		return Peer{}, nil, refuse(op, node, ReasonNoMaster, false,
			"configure the other database nodes as peers",
			"no peers are configured to look for a master")
	}
	return MasterAmong(op, node, PollPeers(ctx, peers))
}

// MasterAmong is FindMaster on statuses already polled.
func MasterAmong(op, node string, polled []PeerStatus) (Peer, *Status, error) {
	var masters []PeerStatus
	var notes []string
	for _, ps := range polled {
		switch {
		case ps.Err != nil:
			notes = append(notes, fmt.Sprintf("%s unreachable (%v)", ps.Peer.Node, ps.Err))
		case ps.Status.Role == RoleMaster:
			masters = append(masters, ps)
			notes = append(notes, fmt.Sprintf("%s is master on timeline %d", ps.Peer.Node, ps.Status.Timeline))
		default:
			notes = append(notes, fmt.Sprintf("%s is a standby", ps.Peer.Node))
		}
	}
	switch len(masters) {
	case 0:
		return Peer{}, nil, refuse(op, node, ReasonNoMaster, false,
			"promote one instance or start the master, then try again",
			"no running master among the peers: %s", strings.Join(notes, "; "))
	case 1:
		return masters[0].Peer, masters[0].Status, nil
	}
	return Peer{}, nil, refuse(op, node, ReasonManyMasters, false,
		"split brain: fence or stop all masters but one, then try again",
		"more than one master: %s", strings.Join(notes, "; "))
}
