package failover

import (
	"strings"
	"testing"

	"github.com/hatui/hatui/protocol"
)

// TestStateRules: the decision log's rules, which make two holders
// impossible whatever the engines propose.
func TestStateRules(t *testing.T) {
	yes := true
	takeover := func(n string, ev Evidence) *command {
		return &command{Op: opAcquire, Node: n, Inc: "9", Epoch: 1, Holder: "pbx-a1", Evidence: ev}
	}
	report := func(obs string, epoch uint64) *command {
		return &command{Op: opReport, Node: obs, Subject: "pbx-a1", Failed: true, Epoch: epoch}
	}
	for _, tc := range []struct {
		name   string
		before []*command
		cmd    *command
		code   protocol.Code // "" accepted
		says   string
		holder string
	}{
		{"one vote is not a majority", []*command{report("pbx-a2", 1)}, takeover("pbx-a2", EvidenceMajority),
			protocol.CodeRefused, "only 1 of 3 voters (pbx-a2) see pbx-a1 failed", "pbx-a1"},
		{"the standby and the witness are", []*command{report("pbx-a2", 1), report("wit-a", 1)}, takeover("pbx-a2", EvidenceMajority),
			"", "", "pbx-a2"},
		{"the taker must be among the voters", []*command{report("wit-a", 1), {Op: opReport, Node: "pbx-a2", Subject: "pbx-a1", Failed: false, Epoch: 1}}, takeover("pbx-a2", EvidenceMajority),
			protocol.CodeRefused, "only 1 of 3", "pbx-a1"},
		{"votes against an older epoch do not count", []*command{report("pbx-a2", 1), report("wit-a", 1),
			{Op: opAcquire, Node: "pbx-a1", Inc: "2", Epoch: 1, Holder: "pbx-a1", Evidence: EvidenceClaim}},
			&command{Op: opAcquire, Node: "pbx-a2", Epoch: 2, Holder: "pbx-a1", Evidence: EvidenceMajority},
			protocol.CodeRefused, "see pbx-a1 failed at epoch 2", "pbx-a1"},
		{"a stale epoch is refused", []*command{report("pbx-a2", 1), report("wit-a", 1), {Op: opAcquire, Node: "pbx-a1", Epoch: 1, Holder: "pbx-a1", Evidence: EvidenceClaim}},
			takeover("pbx-a2", EvidenceMajority), protocol.CodeRefused, "changed: it is at epoch 2", "pbx-a1"},
		{"a node in standby never takes it", []*command{report("pbx-a2", 1), report("wit-a", 1), {Op: opFlags, Node: "pbx-a2", Standby: &yes}},
			takeover("pbx-a2", EvidenceMajority), protocol.CodeRefused, "pbx-a2 is in standby", "pbx-a1"},
		{"nothing is taken from a node in maintenance", []*command{report("pbx-a2", 1), report("wit-a", 1), {Op: opFlags, Node: "pbx-a1", Maint: &yes}},
			takeover("pbx-a2", EvidenceMajority), protocol.CodeRefused, "pbx-a1 is in maintenance", "pbx-a1"},
		{"the witness holds nothing", []*command{report("pbx-a2", 1), report("wit-a", 1)}, takeover("wit-a", EvidenceMajority),
			protocol.CodeRefused, "wit-a is the witness", "pbx-a1"},
		{"fenced evidence needs the fence recorded", nil, takeover("pbx-a2", EvidenceFenced), protocol.CodeRefused, "not recorded as fenced", "pbx-a1"},
		{"with it, no vote is needed", []*command{{Op: opFenced, Node: "pbx-a1"}}, takeover("pbx-a2", EvidenceFenced), "", "", "pbx-a2"},
		{"two-node risk needs two voters and the risk allowed", nil, takeover("pbx-a2", EvidenceTwoNodeRisk), protocol.CodeRefused, "allow_two_node_risk", "pbx-a1"},
		{"a switchover reserves the vacant group", []*command{
			{Op: opBegin, Record: &ActionRecord{Verb: verbSwitchover, From: "pbx-a1", To: "pbx-a2"}},
			{Op: opRelease, Node: "pbx-a1", Epoch: 1}},
			&command{Op: opAcquire, Node: "pbx-a1", Epoch: 1, Evidence: EvidenceVacant}, protocol.CodeRefused, "reserved for pbx-a2", ""},
		{"for its target", []*command{
			{Op: opBegin, Record: &ActionRecord{Verb: verbSwitchover, From: "pbx-a1", To: "pbx-a2"}},
			{Op: opRelease, Node: "pbx-a1", Epoch: 1}},
			&command{Op: opAcquire, Node: "pbx-a2", Epoch: 1, Evidence: EvidenceSwitchover, Action: 1}, "", "", "pbx-a2"},
		{"one action at a time", []*command{{Op: opBegin, Record: &ActionRecord{Verb: verbDisable}}},
			&command{Op: opBegin, Record: &ActionRecord{Verb: verbSwitchover}}, protocol.CodeBusy, "disable is in progress", "pbx-a1"},
		{"only the holder reports phases", nil, &command{Op: opPhase, Node: "pbx-a2", Epoch: 1, Phase: PhaseStarted},
			protocol.CodeRefused, "pbx-a2 does not hold pbx", "pbx-a1"},
		{"a banned node cannot take the group", []*command{{Op: opRelease, Node: "pbx-a1", Epoch: 1, Ban: "asterisk failed 3 times"}},
			&command{Op: opAcquire, Node: "pbx-a1", Epoch: 1, Evidence: EvidenceVacant}, protocol.CodeRefused, "until a cleanup: asterisk failed 3 times", ""},
		{"until its cleanup", []*command{{Op: opRelease, Node: "pbx-a1", Epoch: 1, Ban: "x"}, {Op: opCleanup, Node: "pbx-a1"}, {Op: opCleanupDone, Node: "pbx-a1", Seq: 1}},
			&command{Op: opAcquire, Node: "pbx-a1", Epoch: 1, Evidence: EvidenceVacant}, "", "", "pbx-a1"},
		{"nothing starts in a deactivated cluster", []*command{{Op: opRelease, Node: "pbx-a1", Epoch: 1}, {Op: opDeactivate}},
			&command{Op: opAcquire, Node: "pbx-a2", Epoch: 1, Evidence: EvidenceVacant}, protocol.CodeRefused, "not activated", ""},
		{"unknown node", nil, &command{Op: opHello, Node: "pbx-z9"}, protocol.CodeUnknownNode, "not a voter", "pbx-a1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := fuzzState()
			for _, c := range tc.before {
				if r := st.apply(c); r.Err != nil {
					t.Fatalf("setup %s: %v", c.Op, r.Err)
				}
			}
			r := st.apply(tc.cmd)
			switch {
			case tc.code == "" && r.Err != nil:
				t.Fatalf("refused: %v", r.Err)
			case tc.code != "" && (r.Err == nil || r.Err.Code != tc.code || !strings.Contains(r.Err.Message+r.Err.Hint, tc.says)):
				t.Fatalf("got %v, want %s saying %q", r.Err, tc.code, tc.says)
			}
			if st.Group.Holder != tc.holder {
				t.Fatalf("holder = %q, want %q", st.Group.Holder, tc.holder)
			}
		})
	}
}

