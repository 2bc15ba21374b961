package failover

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestHeartbeatRoundTrip(t *testing.T) {
	h := heartbeat{Cluster: "site-a", From: "pbx-a1", To: "pbx-a2", Inc: 0xdeadbeef, Seq: 42, AckInc: 7, Ack: 41, HoldUS: 1500}
	line := h.encode(testKey)
	if !bytes.HasSuffix(line, []byte("\n")) || !bytes.HasPrefix(line, []byte("HB1 site-a pbx-a1 pbx-a2 00000000deadbeef 42 ")) {
		t.Fatalf("line = %q", line)
	}
	got, err := decodeHeartbeat(line, testKey)
	if err != nil || got != h {
		t.Fatalf("decode = %+v, %v; want %+v", got, err, h)
	}
	golden := filepath.Join("testdata", "heartbeat.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		os.WriteFile(golden, line, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil || !bytes.Equal(want, line) {
		t.Fatalf("the wire format changed:\n got %q\nwant %q (%v); heartbeats must stay compatible between versions", line, want, err)
	}
}

func TestHeartbeatDecodeErrors(t *testing.T) {
	good := heartbeat{Cluster: "c", From: "a", To: "b", Inc: 1, Seq: 1}.encode(testKey)
	flip := bytes.Clone(good)
	flip[len("HB1 c a b 000000000000000")] = '2' // the incarnation, under the signature
	for _, tc := range []struct {
		name string
		line []byte
		key  []byte
		want error
		says string
	}{
		{"wrong key", good, []byte("another key of sixteen"), errHBMAC, "wrong cluster key"},
		{"tampered", flip, testKey, errHBMAC, ""},
		{"not a heartbeat", []byte("GET / HTTP/1.1\r\n"), testKey, errHBMalformed, "want HB1"},
		{"too long", append(bytes.Repeat([]byte("x"), 600), '\n'), testKey, errHBMalformed, "at most 512"},
		{"short mac", []byte("HB1 c a b 1 1 0 0 0 abcd\n"), testKey, errHBMalformed, "not 16 hex bytes"},
		{"empty", nil, testKey, errHBMalformed, ""},
		{"signed garbage", signLine("HB1 c a b zz 1 0 0 0 "), testKey, errHBMalformed, "not a number"},
		{"signed bad name", signLine("HB1 c a b/c 1 1 0 0 0 "), testKey, errHBMalformed, "not a name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeHeartbeat(tc.line, tc.key)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("decode = %v, want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
}

// signLine signs a hand-made prefix, to reach the parser behind the MAC.
func signLine(prefix string) []byte {
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte(prefix))
	return []byte(prefix + hex.EncodeToString(m.Sum(nil)[:macLen]) + "\n")
}

// TestTrackerContactIsTwoWay: hearing a peer is not contact; an echo of
// our heartbeat is, as of when we sent it. Replays change nothing.
func TestTrackerContactIsTwoWay(t *testing.T) {
	cfgA := HeartbeatConfig{Cluster: "c", Node: "a", Key: testKey, Interval: time.Second}
	cfgB := cfgA
	cfgB.Node = "b"
	a, b := newTracker(cfgA, "b", 1), newTracker(cfgB, "a", 2)
	t0 := time.Unix(1000, 0)
	a.next(t0) // a → b, lost

	hb, _ := decodeHeartbeat(b.next(t0.Add(10*time.Millisecond)), testKey) // b → a, no ack yet
	a.receive(hb, t0.Add(11*time.Millisecond))
	if l := a.link(); !l.Contact.IsZero() || l.Heard != t0.Add(11*time.Millisecond) {
		t.Fatalf("one-way: %+v; want heard but no contact", l)
	}
	la := a.next(t0.Add(100 * time.Millisecond))
	ha, _ := decodeHeartbeat(la, testKey)
	b.receive(ha, t0.Add(101*time.Millisecond))
	hb, _ = decodeHeartbeat(b.next(t0.Add(150*time.Millisecond)), testKey) // echoes a's seq 2
	a.receive(hb, t0.Add(152*time.Millisecond))
	l := a.link()
	if l.Contact != t0.Add(100*time.Millisecond) {
		t.Fatalf("contact = %s, want the send time of the echoed heartbeat", l.Contact)
	}
	if l.RTT != 3*time.Millisecond {
		t.Errorf("rtt = %s, want 52ms minus the 49ms b held it", l.RTT)
	}
	a.receive(hb, t0.Add(5*time.Second)) // replayed
	if a.link().Contact != l.Contact || a.link().Heard != l.Heard {
		t.Fatalf("a replay moved the link: %+v", a.link())
	}
}
