package geo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// TestSiteLost loses site A (its agents stop, its service is off) while it
// serves: the ticket moves to B and the dead man's timer starts, visible at
// B and at the arbitrator. Then an operator confirms, aborts, or does
// nothing.
func TestSiteLost(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness, p protocol.Failover)
	}{
		{"confirm", func(t *testing.T, h *harness, p protocol.Failover) {
			res, err := h.mgr("arb1").Confirm(h.ctx(), "b", "ops")
			if err != nil {
				t.Fatalf("confirm: %v", err)
			}
			if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "SITE A IS UNREACHABLE") {
				t.Errorf("confirming with site a unreachable gave no loud warning: %+v", res)
			}
			waitFor(t, waitLong, "site b to serve after the confirm", h.world.Site("b").Serving)
			if at, _ := h.firstStart("b", p.Started); !at.Before(p.Expires) {
				t.Errorf("b started at %s, not before the expiry %s", at, p.Expires)
			}
			ev := h.waitEvent(EventConfirmed, "arb1")
			if ev.Who != "ops" || ev.Site != "b" || ev.Severity != protocol.SevCritical {
				t.Errorf("confirm event = %+v", ev)
			}
			h.waitServing("b")
		}},
		{"abort", func(t *testing.T, h *harness, p protocol.Failover) {
			res, err := h.mgr("b1").Abort(h.ctx(), "ops")
			if err != nil {
				t.Fatalf("abort: %v", err)
			}
			if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "unreachable") {
				t.Errorf("aborting while site a is down did not warn that the ticket moves again: %+v", res)
			}
			waitFor(t, waitLong, "the ticket back at a", func() bool {
				st := h.status("b1")
				return st.Ticket.Holder == "a" && st.Pending == nil && len(st.History) > 0 && st.History[len(st.History)-1].State == FailoverAborted
			})
			// Site a is really down: it cannot renew, so the ticket moves
			// again and a new timer starts; the service never moved.
			p2 := h.waitPending("a", "b", "b1", "arb1")
			if !p2.Expires.After(p.Expires) {
				t.Errorf("the new failover expires at %s, not after the aborted one %s", p2.Expires, p.Expires)
			}
			if h.everServed("b") {
				t.Errorf("site b served although the failover was aborted")
			}
			h.waitEvent(EventAborted, "b1")
		}},
		{"expire", func(t *testing.T, h *harness, p protocol.Failover) {
			waitFor(t, time.Until(p.Expires)+waitLong, "site b to serve at the expiry", h.world.Site("b").Serving)
			if at, _ := h.firstStart("b", p.Started); at.Before(p.Expires) {
				t.Errorf("b started at %s, before the expiry %s", at, p.Expires)
			}
			h.waitEvent(EventExpired, "")
			h.waitServing("b")
			last := h.status("arb1").History
			if len(last) == 0 || last[len(last)-1].State != FailoverExpired {
				t.Errorf("history = %+v, want the failover expired", last)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, spec{voters: threeSites(), initial: "a"})
			h.waitServing("a")
			h.loseSite("a")
			p := h.waitPending("a", "b", "b1", "arb1")
			if got := p.Expires.Sub(p.Started); got != tDeadMan {
				t.Errorf("dead man's timer = %s, want %s", got, tDeadMan)
			}
			for _, n := range []string{"b1", "arb1"} {
				st := h.status(n)
				if siteOf(st, "b").GeoRole != RolePrimary || siteOf(st, "a").GeoRole != RoleBackup {
					t.Errorf("%s: geo roles a=%s b=%s, want backup/primary", n, siteOf(st, "a").GeoRole, siteOf(st, "b").GeoRole)
				}
				if siteOf(st, "a").Reachable {
					t.Errorf("%s: site a reachable", n)
				}
			}
			if h.world.Site("b").Serving() {
				t.Fatalf("site b serves before anyone confirmed")
			}
			ev := h.waitEvent(EventPending, "b1")
			if ev.From != "a" || ev.To != "b" || !ev.Expires.Equal(p.Expires) {
				t.Errorf("pending event = %+v", ev)
			}
			tc.run(t, h, p)
		})
	}
}