// TestFenceClearedByReboot: a fenced node that says hello with a new
// incarnation has booted again and is no longer fenced.
func TestFenceClearedByReboot(t *testing.T) {
	st := fuzzState()
	st.apply(&command{Op: opHello, Node: "pbx-a1", Inc: "a"})
	st.apply(&command{Op: opFenced, Node: "pbx-a1"})
	st.apply(&command{Op: opHello, Node: "pbx-a1", Inc: "a"}) // a late hello of the old run
	if !st.node("pbx-a1").Fenced {
		t.Fatal("a late hello from the fenced run cleared the fence")
	}
	st.apply(&command{Op: opHello, Node: "pbx-a1", Inc: "b"})
	if st.node("pbx-a1").Fenced {
		t.Fatal("the rebooted node is still fenced")
	}
}

// TestCrashExposed: a node is exposed to a crash of its agent alone when
// its hello says it has no watchdog and no other voter's hello says it
// can fence it; the witness holds nothing and a node not yet heard from is
// not judged.
func TestCrashExposed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hellos []*command
		want   string
	}{
		{"nobody said hello", nil, ""},
		{"no watchdog, no fencing", []*command{{Op: opHello, Node: "pbx-a1", Inc: "1"}, {Op: opHello, Node: "pbx-a2", Inc: "1"}, {Op: opHello, Node: "wit-a", Inc: "1"}},
			"pbx-a1 pbx-a2"},
		{"watchdogs", []*command{{Op: opHello, Node: "pbx-a1", Inc: "1", Watchdog: true}, {Op: opHello, Node: "pbx-a2", Inc: "1", Watchdog: true}}, ""},
		{"one-sided fencing", []*command{{Op: opHello, Node: "pbx-a1", Inc: "1", Fences: []string{"pbx-a2"}}, {Op: opHello, Node: "pbx-a2", Inc: "1"}},
			"pbx-a1"},
		{"a node cannot fence itself", []*command{{Op: opHello, Node: "pbx-a1", Inc: "1", Fences: []string{"pbx-a1"}}}, "pbx-a1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Not fuzzState: its voters have all said hello already.
			st := newState()
			st.apply(&command{Op: opInit, Cluster: "site-a", Group: "pbx",
				Voters: []Voter{{Name: "pbx-a1"}, {Name: "pbx-a2"}, {Name: "wit-a", Witness: true}}})
			for _, c := range tc.hellos {
				if r := st.apply(c); r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			if got := strings.Join(st.clone().crashExposed(), " "); got != tc.want {
				t.Errorf("exposed = %q, want %q", got, tc.want)
			}
		})
	}
}
