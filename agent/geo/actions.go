package geo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Result is how an operator action ended. Warnings are what the operator
// must read: the console shows them as loudly as it can, the audit log
// keeps them.
type Result struct {
	Message  string
	Warnings []string
	// Failover is the failover the action ended, if any.
	Failover *protocol.Failover
}

// String renders the result on one line, warnings first.
func (r Result) String() string {
	if len(r.Warnings) == 0 {
		return r.Message
	}
	return "WARNING: " + strings.Join(r.Warnings, " WARNING: ") + " — " + r.Message
}

// checkSite refuses names that are not service sites, without needing a
// majority.
func (m *Manager) checkSite(site string) error {
	var names []string
	for _, s := range m.cfg.sites() {
		if s.Name == site {
			if s.Arbitrator {
				return protocol.Errorf(protocol.CodeRefused, "name a service site",
					"site %s is an arbitrator: it votes, but never holds the ticket and never serves", site)
			}
			return nil
		}
		if !s.Arbitrator {
			names = append(names, s.Name)
		}
	}
	return protocol.Errorf(protocol.CodeUsage, "the sites are: "+strings.Join(names, ", "), "no site named %q in the geo deployment", site)
}

func checkWho(who string) error {
	if strings.TrimSpace(who) == "" {
		return protocol.Errorf(protocol.CodeUsage, "pass the operator's name: the audit log records who did what", "no operator named for a geo action")
	}
	if err := checkText("who", who, 256); err != nil {
		return protocol.Errorf(protocol.CodeUsage, "", "%v", err)
	}
	return nil
}

func pf(f *Failover) *protocol.Failover {
	if f == nil {
		return nil
	}
	p := f.protocol()
	return &p
}

// Confirm moves the service to site now: the pending failover's target.
// When the old site is reachable the handover is ordered (it stops and
// records that, then site starts); when it is not, confirming is the
// operator's statement that it is down, site starts at once, and the
// result says so loudly.
func (m *Manager) Confirm(ctx context.Context, site, who string) (Result, error) {
	if err := m.checkSite(site); err != nil {
		return Result{}, err
	}
	if err := checkWho(who); err != nil {
		return Result{}, err
	}
	from := ""
	if p := m.fsm.state().Pending; p != nil {
		from = p.From
	}
	forced := from != "" && !m.reachable(from)
	res, err := m.propose(ctx, &command{Op: opConfirm, Site: site, Who: who, Forced: forced})
	if err != nil {
		return Result{}, err
	}
	f := res.Failover
	r := Result{Failover: pf(f), Message: fmt.Sprintf("failover of ticket %s from %s to %s confirmed by %s", m.ticketName(), f.From, f.To, who)}
	sev := protocol.SevWarning
	switch {
	case res.Forced:
		sev = protocol.SevCritical
		r.Warnings = append(r.Warnings, fmt.Sprintf(
			"SITE %s IS UNREACHABLE: confirming is your statement that it is down. %s starts serving at once without waiting for %s to stop; if %s is in fact up, both sites serve until %s stops by itself (at the latest %s).",
			strings.ToUpper(f.From), f.To, f.From, f.From, f.From, f.Expires.Format(time.RFC3339)))
		r.Message += fmt.Sprintf(": %s starts serving now", f.To)
	case len(res.Serving) > 0:
		r.Message += fmt.Sprintf(": %s stops serving, records it, then %s starts", strings.Join(res.Serving, ", "), f.To)
	default:
		r.Message += fmt.Sprintf(": %s starts serving now", f.To)
	}
	m.notify(Event{Kind: EventConfirmed, Site: f.To, From: f.From, To: f.To, Who: who, Expires: f.Expires, Severity: sev, Message: r.String()})
	return r, nil
}

// Abort keeps the service where it is and gives the ticket back to the
// site that serves.
func (m *Manager) Abort(ctx context.Context, who string) (Result, error) {
	if err := checkWho(who); err != nil {
		return Result{}, err
	}
	res, err := m.propose(ctx, &command{Op: opAbort, Who: who})
	if err != nil {
		return Result{}, err
	}
	f := res.Failover
	r := Result{Failover: pf(f), Message: fmt.Sprintf("failover of ticket %s from %s to %s aborted by %s: the service stays at %s, which holds the ticket again",
		m.ticketName(), f.From, f.To, who, f.From)}
	if !m.reachable(f.From) {
		st := m.fsm.state()
		r.Warnings = append(r.Warnings, fmt.Sprintf(
			"site %s is unreachable: unless it renews the ticket within the lease (%s) plus acquire-after (%s), the ticket moves again and a new dead man's timer starts",
			f.From, st.Lease, st.AcquireAfter))
	}
	m.notify(Event{Kind: EventAborted, Site: f.From, From: f.From, To: f.To, Who: who, Severity: protocol.SevWarning, Message: r.String()})
	return r, nil
}

