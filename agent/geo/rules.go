package geo

import (
	"fmt"
	"time"

	"github.com/hatui/hatui/protocol"
)

// applyResult is what applying one entry gave. The leader sends it back to
// whoever proposed the entry; followers drop it.
type applyResult struct {
	Index   uint64          `json:"index"`
	Err     *protocol.Error `json:"error,omitempty"`
	Changed bool            `json:"changed,omitempty"`
	Term    uint64          `json:"term,omitempty"`
	Gen     uint64          `json:"gen,omitempty"` // serve: the site's new serve generation
	// Failover is the failover the entry started (acquire) or ended
	// (confirm, abort, expire).
	Failover *Failover `json:"failover,omitempty"`
	// Superseded is a pending failover that an acquire ended because the
	// ticket moved on before the service followed.
	Superseded *Failover `json:"superseded,omitempty"`
	// Forced says the new service site may start without the stop record
	// of the sites in Serving: the operator declared them down.
	Forced bool `json:"forced,omitempty"`
	// Serving lists the other sites still recorded serving when the
	// service moved.
	Serving []string `json:"serving,omitempty"`
}

func refusal(hint, format string, args ...any) *applyResult {
	return &applyResult{Err: protocol.Errorf(protocol.CodeRefused, hint, format, args...)}
}

// apply validates c against s and, when it is allowed, changes s. It reads
// no clock and no configuration: only s and c. Callers pass a clone and
// keep it only when Err is nil, so a refused entry changes nothing.
func (s *State) apply(c *command) *applyResult {
	switch c.Op {
	case opInit:
		return s.applyInit(c)
	case opSync:
		return &applyResult{}
	}
	if !s.Initialized {
		return refusal("wait a moment: the geo leader writes the settings when it is elected",
			"the geo state is not initialised yet")
	}
	var site *SiteState
	if siteOps[c.Op] {
		site = s.site(c.Site)
		if site == nil {
			return &applyResult{Err: protocol.Errorf(protocol.CodeUsage, "the sites are: "+s.siteNames(),
				"no site named %q in the geo deployment", c.Site)}
		}
		if site.Arbitrator {
			return refusal("name one of the service sites: "+s.siteNames(),
				"site %s is an arbitrator: it votes, but never holds the ticket and never serves", c.Site)
		}
	}
	switch c.Op {
	case opRenew:
		return s.applyRenew(c, site)
	case opAcquire:
		return s.applyAcquire(c, site)
	case opExpire:
		return s.applyExpire(c)
	case opConfirm:
		return s.applyConfirm(c)
	case opAbort:
		return s.applyAbort(c)
	case opGrant:
		return s.applyGrant(c)
	case opRevoke:
		return s.applyRevoke(c)
	case opMode:
		return s.applyMode(c)
	case opServe:
		return s.applyServe(c, site)
	case opStopped:
		return s.applyStopped(c, site)
	}
	return &applyResult{Err: protocol.Errorf(protocol.CodeBadRequest, "", "unknown geo operation %q", c.Op)}
}

func (s *State) applyInit(c *command) *applyResult {
	if s.Initialized {
		return refusal("", "the geo state is already initialised (ticket %s)", s.Ticket)
	}
	a := c.Init
	if a.Mode == ModeAuto && a.AutoRefusal != "" {
		return refusal("set mode = \"manual\" or add an arbitrator", "auto mode is not safe here: %s", a.AutoRefusal)
	}
	*s = State{
		Version:      stateVersion,
		Initialized:  true,
		Ticket:       a.Ticket,
		Mode:         a.Mode,
		Lease:        a.Lease,
		AcquireAfter: a.AcquireAfter,
		DeadMan:      a.DeadMan,
		HistoryLimit: a.History,
		AutoRefusal:  a.AutoRefusal,
		Sites:        append([]SiteState(nil), a.Sites...),
	}
	if h := a.InitialHolder; h != "" {
		s.Holder, s.Term, s.LeaseExpiry, s.Service = h, 1, c.Now.Add(s.Lease), h
	}
	return &applyResult{Changed: true, Term: s.Term}
}

// ack notes what mode the proposing site knows.
func (s *State) ack(site *SiteState, c *command) {
	if c.Mode == ModeAuto && s.Mode == ModeAuto {
		site.KnowsAuto = true
	}
}

func (s *State) staleTerm(c *command) *applyResult {
	return refusal("the proposer's view was out of date; it retries with the current one",
		"ticket term %d is stale: the ticket is at term %d (holder %q)", c.Term, s.Term, s.Holder)
}

func (s *State) applyRenew(c *command, site *SiteState) *applyResult {
	if s.Holder != c.Site {
		return refusal("only the holder renews its lease", "site %s does not hold ticket %s (holder: %q)", c.Site, s.Ticket, s.Holder)
	}
	if c.Term != s.Term {
		return s.staleTerm(c)
	}
	// The holder may renew after its lease ran out, as long as nobody took
	// the ticket: that gives it priority during the acquire-after margin.
	if exp := c.Now.Add(s.Lease); exp.After(s.LeaseExpiry) {
		s.LeaseExpiry = exp
	}
	s.ack(site, c)
	return &applyResult{Changed: true, Term: s.Term}
}

