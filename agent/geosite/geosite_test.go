package geosite_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/alert"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/geosite"
	"github.com/hatui/hatui/protocol"
)

// TestGeoFeature runs three real agents (sites a and b, the arbitrator)
// plus a node of site b without [geo], with real Serf pools and the geo
// raft log on the peer channel, and drives the geo verbs through the
// protocol as a console would.
func TestGeoFeature(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real agents for about a minute")
	}
	hook := newAlertSink(t)
	d := newDeployment(t, depSpec{nonGeo: true, webhook: hook.URL})
	d.waitServing("a", 30*time.Second)

	t.Run("ticket visible from every agent", func(t *testing.T) {
		d := d.with(t)
		for _, name := range d.order {
			agenttest.WaitFor(t, 20*time.Second, name+"'s status to show site a holding the ticket", func() (bool, string) {
				c := d.connect(name)
				defer c.Close()
				snap, err := c.Status(t.Context(), "")
				if err != nil || snap.Geo == nil {
					return false, "no geo state: " + errString(err)
				}
				g := snap.Geo
				ok := g.Ticket.Holder == "a" && g.Ticket.Name == "geo" && g.Mode == "auto" && g.Leader != "" && len(g.Sites) == 3
				for _, s := range g.Sites {
					want := map[string]string{"a": "primary/serving", "b": "backup/standby", "arb": "arbitrator/none"}[s.Name]
					ok = ok && s.GeoRole+"/"+s.ServiceRole == want && s.Reachable
				}
				return ok, describe(g)
			})
		}
	})

	t.Run("refusals", func(t *testing.T) {
		d := d.with(t)
		tests := []struct {
			name, via, verb string
			args            []string
			code            protocol.Code
			msg             string
		}{
			{"confirm for a site that does not hold the ticket", "b1", geosite.VerbConfirm, []string{"b"}, protocol.CodeRefused, "site b does not hold ticket geo"},
			{"confirm for the serving site", "a1", geosite.VerbConfirm, []string{"a"}, protocol.CodeRefused, "already holds ticket geo"},
			{"abort with nothing pending", "arb1", geosite.VerbAbort, nil, protocol.CodeRefused, "nothing to abort"},
			{"abort routed from a node without [geo]", "b-noc", geosite.VerbAbort, nil, protocol.CodeRefused, "nothing to abort"},
			{"confirm for an unknown site", "b1", geosite.VerbConfirm, []string{"zz"}, protocol.CodeUsage, `no site named "zz"`},
			{"confirm for the arbitrator", "b1", geosite.VerbConfirm, []string{"arb"}, protocol.CodeRefused, "arbitrator"},
			{"grant while another site holds the ticket (auto mode)", "b1", geosite.VerbGrant, []string{"b"}, protocol.CodeRefused, "site a holds ticket geo"},
			{"revoke from a site that does not hold it", "arb1", geosite.VerbRevoke, []string{"b"}, protocol.CodeRefused, "does not hold ticket"},
			{"confirm without a site", "a1", geosite.VerbConfirm, nil, protocol.CodeUsage, "one site name"},
			{"abort naming a site", "a1", geosite.VerbAbort, []string{"b"}, protocol.CodeRefused, "nothing to abort"},
			{"abort with two sites", "a1", geosite.VerbAbort, []string{"a", "b"}, protocol.CodeUsage, "at most"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := d.geo("arb1")
				_, err := d.do(tc.via, tc.verb, tc.args...)
				pe := protocol.AsError(err)
				if err == nil || pe.Code != tc.code || !strings.Contains(pe.Message, tc.msg) {
					t.Fatalf("%s via %s: error %v, want %s containing %q", tc.verb, tc.via, err, tc.code, tc.msg)
				}
				if pe.Code == protocol.CodeRefused && pe.Hint == "" {
					t.Errorf("refusal without a hint: %v", err)
				}
				after := d.geo("arb1")
				if after.Ticket.Holder != before.Ticket.Holder || after.Ticket.Term != before.Ticket.Term || (after.Pending == nil) != (before.Pending == nil) {
					t.Errorf("a refused %s changed the state: %s → %s", tc.verb, describe(before), describe(after))
				}
			})
		}
		if !d.serves("a") || d.serves("b") {
			t.Fatalf("refusals moved the service: a=%v b=%v", d.serves("a"), d.serves("b"))
		}
	})

	t.Run("abort keeps the service where it is", func(t *testing.T) {
		d := d.with(t)
		stop := d.neverBoth()
		defer stop()
		d.kill("a1") // site a lost entirely: its service (the file) stays
		exp := d.waitPending("a", "b", 30*time.Second, "b1", "arb1", "b-noc")
		if until := time.Until(exp); until <= 0 || until > 13*time.Second {
			t.Errorf("dead man's timer expires in %v, want about %s", until, tDeadMan)
		}
		d.waitUnreachable("a", 20*time.Second, "b1", "arb1")
		// Naming another failover than the pending one aborts nothing.
		if _, err := d.do("b-noc", geosite.VerbAbort, "a"); err == nil || !strings.Contains(err.Error(), "not to a") {
			t.Fatalf("geo abort a while the failover goes to b: %v, want refused", err)
		}
		// Routed from the node without [geo] to a geo voter.
		res, err := d.do("b-noc", geosite.VerbAbort, "b")
		if err != nil || !strings.Contains(res.Message, "aborted by") || !strings.Contains(res.Message, "unreachable") {
			t.Fatalf("geo abort: %+v, %v; want an abort warning that a is unreachable", res, err)
		}
		// arb1 applies what the leader committed at the next heartbeat.
		agenttest.WaitFor(t, 5*time.Second, "arb1 to show the failover aborted and a holding the ticket", func() (bool, string) {
			g := d.geo("arb1")
			return g.Pending == nil && g.Ticket.Holder == "a", describe(g)
		})
		g := d.geo("arb1")
		if h := g.History; len(h) == 0 || h[len(h)-1].State != "aborted" || h[len(h)-1].By == "" {
			t.Errorf("history after abort: %+v", h)
		}
		d.start("a1")
		agenttest.WaitFor(t, 30*time.Second, "a1 to renew the ticket after its restart", func() (bool, string) {
			g := d.geo("a1")
			return g != nil && g.Ticket.Holder == "a" && g.Pending == nil && time.Until(g.Ticket.LeaseExpiry) > 0 &&
				g.Leader != "", describe(g)
		})
		if d.serves("b") || !d.serves("a") {
			t.Fatalf("after abort and a's return: a serves=%v b serves=%v; want a only", d.serves("a"), d.serves("b"))
		}
		// The audit trail: an event naming who aborted, on the agent that did it.
		if !hasEvent(d.events("arb1"), "b1", "arb1", "aborted by") && !hasEvent(d.events("b1"), "b1", "arb1", "aborted by") {
			t.Errorf("no event names who aborted; arb1's events: %v", d.events("arb1"))
		}
	})

	t.Run("confirm moves the service at once", func(t *testing.T) {
		d := d.with(t)
		d.kill("a1")
		d.waitPending("a", "b", 30*time.Second, "b1", "arb1")
		d.waitUnreachable("a", 20*time.Second, "b1", "arb1")
		res, err := d.do("arb1", geosite.VerbConfirm, "b")
		if err != nil {
			t.Fatalf("geo confirm b: %v", err)
		}
		if !strings.Contains(res.Message, "confirmed by") || !strings.Contains(res.Message, "SITE A IS UNREACHABLE") {
			t.Errorf("confirm result %q: want who confirmed and the loud warning that a is unreachable", res.Message)
		}
		confirmed := time.Now()
		agenttest.WaitFor(t, 10*time.Second, "site b to serve after confirm", func() (bool, string) {
			return d.serves("b"), describe(d.geo("arb1"))
		})
		if took := time.Since(confirmed); took > 5*time.Second {
			t.Errorf("b started %v after the confirm; want at once", took)
		}
		if !hasEvent(d.events("arb1"), "", "arb1", "confirmed by") {
			t.Errorf("no event names who confirmed; arb1's events: %v", d.events("arb1"))
		}
		// a comes back: it must stop, since the service moved.
		d.start("a1")
		d.waitServing("b", 30*time.Second)
	})

	t.Run("expiry moves the service, and restarts keep the expiry", func(t *testing.T) {
		d := d.with(t)
		stop := d.neverBoth()
		defer stop()
		d.lose("b1")
		exp := d.waitPending("b", "a", 30*time.Second, "a1", "arb1")
		// Restart the other voters one at a time mid-countdown: the
		// timer resumes with the same expiry.
		for _, name := range []string{"arb1", "a1"} {
			if time.Until(exp) < 3*time.Second {
				t.Fatalf("too little of the countdown left to restart %s", name)
			}
			d.restart(name)
			agenttest.WaitFor(t, 20*time.Second, name+" to show the same expiry after its restart", func() (bool, string) {
				g := d.geo(name)
				return g != nil && g.Pending != nil && g.Pending.Expires.Equal(exp), describe(g)
			})
		}
		if d.serves("a") {
			t.Fatal("site a serves before the dead man's timer expired")
		}
		agenttest.WaitFor(t, time.Until(exp)+20*time.Second, "site a to serve at expiry", func() (bool, string) {
			return d.serves("a"), describe(d.geo("arb1"))
		})
		if early := time.Until(exp); early > 0 {
			t.Errorf("site a started %v before the expiry", early)
		}
		g := d.geo("arb1")
		if h := g.History; len(h) == 0 || h[len(h)-1].State != "expired" {
			t.Errorf("history after expiry: %+v", g.History)
		}
		// The expiry is the machine's decision: in the audit log of the
		// agent that made it, by the geo manager.
		agenttest.WaitFor(t, 10*time.Second, "an audit entry of the expiry", func() (bool, string) {
			var seen []string
			for name, m := range d.members {
				b, _ := os.ReadFile(filepath.Join(m.cfg.StateDir, "audit.log"))
				for _, line := range strings.Split(string(b), "\n") {
					if strings.Contains(line, `"action":"geo expired`) {
						seen = append(seen, name+": "+line)
						if strings.Contains(line, `"user":"geo-manager"`) {
							return true, ""
						}
					}
				}
			}
			return false, fmt.Sprint(seen)
		})
		d.start("b1")
		d.waitServing("a", 30*time.Second)
	})

	t.Run("one alert per event, with the site and who", func(t *testing.T) {
		want := map[string]int{"geo-pending": 3, "geo-aborted": 1, "geo-confirmed": 1, "geo-expired": 1}
		agenttest.WaitFor(t, 30*time.Second, "the alerts of the three runs", func() (bool, string) {
			got := hook.count()
			for k, n := range want {
				if got[k] < n {
					return false, fmt.Sprint(got)
				}
			}
			return true, ""
		})
		got := hook.count()
		for k, n := range want {
			if got[k] != n {
				t.Errorf("%d %s alerts, want %d: only the agent that made a change alerts (%v)", got[k], k, n, got)
			}
		}
		for _, a := range hook.all() {
			if a.Site == "" || a.Deployment == "" || a.Subject == "" || !strings.Contains(a.Subject, a.Site) {
				t.Errorf("alert without its site in the subject: %+v", a)
			}
			if (a.Kind == "geo-confirmed" || a.Kind == "geo-aborted") && a.By == "" {
				t.Errorf("%s alert does not say who: %+v", a.Kind, a)
			}
		}
	})
}

