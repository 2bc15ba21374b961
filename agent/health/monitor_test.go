package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/resource"
)

// nextEvent returns the monitor's next event, failing the test if none
// comes within d.
func nextEvent(t *testing.T, m *Monitor, d time.Duration) Event {
	t.Helper()
	select {
	case ev, ok := <-m.Events():
		if !ok {
			t.Fatal("events channel closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
	}
	return Event{}
}

// pbx is a real exec resource in a group, with a health script whose
// outcome a test controls by creating dir/healthy.
type pbx struct {
	dir   string
	log   string
	group *resource.Group
	check string // path of the health script
}

func newPBX(t *testing.T) *pbx {
	t.Helper()
	p := &pbx{dir: t.TempDir()}
	p.log = filepath.Join(p.dir, "calls.log")
	script := writeScript(t, p.dir, "pbx.sh", `
case "$1" in
start) echo start >>`+p.log+`; touch `+p.dir+`/running ;;
stop) echo stop >>`+p.log+`; rm -f `+p.dir+`/running ;;
status) [ -e `+p.dir+`/running ] && exit 0; exit 3 ;;
esac`)
	p.check = writeScript(t, p.dir, "check.sh", `
[ -e `+p.dir+`/healthy ] && { echo "200 OK"; exit 0; }
echo "no SIP answer" >&2
exit 1`)
	r, err := resource.New(resource.Spec{Name: "asterisk", Type: "exec", Params: map[string]string{"path": script}})
	if err != nil {
		t.Fatal(err)
	}
	// The health policy owns the restart budget here; keep the group's
	// migration threshold out of the way.
	p.group, err = resource.NewGroup("pbx", []resource.Resource{r}, resource.GroupConfig{MigrationThreshold: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.group.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pbx) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func (p *pbx) setHealthy(t *testing.T, ok bool) {
	t.Helper()
	f := filepath.Join(p.dir, "healthy")
	if ok {
		os.WriteFile(f, nil, 0o644)
	} else {
		os.Remove(f)
	}
}

// fastSpec is a check on the pbx's health script with short timings.
func (p *pbx) fastSpec(name string, class Class) Spec {
	s := DefaultSpec()
	s.Name, s.Kind, s.Class, s.Resource = name, "exec", class, "asterisk"
	s.Params = map[string]string{"path": p.check}
	// Generous against a loaded CI machine: a forked shell can take
	// tens of milliseconds there, and a timeout is a different failure.
	s.Interval, s.Timeout = 300*time.Millisecond, 250*time.Millisecond
	s.Rise, s.Fall = 1, 2
	return s
}

// runMonitor starts m and stops it at the end of the test.
func runMonitor(t *testing.T, m *Monitor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range m.Events() {
		}
		<-done
		m.Close()
	})
}

// TestMajorCheckRestartsThenEscalates wires a monitor to a real group the
// way the agent does: a restart decision suspends the checks, records the
// failure, recovers the resource and resumes.
func TestMajorCheckRestartsThenEscalates(t *testing.T) {
	ctx := testCtx(t)
	p := newPBX(t)
	s := p.fastSpec("sip", Major)
	s.OnFatal = ActionFailover
	pol, err := NewPolicy(PolicyConfig{MaxRestarts: 2, RestartWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor([]*Check{mustCheck(t, s)}, pol)
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)

	act := func(d Decision) {
		if d.Action != ActionRestart {
			return
		}
		m.Suspend(d.Resource)
		p.group.RecordFailure(d.Resource, "health "+d.Check, d.Reason)
		if err := p.group.Recover(ctx, d.Resource); err != nil {
			t.Errorf("recover: %v", err)
		}
		m.Resume(d.Resource)
	}
	var got []Decision
	for len(got) < 3 {
		if ev := nextEvent(t, m, 10*time.Second); ev.Decision != nil {
			got = append(got, *ev.Decision)
			act(*ev.Decision)
		}
	}
	if got[0].Action != ActionRestart || got[0].Restart != 1 || got[1].Action != ActionRestart || got[1].Restart != 2 {
		t.Fatalf("first decisions = %+v, want restart 1 and 2", got[:2])
	}
	if got[2].Action != ActionFailover || !got[2].Escalated || !strings.Contains(got[2].Reason, "already restarted 2 times") {
		t.Fatalf("third decision = %+v, want an escalated failover", got[2])
	}
	if !strings.Contains(got[0].Reason, "no SIP answer") || got[0].Resource != "asterisk" || got[0].Class != Major {
		t.Fatalf("decision does not say why: %+v", got[0])
	}
	if c, want := p.calls(t), []string{"start", "stop", "start", "stop", "start"}; !slices.Equal(c, want) {
		t.Fatalf("resource calls = %q, want the initial start and exactly two restarts %q", c, want)
	}
	if n := p.group.FailCount("asterisk"); n != 2 {
		t.Fatalf("group fail count = %d, want 2", n)
	}

	// Escalated: the check keeps failing but asks for nothing more.
	for fails := 0; fails < 3*s.Fall; {
		ev := nextEvent(t, m, 10*time.Second)
		if ev.Decision != nil {
			t.Fatalf("decision after escalation: %+v", ev.Decision)
		}
		if ev.Result != nil && !ev.Result.OK {
			fails++
		}
	}

	// Cleanup resets the counts: the next failure restarts again.
	m.Cleanup("asterisk")
	if err := p.group.Cleanup("asterisk"); err != nil {
		t.Fatal(err)
	}
	if n := pol.Restarts("asterisk"); n != 0 || p.group.FailCount("asterisk") != 0 {
		t.Fatalf("after cleanup: policy restarts %d, group fail count %d", n, p.group.FailCount("asterisk"))
	}
	for {
		ev := nextEvent(t, m, 10*time.Second)
		if ev.Decision != nil {
			if ev.Decision.Action != ActionRestart || ev.Decision.Restart != 1 {
				t.Fatalf("first decision after cleanup = %+v, want restart 1", ev.Decision)
			}
			break
		}
	}

	// Healthy again: the check comes up (rise 1) with its failures cleared.
	p.setHealthy(t, true)
	for {
		ev := nextEvent(t, m, 10*time.Second)
		if r := ev.Result; r != nil && r.OK && r.Changed {
			if r.State != StateUp || r.Fails != 0 || r.Output != "200 OK" {
				t.Fatalf("recovery result = %+v", r)
			}
			break
		}
	}
	if cs := m.Checks("asterisk"); len(cs) != 1 || !cs[0].OK || cs[0].Class != "major" || cs[0].Kind != "exec" {
		t.Fatalf("protocol checks = %+v", cs)
	}
}

func TestMinorCheckOnlyLogs(t *testing.T) {
	p := newPBX(t)
	m, err := NewMonitor([]*Check{mustCheck(t, p.fastSpec("cdr-post", Minor))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	var decisions []Decision
	for fails := 0; fails < 4*2; {
		ev := nextEvent(t, m, 10*time.Second)
		if ev.Decision != nil {
			decisions = append(decisions, *ev.Decision)
		}
		if ev.Result != nil && !ev.Result.OK {
			fails = ev.Result.Fails
		}
	}
	if len(decisions) != 1 || decisions[0].Action != ActionLog {
		t.Fatalf("decisions = %+v, want one log", decisions)
	}
	if c := p.calls(t); !slices.Equal(c, []string{"start"}) {
		t.Fatalf("resource calls = %q: a minor fault must not touch the resource", c)
	}
}

func TestFatalCheckActsOnce(t *testing.T) {
	p := newPBX(t)
	s := p.fastSpec("disk", Fatal)
	s.OnFatal = ActionFence
	m, err := NewMonitor([]*Check{mustCheck(t, s)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	var decisions []Decision
	for fails := 0; fails < 4*2; {
		ev := nextEvent(t, m, 10*time.Second)
		if ev.Decision != nil {
			decisions = append(decisions, *ev.Decision)
		}
		if ev.Result != nil && !ev.Result.OK {
			fails = ev.Result.Fails
		}
	}
	if len(decisions) != 1 || decisions[0].Action != ActionFence || decisions[0].Escalated {
		t.Fatalf("decisions = %+v, want one fence", decisions)
	}
}

// TestHysteresis drives the monitor's bookkeeping directly with a known
// sequence of outcomes.
func TestHysteresis(t *testing.T) {
	s := spec("sip", "tcp", map[string]string{"address": "127.0.0.1:1"})
	s.Rise, s.Fall, s.Class, s.Resource = 2, 3, Major, "asterisk"
	m, err := NewMonitor([]*Check{mustCheck(t, s)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := m.checks[0]
	fail := errors.New("no answer")
	type want struct {
		emit     bool
		state    State
		changed  bool
		fails    int
		decision Action
	}
	for i, step := range []struct {
		err error
		want
	}{
		{nil, want{false, StateUnknown, false, 0, ""}},
		{nil, want{true, StateUp, true, 0, ""}},
		{nil, want{false, StateUp, false, 0, ""}},
		{fail, want{true, StateUp, false, 1, ""}},
		{nil, want{true, StateUp, false, 0, ""}}, // count back to zero is news
		{fail, want{true, StateUp, false, 1, ""}},
		{fail, want{true, StateUp, false, 2, ""}},
		{fail, want{true, StateDown, true, 3, ActionRestart}},
		{fail, want{true, StateDown, false, 4, ""}},
		{fail, want{true, StateDown, false, 5, ""}},
		{fail, want{true, StateDown, false, 6, ActionRestart}},
		{nil, want{true, StateDown, false, 0, ""}},
		{nil, want{true, StateUp, true, 0, ""}},
	} {
		evs := m.record(cs, cs.gen, time.Now(), "ok", step.err)
		var res *Result
		var dec *Decision
		for _, ev := range evs {
			if ev.Result != nil {
				res = ev.Result
			}
			if ev.Decision != nil {
				dec = ev.Decision
			}
		}
		if (res != nil) != step.emit {
			t.Fatalf("step %d: result emitted = %v, want %v", i, res != nil, step.emit)
		}
		last := m.Results()[0]
		if last.State != step.state || last.Changed != step.changed || last.Fails != step.fails {
			t.Fatalf("step %d: state %s changed %v fails %d, want %s %v %d", i, last.State, last.Changed, last.Fails, step.state, step.changed, step.fails)
		}
		if got := Action(""); dec != nil {
			got = dec.Action
			if got != step.decision {
				t.Fatalf("step %d: decision %s, want %q", i, got, step.decision)
			}
		} else if step.decision != "" {
			t.Fatalf("step %d: no decision, want %s", i, step.decision)
		}
	}

	// A probe that was in flight across Suspend is dropped.
	gen := cs.gen
	m.Suspend("asterisk")
	if evs := m.record(cs, gen, time.Now(), "", fail); evs != nil {
		t.Fatalf("stale probe produced %v", evs)
	}
	m.Resume("asterisk")
	if evs := m.record(cs, gen, time.Now(), "", fail); evs != nil {
		t.Fatalf("probe from before the suspension produced %v", evs)
	}
}

func TestPolicyWindow(t *testing.T) {
	now := time.Date(2025, 1, 1, 3, 0, 0, 0, time.UTC)
	pol, err := NewPolicy(PolicyConfig{MaxRestarts: 2, RestartWindow: 10 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	f := Failure{Check: "sip", Resource: "asterisk", Class: Major, Fails: 3, Down: true, Output: "timeout"}
	act := func() Action {
		d, ok := pol.Decide(f)
		f.Down = false
		if !ok {
			return ""
		}
		return d.Action
	}
	for i, want := range []Action{ActionRestart, ActionRestart, ActionFailover, ""} {
		if got := act(); got != want {
			t.Fatalf("decision %d = %q, want %q", i, got, want)
		}
	}
	// Twenty minutes on, the old restarts have left the window.
	now = now.Add(20 * time.Minute)
	f.Down = true
	if got := act(); got != ActionRestart {
		t.Fatalf("after the window: %q, want restart", got)
	}
	// Another check on the same resource shares its budget.
	f2 := Failure{Check: "tcp", Resource: "asterisk", Class: Major, Fails: 3, Down: true}
	if d, _ := pol.Decide(f2); d.Action != ActionRestart || d.Restart != 2 {
		t.Fatalf("second check: %+v, want restart 2", d)
	}
	if d, _ := pol.Decide(f2); d.Action != ActionFailover || !d.Escalated {
		t.Fatalf("third restart: %+v, want escalation", d)
	}
	pol.Reset("")
	if pol.Restarts("asterisk") != 0 {
		t.Fatal("Reset did not clear restarts")
	}
	if _, err := NewPolicy(PolicyConfig{MaxRestarts: -1}); err == nil {
		t.Fatal("negative max restarts accepted")
	}
}

func TestResultProto(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Result{Check: "sip", Kind: "sip", Class: Major, State: StateDown, OK: false, Fails: 4, Output: "timeout", At: at}
	p := r.Proto()
	if p.Name != "sip" || p.Kind != "sip" || p.Class != "major" || p.OK || p.Fails != 4 || p.Output != "timeout" || !p.At.Equal(at) {
		t.Fatalf("Proto = %+v", p)
	}
	if !(Result{State: StateUnknown, OK: true}).Proto().OK || (Result{State: StateUnknown}).Proto().OK {
		t.Fatal("unknown state maps wrong")
	}
}