func (s *State) applyAcquire(c *command, site *SiteState) *applyResult {
	switch {
	case s.Mode != ModeAuto:
		return refusal("in manual mode grant and revoke the ticket, or set mode auto",
			"manual mode: ticket %s never moves by itself", s.Ticket)
	case c.Mode != ModeAuto:
		return refusal("it retries once it knows auto mode", "site %s proposed from a manual-mode view", c.Site)
	case s.Holder == "":
		return refusal("grant the ticket to a site",
			"ticket %s is not granted: in auto mode it moves only away from a holder whose lease ran out", s.Ticket)
	case s.Holder == c.Site:
		return refusal("the holder renews instead", "site %s already holds ticket %s", c.Site, s.Ticket)
	case c.Term != s.Term:
		return s.staleTerm(c)
	}
	if free := s.LeaseExpiry.Add(s.AcquireAfter); c.Now.Before(free) {
		return refusal("the holder may still renew; a site takes the ticket only after the lease plus the acquire-after margin",
			"the lease of %s on ticket %s runs until %s; another site may take it from %s",
			s.Holder, s.Ticket, s.LeaseExpiry.Format(time.RFC3339Nano), free.Format(time.RFC3339Nano))
	}
	for _, o := range s.Sites {
		if o.Serving && !o.KnowsAuto {
			return refusal("it acknowledges auto mode when it next renews or records its role; until then use confirm or grant",
				"site %s serves and has not acknowledged auto mode since it was set, so it might not stop by itself", o.Name)
		}
	}
	prev, lapsed := s.Holder, s.LeaseExpiry
	s.Holder, s.LeaseExpiry = c.Site, c.Now.Add(s.Lease)
	s.Term++
	s.ack(site, c)
	res := &applyResult{Changed: true, Term: s.Term}
	if p := s.Pending; p != nil {
		p.State, p.By, p.Ended = FailoverAborted, "geo", c.Now
		p.Reason = fmt.Sprintf("the ticket moved on from %s to %s before the service followed", prev, c.Site)
		sup := *p
		res.Superseded = &sup
		s.pushHistory(*p)
		s.Pending = nil
	}
	switch s.Service {
	case c.Site:
		// The service never left this site: nothing to fail over.
	case "":
		s.Service = c.Site
	default:
		p := Failover{
			From: s.Service, To: c.Site, Started: c.Now, Expires: c.Now.Add(s.DeadMan), State: FailoverPending,
			Reason: fmt.Sprintf("the lease of %s ran out at %s", prev, lapsed.Format(time.RFC3339)),
		}
		s.Pending = &p
		f := p
		res.Failover = &f
	}
	return res
}

// handover ends the pending failover by moving the service to its target.
func (s *State) handover(c *command, state, by string, forced bool) *applyResult {
	p := s.Pending
	p.State, p.By, p.Ended = state, by, c.Now
	from := s.site(p.From)
	// By its own rules the old site stops by the failover's expiry, if it
	// computes deadlines at all (auto mode, acknowledged).
	if from.Serving && s.Mode == ModeAuto && from.KnowsAuto {
		from.StopBy = p.Expires
	}
	s.Service = p.To
	others := s.otherServing(p.To)
	s.Forced = forced && len(others) > 0
	f := *p
	s.pushHistory(*p)
	s.Pending = nil
	return &applyResult{Changed: true, Term: s.Term, Failover: &f, Forced: s.Forced, Serving: others}
}

func (s *State) applyExpire(c *command) *applyResult {
	p := s.Pending
	switch {
	case s.Mode != ModeAuto:
		return refusal("confirm or abort it", "manual mode: the dead man's timer never fails over by itself")
	case p == nil:
		return refusal("", "no failover is pending")
	case c.Now.Before(p.Expires):
		return refusal("", "the failover from %s to %s expires at %s", p.From, p.To, p.Expires.Format(time.RFC3339Nano))
	}
	return s.handover(c, FailoverExpired, "dead man's timer", false)
}

func (s *State) applyConfirm(c *command) *applyResult {
	p := s.Pending
	if p == nil {
		if s.Holder == c.Site && s.Service == c.Site {
			return refusal("see status", "no failover is pending: site %s already holds ticket %s and serves", c.Site, s.Ticket)
		}
		return refusal("a failover becomes pending when the ticket moves; to move the ticket yourself use manual mode with revoke and grant",
			"no failover is pending: site %s does not hold ticket %s (holder: %q)", c.Site, s.Ticket, s.Holder)
	}
	if p.To != c.Site {
		return refusal(fmt.Sprintf("confirm %s, or abort to keep the service at %s", p.To, p.From),
			"site %s does not hold ticket %s: the pending failover is from %s to %s", c.Site, s.Ticket, p.From, p.To)
	}
	return s.handover(c, FailoverConfirmed, c.Who, c.Forced)
}

