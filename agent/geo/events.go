package geo

import (
	"context"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Service starts and stops one site's service: the lead's implementation
// drives the local cluster (its service group, virtual IP, database role).
// Every geo agent of a site calls it, so both methods must be idempotent
// and cheap when nothing changes; StopServing must return only once the
// service is stopped, because the other site may start right after.
// Returning from StopServing must take less than the safety margin.
type Service interface {
	StartServing(ctx context.Context) error
	StopServing(ctx context.Context) error
}

// Notifier receives the geo manager's events, for alerts (e-mail, webhook)
// and the audit log. Notify must not block: queue the event and return.
type Notifier interface {
	Notify(Event)
}

// NotifyFunc adapts a function to [Notifier].
type NotifyFunc func(Event)

// Notify implements [Notifier].
func (f NotifyFunc) Notify(e Event) { f(e) }

// EventKind names what happened.
type EventKind string

// Event kinds. Each event is reported once, by the agent that made it
// happen (the one that committed the change, or the one that acted).
const (
	EventPending   EventKind = "pending"    // the ticket moved: the dead man's timer started
	EventConfirmed EventKind = "confirmed"  // an operator confirmed the failover
	EventAborted   EventKind = "aborted"    // an operator aborted it, or the ticket moved on
	EventExpired   EventKind = "expired"    // the timer ran out: the service moves by itself
	EventGranted   EventKind = "granted"    // an operator granted the ticket
	EventRevoked   EventKind = "revoked"    // an operator revoked the ticket
	EventMode      EventKind = "mode"       // an operator switched auto/manual
	EventLeaseLost EventKind = "lease-lost" // this site could not renew its lease in time
	EventSelfStop  EventKind = "self-stop"  // this site stopped serving by itself
	EventVetoed    EventKind = "vetoed"     // the before-acquire check vetoed taking the ticket
	EventStarted   EventKind = "started"    // this site started serving
	EventStopped   EventKind = "stopped"    // this site stopped serving as told
)

// Event is one thing the geo manager reports.
type Event struct {
	Kind     EventKind
	Time     time.Time
	Ticket   string
	Node     string // the agent reporting
	Site     string // the site concerned
	From, To string // for failovers
	Who      string // the operator, for operator actions
	Expires  time.Time
	Severity protocol.Severity
	Message  string
}

// Protocol renders e for the console's event log.
func (e Event) Protocol() protocol.Event {
	return protocol.Event{Time: e.Time, Node: e.Node, Kind: "geo", Severity: e.Severity, Message: e.Message}
}

// notify sends e to the notifier, filling the common fields.
func (m *Manager) notify(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Node == "" {
		e.Node = m.cfg.Node
	}
	if e.Ticket == "" {
		e.Ticket = m.cfg.Ticket
	}
	if e.Severity == "" {
		e.Severity = protocol.SevInfo
	}
	m.log.Info("geo event", "kind", e.Kind, "site", e.Site, "who", e.Who, "message", e.Message)
	if m.deps.Notifier != nil {
		m.deps.Notifier.Notify(e)
	}
}