// alertSink is a webhook target that keeps what it receives.
type alertSink struct {
	*httptest.Server
	mu     sync.Mutex
	alerts []alert.Alert
}

func newAlertSink(t *testing.T) *alertSink {
	s := &alertSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.alerts = append(s.alerts, a)
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *alertSink) all() []alert.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.alerts)
}

func (s *alertSink) count() map[string]int {
	out := map[string]int{}
	for _, a := range s.all() {
		out[a.Kind]++
	}
	return out
}

// TestRestartAllMidCountdown stops every agent during a countdown and
// starts them again: the timer resumes with the same expiry.
func TestRestartAllMidCountdown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real agents")
	}
	d := newDeployment(t, depSpec{deadMan: "20s"})
	d.waitServing("a", 30*time.Second)
	d.kill("a1")
	exp := d.waitPending("a", "b", 30*time.Second, "b1", "arb1")
	d.kill("b1")
	d.kill("arb1")
	d.start("arb1")
	d.start("b1")
	for _, name := range []string{"b1", "arb1"} {
		agenttest.WaitFor(t, 20*time.Second, name+" to show the same expiry after restarting all", func() (bool, string) {
			g := d.geo(name)
			return g != nil && g.Pending != nil && g.Pending.Expires.Equal(exp) && g.Leader != "", describe(g)
		})
	}
	if d.serves("b") {
		t.Fatal("site b serves before the expiry")
	}
}

