//go:build linux

package geosite_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/geosite"
	"github.com/hatui/hatui/protocol"
)

// TestAcceptanceSiteCutOff cuts site a off entirely (every packet but
// loopback dropped), three times: confirm, abort, and neither.
func TestAcceptanceSiteCutOff(t *testing.T) {
	t.Run("confirm", func(t *testing.T) {
		w := newWAN(t, wanSpec{})
		w.waitAnswers("a", true, 60*time.Second)
		s := w.sample()
		defer s.done()
		w.sites["a"].host.Isolate()
		exp := w.waitPending("a", "b", 40*time.Second, "b", "arb")
		w.waitReach("a", false, 30*time.Second, "b", "arb")
		res, err := w.do("arb", geosite.VerbConfirm, "b")
		if err != nil || !strings.Contains(res.Message, "confirmed by") || !strings.Contains(res.Message, "SITE A IS UNREACHABLE") {
			t.Fatalf("geo confirm b: %+v %v", res, err)
		}
		confirmed := time.Now()
		w.waitAnswers("b", true, 10*time.Second)
		if took := time.Since(confirmed); took > 5*time.Second {
			t.Errorf("b answered %v after the confirm, want at once", took)
		}
		// a, cut off, learns nothing: it stops by itself before the
		// failover's original expiry, as the confirm's warning says.
		agenttest.WaitFor(t, time.Until(exp)+10*time.Second, "cut-off site a to stop by itself", func() (bool, string) {
			return !w.answersOwn("a"), "a still answers inside its namespace"
		})
		if late := time.Since(exp); late > 0 {
			t.Errorf("site a stopped %v after the failover's expiry", late)
		}
		w.sites["a"].host.Rejoin()
		w.waitReach("a", true, 30*time.Second, "arb")
		w.waitAnswers("b", true, 5*time.Second)
		if w.answersOwn("a") {
			t.Error("site a serves again after rejoining")
		}
	})

	t.Run("abort", func(t *testing.T) {
		w := newWAN(t, wanSpec{})
		w.waitAnswers("a", true, 60*time.Second)
		s := w.sample()
		defer s.done()
		w.sites["a"].host.Isolate()
		w.waitPending("a", "b", 40*time.Second, "b", "arb")
		if _, err := w.do("b", geosite.VerbAbort); err != nil {
			t.Fatalf("geo abort: %v", err)
		}
		w.sites["a"].host.Rejoin()
		agenttest.WaitFor(t, 30*time.Second, "site a to hold the ticket again", func() (bool, string) {
			g := w.geo("arb")
			return g != nil && g.Pending == nil && g.Ticket.Holder == "a" && time.Until(g.Ticket.LeaseExpiry) > 0, describe(g)
		})
		w.waitAnswers("a", true, 10*time.Second)
		if s.ever("b") {
			t.Error("site b served although the failover was aborted")
		}
	})

	t.Run("expiry", func(t *testing.T) {
		w := newWAN(t, wanSpec{})
		w.waitAnswers("a", true, 60*time.Second)
		s := w.sample()
		defer s.done()
		w.sites["a"].host.Isolate()
		exp := w.waitPending("a", "b", 40*time.Second, "b", "arb")
		w.waitAnswers("b", true, time.Until(exp)+20*time.Second)
		if early := time.Until(exp); early > 0 {
			t.Errorf("site b served %v before the dead man's timer expired", early)
		}
		if w.answersOwn("a") {
			t.Error("cut-off site a still serves after the expiry")
		}
		w.sites["a"].host.Rejoin()
		w.waitReach("a", true, 30*time.Second, "arb")
		g := w.geo("arb")
		if h := g.History; len(h) == 0 || h[len(h)-1].State != "expired" {
			t.Errorf("history: %+v", g.History)
		}
	})
}

