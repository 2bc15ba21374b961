package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the newest protocol version this package speaks.
const Version = 1

// SupportedVersions lists every protocol version this package can speak,
// oldest first.
var SupportedVersions = []int{1}

// Type names a message kind. Unknown types are answered with
// [CodeUnknownType].
type Type string

// Message types. The direction is client → agent unless noted.
const (
	TypeHello    Type = "hello"    // first message: versions the client speaks
	TypeWelcome  Type = "welcome"  // agent → client: the chosen version
	TypeStatus   Type = "status"   // ask for one snapshot
	TypeWatch    Type = "watch"    // ask for a snapshot and then every change
	TypeUnwatch  Type = "unwatch"  // stop a watch started with the same id
	TypeAction   Type = "action"   // ask the deployment to do something
	TypeSnapshot Type = "snapshot" // agent → client: the state of the deployment
	TypeChange   Type = "change"   // agent → client: a change after a snapshot
	TypeAccepted Type = "accepted" // agent → client: the action will be carried out
	TypeRefused  Type = "refused"  // agent → client: the action will not be carried out, and why
	TypeProgress Type = "progress" // agent → client: a step of an accepted action
	TypeResult   Type = "result"   // agent → client: how an accepted action ended
	TypeError    Type = "error"    // agent → client: the request could not be handled
	// TypeHistory asks for past events (a [HistoryRequest]); the agent
	// answers with the same type and a [History] body.
	TypeHistory Type = "history"
)

// Envelope is one line on the wire. Body holds the JSON of the message type's
// body struct; it is kept raw so that the envelope can be read and answered
// (with its id) even when the body is malformed.
type Envelope struct {
	Type Type            `json:"type"`
	ID   uint64          `json:"id,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
}

// NewEnvelope builds an envelope whose body is v encoded as JSON.
func NewEnvelope(t Type, id uint64, v any) (Envelope, error) {
	env := Envelope{Type: t, ID: id}
	if v == nil {
		return env, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Envelope{}, fmt.Errorf("encoding %s body: %w", t, err)
	}
	env.Body = b
	return env, nil
}

// Decode unpacks the envelope's body into v. A missing body leaves v at its
// zero value. A body that does not fit v returns an *Error with
// [CodeBadRequest].
func (e Envelope) Decode(v any) error {
	if len(e.Body) == 0 || string(e.Body) == "null" {
		return nil
	}
	if err := json.Unmarshal(e.Body, v); err != nil {
		return &Error{
			Code:    CodeBadRequest,
			Message: fmt.Sprintf("the body of a %q message is not valid: %v", e.Type, err),
			Hint:    "see the protocol package documentation for the body of each message type",
		}
	}
	return nil
}

// Hello opens a connection.
type Hello struct {
	Versions []int  `json:"versions"`
	Client   string `json:"client,omitempty"` // e.g. "hatui/0.1"
	User     string `json:"user,omitempty"`   // who is asking, for the audit log
	// Forwarded is set by an agent that relays a client's request to
	// another agent, naming itself; the receiver will not forward again.
	Forwarded string `json:"forwarded,omitempty"`
	// Role is what the relaying agent granted the user it vouches for;
	// only trusted from a peer agent (a socket client's role comes from
	// its Unix groups).
	Role Role `json:"role,omitempty"`
}

// Role is what a caller may do.
type Role string

// Roles. A NOC has people who watch and people who act.
const (
	// RoleOperator may watch and act.
	RoleOperator Role = "operator"
	// RoleWatcher may see everything and act on nothing (dry runs are
	// allowed: they change nothing).
	RoleWatcher Role = "watcher"
)

// Welcome accepts a [Hello].
type Welcome struct {
	Version    int    `json:"version"`
	Agent      string `json:"agent"` // e.g. "ha-agent/0.1"
	Node       string `json:"node"`
	Deployment string `json:"deployment"`
	// Role is what this session may do, so a console can offer only the
	// actions that will be accepted.
	Role Role `json:"role,omitempty"`
}

// StatusRequest asks for a snapshot. With Node set, the agent asks that
// node's own agent (forwarding if needed) and the snapshot is that agent's
// view; without it, the receiving agent answers for the whole deployment.
type StatusRequest struct {
	Node  string `json:"node,omitempty"`
	Scope Scope  `json:"scope,omitempty"`
}

// Scope says how much a snapshot covers.
type Scope string

// Scopes.
const (
	// ScopeDeployment (the default) is everything the agent knows.
	ScopeDeployment Scope = ""
	// ScopeNode is only what the answering node itself owns: its node
	// entry, its databases, switches, groups it knows, and its own
	// events. Agents watch each other with it to build the deployment
	// view.
	ScopeNode Scope = "node"
)

// HistoryRequest asks for the deployment's past events and audit entries,
// as the answering agent recorded them (its own and those its peers
// reported), kept across restarts within a bounded size.
type HistoryRequest struct {
	// Since keeps entries at or after this time; zero keeps all.
	Since time.Time `json:"since,omitempty"`
	// Node keeps the entries of one node.
	Node string `json:"node,omitempty"`
	// Limit keeps the newest Limit entries; the agent caps it.
	Limit int `json:"limit,omitempty"`
}

// History answers a [HistoryRequest], oldest first.
type History struct {
	Events []Event `json:"events"`
	// Truncated says the answer was cut to the limit: older entries exist.
	Truncated bool `json:"truncated,omitempty"`
}

// WatchRequest is the body of a watch; it may be empty.
type WatchRequest struct {
	Scope Scope `json:"scope,omitempty"`
}

// Action asks the deployment to act. Verbs are those of `hatui --exec`
// (for example "standby", "online"); Args are the words after the verb.
type Action struct {
	Verb   string   `json:"verb"`
	Args   []string `json:"args,omitempty"`
	DryRun bool     `json:"dry_run,omitempty"`
	// Force is the operator's explicit override of a safety refusal that
	// the verb documents as overridable.
	Force bool `json:"force,omitempty"`
}

// String renders the action as the operator would type it.
func (a Action) String() string {
	s := a.Verb
	for _, w := range a.Args {
		s += " " + w
	}
	return s
}

// Accepted says an action will be carried out.
type Accepted struct {
	Verb string   `json:"verb"`
	Args []string `json:"args,omitempty"`
}

// Refused says an action will not be carried out; Error says why and what to do.
type Refused struct {
	Error
}

// Progress reports a step of an accepted action. Percent is -1 when the
// step has no measurable extent.
type Progress struct {
	Step    string  `json:"step"`
	Message string  `json:"message,omitempty"`
	Percent float64 `json:"percent"`
}

// Result ends an accepted action.
type Result struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	// Error is set when OK is false.
	Error *Error `json:"error,omitempty"`
}

// Change is one step of a watch. Snapshot is the whole new state: a
// console never has to merge deltas, so it can never drift from the agent.
// Events say what changed, for the event log.
type Change struct {
	Seq      uint64    `json:"seq"`
	Events   []Event   `json:"events,omitempty"`
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}