func (s *State) applyAbort(c *command) *applyResult {
	p := s.Pending
	if p == nil {
		return refusal("a failover becomes pending when the ticket moves; see status", "no failover is pending: nothing to abort")
	}
	p.State, p.By, p.Ended = FailoverAborted, c.Who, c.Now
	f := *p
	s.pushHistory(*p)
	s.Pending = nil
	// The ticket goes back to the site that kept the service. If that site
	// cannot renew, the lease runs out again and a new failover starts.
	s.Holder, s.LeaseExpiry = p.From, c.Now.Add(s.Lease)
	s.Term++
	return &applyResult{Changed: true, Term: s.Term, Failover: &f}
}

func (s *State) applyGrant(c *command) *applyResult {
	switch {
	case s.Pending != nil:
		return refusal("confirm or abort it first",
			"a failover of ticket %s from %s to %s is pending", s.Ticket, s.Pending.From, s.Pending.To)
	case s.Holder == c.Site:
		return refusal("see status", "site %s already holds ticket %s", c.Site, s.Ticket)
	case s.Holder != "":
		return refusal(fmt.Sprintf("revoke it from %s first (granting cannot check that no other site still serves)", s.Holder),
			"site %s holds ticket %s", s.Holder, s.Ticket)
	}
	s.Holder, s.LeaseExpiry, s.Service = c.Site, c.Now.Add(s.Lease), c.Site
	s.Term++
	others := s.otherServing(c.Site)
	s.Forced = c.Forced && len(others) > 0
	return &applyResult{Changed: true, Term: s.Term, Forced: s.Forced, Serving: others}
}

func (s *State) applyRevoke(c *command) *applyResult {
	switch {
	case s.Holder != c.Site:
		return refusal("see status for the holder", "site %s does not hold ticket %s (holder: %q)", c.Site, s.Ticket, s.Holder)
	case s.Pending != nil:
		return refusal("confirm or abort it first",
			"a failover of ticket %s from %s to %s is pending", s.Ticket, s.Pending.From, s.Pending.To)
	}
	s.Holder, s.LeaseExpiry, s.Service, s.Forced = "", time.Time{}, "", false
	s.Term++
	return &applyResult{Changed: true, Term: s.Term, Serving: s.otherServing("")}
}

func (s *State) applyMode(c *command) *applyResult {
	if c.Mode == s.Mode {
		return &applyResult{Term: s.Term}
	}
	if c.Mode == ModeAuto && s.AutoRefusal != "" {
		return refusal("add an arbitrator at a third site; until then the deployment runs in manual mode",
			"auto mode is not safe here: %s", s.AutoRefusal)
	}
	s.Mode = c.Mode
	for i := range s.Sites {
		// Every site must learn the new mode before anyone relies on it:
		// a site that still thinks "manual" never stops by itself, and one
		// that thinks "auto" may stop when no longer needed (safe).
		s.Sites[i].KnowsAuto = false
		if c.Mode == ModeManual {
			s.Sites[i].StopBy = time.Time{}
		}
	}
	if c.Mode == ModeAuto && s.Holder != "" {
		if exp := c.Now.Add(s.Lease); exp.After(s.LeaseExpiry) {
			s.LeaseExpiry = exp
		}
	}
	return &applyResult{Changed: true, Term: s.Term}
}

func (s *State) applyServe(c *command, site *SiteState) *applyResult {
	if s.Service != c.Site {
		return &applyResult{Err: protocol.Errorf(protocol.CodeBusy, "",
			"site %s is not designated to serve (service site: %q)", c.Site, s.Service)}
	}
	if site.Serving {
		// Another agent of the site (or this one again, after a restart)
		// starts the service too: a stop record from before is stale now.
		site.Gen++
		s.ack(site, c)
		return &applyResult{Term: s.Term, Gen: site.Gen}
	}
	if err := s.serveGate(c.Site, c.Now); err != nil {
		return &applyResult{Err: err}
	}
	if !s.Forced {
		// The gate passed on time alone for these: their own rules have
		// stopped them.
		for i := range s.Sites {
			o := &s.Sites[i]
			if o.Name != c.Site && o.Serving {
				o.Serving, o.Since, o.StopBy = false, c.Now, time.Time{}
			}
		}
	}
	site.Serving, site.Since, site.StopBy = true, c.Now, time.Time{}
	site.Gen++
	s.Forced = false
	s.ack(site, c)
	return &applyResult{Changed: true, Term: s.Term, Gen: site.Gen}
}

func (s *State) applyStopped(c *command, site *SiteState) *applyResult {
	if site.Serving && c.Gen != site.Gen {
		return refusal("the newer start stands; the agent that stopped looks again",
			"site %s recorded a start (generation %d) after this stop (generation %d)", c.Site, site.Gen, c.Gen)
	}
	changed := site.Serving
	if changed {
		site.Serving, site.Since = false, c.Now
	}
	site.StopBy = time.Time{}
	s.ack(site, c)
	return &applyResult{Changed: changed, Term: s.Term}
}

// otherServing lists the sites other than site recorded serving.
func (s *State) otherServing(site string) []string {
	var out []string
	for _, o := range s.Sites {
		if o.Name != site && o.Serving {
			out = append(out, o.Name)
		}
	}
	return out
}