// TestAcceptanceWANSplit splits a | b with the arbitrator reachable only
// from b.
func TestAcceptanceWANSplit(t *testing.T) {
	split := func(w *wan) {
		w.lab.Cut(w.sites["a"].host, w.sites["b"].host)
		w.lab.Cut(w.sites["a"].host, w.sites["arb"].host)
	}
	heal := func(w *wan) {
		w.lab.Heal(w.sites["a"].host, w.sites["b"].host)
		w.lab.Heal(w.sites["a"].host, w.sites["arb"].host)
	}
	t.Run("a serves until the expiry, then stops by itself", func(t *testing.T) {
		w := newWAN(t, wanSpec{})
		w.waitAnswers("a", true, 60*time.Second)
		s := w.sample()
		defer s.done()
		split(w)
		exp := w.waitPending("a", "b", 40*time.Second, "b", "arb")
		if !w.probe.answers(w.sites["a"].ip, time.Second) {
			t.Error("site a stopped serving as soon as the failover became pending")
		}
		w.waitAnswers("b", true, time.Until(exp)+20*time.Second)
		if early := time.Until(exp); early > 0 {
			t.Errorf("site b served %v before the expiry", early)
		}
		w.waitAnswers("a", false, 5*time.Second)
		if !s.ever("a") {
			t.Error("the sampler never saw site a serve")
		}
	})
	t.Run("heal and abort before the expiry", func(t *testing.T) {
		w := newWAN(t, wanSpec{})
		w.waitAnswers("a", true, 60*time.Second)
		s := w.sample()
		defer s.done()
		split(w)
		exp := w.waitPending("a", "b", 40*time.Second, "b", "arb")
		heal(w)
		w.waitReach("a", true, 30*time.Second, "b", "arb")
		if _, err := w.do("arb", geosite.VerbAbort); err != nil {
			t.Fatalf("geo abort: %v", err)
		}
		// Proving that b never starts needs a bounded wait past the
		// expiry the abort cancelled.
		time.Sleep(time.Until(exp) + 3*time.Second)
		if s.ever("b") {
			t.Error("site b served although the failover was aborted")
		}
		if !w.probe.answers(w.sites["a"].ip, time.Second) {
			t.Error("site a stopped serving")
		}
	})
}

// TestAcceptanceArbitratorDown stops the arbitrator while a is healthy;
// it also checks the bad input refusals on the running deployment.
func TestAcceptanceArbitratorDown(t *testing.T) {
	w := newWAN(t, wanSpec{})
	w.waitAnswers("a", true, 60*time.Second)
	for _, tc := range []struct {
		verb string
		args []string
		msg  string
	}{
		{geosite.VerbConfirm, []string{"b"}, "site b does not hold ticket geo"},
		{geosite.VerbAbort, nil, "nothing to abort"},
	} {
		_, err := w.do("b", tc.verb, tc.args...)
		if protocol.CodeOf(err) != protocol.CodeRefused || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %v: %v, want a refusal containing %q", tc.verb, tc.args, err, tc.msg)
		}
	}
	s := w.sample()
	defer s.done()
	w.sites["arb"].proc.Kill()
	// Proving that nothing changes needs a bounded wait: twice the lease
	// plus acquire-after, when a move would have happened.
	time.Sleep(12 * time.Second)
	g := w.geo("a")
	if g == nil || g.Ticket.Holder != "a" || g.Pending != nil {
		t.Errorf("the arbitrator's loss changed the geo state: %s", describe(g))
	}
	if s.ever("b") || !w.probe.answers(w.sites["a"].ip, time.Second) {
		t.Errorf("service moved: a answers=%v, b ever=%v", w.probe.answers(w.sites["a"].ip, time.Second), s.ever("b"))
	}
	for _, site := range g.Sites {
		if site.Name == "arb" && (site.ServiceRole != "none" || site.GeoRole != "arbitrator") {
			t.Errorf("the arbitrator's roles: %+v", site)
		}
	}
	var ss []byte
	if err := w.sites["arb"].host.Do(func() (err error) { ss, err = exec.Command("ss", "-Hlun").Output(); return err }); err == nil && strings.Contains(string(ss), ":5060") {
		t.Errorf("something listens on SIP at the arbitrator: %s", ss)
	}
}

