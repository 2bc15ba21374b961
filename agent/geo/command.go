package geo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// commandVersion is the version of the log entry format written by this
// code. An entry of a newer version is refused (and changes nothing), so a
// voter never guesses at a format it does not know.
const commandVersion = 1

// maxCommandBytes bounds one log entry; real ones are a few hundred bytes.
const maxCommandBytes = 64 << 10

// op names a log entry's operation.
type op string

// Operations.
const (
	opInit    op = "init"    // write the settings, once
	opRenew   op = "renew"   // the holder extends its lease
	opAcquire op = "acquire" // a site takes a ticket whose lease ran out
	opExpire  op = "expire"  // the dead man's timer ran out
	opConfirm op = "confirm" // an operator moves the service now
	opAbort   op = "abort"   // an operator keeps the service where it is
	opGrant   op = "grant"   // an operator gives the ticket (crm_ticket --grant)
	opRevoke  op = "revoke"  // an operator takes the ticket away
	opMode    op = "mode"    // an operator switches auto/manual
	opServe   op = "serve"   // a site records that it starts serving
	opStopped op = "stopped" // a site records that it stopped serving
	opSync    op = "sync"    // nothing: a restarted agent learns it is up to date
)

// command is one log entry. Fields not used by its op stay empty.
type command struct {
	V  int `json:"v"`
	Op op  `json:"op"`
	// Now is the leader's clock when it proposed the entry. The state
	// machine reads no clock: all its decisions use Now.
	Now    time.Time `json:"now"`
	Node   string    `json:"node,omitempty"` // the proposing agent
	Site   string    `json:"site,omitempty"`
	Who    string    `json:"who,omitempty"` // the operator, for the audit
	Term   uint64    `json:"term,omitempty"`
	Gen    uint64    `json:"gen,omitempty"` // stopped: the serve generation stopped
	Mode   Mode      `json:"mode,omitempty"`
	Forced bool      `json:"forced,omitempty"`
	Init   *initArgs `json:"init,omitempty"`
}

// initArgs are the settings the first leader writes.
type initArgs struct {
	Ticket        string        `json:"ticket"`
	Mode          Mode          `json:"mode"`
	Sites         []SiteState   `json:"sites"`
	Lease         time.Duration `json:"lease"`
	AcquireAfter  time.Duration `json:"acquire_after"`
	DeadMan       time.Duration `json:"dead_man"`
	History       int           `json:"history"`
	InitialHolder string        `json:"initial_holder,omitempty"`
	AutoRefusal   string        `json:"auto_refusal,omitempty"`
}

// encode renders c as a log entry.
func (c *command) encode() ([]byte, error) {
	c.V = commandVersion
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding a geo %s entry: %w", c.Op, err)
	}
	return b, nil
}

// siteOps are the operations that name a site.
var siteOps = map[op]bool{
	opRenew: true, opAcquire: true, opConfirm: true, opGrant: true,
	opRevoke: true, opServe: true, opStopped: true,
}

// decodeCommand parses and checks a log entry. It never panics; a corrupt
// entry gives an error that says what is wrong with it.
func decodeCommand(b []byte) (*command, error) {
	if len(b) > maxCommandBytes {
		return nil, fmt.Errorf("geo log entry of %d bytes is over the %d-byte limit", len(b), maxCommandBytes)
	}
	var c command
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("geo log entry is not valid JSON: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("geo log entry has data after its JSON object")
	}
	switch {
	case c.V > commandVersion:
		return nil, fmt.Errorf("geo log entry has format version %d, this agent knows up to %d: upgrade this agent", c.V, commandVersion)
	case c.V < 1:
		return nil, fmt.Errorf("geo log entry has no format version")
	case c.Now.IsZero():
		return nil, fmt.Errorf("geo %q entry has no time", c.Op)
	}
	switch c.Op {
	case opInit, opRenew, opAcquire, opExpire, opConfirm, opAbort, opGrant, opRevoke, opMode, opServe, opStopped, opSync:
	default:
		return nil, fmt.Errorf("geo log entry has unknown operation %q", c.Op)
	}
	if siteOps[c.Op] {
		if !nameRE.MatchString(c.Site) {
			return nil, fmt.Errorf("geo %q entry names no valid site (%q)", c.Op, c.Site)
		}
	} else if c.Site != "" {
		return nil, fmt.Errorf("geo %q entry names a site (%q) it has no use for", c.Op, c.Site)
	}
	if err := checkText("who", c.Who, 256); err != nil {
		return nil, err
	}
	if err := checkText("node", c.Node, 256); err != nil {
		return nil, err
	}
	switch c.Mode {
	case "", ModeAuto, ModeManual:
	default:
		return nil, fmt.Errorf("geo %q entry has unknown mode %q", c.Op, c.Mode)
	}
	if c.Op == opMode && c.Mode == "" {
		return nil, fmt.Errorf("geo mode entry names no mode")
	}
	if (c.Op == opInit) != (c.Init != nil) {
		return nil, fmt.Errorf("geo %q entry: settings belong to init entries only", c.Op)
	}
	if c.Init != nil {
		if err := c.Init.check(); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// checkText accepts short printable strings.
func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("geo log entry: %s is %d bytes long, over %d", field, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("geo log entry: %s is not UTF-8", field)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("geo log entry: %s contains the unprintable character %U", field, r)
		}
	}
	return nil
}

// check validates init settings.
func (a *initArgs) check() error {
	if !nameRE.MatchString(a.Ticket) {
		return fmt.Errorf("geo init entry: ticket name %q is not valid", a.Ticket)
	}
	if a.Mode != ModeAuto && a.Mode != ModeManual {
		return fmt.Errorf("geo init entry: mode %q is not valid", a.Mode)
	}
	if a.Lease <= 0 || a.DeadMan <= 0 || a.AcquireAfter < 0 {
		return fmt.Errorf("geo init entry: lease %s, dead man's timer %s and acquire-after %s must be positive", a.Lease, a.DeadMan, a.AcquireAfter)
	}
	if a.History < 1 || a.History > 10000 {
		return fmt.Errorf("geo init entry: history %d is out of 1..10000", a.History)
	}
	if len(a.Sites) < 2 || len(a.Sites) > 64 {
		return fmt.Errorf("geo init entry: %d sites, want 2 to 64", len(a.Sites))
	}
	seen := map[string]bool{}
	service := 0
	for _, s := range a.Sites {
		if !nameRE.MatchString(s.Name) || seen[s.Name] {
			return fmt.Errorf("geo init entry: site name %q is not valid or repeated", s.Name)
		}
		if s.Voters < 1 || s.Serving || s.KnowsAuto || s.Gen != 0 || !s.Since.IsZero() || !s.StopBy.IsZero() {
			return fmt.Errorf("geo init entry: site %q does not start blank with voters", s.Name)
		}
		seen[s.Name] = true
		if !s.Arbitrator {
			service++
		} else if s.Name == a.InitialHolder {
			return fmt.Errorf("geo init entry: initial holder %q is an arbitrator site", s.Name)
		}
	}
	if service < 2 {
		return fmt.Errorf("geo init entry: %d service sites, want at least 2", service)
	}
	if a.InitialHolder != "" && !seen[a.InitialHolder] {
		return fmt.Errorf("geo init entry: initial holder %q is not a site", a.InitialHolder)
	}
	return checkText("auto refusal", a.AutoRefusal, 1024)
}