// TestWANSplit splits A | B with the arbitrator reachable only from B: B
// takes the ticket and its timer starts; A keeps serving until the
// earliest moment B could start by itself, then stops by itself.
func TestWANSplit(t *testing.T) {
	t.Run("expire", func(t *testing.T) {
		h := newHarness(t, spec{voters: threeSites(), initial: "a"})
		h.waitServing("a")
		h.isolate("a")
		p := h.waitPending("a", "b", "b1", "arb1")
		if !h.world.Site("a").Serving() {
			t.Fatalf("site a stopped as soon as the ticket moved")
		}
		// A does not know of the failover, but stops in time by itself.
		h.waitEvent(EventSelfStop, "a1")
		stopped, ok := h.lastStop("a")
		if !ok || stopped.Before(p.Started.Add(tDeadMan-tMargin-tAcquire-tLease)) {
			t.Errorf("site a stopped at %s: too early for a failover started at %s", stopped, p.Started)
		}
		waitFor(t, time.Until(p.Expires)+waitLong, "site b to serve at the expiry", h.world.Site("b").Serving)
		started, _ := h.firstStart("b", p.Started)
		if started.Before(p.Expires) || !stopped.Before(started) {
			t.Errorf("a stopped at %s, b started at %s, expiry %s", stopped, started, p.Expires)
		}
		if siteOf(h.status("a1"), "a").ServiceRole != RoleStandby {
			t.Errorf("a1 shows its site serving after it stopped by itself")
		}
		h.net.Heal()
		h.waitServing("b")
	})
	t.Run("cut-at-start", func(t *testing.T) {
		// A is cut off the moment it starts serving, before it can learn
		// that its own start record committed: it must still stop in time.
		h := newHarness(t, spec{voters: threeSites()})
		waitFor(t, waitLong, "the geo state to be initialised", func() bool { return h.mgr("arb1").State().Initialized })
		h.world.Site("a").OnStart(func() { h.isolate("a") })
		// The cut may close the connection carrying the grant's answer.
		if _, err := h.mgr("arb1").Grant(h.ctx(), "a", "ops"); err != nil && protocol.CodeOf(err) != protocol.CodeUnreachable {
			t.Fatalf("grant: %v", err)
		}
		waitFor(t, waitLong, "site a to start", func() bool { return len(h.world.Site("a").History()) > 0 })
		p := h.waitPending("a", "b", "b1", "arb1")
		h.waitEvent(EventSelfStop, "a1")
		waitFor(t, time.Until(p.Expires)+waitLong, "site b to serve at the expiry", h.world.Site("b").Serving)
		stopped, _ := h.lastStop("a")
		started, _ := h.firstStart("b", p.Started)
		if !stopped.Before(started) {
			t.Errorf("a stopped at %s, b started at %s", stopped, started)
		}
	})
	t.Run("heal-abort", func(t *testing.T) {
		h := newHarness(t, spec{voters: threeSites(), initial: "a"})
		h.waitServing("a")
		h.isolate("a")
		p := h.waitPending("a", "b", "b1", "arb1")
		h.net.Heal()
		waitFor(t, waitLong, "a1 to learn of the failover", func() bool {
			st := h.status("a1")
			return st.Pending != nil && st.Pending.Expires.Equal(p.Expires)
		})
		if _, err := h.mgr("arb1").Abort(h.ctx(), "ops"); err != nil {
			t.Fatalf("abort: %v", err)
		}
		h.waitServing("a")
		holdFor(t, time.Until(p.Expires)+tLease+tAcquire, "site a serving alone", func() bool {
			st := h.status("b1")
			return h.world.Site("a").Serving() && st.Pending == nil && st.Ticket.Holder == "a"
		})
		if h.everServed("b") {
			t.Errorf("site b served")
		}
		if hist := h.world.Site("a").History(); len(hist) != 1 {
			t.Errorf("site a's service changed %d times, want it started once and never stopped: %+v", len(hist), hist)
		}
	})
}

// TestArbitratorDown stops the arbitrator while A is healthy: nothing
// changes, and the arbitrator never serves.
func TestArbitratorDown(t *testing.T) {
	h := newHarness(t, spec{voters: threeSites(), initial: "a"})
	h.waitServing("a")
	st := h.status("arb1")
	if s := siteOf(st, "arb"); s.GeoRole != RoleArbitrator || s.ServiceRole != RoleNone {
		t.Errorf("arbitrator shows geo role %q, service role %q", s.GeoRole, s.ServiceRole)
	}
	term := h.status("a1").Ticket.Term
	h.loseSite("arb")
	holdFor(t, 3*(tLease+tAcquire), "site a holding the ticket alone", func() bool {
		for _, n := range []string{"a1", "b1"} {
			st := h.status(n)
			if st.Ticket.Holder != "a" || st.Ticket.Term != term || st.Pending != nil {
				return false
			}
		}
		return h.world.Site("a").Serving() && !h.world.Site("b").Serving()
	})
	if got := h.world.Serving(); len(got) != 1 || got[0] != "a" {
		t.Errorf("serving sites = %v", got)
	}
	if h.everServed("arb") || h.everServed("b") {
		t.Errorf("the arbitrator or site b served")
	}
}

