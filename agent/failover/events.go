package failover

import (
	"fmt"
	"sync"
	"time"

	"github.com/hatui/hatui/protocol"
)

// EventType names what happened, for code that reacts to events (alerts,
// tests); the embedded protocol.Event carries the sentence for people.
type EventType string

// Event types.
const (
	EvPeerFailed     EventType = "peer-failed"    // every path to a peer is silent for the dead time
	EvPeerAlive      EventType = "peer-alive"     // a failed peer answers again
	EvLateHeartbeat  EventType = "late-heartbeat" // no path heard a peer for the warn time
	EvPathDown       EventType = "path-down"      // one path to a peer went silent
	EvPathUp         EventType = "path-up"
	EvQuorumLost     EventType = "quorum-lost" // contact with a majority of voters lost
	EvQuorumBack     EventType = "quorum-back"
	EvSelfFence      EventType = "self-fence" // the holder stops its group: no majority
	EvStarting       EventType = "group-starting"
	EvStarted        EventType = "group-started"
	EvStartFailed    EventType = "group-start-failed"
	EvStopping       EventType = "group-stopping"
	EvStopped        EventType = "group-stopped"
	EvStopFailed     EventType = "group-stop-failed" // the node must be fenced
	EvAcquired       EventType = "acquired"          // the log records this node as holder
	EvReleased       EventType = "released"
	EvDeposed        EventType = "deposed" // another node holds the group at a newer epoch
	EvTakeoverWait   EventType = "takeover-waiting"
	EvFencing        EventType = "fencing"
	EvFenced         EventType = "fenced"
	EvFenceFailed    EventType = "fence-failed"
	EvForced         EventType = "raft-forced" // the raft group was recovered without the lost voters
	EvVoterAdded     EventType = "voter-added"
	EvRestart        EventType = "resource-restart" // a major check restarted a resource
	EvCheckFailed    EventType = "check-failed"     // a minor check failed: logged only
	EvEscalated      EventType = "escalated"        // a check asked for failover, fence or reboot
	EvAction         EventType = "action"           // a step of an operator action
	EvResumed        EventType = "action-resumed"   // an action cut off by a restart was resumed
	EvRolledBack     EventType = "action-rolled-back"
	EvConfigMismatch EventType = "config-mismatch"
	// EvStaleFound: the agent started with its group running on the
	// node, which it stops at once; EvStaleLeft: the same where the group
	// is unmanaged, so it is left running.
	EvStaleFound EventType = "stale-found"
	EvStaleLeft  EventType = "stale-left"
	// EvInUse: another host still answers for the group (its address, its
	// SIP service), so it is not started here.
	EvInUse EventType = "in-use"
	// EvWarm: the group's warm resources run here, ready for the address
	// (started, or restarted after they failed here); EvWarmFailed: one
	// of them failed here and could not be started again; EvWarmStopped:
	// they were stopped because this node may not hold the group now.
	EvWarm        EventType = "warm"
	EvWarmFailed  EventType = "warm-failed"
	EvWarmStopped EventType = "warm-stopped"
)

// Event is one thing the engine did or saw.
type Event struct {
	protocol.Event
	Type  EventType
	Group string
	Epoch uint64
	// Peer is the other node concerned, if any.
	Peer string
}

// String renders the event as one log line.
func (e Event) String() string {
	return fmt.Sprintf("%s %s %s: %s", e.Time.Format("15:04:05.000"), e.Node, e.Type, e.Message)
}

// eventLog keeps the recent events.
type eventLog struct {
	mu   sync.Mutex
	evs  []Event
	max  int
	sink func(Event)
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	if len(l.evs) > l.max {
		l.evs = l.evs[len(l.evs)-l.max:]
	}
	sink := l.sink
	l.mu.Unlock()
	if sink != nil {
		sink(e)
	}
}

func (l *eventLog) list() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

// severity of each type; info unless listed.
var severities = map[EventType]protocol.Severity{
	EvPeerFailed: protocol.SevWarning, EvLateHeartbeat: protocol.SevWarning, EvPathDown: protocol.SevWarning,
	EvQuorumLost: protocol.SevWarning, EvSelfFence: protocol.SevCritical, EvStartFailed: protocol.SevCritical,
	EvStopFailed: protocol.SevCritical, EvDeposed: protocol.SevWarning, EvFenceFailed: protocol.SevCritical,
	EvForced: protocol.SevWarning, EvRestart: protocol.SevWarning, EvCheckFailed: protocol.SevWarning,
	EvEscalated: protocol.SevCritical, EvRolledBack: protocol.SevWarning, EvConfigMismatch: protocol.SevCritical,
	EvFencing: protocol.SevWarning, EvStaleFound: protocol.SevWarning, EvInUse: protocol.SevCritical,
	EvWarmFailed: protocol.SevWarning,
}

func kindOf(t EventType) string {
	switch t {
	case EvPeerFailed, EvPeerAlive, EvLateHeartbeat, EvPathDown, EvPathUp:
		return "member"
	case EvAction, EvResumed, EvRolledBack:
		return "action"
	case EvFencing, EvFenced, EvFenceFailed:
		return "fence"
	case EvRestart, EvCheckFailed, EvEscalated:
		return "health"
	}
	return "failover"
}

func newEvent(node string, t EventType, format string, args ...any) Event {
	sev, ok := severities[t]
	if !ok {
		sev = protocol.SevInfo
	}
	return Event{Event: protocol.Event{Time: time.Now(), Node: node, Kind: kindOf(t), Severity: sev, Message: fmt.Sprintf(format, args...)}, Type: t}
}
