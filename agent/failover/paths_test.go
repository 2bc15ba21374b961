package failover

import (
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/membership"
)

func hbConfig(node string) HeartbeatConfig {
	return HeartbeatConfig{Cluster: "site-a", Node: node, Key: testKey, Interval: 20 * time.Millisecond}
}

// serialConfig is hbConfig at a pace a 115200 baud line can carry.
func serialConfig(node string) HeartbeatConfig {
	c := hbConfig(node)
	c.Interval = 50 * time.Millisecond
	return c
}

// waitLink waits until path's link to peer satisfies cond.
func waitLink(t *testing.T, what string, p Path, peer string, cond func(PathLink) bool) PathLink {
	t.Helper()
	var got PathLink
	waitFor(t, what, 5*time.Second, func() bool {
		for _, l := range p.Links() {
			if l.Peer == peer {
				got = l
				return cond(l)
			}
		}
		return false
	})
	return got
}

// freeUDP returns a loopback address with a UDP port nobody uses.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

func fresh(l PathLink) bool { return time.Since(l.Contact) < 300*time.Millisecond }

func TestNICPath(t *testing.T) {
	addrA, addrB := freeUDP(t), freeUDP(t)
	a, err := NewNICPath(NICConfig{HeartbeatConfig: hbConfig("pbx-a1"), Local: addrA, Peers: map[string]string{"pbx-a2": freeUDP(t)}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewNICPath(NICConfig{HeartbeatConfig: hbConfig("pbx-a2"), Local: addrB, Peers: map[string]string{"pbx-a1": addrA}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// a sends to a dead port: a hears b, but without echoes that is no
	// contact.
	l := waitLink(t, "pbx-a1 to hear pbx-a2", a, "pbx-a2", func(l PathLink) bool { return !l.Heard.IsZero() })
	if !l.Contact.IsZero() {
		t.Fatalf("one-way traffic counted as contact: %+v", l)
	}
	a.Close()
	// Both ways: contact on both ends.
	a, err = NewNICPath(NICConfig{HeartbeatConfig: hbConfig("pbx-a1"), Local: addrA, Peers: map[string]string{"pbx-a2": addrB}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitLink(t, "pbx-a1 contact", a, "pbx-a2", fresh)
	l = waitLink(t, "pbx-a2 contact", b, "pbx-a1", fresh)
	if l.RTT <= 0 || l.RTT > 100*time.Millisecond || l.Detail != "" {
		t.Errorf("link = %+v; want a small RTT and no detail", l)
	}

	// A node with another key is shown on the link, not accepted.
	wrong := hbConfig("pbx-a1")
	wrong.Key = []byte("not the cluster key at all")
	a.Close() // the impostor takes pbx-a1's address
	c, err := NewNICPath(NICConfig{HeartbeatConfig: wrong, Local: addrA, Peers: map[string]string{"pbx-a2": addrB}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitLink(t, "the bad key to show", b, "pbx-a1", func(l PathLink) bool { return strings.Contains(l.Detail, "wrong cluster key") })
}

func TestNICPathConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  NICConfig
		says string
	}{
		{NICConfig{HeartbeatConfig: hbConfig("a"), Local: "127.0.0.1:0"}, "no peers"},
		{NICConfig{HeartbeatConfig: HeartbeatConfig{Cluster: "c", Node: "a", Key: []byte("short"), Interval: time.Second}, Local: "127.0.0.1:0", Peers: map[string]string{"b": "127.0.0.1:1"}}, "at least 16 random bytes"},
		{NICConfig{HeartbeatConfig: hbConfig("a"), Local: "10.255.255.1:694", Peers: map[string]string{"b": "127.0.0.1:1"}}, "is the address configured on this node?"},
		{NICConfig{HeartbeatConfig: hbConfig("a"), Local: "127.0.0.1:0", Peers: map[string]string{"b": "nowhere"}}, `address of b "nowhere"`},
	} {
		if _, err := NewNICPath(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("NewNICPath(%+v) = %v, want %q", tc.cfg, err, tc.says)
		}
	}
}

// TestSerialPath runs both ends of a null-modem cable through real ttys
// (pty slaves) opened with tarm/serial.
func TestSerialPath(t *testing.T) {
	cab := newCable(t)
	a, err := NewSerialPath(SerialConfig{HeartbeatConfig: serialConfig("pbx-a1"), Device: cab.paths[0], Baud: 115200, Peer: "pbx-a2"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewSerialPath(SerialConfig{HeartbeatConfig: serialConfig("pbx-a2"), Device: cab.paths[1], Baud: 115200, Peer: "pbx-a1"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitLink(t, "contact over the cable", a, "pbx-a2", fresh)
	waitLink(t, "contact over the cable", b, "pbx-a1", fresh)

	// A second program on the same port is refused, and says why.
	c, err := NewSerialPath(SerialConfig{HeartbeatConfig: serialConfig("pbx-a1"), Device: cab.paths[0], Baud: 115200, Peer: "pbx-a2"})
	if err != nil {
		t.Fatal(err)
	}
	waitLink(t, "the lock to be reported", c, "pbx-a2", func(l PathLink) bool { return strings.Contains(l.Detail, "in use by another program") })
	c.Close()

	// Line noise is skipped; the link resynchronises at the next newline.
	cab.noise(1, []byte("\x00\xffgarbage\r\nHB1 junk\n"))
	waitLink(t, "the noise to be reported", b, "pbx-a1", func(l PathLink) bool { return strings.Contains(l.Detail, "malformed heartbeat") })
	waitLink(t, "contact after the noise", b, "pbx-a1", func(l PathLink) bool { return fresh(l) && l.Detail == "" })

	// Unplugged: contact stops on both ends.
	cab.cut.Store(true)
	cutAt := time.Now()
	time.Sleep(100 * time.Millisecond)
	for _, p := range []*SerialPath{a, b} {
		if l := p.Links()[0]; !l.Contact.Before(cutAt) {
			t.Errorf("contact at %s after the cable was cut at %s", l.Contact, cutAt)
		}
	}
	cab.cut.Store(false)
	waitLink(t, "contact after replugging", a, "pbx-a2", fresh)
}

func TestSerialPathConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  SerialConfig
		says string
	}{
		{SerialConfig{HeartbeatConfig: serialConfig("a"), Peer: "b"}, "no device"},
		{SerialConfig{HeartbeatConfig: serialConfig("a"), Device: "/dev/ttyS0", Peer: "a"}, "is not the name of the node at the other end"},
		{SerialConfig{HeartbeatConfig: serialConfig("a"), Device: "/dev/ttyS0", Peer: "b", Baud: 9600}, "longer than the keepalive"},
	} {
		if _, err := NewSerialPath(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("NewSerialPath(%+v) = %v, want %q", tc.cfg, err, tc.says)
		}
	}
	// A device that is not there is a link detail, not a start failure:
	// a USB adapter may appear later.
	slow := serialConfig("a")
	slow.Interval = 200 * time.Millisecond
	p, err := NewSerialPath(SerialConfig{HeartbeatConfig: slow, Device: "/dev/ttyHATUI-missing", Peer: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitLink(t, "the missing device to show", p, "b", func(l PathLink) bool { return strings.Contains(l.Detail, "/dev/ttyHATUI-missing") })
}

// TestSerfPath watches a real Serf pool: alive members are in contact,
// a member that shut down stops being so.
func TestSerfPath(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	start := func(name string) *membership.Pool {
		p, err := membership.Start(membership.Options{Name: name, BindAddr: "127.0.0.1:0", Keys: [][]byte{key}, Timings: testSerf})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := start("pbx-a1"), start("pbx-a2")
	defer a.Shutdown()
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	p, err := NewSerfPath(a, []string{"pbx-a2", "wit-a"}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitLink(t, "pbx-a2 alive in Serf", p, "pbx-a2", fresh)
	if l := waitLink(t, "wit-a", p, "wit-a", func(PathLink) bool { return true }); !l.Contact.IsZero() || !strings.Contains(l.Detail, "not a member") {
		t.Errorf("a voter missing from the pool = %+v", l)
	}
	b.Shutdown()
	l := waitLink(t, "pbx-a2 to fail in Serf", p, "pbx-a2", func(l PathLink) bool { return l.Detail != "" })
	if !strings.Contains(l.Detail, "serf says failed") {
		t.Errorf("after the crash: %+v", l)
	}
	// The last contact stays where it was while the member is failed:
	// several polls later it has not moved.
	seen := time.Now()
	later := waitLink(t, "five more polls", p, "pbx-a2", func(PathLink) bool { return time.Since(seen) > 100*time.Millisecond })
	if !later.Contact.Equal(l.Contact) || !later.Contact.Before(seen) {
		t.Errorf("the contact of a failed member moved: %s, then %s", l.Contact, later.Contact)
	}
}