// TestAcceptanceRestartMidCountdown restarts the agents one at a time,
// then all at once, during a countdown: the timer keeps its expiry.
func TestAcceptanceRestartMidCountdown(t *testing.T) {
	w := newWAN(t, wanSpec{deadMan: "40s"})
	w.waitAnswers("a", true, 60*time.Second)
	s := w.sample()
	defer s.done()
	w.sites["a"].host.Isolate()
	exp := w.waitPending("a", "b", 40*time.Second, "b", "arb")
	same := func(names ...string) {
		t.Helper()
		for _, n := range names {
			agenttest.WaitFor(t, 30*time.Second, n+" to show the same expiry", func() (bool, string) {
				g := w.geo(n)
				return g != nil && g.Pending != nil && g.Pending.Expires.Equal(exp) && g.Leader != "", describe(g)
			})
		}
	}
	for _, n := range []string{"b", "arb"} {
		w.stop(n)
		w.start(n)
		same("b", "arb")
	}
	for _, n := range []string{"a", "b", "arb"} {
		w.stop(n)
	}
	for _, n := range []string{"arb", "b", "a"} {
		w.start(n)
	}
	same("b", "arb")
	if s.ever("b") {
		t.Error("site b served before the expiry")
	}
	w.waitAnswers("b", true, time.Until(exp)+20*time.Second)
	if early := time.Until(exp); early > 0 {
		t.Errorf("site b served %v before the expiry", early)
	}
}

// TestAcceptanceManualMode repeats the faults in manual mode: nothing
// moves by itself.
func TestAcceptanceManualMode(t *testing.T) {
	w := newWAN(t, wanSpec{mode: "manual"})
	w.waitAnswers("a", true, 60*time.Second)
	s := w.sample()
	defer s.done()
	quiet := func(what string) {
		t.Helper()
		// Proving nothing moves needs a bounded wait: twice the lease
		// plus acquire-after.
		time.Sleep(12 * time.Second)
		if g := w.geo("b"); g == nil || g.Pending != nil || g.Ticket.Holder != "a" {
			t.Errorf("manual mode, %s: %s", what, describe(g))
		}
		if s.ever("b") {
			t.Errorf("manual mode, %s: site b served", what)
		}
	}
	w.sites["a"].host.Isolate()
	quiet("site a cut off")
	w.sites["a"].host.Rejoin()
	w.lab.Cut(w.sites["a"].host, w.sites["b"].host)
	w.lab.Cut(w.sites["a"].host, w.sites["arb"].host)
	quiet("WAN split")
	w.lab.Heal(w.sites["a"].host, w.sites["b"].host)
	w.lab.Heal(w.sites["a"].host, w.sites["arb"].host)
	w.sites["arb"].proc.Kill()
	quiet("arbitrator down")
	if !w.probe.answers(w.sites["a"].ip, time.Second) {
		t.Error("site a stopped serving in manual mode")
	}
}

// TestAcceptanceTwoVotersRefused runs the real binary on a geo config
// with two voters and no arbitrator: check-config and the agent refuse it.
func TestAcceptanceTwoVotersRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ha-agent")
	}
	bin := haAgent(t)
	dir := t.TempDir()
	cfg := `node = "a1"
site = "a"
state_dir = "` + filepath.Join(dir, "state") + `"
[socket]
path = "` + filepath.Join(dir, "s.sock") + `"
[gossip]
bind = "127.0.87.250:7946"
keys = ["` + agenttest.Key + `"]
[geo]
enabled = true
bind = "127.0.87.250:7950"
service = "exec"
start_command = ["true"]
stop_command = ["true"]
[[geo.voter]]
node = "a1"
site = "a"
addr = "127.0.87.250:7947"
[[geo.voter]]
node = "b1"
site = "b"
addr = "127.0.87.251:7947"
`
	path := filepath.Join(dir, "a1.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check-config", path}, {"--config", path}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "geo.voter: two voters and no arbitrator") || !strings.Contains(string(out), "mode = \"manual\"") {
			t.Errorf("ha-agent %v: %v\n%s\nwant a refusal naming geo.voter and the way out", args, err, out)
		}
	}
}