// TestTwoAgentsPerSite runs two agents at each site: losing site A still
// fails over to B, and both of B's agents drive the one service.
func TestTwoAgentsPerSite(t *testing.T) {
	voters := []Voter{
		{Node: "a1", Site: "a"}, {Node: "a2", Site: "a"},
		{Node: "b1", Site: "b"}, {Node: "b2", Site: "b"},
		{Node: "arb1", Site: "arb", Arbitrator: true},
	}
	h := newHarness(t, spec{voters: voters, initial: "a", deadMan: tDeadMan * 2 / 3})
	h.waitServing("a")
	h.loseSite("a")
	p := h.waitPending("a", "b", "b1", "b2", "arb1")
	waitFor(t, time.Until(p.Expires)+waitLong, "site b to serve", h.world.Site("b").Serving)
	h.waitServing("b")
	// One agent reports the move (two only when a reply was lost: events
	// are delivered at least once).
	evs := h.events.find(EventPending)
	if len(evs) == 0 || len(evs) > 2 {
		t.Errorf("%d pending events, want one for the deployment", len(evs))
	}
	for _, e := range evs {
		if e.From != "a" || e.To != "b" || !e.Expires.Equal(p.Expires) {
			t.Errorf("pending event %+v", e)
		}
	}
}

// TestRestartMidCountdown restarts agents while a failover is pending,
// with their state on disk: one at a time, then all at once. The timer
// resumes with the same expiry and the failover happens at it.
func TestRestartMidCountdown(t *testing.T) {
	h := newHarness(t, spec{voters: threeSites(), initial: "a", durable: true, deadMan: 3 * tDeadMan, tune: func(c *Config) {
		// Snapshot often, so that restarts restore from a snapshot plus
		// the log after it.
		c.Raft.SnapshotInterval = 5 * tRaft
		c.Raft.SnapshotThreshold = 8
		c.Raft.TrailingLogs = 4
	}})
	h.waitServing("a")

	// Restarting the serving site's agent does not interrupt its service.
	h.stopNode("a1")
	h.startNode("a1")
	h.waitServing("a")
	if hist := h.world.Site("a").History(); len(hist) != 1 {
		t.Fatalf("restarting a1 changed site a's service: %+v", hist)
	}

	h.loseSite("a")
	p := h.waitPending("a", "b", "b1", "arb1")
	sameExpiry := func(node string) {
		t.Helper()
		got := h.waitPending("a", "b", node)
		if !got.Expires.Equal(p.Expires) || !got.Started.Equal(p.Started) {
			t.Fatalf("after restarting, %s shows the failover started %s expiring %s, want %s and %s", node, got.Started, got.Expires, p.Started, p.Expires)
		}
	}
	for _, n := range []string{"b1", "arb1"} {
		snaps := filepath.Join(h.node(n).cfg.DataDir, "raft", "snapshots")
		waitFor(t, waitLong, n+" to take a snapshot", func() bool {
			entries, _ := os.ReadDir(snaps)
			return len(entries) > 0
		})
		h.stopNode(n)
		h.startNode(n)
		sameExpiry(n)
	}
	h.stopNode("b1")
	h.stopNode("arb1")
	h.startNode("b1")
	h.startNode("arb1")
	sameExpiry("b1")
	sameExpiry("arb1")
	if time.Now().After(p.Expires) {
		t.Logf("the restarts outlasted the countdown (a busy machine): the expiry below is checked anyway")
	}
	if h.world.Site("b").Serving() && time.Now().Before(p.Expires) {
		t.Fatalf("site b serves before the expiry")
	}
	waitFor(t, time.Until(p.Expires)+waitLong, "site b to serve at the expiry", h.world.Site("b").Serving)
	if at, _ := h.firstStart("b", p.Started); at.Before(p.Expires) {
		t.Errorf("b started at %s, before the expiry %s", at, p.Expires)
	}
	h.waitServing("b")
}

