package geo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hatui/hatui/protocol"
)

// TestRefusals tries each operator action where it must be refused and
// checks the typed error and that nothing changed.
func TestRefusals(t *testing.T) {
	h := newHarness(t, spec{voters: threeSites(), initial: "a"})
	h.waitServing("a")
	m := h.mgr("b1")
	type call func() error
	confirm := func(site, who string) call {
		return func() error { _, err := m.Confirm(h.ctx(), site, who); return err }
	}
	abort := func(who string) call { return func() error { _, err := m.Abort(h.ctx(), who); return err } }
	grant := func(site string) call { return func() error { _, err := m.Grant(h.ctx(), site, "ops"); return err } }
	revoke := func(site string) call { return func() error { _, err := m.Revoke(h.ctx(), site, "ops"); return err } }
	setMode := func(mode Mode) call { return func() error { _, err := m.SetMode(h.ctx(), mode, "ops"); return err } }
	check := func(t *testing.T, tests []struct {
		name string
		do   call
		code protocol.Code
		msg  string
	}) {
		t.Helper()
		for _, tc := range tests {
			before := h.mgr("arb1").State()
			err := tc.do()
			var pe *protocol.Error
			if err == nil || protocol.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: error %v, want %s containing %q", tc.name, err, tc.code, tc.msg)
			} else if pe = protocol.AsError(err); pe.Hint == "" && tc.code == protocol.CodeRefused {
				t.Errorf("%s: refusal without a hint: %v", tc.name, err)
			}
			after := h.mgr("arb1").State()
			if after.Term != before.Term || after.Holder != before.Holder || after.Service != before.Service ||
				(after.Pending == nil) != (before.Pending == nil) || len(after.History) != len(before.History) {
				t.Errorf("%s: a refused action changed the state: %+v → %+v", tc.name, before, after)
			}
		}
	}
	t.Run("nothing-pending", func(t *testing.T) {
		check(t, []struct {
			name string
			do   call
			code protocol.Code
			msg  string
		}{
			{"confirm for a site that does not hold the ticket", confirm("b", "ops"), protocol.CodeRefused, "site b does not hold ticket geo"},
			{"confirm for the site that serves", confirm("a", "ops"), protocol.CodeRefused, "already holds ticket geo and serves"},
			{"confirm for an unknown site", confirm("zz", "ops"), protocol.CodeUsage, `no site named "zz"`},
			{"confirm for the arbitrator", confirm("arb", "ops"), protocol.CodeRefused, "arbitrator"},
			{"confirm without an operator", confirm("b", " "), protocol.CodeUsage, "no operator named"},
			{"abort with nothing pending", abort("ops"), protocol.CodeRefused, "nothing to abort"},
			{"grant while another site holds it", grant("b"), protocol.CodeRefused, "site a holds ticket geo"},
			{"grant to the holder", grant("a"), protocol.CodeRefused, "already holds"},
			{"grant to the arbitrator", grant("arb"), protocol.CodeRefused, "never holds the ticket"},
			{"revoke from a site that does not hold it", revoke("b"), protocol.CodeRefused, "does not hold ticket"},
			{"an unknown mode", setMode("sometimes"), protocol.CodeUsage, `no geo mode "sometimes"`},
		})
	})
	t.Run("pending", func(t *testing.T) {
		h.isolate("a")
		h.waitPending("a", "b", "b1", "arb1")
		check(t, []struct {
			name string
			do   call
			code protocol.Code
			msg  string
		}{
			{"confirm for the old site", confirm("a", "ops"), protocol.CodeRefused, "the pending failover is from a to b"},
			{"grant while a failover is pending", grant("a"), protocol.CodeRefused, "is pending"},
			{"revoke while a failover is pending", revoke("b"), protocol.CodeRefused, "is pending"},
		})
		h.net.Heal()
	})
}

// TestTwoVotersManual runs two sites without an arbitrator: allowed in
// manual mode only, and auto mode is refused there too.
func TestTwoVotersManual(t *testing.T) {
	voters := []Voter{{Node: "a1", Site: "a"}, {Node: "b1", Site: "b"}}
	h := newHarness(t, spec{voters: voters, initial: "a", mode: ModeManual})
	h.waitServing("a")
	_, err := h.mgr("b1").SetMode(h.ctx(), ModeAuto, "ops")
	if protocol.CodeOf(err) != protocol.CodeRefused || !strings.Contains(err.Error(), "two voters and no arbitrator") {
		t.Fatalf("auto mode with two voters: %v, want refused", err)
	}
	cfg := h.node("a1").cfg
	cfg.Mode = ModeAuto
	if _, err := Open(cfg, Deps{Stream: nil}); protocol.CodeOf(err) != protocol.CodeRefused {
		t.Fatalf("opening a two-voter deployment in auto mode: %v, want refused", err)
	}
}

// TestBeforeAcquire runs booth's before-acquire handler: a non-zero exit
// vetoes taking the ticket, and the handler sees the ticket and site.
func TestBeforeAcquire(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "before-acquire")
	allow := filepath.Join(dir, "allow")
	envOut := filepath.Join(dir, "env")
	body := "#!/bin/sh\nenv | grep -E '^(HATUI_GEO|BOOTH)_' | sort > " + envOut + ".$$ && mv " + envOut + ".$$ " + envOut + "\n" +
		"[ -e " + allow + " ] && exit 0\necho 'database standby is 3 GB behind' >&2\nexit 3\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, spec{voters: threeSites(), initial: "a", tune: func(c *Config) {
		c.BeforeAcquire = []string{script}
		c.BeforeAcquireTimeout = 10 * tLease
	}})
	h.waitServing("a")
	h.isolate("a")
	ev := h.waitEvent(EventVetoed, "b1")
	if !strings.Contains(ev.Message, "exit status 3") || !strings.Contains(ev.Message, "3 GB behind") {
		t.Errorf("veto event = %q, want the exit status and the handler's output", ev.Message)
	}
	if st := h.status("arb1"); st.Ticket.Holder != "a" || st.Pending != nil {
		t.Fatalf("the ticket moved although the handler vetoed: %+v", st)
	}
	env, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HATUI_GEO_TICKET=geo", "HATUI_GEO_SITE=b", "HATUI_GEO_HOLDER=a", "HATUI_GEO_NODE=b1", "BOOTH_TICKET=geo", "BOOTH_LOCAL=b"} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("the handler's environment lacks %s:\n%s", want, env)
		}
	}
	if err := os.WriteFile(allow, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitPending("a", "b", "b1", "arb1")
}