// TestManualModeNeverMovesByItself loses site a in manual mode: no
// ticket moves, no timer starts, b never serves; grant moves it by hand.
func TestManualModeNeverMovesByItself(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real agents")
	}
	d := newDeployment(t, depSpec{mode: "manual"})
	d.waitServing("a", 30*time.Second)
	d.lose("a1")
	// Proving that nothing happens needs a bounded wait: the lease plus
	// acquire-after, twice over, is when auto mode would have moved.
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		g := d.geo("arb1")
		if g.Pending != nil || g.Ticket.Holder != "a" || d.serves("b") {
			t.Fatalf("manual mode moved by itself: %s, b serves=%v", describe(g), d.serves("b"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := d.do("b1", geosite.VerbRevoke, "a"); err != nil {
		t.Fatalf("geo revoke a: %v", err)
	}
	res, err := d.do("b1", geosite.VerbGrant, "b")
	if err != nil || !strings.Contains(res.Message, "granting cannot check") {
		t.Fatalf("geo grant b: %+v, %v; want crm_ticket's warning", res, err)
	}
	d.waitServing("b", 20*time.Second)
}

// TestConfigRefusals checks that a geo deployment the library will not
// run is refused with a typed, clear error, by check-config and at start.
func TestConfigRefusals(t *testing.T) {
	base := `node = "a1"
site = "a"
state_dir = "/var/lib/ha-agent"
[gossip]
bind = "10.0.0.1:7946"
keys = ["` + agenttest.Key + `"]
[geo]
enabled = true
bind = "10.0.0.1:7950"
service = "exec"
start_command = ["true"]
stop_command = ["true"]
[[geo.voter]]
node = "a1"
site = "a"
addr = "10.0.0.1:7947"
[[geo.voter]]
node = "b1"
site = "b"
addr = "10.0.1.1:7947"
`
	tests := []struct {
		name, data string
		key        string
		code       protocol.Code // "" when only a config error
		msg        string
	}{
		{"two voters without arbitrator in auto mode", base, "geo.voter", protocol.CodeRefused, "two voters and no arbitrator"},
		{"no service", strings.Replace(base, `service = "exec"`, "", 1), "geo.service", "", "missing"},
		{"exec without stop command", strings.Replace(base, `stop_command = ["true"]`, "", 1), "geo.stop_command", "", "missing"},
		{"node not a voter", strings.Replace(base, `node = "a1"`+"\nsite = \"a\"\naddr", `node = "a9"`+"\nsite = \"a\"\naddr", 1), "geo.voter", "", "not among the geo voters"},
		{"bad voter address", strings.Replace(base, `addr = "10.0.1.1:7947"`, `addr = "b1"`, 1), "geo.voter[1].addr", "", "host:port"},
		{"geo bind on the gossip port", strings.Replace(base, `bind = "10.0.0.1:7950"`, `bind = "10.0.0.1:7946"`, 1), "geo.bind", "", "gossip.bind"},
		{"initial holder unknown", strings.Replace(base, "[geo]\n", "[geo]\nmode = \"manual\"\ninitial_holder = \"zz\"\n", 1), "geo.initial_holder", protocol.CodeUsage, `"zz" is not a site`},
		{"renewal not shorter than the lease", strings.Replace(base, "[geo]\n", "[geo]\nmode = \"manual\"\nlease = \"3s\"\nrenewal = \"3s\"\n", 1), "geo.renewal", protocol.CodeUsage, "shorter than the lease"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("/etc/ha-agent/a1.toml", []byte(tc.data))
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(err.Error(), tc.msg) || ce.Expected == "" {
				t.Fatalf("err = %v (key %q); want a config error for %s containing %q with the expected form", err, keyOf(ce), tc.key, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "/etc/ha-agent/a1.toml: "+tc.key) {
				t.Errorf("message does not name the file and key: %q", err)
			}
			if tc.code != "" && protocol.CodeOf(err) != tc.code {
				t.Errorf("code %s, want %s", protocol.CodeOf(err), tc.code)
			}
		})
	}
	t.Run("manual mode allows two voters", func(t *testing.T) {
		if _, err := config.Parse("a1.toml", []byte(strings.Replace(base, "[geo]\n", "[geo]\nmode = \"manual\"\n", 1))); err != nil {
			t.Fatalf("manual mode with two voters: %v", err)
		}
	})
	t.Run("the agent refuses to start", func(t *testing.T) {
		ip := subnet.Next()
		extra := strings.SplitN(strings.ReplaceAll(strings.ReplaceAll(base, "10.0.0.1", ip), "[geo]\n", "[geo]\nmode = \"manual\"\n"), "[geo]", 2)[1]
		cfg := agenttest.Config(t, agenttest.Node{Name: "a1", Site: "a", IP: ip, Extra: "[geo]" + extra})
		cfg.Geo.Mode = "auto" // as if the file had changed under a running check
		a, err := agent.New(cfg, agent.Options{Features: []agent.FeatureFunc{geosite.New}})
		if err == nil {
			a.Kill()
			t.Fatal("an agent with two geo voters and no arbitrator in auto mode started")
		}
		if protocol.CodeOf(err) != protocol.CodeRefused || !strings.Contains(err.Error(), "arbitrator") {
			t.Fatalf("start-up error %v (code %s); want a refusal naming the arbitrator", err, protocol.CodeOf(err))
		}
	})
}

func keyOf(e *config.Error) string {
	if e == nil {
		return ""
	}
	return e.Key
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// hasEvent reports whether evs has a geo event raised by one of the
// nodes (any when both are "") containing text.
func hasEvent(evs []protocol.Event, n1, n2, text string) bool {
	for _, e := range evs {
		if e.Kind == "geo" && strings.Contains(e.Message, text) && (n1 == "" && n2 == "" || e.Node == n1 || e.Node == n2) {
			return true
		}
	}
	return false
}
