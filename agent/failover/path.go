package failover

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Path kinds, as protocol.Link spells them.
const (
	PathSerf   = "serf"
	PathSerial = "serial"
	PathNIC    = "nic"
)

// Path is one heartbeat path to some of the peers: the Serf pool, a
// point-to-point serial link, a dedicated NIC. A peer is failed only when
// every configured path has been without contact for the dead time, so
// that one broken cable or switch is never a failover (edgeBOX's
// redundant serial link against split brain).
type Path interface {
	// Kind is PathSerf, PathSerial or PathNIC.
	Kind() string
	// Links reports, for each peer the path reaches, what it knows now.
	// It must be cheap and must not block: the engine calls it often.
	Links() []PathLink
	// Close stops the path.
	Close() error
}

// PathLink is what one path knows of one peer.
type PathLink struct {
	Peer string
	// Contact is the last moment of proven two-way contact: when a
	// heartbeat of ours was sent that the peer then echoed (Serf: when
	// the member was last seen alive). Zero if never.
	Contact time.Time
	// Heard is when the last valid message from the peer arrived.
	Heard time.Time
	// RTT is the last measured round-trip time, 0 if unknown.
	RTT time.Duration
	// Detail says what is wrong with the path, "" when nothing is.
	Detail string
}

// link maps a path's knowledge onto the wire type.
func (l PathLink) link(kind string, now time.Time, dead time.Duration) protocol.Link {
	out := protocol.Link{Peer: l.Peer, Path: kind, Up: up(l.Contact, now, dead), LastSeen: l.Heard, RTT: l.RTT, Detail: l.Detail}
	if out.LastSeen.IsZero() {
		out.LastSeen = l.Contact
	}
	if !out.Up && out.Detail == "" {
		if l.Contact.IsZero() {
			out.Detail = "never heard"
		} else {
			out.Detail = fmt.Sprintf("silent for %s", now.Sub(l.Contact).Round(time.Millisecond))
		}
	}
	return out
}

func up(contact, now time.Time, dead time.Duration) bool {
	return !contact.IsZero() && now.Sub(contact) < dead
}

// HeartbeatConfig is what the signed heartbeat paths (serial, NIC) share.
type HeartbeatConfig struct {
	Cluster string
	Node    string
	// Key signs and verifies heartbeats; every node of the cluster has
	// the same one. At least 16 bytes.
	Key []byte
	// Interval is the keepalive: one heartbeat per peer per interval.
	Interval time.Duration
}

func (c HeartbeatConfig) validate(kind string) error {
	switch {
	case !nameRE.MatchString(c.Cluster):
		return fmt.Errorf("%s heartbeat path: cluster %q is not a valid name (%s)", kind, c.Cluster, nameWant)
	case !nameRE.MatchString(c.Node):
		return fmt.Errorf("%s heartbeat path: node %q is not a valid name (%s)", kind, c.Node, nameWant)
	case len(c.Key) < 16:
		return fmt.Errorf("%s heartbeat path: the cluster key is %d bytes: use at least 16 random bytes (the same on every node)", kind, len(c.Key))
	case c.Interval <= 0:
		return fmt.Errorf("%s heartbeat path: interval %s is not a positive duration", kind, c.Interval)
	}
	return nil
}

// sentRing remembers when recent heartbeats were sent, by sequence
// number, so that an echo can be turned into a contact time.
const sentRing = 256

// tracker is the two-way contact bookkeeping of one heartbeat path with
// one peer. Safe for concurrent use.
type tracker struct {
	cfg  HeartbeatConfig
	peer string
	inc  uint64

	mu      sync.Mutex
	seq     uint64
	sent    [sentRing]time.Time
	recvInc uint64
	recvSeq uint64
	recvAt  time.Time
	contact time.Time
	rtt     time.Duration
	bad     int
	detail  string
}

func newTracker(cfg HeartbeatConfig, peer string, inc uint64) *tracker {
	return &tracker{cfg: cfg, peer: peer, inc: inc}
}

// incarnation returns a random non-zero number for this start.
func incarnation() uint64 {
	var b [8]byte
	rand.Read(b[:])
	if v := binary.BigEndian.Uint64(b[:]); v != 0 {
		return v
	}
	return 1
}

// next builds the next heartbeat to the peer and records its send time.
func (t *tracker) next(now time.Time) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	t.sent[t.seq%sentRing] = now
	h := heartbeat{Cluster: t.cfg.Cluster, From: t.cfg.Node, To: t.peer, Inc: t.inc, Seq: t.seq}
	if t.recvInc != 0 {
		h.AckInc, h.Ack = t.recvInc, t.recvSeq
		h.HoldUS = uint64(max(now.Sub(t.recvAt), 0) / time.Microsecond)
	}
	return h.encode(t.cfg.Key)
}

// receive takes a verified heartbeat from the peer.
func (t *tracker) receive(h heartbeat, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h.Inc == t.recvInc && h.Seq <= t.recvSeq {
		return // duplicate or replayed
	}
	t.recvInc, t.recvSeq, t.recvAt = h.Inc, h.Seq, now
	t.bad, t.detail = 0, ""
	// An echo of one of our recent heartbeats proves two-way contact as
	// of the moment we sent it. Replayed old lines echo old heartbeats,
	// so they can never make contact look fresher than it is.
	if h.AckInc != t.inc || h.Ack == 0 || h.Ack > t.seq || t.seq-h.Ack >= sentRing {
		return
	}
	sentAt := t.sent[h.Ack%sentRing]
	if sentAt.After(t.contact) {
		t.contact = sentAt
		rtt := now.Sub(sentAt) - time.Duration(h.HoldUS)*time.Microsecond
		if rtt >= 0 {
			t.rtt = rtt
		}
	}
}

// reject records a line that did not verify.
func (t *tracker) reject(err error, from string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bad++
	t.detail = fmt.Sprintf("%d bad heartbeat(s)", t.bad)
	if from != "" {
		t.detail += " from " + from
	}
	t.detail += ": " + err.Error()
}

// fail records a path problem (device missing, send error).
func (t *tracker) fail(detail string) {
	t.mu.Lock()
	t.detail = detail
	t.mu.Unlock()
}

func (t *tracker) link() PathLink {
	t.mu.Lock()
	defer t.mu.Unlock()
	return PathLink{Peer: t.peer, Contact: t.contact, Heard: t.recvAt, RTT: t.rtt, Detail: t.detail}
}

// errNotForUs marks a valid heartbeat that names another cluster or
// another addressee: not an attack, but not ours.
var errNotForUs = errors.New("heartbeat for another node or cluster")

// route checks that h is for us and returns the peer's tracker.
func route(cfg HeartbeatConfig, trackers map[string]*tracker, h heartbeat) (*tracker, error) {
	if h.Cluster != cfg.Cluster || h.To != cfg.Node {
		return nil, fmt.Errorf("%w: cluster %s, to %s", errNotForUs, h.Cluster, h.To)
	}
	t, ok := trackers[h.From]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a peer on this path", errNotForUs, h.From)
	}
	return t, nil
}
