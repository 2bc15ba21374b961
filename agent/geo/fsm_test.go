package geo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/protocol"
)

// t0 is the rule tests' epoch.
var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// rules are the settings of the rule tests, at production scale.
const (
	rLease   = 60 * time.Second
	rAcquire = 30 * time.Second
	rDeadMan = 2 * time.Hour
	rMargin  = 30 * time.Second
)

func initCmd(mode Mode, holder string) *command {
	return &command{Op: opInit, Init: &initArgs{
		Ticket: "geo", Mode: mode, Lease: rLease, AcquireAfter: rAcquire, DeadMan: rDeadMan, History: 3, InitialHolder: holder,
		Sites: []SiteState{{Name: "a", Voters: 1}, {Name: "arb", Arbitrator: true, Voters: 1}, {Name: "b", Voters: 1}},
	}}
}

// at stamps c with t0 + d.
func at(d time.Duration, c *command) *command {
	c.Now = t0.Add(d)
	return c
}

// step is one entry of a rule test and what it must give.
type step struct {
	cmd  *command
	code protocol.Code // "" for success
	msg  string        // part of the error
	then func(t *testing.T, s *State, r *applyResult)
}

// runSteps feeds entries through the encoder, decoder and state machine.
func runSteps(t *testing.T, f *fsm, steps []step) {
	t.Helper()
	for i, st := range steps {
		b, err := st.cmd.encode()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		res := f.Apply(&raft.Log{Index: uint64(i + 1), Data: b}).(*applyResult)
		if got := protocol.CodeOf(errOrNil(res.Err)); got != st.code || (st.msg != "" && (res.Err == nil || !strings.Contains(res.Err.Message, st.msg))) {
			t.Fatalf("step %d (%s): got %v, want code %q containing %q", i, st.cmd.Op, res.Err, st.code, st.msg)
		}
		if st.then != nil {
			st.then(t, f.state(), res)
		}
	}
}

func errOrNil(e *protocol.Error) error {
	if e == nil {
		return nil
	}
	return e
}

func newTestFSM() *fsm { return newFSM(newSignal(), slog.New(slog.DiscardHandler)) }

// built returns a state machine that applied steps, which must all succeed.
func built(tb testing.TB, steps []step) *fsm {
	tb.Helper()
	f := newTestFSM()
	for i, st := range steps {
		b, err := st.cmd.encode()
		if err != nil {
			tb.Fatal(err)
		}
		if res := f.Apply(&raft.Log{Index: uint64(i + 1), Data: b}).(*applyResult); res.Err != nil {
			tb.Fatalf("step %d (%s): %v", i, st.cmd.Op, res.Err)
		}
	}
	return f
}

// running is an auto deployment where a holds the ticket and serves.
func running() []step {
	return []step{
		{cmd: at(0, initCmd(ModeAuto, "a"))},
		{cmd: at(time.Second, &command{Op: opServe, Site: "a", Mode: ModeAuto})},
		{cmd: at(20*time.Second, &command{Op: opRenew, Site: "a", Term: 1, Mode: ModeAuto})},
	}
}

// failedOver adds a's lease running out and b taking the ticket at 2m.
func failedOver() []step {
	return append(running(), step{cmd: at(2*time.Minute, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto})})
}

