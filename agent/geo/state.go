package geo

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// stateVersion is the version of the snapshot format written by this code.
const stateVersion = 1

// State is the replicated geo state: every voter's state machine holds the
// same value after applying the same entries. Times are absolute, stamped
// by the leader that proposed the entry.
type State struct {
	Version     int    `json:"version"`
	Initialized bool   `json:"initialized"`
	Index       uint64 `json:"index"` // last raft index applied

	// Settings written once by the first leader from its config.
	Ticket       string        `json:"ticket"`
	Mode         Mode          `json:"mode"`
	Lease        time.Duration `json:"lease"`
	AcquireAfter time.Duration `json:"acquire_after"`
	DeadMan      time.Duration `json:"dead_man"`
	HistoryLimit int           `json:"history_limit"`
	// AutoRefusal says why auto mode would be unsafe with these voters,
	// or is empty when it is safe.
	AutoRefusal string      `json:"auto_refusal,omitempty"`
	Sites       []SiteState `json:"sites"`

	// The ticket: the geo role.
	Holder      string    `json:"holder,omitempty"`
	Term        uint64    `json:"term"`
	LeaseExpiry time.Time `json:"lease_expiry,omitzero"`

	// Service is the site designated to provide service (silhouette's
	// geo-service-ticket). It differs from Holder while a failover is
	// pending.
	Service string `json:"service,omitempty"`
	// Forced lets Service start without the other sites' stop records:
	// the operator declared them down.
	Forced bool `json:"forced,omitempty"`

	Pending *Failover  `json:"pending,omitempty"`
	History []Failover `json:"history,omitempty"`
}

// SiteState is one site in the replicated state.
type SiteState struct {
	Name       string `json:"name"`
	Arbitrator bool   `json:"arbitrator,omitempty"`
	Voters     int    `json:"voters"`
	// Serving is the service role the site recorded: true from its "serve"
	// entry (written before it starts) to its "stopped" entry (written
	// after it stopped).
	Serving bool      `json:"serving"`
	Since   time.Time `json:"since,omitzero"`
	// StopBy is set when the site lost the service while recorded serving:
	// from then on its own rules have made it stop. Zero means no such
	// moment is known, and only its stop record (or the operator) will do.
	StopBy time.Time `json:"stop_by,omitzero"`
	// KnowsAuto records that the site has acknowledged auto mode since it
	// was last set, so it computes its self-stop deadline.
	KnowsAuto bool `json:"knows_auto,omitempty"`
	// Gen counts the site's serve records. A stop record names the Gen its
	// agent saw before stopping and is refused when another agent of the
	// site recorded a start since: a stale stop record must never say the
	// site stopped while it serves.
	Gen uint64 `json:"gen,omitempty"`
}

// Failover states.
const (
	FailoverPending   = "pending"
	FailoverConfirmed = "confirmed"
	FailoverAborted   = "aborted"
	FailoverExpired   = "expired"
)

