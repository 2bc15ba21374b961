package failover

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeHeartbeat: whatever arrives on a serial line or a UDP port,
// decoding never panics, and what decodes re-encodes to the same line.
func FuzzDecodeHeartbeat(f *testing.F) {
	golden, _ := os.ReadFile(filepath.Join("testdata", "heartbeat.golden"))
	f.Add(golden)
	f.Add(heartbeat{Cluster: "c", From: "a", To: "b", Inc: 1, Seq: 1}.encode(testKey))
	f.Add(signLine("HB1 c a b 1 1 0 0 0 "))
	f.Add([]byte("HB1 c a b 1 1 0 0 0 00\n"))
	f.Add([]byte("\x00\xff garbage on the line\r\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := decodeHeartbeat(line, testKey)
		if err != nil {
			return
		}
		if again := h.encode(testKey); !bytes.Equal(bytes.TrimRight(again, "\n"), bytes.TrimRight(line, "\r\n")) {
			// Numbers may be written with leading zeros; only the decoded
			// value must survive.
			if h2, err := decodeHeartbeat(again, testKey); err != nil || h2 != h {
				t.Fatalf("re-encoding %+v gave %q (%v)", h, again, err)
			}
		}
	})
}

// FuzzApplyCommand: any command, even one a buggy or hostile peer
// forwarded, is applied or refused without a panic, and leaves a state
// that still encodes.
func FuzzApplyCommand(f *testing.F) {
	for _, c := range []command{
		{Op: opReport, Node: "pbx-a2", Subject: "pbx-a1", Failed: true, Epoch: 1},
		{Op: opAcquire, Node: "pbx-a2", Epoch: 1, Holder: "pbx-a1", Evidence: EvidenceMajority},
		{Op: opAcquire, Node: "pbx-a1", Epoch: 1, Holder: "pbx-a1", Evidence: EvidenceClaim},
		{Op: opRelease, Node: "pbx-a1", Epoch: 1, Ban: "x"},
		{Op: opBegin, Record: &ActionRecord{Verb: verbSwitchover, From: "pbx-a1", To: "pbx-a2"}},
		{Op: opPrepared, Node: "pbx-a2", Action: 1, Reason: "ok"},
		{Op: opFlags, Node: "wit-a", Standby: new(bool)},
		{Op: opInit, Voters: []Voter{{Name: "x"}}},
	} {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"op":"acquire","evidence":"fenced","node":"pbx-a2","epoch":1,"holder":"pbx-a1"}`))
	f.Add([]byte(`{"op":"action-end","action":99}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st := fuzzState()
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		st.apply(c)
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("state no longer encodes: %v", err)
		}
		if g := st.Group; g.Holder != "" && st.node(g.Holder) == nil {
			t.Fatalf("holder %q is not a voter", g.Holder)
		}
	})
}

// FuzzDecodeForward: a forwarded request from the network never panics
// the leader, and an unsigned one is never accepted.
func FuzzDecodeForward(f *testing.F) {
	good, _ := forwardMAC(testKey, "apply", "pbx-a2", &command{Op: opHello, Node: "pbx-a2"})
	b, _ := json.Marshal(forwardRequest{Kind: "apply", From: "pbx-a2", Cmd: &command{Op: opHello, Node: "pbx-a2"}, MAC: good})
	f.Add(b)
	f.Add([]byte(`{"kind":"ping","from":"x","mac":""}`))
	f.Add([]byte(`{"kind":"apply","from":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeForward(bytes.NewReader(b), testKey)
		if err != nil {
			return
		}
		want, _ := forwardMAC(testKey, req.Kind, req.From, req.Cmd)
		if want != req.MAC {
			t.Fatalf("accepted a request with MAC %q, want %q", req.MAC, want)
		}
	})
}

// fuzzState is a three-voter state with pbx-a1 holding the group.
func fuzzState() *State {
	st := newState()
	st.apply(&command{Op: opInit, Cluster: "site-a", Group: "pbx", Activate: true,
		Voters: []Voter{{Name: "pbx-a1"}, {Name: "pbx-a2"}, {Name: "wit-a", Witness: true}}})
	for _, n := range []string{"pbx-a1", "pbx-a2", "wit-a"} {
		st.apply(&command{Op: opHello, Node: n, Inc: "1"})
	}
	st.apply(&command{Op: opAcquire, Node: "pbx-a1", Inc: "1", Evidence: EvidenceVacant})
	return st
}