func TestRules(t *testing.T) {
	leaseEnd := 20*time.Second + rLease // a's last renewal
	tests := []struct {
		name  string
		steps []step
	}{
		{"init gives the initial holder ticket and service", []step{
			{cmd: at(0, initCmd(ModeAuto, "a")), then: func(t *testing.T, s *State, _ *applyResult) {
				if s.Holder != "a" || s.Term != 1 || s.Service != "a" || !s.LeaseExpiry.Equal(t0.Add(rLease)) {
					t.Errorf("state after init: %+v", s)
				}
			}},
			{cmd: at(time.Second, initCmd(ModeManual, "")), code: protocol.CodeRefused, msg: "already initialised"},
		}},
		{"nothing but init and sync before init", []step{
			{cmd: at(0, &command{Op: opSync})},
			{cmd: at(0, &command{Op: opRenew, Site: "a", Term: 1}), code: protocol.CodeRefused, msg: "not initialised"},
		}},
		{"auto mode with an unsafe layout is refused at init", []step{
			{cmd: at(0, func() *command { c := initCmd(ModeAuto, "a"); c.Init.AutoRefusal = "two voters"; return c }()), code: protocol.CodeRefused, msg: "not safe"},
		}},
		{"renewals", append(running(),
			step{cmd: at(30*time.Second, &command{Op: opRenew, Site: "b", Term: 1}), code: protocol.CodeRefused, msg: "does not hold"},
			step{cmd: at(30*time.Second, &command{Op: opRenew, Site: "a", Term: 7}), code: protocol.CodeRefused, msg: "stale"},
			step{cmd: at(30*time.Second, &command{Op: opRenew, Site: "arb", Term: 1}), code: protocol.CodeRefused, msg: "arbitrator"},
			step{cmd: at(30*time.Second, &command{Op: opRenew, Site: "nowhere", Term: 1}), code: protocol.CodeUsage, msg: "no site named"},
			// After the lease ran out, but before anyone took the ticket.
			step{cmd: at(leaseEnd+10*time.Second, &command{Op: opRenew, Site: "a", Term: 1}), then: func(t *testing.T, s *State, _ *applyResult) {
				if !s.LeaseExpiry.Equal(t0.Add(leaseEnd + 10*time.Second + rLease)) {
					t.Errorf("lease after a late renewal: %s", s.LeaseExpiry)
				}
			}},
		)},
		{"the ticket moves only after the lease and acquire-after", append(running(),
			step{cmd: at(leaseEnd, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "runs until"},
			step{cmd: at(leaseEnd+rAcquire-time.Millisecond, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "runs until"},
			step{cmd: at(leaseEnd+rAcquire, &command{Op: opAcquire, Site: "b", Term: 1}), code: protocol.CodeRefused, msg: "manual-mode view"},
			step{cmd: at(leaseEnd+rAcquire, &command{Op: opAcquire, Site: "arb", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "arbitrator"},
			step{cmd: at(leaseEnd+rAcquire, &command{Op: opAcquire, Site: "a", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "already holds"},
			step{cmd: at(leaseEnd+rAcquire, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), then: func(t *testing.T, s *State, r *applyResult) {
				p := s.Pending
				if s.Holder != "b" || s.Term != 2 || s.Service != "a" || p == nil || p.From != "a" || p.To != "b" ||
					!p.Expires.Equal(t0.Add(leaseEnd+rAcquire+rDeadMan)) || r.Failover == nil {
					t.Errorf("after the move: %+v pending %+v", s, p)
				}
			}},
			step{cmd: at(leaseEnd+rAcquire, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "already holds"},
		)},
		{"a serving site that has not acknowledged auto mode holds the ticket", []step{
			{cmd: at(0, initCmd(ModeAuto, "a"))},
			{cmd: at(time.Second, &command{Op: opServe, Site: "a"})}, // no mode: no acknowledgement
			{cmd: at(time.Hour, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "has not acknowledged auto mode"},
			{cmd: at(time.Hour, &command{Op: opStopped, Site: "a", Mode: ModeAuto, Gen: 1})},
			{cmd: at(time.Hour, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Pending == nil || s.Pending.From != "a" {
					t.Errorf("a's service is designated and must hand over: %+v", s)
				}
			}},
		}},
		{"the dead man's timer expires", append(failedOver(),
			step{cmd: at(2*time.Minute+rDeadMan-time.Second, &command{Op: opExpire}), code: protocol.CodeRefused, msg: "expires at"},
			step{cmd: at(2*time.Minute+rDeadMan, &command{Op: opServe, Site: "b", Mode: ModeAuto}), code: protocol.CodeBusy, msg: "not designated"},
			step{cmd: at(2*time.Minute+rDeadMan, &command{Op: opExpire}), then: func(t *testing.T, s *State, r *applyResult) {
				a := s.site("a")
				if s.Service != "b" || s.Pending != nil || !a.StopBy.Equal(t0.Add(2*time.Minute+rDeadMan)) || len(s.History) != 1 || s.History[0].State != FailoverExpired {
					t.Errorf("after the expiry: %+v", s)
				}
			}},
			// a recorded serving and its StopBy has come: b may start, and
			// a counts as stopped by its own rules.
			step{cmd: at(2*time.Minute+rDeadMan, &command{Op: opServe, Site: "b", Mode: ModeAuto}), then: func(t *testing.T, s *State, r *applyResult) {
				if !s.site("b").Serving || s.site("a").Serving {
					t.Errorf("after b's start: %+v", s.Sites)
				}
			}},
		)},
		{"a confirm with the old site reachable is an ordered handover", append(failedOver(),
			step{cmd: at(3*time.Minute, &command{Op: opConfirm, Site: "a", Who: "ops"}), code: protocol.CodeRefused, msg: "the pending failover is from a to b"},
			step{cmd: at(3*time.Minute, &command{Op: opConfirm, Site: "b", Who: "ops"}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Service != "b" || s.Forced || r.Forced || len(r.Serving) != 1 || s.History[0].By != "ops" {
					t.Errorf("after confirm: %+v result %+v", s, r)
				}
			}},
			step{cmd: at(3*time.Minute, &command{Op: opServe, Site: "b", Mode: ModeAuto}), code: protocol.CodeBusy, msg: "site a has not recorded that it stopped"},
			step{cmd: at(3*time.Minute+time.Second, &command{Op: opStopped, Site: "a", Mode: ModeAuto, Gen: 0}), code: protocol.CodeRefused, msg: "after this stop"},
			step{cmd: at(3*time.Minute+time.Second, &command{Op: opStopped, Site: "a", Mode: ModeAuto, Gen: 1})},
			step{cmd: at(3*time.Minute+2*time.Second, &command{Op: opServe, Site: "b", Mode: ModeAuto})},
		)},
		{"a confirm with the old site unreachable is forced", append(failedOver(),
			step{cmd: at(3*time.Minute, &command{Op: opConfirm, Site: "b", Who: "ops", Forced: true}), then: func(t *testing.T, s *State, r *applyResult) {
				if !s.Forced || !r.Forced {
					t.Errorf("forced confirm: %+v", s)
				}
			}},
			step{cmd: at(3*time.Minute, &command{Op: opServe, Site: "b", Mode: ModeAuto}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Forced || !s.site("a").Serving || !s.site("b").Serving {
					t.Errorf("b started on the operator's word; a stays recorded serving: %+v", s.Sites)
				}
			}},
		)},
		{"abort gives the ticket back", append(failedOver(),
			step{cmd: at(3*time.Minute, &command{Op: opAbort, Who: "ops"}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Holder != "a" || s.Term != 3 || s.Service != "a" || s.Pending != nil || !s.LeaseExpiry.Equal(t0.Add(3*time.Minute+rLease)) {
					t.Errorf("after abort: %+v", s)
				}
			}},
			step{cmd: at(3*time.Minute, &command{Op: opAbort, Who: "ops"}), code: protocol.CodeRefused, msg: "nothing to abort"},
		)},
		{"the old site taking the ticket back ends the failover", append(failedOver(),
			step{cmd: at(2*time.Minute+rLease+rAcquire, &command{Op: opAcquire, Site: "a", Term: 2, Mode: ModeAuto}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Holder != "a" || s.Pending != nil || r.Superseded == nil || r.Failover != nil || s.History[0].State != FailoverAborted {
					t.Errorf("after a took the ticket back: %+v", s)
				}
			}},
		)},
		{"grant and revoke", append(running(),
			step{cmd: at(time.Minute, &command{Op: opGrant, Site: "b", Who: "ops"}), code: protocol.CodeRefused, msg: "site a holds"},
			step{cmd: at(time.Minute, &command{Op: opRevoke, Site: "b", Who: "ops"}), code: protocol.CodeRefused, msg: "does not hold"},
			step{cmd: at(time.Minute, &command{Op: opRevoke, Site: "a", Who: "ops"}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Holder != "" || s.Service != "" || s.Term != 2 {
					t.Errorf("after revoke: %+v", s)
				}
			}},
			step{cmd: at(2*time.Hour, &command{Op: opAcquire, Site: "b", Term: 2, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "not granted"},
			step{cmd: at(time.Minute, &command{Op: opGrant, Site: "b", Who: "ops", Forced: true}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Holder != "b" || s.Service != "b" || !s.Forced || len(r.Serving) != 1 || r.Serving[0] != "a" {
					t.Errorf("after grant: %+v %+v", s, r)
				}
			}},
		)},
		{"manual mode", append(running(),
			step{cmd: at(time.Minute, &command{Op: opMode, Mode: ModeManual, Who: "ops"}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.Mode != ModeManual || s.site("a").KnowsAuto {
					t.Errorf("after manual: %+v", s)
				}
			}},
			step{cmd: at(time.Hour, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "manual mode"},
			step{cmd: at(time.Hour, &command{Op: opMode, Mode: ModeAuto, Who: "ops"}), then: func(t *testing.T, s *State, r *applyResult) {
				if !s.LeaseExpiry.Equal(t0.Add(time.Hour + rLease)) {
					t.Errorf("switching to auto gives the holder a fresh lease: %s", s.LeaseExpiry)
				}
			}},
			step{cmd: at(3*time.Hour, &command{Op: opAcquire, Site: "b", Term: 1, Mode: ModeAuto}), code: protocol.CodeRefused, msg: "has not acknowledged auto mode"},
		)},
		{"a stop record older than a start is refused", append(running(),
			step{cmd: at(time.Minute, &command{Op: opServe, Site: "a", Mode: ModeAuto}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.site("a").Gen != 2 || r.Gen != 2 {
					t.Errorf("a second agent's start: gen %d", s.site("a").Gen)
				}
			}},
			step{cmd: at(time.Minute, &command{Op: opStopped, Site: "a", Gen: 1}), code: protocol.CodeRefused, msg: "generation 2"},
			step{cmd: at(time.Minute, &command{Op: opStopped, Site: "a", Gen: 2}), then: func(t *testing.T, s *State, r *applyResult) {
				if s.site("a").Serving {
					t.Errorf("a current stop record was not taken")
				}
			}},
		)},
		{"the history is bounded", func() []step {
			s := running()
			for i := range 5 {
				d := time.Duration(i+1) * 10 * time.Hour
				s = append(s,
					step{cmd: at(d, &command{Op: opAcquire, Site: "b", Term: uint64(2*i + 1), Mode: ModeAuto})},
					step{cmd: at(d, &command{Op: opAbort, Who: "ops"})},
				)
			}
			s = append(s, step{cmd: at(100*time.Hour, &command{Op: opSync}), then: func(t *testing.T, s *State, r *applyResult) {
				if len(s.History) != 3 || !s.History[2].Ended.Equal(t0.Add(50*time.Hour)) {
					t.Errorf("history: %+v", s.History)
				}
			}})
			return s
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, newTestFSM(), tc.steps)
		})
	}
}

func TestServiceDeadline(t *testing.T) {
	f := newTestFSM()
	runSteps(t, f, failedOver())
	st := f.state()
	tests := []struct {
		name    string
		st      func() *State
		site    string
		want    time.Time
		limited bool
	}{
		{"the old site while the failover is pending", func() *State { return st }, "a", st.Pending.Expires.Add(-rMargin), true},
		{"the holder", func() *State { return st }, "b", st.LeaseExpiry.Add(rAcquire + rDeadMan - rMargin), true},
		{"manual mode", func() *State { s := st.clone(); s.Mode = ModeManual; return s }, "a", time.Time{}, false},
		{"uninitialised", func() *State { return &State{} }, "a", time.Time{}, true},
		{"neither", func() *State { s := st.clone(); s.Pending = nil; return s }, "a", time.Time{}, true},
	}
	for _, tc := range tests {
		got, limited := tc.st().serviceDeadline(tc.site, rMargin)
		if !got.Equal(tc.want) || limited != tc.limited {
			t.Errorf("%s: deadline %s, %v; want %s, %v", tc.name, got, limited, tc.want, tc.limited)
		}
	}
	// The holder's own deadline is never later than the earliest moment the
	// other site could start by itself: a failover started at the first
	// allowed moment expires margin after it.
	f2 := built(t, running())
	dl, _ := f2.state().serviceDeadline("a", rMargin)
	free := f2.state().LeaseExpiry.Add(rAcquire)
	if got := free.Add(rDeadMan).Sub(dl); got != rMargin {
		t.Errorf("holder stops %s before the earliest automatic start, want the margin %s", got, rMargin)
	}
}

func TestSnapshotRestore(t *testing.T) {
	f := newTestFSM()
	runSteps(t, f, append(failedOver(), step{cmd: at(3*time.Minute, &command{Op: opConfirm, Site: "b", Who: "ops"})}))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newTestFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	want, _ := json.Marshal(f.state())
	got, _ := json.Marshal(g.state())
	if !bytes.Equal(want, got) {
		t.Errorf("restored state differs:\n got %s\nwant %s", got, want)
	}
	for _, bad := range []string{"", "{", `{"version":9}`, `{"version":1,"initialized":true,"mode":"auto","sites":[{"name":"a"}],"holder":"zz","history_limit":1}`} {
		if err := g.Restore(io.NopCloser(strings.NewReader(bad))); err == nil {
			t.Errorf("restore of %q succeeded", bad)
		}
	}
	if got2, _ := json.Marshal(g.state()); !bytes.Equal(got2, got) {
		t.Errorf("a failed restore changed the state")
	}
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// TestDecodeExamples decodes the examples in testdata/entries.txt.
func TestDecodeExamples(t *testing.T) {
	for _, ex := range loadExamples(t) {
		_, err := decodeCommand([]byte(ex.entry))
		switch {
		case ex.want == "" && err != nil:
			t.Errorf("line %d: %v", ex.line, err)
		case ex.want != "" && (err == nil || !strings.Contains(err.Error(), ex.want)):
			t.Errorf("line %d: error %v, want one saying %q", ex.line, err, ex.want)
		}
	}
	big := `{"v":1,"op":"sync","now":"2025-03-01T13:00:00Z","who":"` + strings.Repeat("x", maxCommandBytes) + `"}`
	if _, err := decodeCommand([]byte(big)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("an oversized entry: %v", err)
	}
}

type example struct {
	line        int
	want, entry string
}

func loadExamples(tb testing.TB) []example {
	tb.Helper()
	f, err := os.Open("testdata/entries.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []example
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		switch {
		case parts[0] == "ok" && len(parts) == 2:
			out = append(out, example{line: n, entry: parts[1]})
		case parts[0] == "bad" && len(parts) == 3:
			out = append(out, example{line: n, want: parts[1], entry: parts[2]})
		default:
			tb.Fatalf("testdata/entries.txt:%d: malformed line", n)
		}
	}
	return out
}

// FuzzDecodeCommand feeds arbitrary bytes to the entry decoder: it must
// not panic, and what it accepts must encode back to an equal entry.
func FuzzDecodeCommand(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add([]byte(ex.entry))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		again, err := c.encode()
		if err != nil {
			t.Fatalf("a decoded entry does not encode: %v", err)
		}
		c2, err := decodeCommand(again)
		if err != nil {
			t.Fatalf("a re-encoded entry does not decode: %v\n%s", err, again)
		}
		a, _ := json.Marshal(c)
		b2, _ := json.Marshal(c2)
		if !bytes.Equal(a, b2) {
			t.Fatalf("round trip changed the entry:\n%s\n%s", a, b2)
		}
	})
}

// FuzzFSMApply applies an arbitrary entry to a state with a failover
// pending: the state machine must not panic, and must leave a state that
// keeps its invariants.
func FuzzFSMApply(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add([]byte(ex.entry))
	}
	baseState := built(f, failedOver()).state()
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := newTestFSM()
		fs.st = baseState.clone()
		res, ok := fs.Apply(&raft.Log{Index: 99, Data: b}).(*applyResult)
		if !ok || res == nil {
			t.Fatalf("Apply returned %T", res)
		}
		st := fs.state()
		if err := st.check(); err != nil {
			t.Fatalf("the state broke: %v after %q", err, b)
		}
		if res.Err != nil && st.Term != baseState.Term {
			t.Fatalf("a refused entry changed the state: %v", res.Err)
		}
	})
}

// FuzzRestore restores arbitrary snapshots: no panic, and a failed
// restore leaves the state as it was.
func FuzzRestore(f *testing.F) {
	good, _ := json.Marshal(built(f, failedOver()).state())
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"initialized":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g := newTestFSM()
		before, _ := json.Marshal(g.state())
		if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			if after, _ := json.Marshal(g.state()); !bytes.Equal(before, after) {
				t.Fatalf("a failed restore changed the state")
			}
			return
		}
		if err := g.state().check(); err != nil {
			t.Fatalf("a restored state breaks the invariants: %v", err)
		}
	})
}

// BenchmarkApplyRenew measures one renewal through decoder and state
// machine, the geo manager's most frequent entry.
func BenchmarkApplyRenew(b *testing.B) {
	f := built(b, running())
	c := at(time.Minute, &command{Op: opRenew, Site: "a", Term: 1, Mode: ModeAuto})
	data, _ := c.encode()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f.Apply(&raft.Log{Index: uint64(i + 10), Data: data})
	}
}