// Failover is a geo failover: the ticket has moved From → To and the
// service follows at Expires unless confirmed or aborted before.
type Failover struct {
	From    string    `json:"from"`
	To      string    `json:"to"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
	State   string    `json:"state"`
	By      string    `json:"by,omitempty"`
	Ended   time.Time `json:"ended,omitzero"`
	Reason  string    `json:"reason,omitempty"`
}

// protocol converts f for the wire.
func (f Failover) protocol() protocol.Failover {
	return protocol.Failover{From: f.From, To: f.To, Started: f.Started, Expires: f.Expires, State: f.State, By: f.By}
}

// clone returns a deep copy of s.
func (s *State) clone() *State {
	c := *s
	c.Sites = slices.Clone(s.Sites)
	c.History = slices.Clone(s.History)
	if s.Pending != nil {
		p := *s.Pending
		c.Pending = &p
	}
	return &c
}

// site returns the named site, or nil.
func (s *State) site(name string) *SiteState {
	for i := range s.Sites {
		if s.Sites[i].Name == name {
			return &s.Sites[i]
		}
	}
	return nil
}

// siteNames lists the sites that can serve, for hints.
func (s *State) siteNames() string {
	var names []string
	for _, x := range s.Sites {
		if !x.Arbitrator {
			names = append(names, x.Name)
		}
	}
	return strings.Join(names, ", ")
}

// holds reports whether site holds the ticket with a live lease at now
// (in manual mode the lease does not matter).
func (s *State) holds(site string, now time.Time) bool {
	if site == "" || s.Holder != site {
		return false
	}
	return s.Mode == ModeManual || now.Before(s.LeaseExpiry)
}

// serviceDeadline returns the latest moment site may keep serving on what
// s says, with limited false when s sets no limit (manual mode). The
// argument is in the package doc: it is never later than the earliest
// moment another site could start serving by itself, less margin.
func (s *State) serviceDeadline(site string, margin time.Duration) (deadline time.Time, limited bool) {
	switch {
	case !s.Initialized:
		return time.Time{}, true
	case s.Mode == ModeManual:
		return time.Time{}, false
	case s.Holder == site:
		return s.LeaseExpiry.Add(s.AcquireAfter + s.DeadMan - margin), true
	case s.Pending != nil && s.Pending.From == site:
		return s.Pending.Expires.Add(-margin), true
	}
	return time.Time{}, true
}

// wantServe says whether site should be serving at now on what s says,
// and why (for logs and alerts).
func (s *State) wantServe(site string, now time.Time, margin time.Duration) (bool, string) {
	if !s.Initialized {
		return false, "the geo state is not initialised yet"
	}
	if s.Service != site {
		if s.Service == "" {
			return false, "no site is designated to serve"
		}
		return false, fmt.Sprintf("site %s is designated to serve", s.Service)
	}
	if dl, limited := s.serviceDeadline(site, margin); limited && !now.Before(dl) {
		return false, fmt.Sprintf("stopped by itself at %s: another site may start serving by itself from %s (lease expiry + acquire-after + dead man's timer)",
			dl.Format(time.RFC3339), dl.Add(margin).Format(time.RFC3339))
	}
	return true, ""
}

// serveGate says whether site may start serving at now: every other site
// recorded serving must have recorded its stop, be stopped by its own rules
// (StopBy passed), or have been declared down (Forced).
func (s *State) serveGate(site string, now time.Time) *protocol.Error {
	if s.Forced {
		return nil
	}
	for _, o := range s.Sites {
		if o.Name == site || !o.Serving {
			continue
		}
		if o.StopBy.IsZero() {
			return protocol.Errorf(protocol.CodeBusy,
				"it starts when that site records that it stopped; if the site is down, confirm or grant again to declare it so",
				"site %s has not recorded that it stopped serving", o.Name)
		}
		if now.Before(o.StopBy) {
			return protocol.Errorf(protocol.CodeBusy,
				fmt.Sprintf("it starts when that site records that it stopped, or at %s when that site has stopped by itself", o.StopBy.Format(time.RFC3339)),
				"site %s has not recorded that it stopped serving", o.Name)
		}
	}
	return nil
}

// pushHistory appends f to the history, dropping the oldest past the limit.
func (s *State) pushHistory(f Failover) {
	s.History = append(s.History, f)
	if n := len(s.History) - max(s.HistoryLimit, 1); n > 0 {
		s.History = slices.Delete(s.History, 0, n)
	}
}

// check reports the first way s breaks the state's invariants. Apply and
// Restore never leave a state that fails it; the fuzz targets hold them to
// that.
func (s *State) check() error {
	if !s.Initialized {
		if s.Holder != "" || s.Service != "" || s.Pending != nil || len(s.Sites) != 0 {
			return fmt.Errorf("uninitialised state holds data")
		}
		return nil
	}
	if s.Mode != ModeAuto && s.Mode != ModeManual {
		return fmt.Errorf("mode %q", s.Mode)
	}
	if len(s.Sites) == 0 {
		return fmt.Errorf("no sites")
	}
	seen := map[string]bool{}
	for _, x := range s.Sites {
		if x.Name == "" || seen[x.Name] {
			return fmt.Errorf("site name %q empty or repeated", x.Name)
		}
		seen[x.Name] = true
		if x.Arbitrator && x.Serving {
			return fmt.Errorf("arbitrator site %s recorded serving", x.Name)
		}
	}
	canServe := func(name string) bool {
		x := s.site(name)
		return x != nil && !x.Arbitrator
	}
	if s.Holder != "" && !canServe(s.Holder) {
		return fmt.Errorf("holder %q is not a service site", s.Holder)
	}
	if s.Service != "" && !canServe(s.Service) {
		return fmt.Errorf("service site %q is not a service site", s.Service)
	}
	if p := s.Pending; p != nil {
		if !canServe(p.From) || !canServe(p.To) || p.From == p.To {
			return fmt.Errorf("pending failover %q → %q", p.From, p.To)
		}
		if p.State != FailoverPending || p.To != s.Holder || p.From != s.Service {
			return fmt.Errorf("pending failover %q → %q (%s) does not match holder %q and service %q", p.From, p.To, p.State, s.Holder, s.Service)
		}
	}
	if s.HistoryLimit < 1 || len(s.History) > s.HistoryLimit {
		return fmt.Errorf("history of %d over its limit %d", len(s.History), s.HistoryLimit)
	}
	return nil
}