// Grant gives the ticket, and the service, to site (crm_ticket --grant).
// It is refused while another site holds the ticket. Granting cannot check
// that no other site still serves: when a site recorded serving is
// unreachable, the grant is the operator's statement that it is down.
func (m *Manager) Grant(ctx context.Context, site, who string) (Result, error) {
	if err := m.checkSite(site); err != nil {
		return Result{}, err
	}
	if err := checkWho(who); err != nil {
		return Result{}, err
	}
	st := m.fsm.state()
	var unreachable []string
	for _, name := range st.otherServing(site) {
		if !m.reachable(name) {
			unreachable = append(unreachable, name)
		}
	}
	res, err := m.propose(ctx, &command{Op: opGrant, Site: site, Who: who, Forced: len(unreachable) > 0})
	if err != nil {
		return Result{}, err
	}
	r := Result{Message: fmt.Sprintf("ticket %s granted to %s by %s (term %d)", m.ticketName(), site, who, res.Term)}
	r.Warnings = append(r.Warnings, fmt.Sprintf(
		"granting cannot check that no other site still provides service: make sure every site but %s is stopped, or both may serve", site))
	sev := protocol.SevWarning
	switch {
	case res.Forced:
		sev = protocol.SevCritical
		r.Warnings = append(r.Warnings, fmt.Sprintf(
			"SITE %s LAST RECORDED SERVING AND IS UNREACHABLE: %s starts at once; if %s is in fact up, both sites serve.",
			strings.ToUpper(strings.Join(res.Serving, ", ")), site, strings.Join(res.Serving, ", ")))
	case len(res.Serving) > 0:
		r.Message += fmt.Sprintf(": %s starts once %s has recorded that it stopped", site, strings.Join(res.Serving, ", "))
	}
	if st.Mode == ModeAuto {
		r.Message += fmt.Sprintf("; in auto mode the ticket moves away from %s by itself if its lease runs out", site)
	}
	m.notify(Event{Kind: EventGranted, Site: site, To: site, Who: who, Severity: sev, Message: r.String()})
	return r, nil
}

// Revoke takes the ticket, and the service, away from site (crm_ticket
// --revoke). No site serves until the ticket is granted again.
func (m *Manager) Revoke(ctx context.Context, site, who string) (Result, error) {
	if err := m.checkSite(site); err != nil {
		return Result{}, err
	}
	if err := checkWho(who); err != nil {
		return Result{}, err
	}
	st := m.fsm.state()
	res, err := m.propose(ctx, &command{Op: opRevoke, Site: site, Who: who})
	if err != nil {
		return Result{}, err
	}
	r := Result{Message: fmt.Sprintf("ticket %s revoked from %s by %s (term %d): %s stops serving", m.ticketName(), site, who, res.Term, site)}
	r.Warnings = append(r.Warnings, fmt.Sprintf("revoking stops the service at %s; no site provides service until the ticket is granted again", site))
	if !m.reachable(site) {
		keep := "until it reconnects"
		if st.Mode == ModeAuto {
			keep = "until it stops by itself at the end of its lease plus acquire-after plus the dead man's timer, or reconnects"
		}
		r.Warnings = append(r.Warnings, fmt.Sprintf("SITE %s IS UNREACHABLE: it does not learn of the revocation and keeps serving %s", strings.ToUpper(site), keep))
	}
	m.notify(Event{Kind: EventRevoked, Site: site, From: site, Who: who, Severity: protocol.SevCritical, Message: r.String()})
	return r, nil
}

// SetMode switches between auto and manual mode. Auto mode is refused when
// the voters cannot survive the loss of a site (no arbitrator).
func (m *Manager) SetMode(ctx context.Context, mode Mode, who string) (Result, error) {
	if mode != ModeAuto && mode != ModeManual {
		return Result{}, protocol.Errorf(protocol.CodeUsage, `the modes are "auto" and "manual"`, "no geo mode %q", mode)
	}
	if err := checkWho(who); err != nil {
		return Result{}, err
	}
	res, err := m.propose(ctx, &command{Op: opMode, Mode: mode, Who: who})
	if err != nil {
		return Result{}, err
	}
	if !res.Changed {
		return Result{Message: fmt.Sprintf("geo mode is already %s", mode)}, nil
	}
	r := Result{Message: fmt.Sprintf("geo mode set to %s by %s", mode, who)}
	if mode == ModeManual {
		r.Message += ": nothing fails over by itself any more, and an isolated site keeps serving"
	} else {
		r.Message += ": the ticket moves by itself once the serving site has acknowledged auto mode"
	}
	m.notify(Event{Kind: EventMode, Who: who, Severity: protocol.SevWarning, Message: r.String()})
	return r, nil
}

func (m *Manager) ticketName() string {
	if st := m.fsm.state(); st.Initialized {
		return st.Ticket
	}
	return m.cfg.Ticket
}