// TestManualMode runs the faults above in manual mode: nothing moves by
// itself. The operator then moves the service with revoke and grant.
func TestManualMode(t *testing.T) {
	window := tLease + tAcquire + tDeadMan + 2*tRenewal
	still := func(t *testing.T, h *harness, nodes ...string) func() bool {
		return func() bool {
			for _, n := range nodes {
				st := h.status(n)
				if st.Mode != string(ModeManual) || st.Ticket.Holder != "a" || st.Pending != nil {
					t.Logf("%s sees %+v", n, st)
					return false
				}
			}
			return !h.world.Site("b").Serving()
		}
	}
	t.Run("site-lost", func(t *testing.T) {
		h := newHarness(t, spec{voters: threeSites(), initial: "a", mode: ModeManual})
		h.waitServing("a")
		h.loseSite("a")
		holdFor(t, window, "the ticket at a", still(t, h, "b1", "arb1"))

		_, err := h.mgr("b1").Confirm(h.ctx(), "b", "ops")
		if protocol.CodeOf(err) != protocol.CodeRefused {
			t.Fatalf("confirm with nothing pending: %v, want refused", err)
		}
		res, err := h.mgr("b1").Revoke(h.ctx(), "a", "ops")
		if err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if !strings.Contains(res.String(), "SITE A IS UNREACHABLE") {
			t.Errorf("revoking from an unreachable site did not say so: %s", res)
		}
		res, err = h.mgr("b1").Grant(h.ctx(), "b", "ops")
		if err != nil {
			t.Fatalf("grant: %v", err)
		}
		if !strings.Contains(res.String(), "cannot check that no other site still provides service") ||
			!strings.Contains(res.String(), "SITE A LAST RECORDED SERVING AND IS UNREACHABLE") {
			t.Errorf("grant result lacks crm_ticket's warnings: %s", res)
		}
		h.waitServing("b")
		h.waitEvent(EventGranted, "b1")
		h.waitEvent(EventRevoked, "b1")
	})
	t.Run("wan-split", func(t *testing.T) {
		h := newHarness(t, spec{voters: threeSites(), initial: "a", mode: ModeManual})
		h.waitServing("a")
		h.isolate("a")
		holdFor(t, window, "site a serving and the ticket at a", func() bool {
			return still(t, h, "a1", "b1", "arb1")() && h.world.Site("a").Serving()
		})
		if n := len(h.events.find(EventSelfStop)); n != 0 {
			t.Errorf("an isolated site stopped by itself in manual mode")
		}
	})
	t.Run("arbitrator-down", func(t *testing.T) {
		h := newHarness(t, spec{voters: threeSites(), initial: "a", mode: ModeManual})
		h.waitServing("a")
		h.loseSite("arb")
		holdFor(t, window, "the ticket at a", func() bool { return still(t, h, "a1", "b1")() && h.world.Site("a").Serving() })
	})
	t.Run("ordered-move", func(t *testing.T) {
		h := newHarness(t, spec{voters: threeSites(), initial: "a", mode: ModeManual})
		h.waitServing("a")
		res, err := h.mgr("arb1").Revoke(h.ctx(), "a", "ops")
		if err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if strings.Contains(res.String(), "UNREACHABLE") {
			t.Errorf("revoke from a reachable site warned it is unreachable: %s", res)
		}
		waitFor(t, waitLong, "site a to stop", func() bool { return !h.world.Site("a").Serving() })
		waitFor(t, waitLong, "site a's stop to be recorded", func() bool {
			return siteOf(h.status("arb1"), "a").ServiceRole == RoleStandby
		})
		res, err = h.mgr("arb1").Grant(h.ctx(), "b", "ops")
		if err != nil {
			t.Fatalf("grant: %v", err)
		}
		if strings.Contains(res.String(), "UNREACHABLE") {
			t.Errorf("grant after an ordered stop warned of an unreachable site: %s", res)
		}
		h.waitServing("b")
	})
}

// TestSwitchToAuto switches a manual deployment to auto mode: the serving
// site must acknowledge it before a failover can start, and then it can.
func TestSwitchToAuto(t *testing.T) {
	h := newHarness(t, spec{voters: threeSites(), initial: "a", mode: ModeManual})
	h.waitServing("a")
	res, err := h.mgr("b1").SetMode(h.ctx(), ModeAuto, "ops")
	if err != nil {
		t.Fatalf("set mode: %v", err)
	}
	if !strings.Contains(res.Message, "auto") {
		t.Errorf("result = %+v", res)
	}
	waitFor(t, waitLong, "site a to acknowledge auto mode", func() bool {
		st := h.mgr("arb1").State()
		a := st.site("a")
		return st.Mode == ModeAuto && a != nil && a.KnowsAuto
	})
	h.loseSite("a")
	p := h.waitPending("a", "b", "b1", "arb1")
	waitFor(t, time.Until(p.Expires)+waitLong, "site b to serve", h.world.Site("b").Serving)
	res, err = h.mgr("b1").SetMode(h.ctx(), ModeAuto, "ops")
	if err != nil || !strings.Contains(res.Message, "already") {
		t.Errorf("setting the same mode again: %+v, %v", res, err)
	}
}
