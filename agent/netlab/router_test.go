//go:build linux

package netlab

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// wan is two sites, each a net with one host, joined by a router.
type wan struct {
	lab        *Lab
	east, west *Net
	a, b       *Host
	r          *Router
	udpB, tcpB string // echo servers on b
	udpR       string // echo server on the router itself
}

func newWAN(t testing.TB) *wan {
	t.Helper()
	l := New(t)
	w := &wan{lab: l, east: l.Net("east", "10.82.1.0/24"), west: l.Net("west", "10.82.2.0/24")}
	w.a, w.b = l.Host("a"), l.Host("b")
	// a attaches before the router exists, b after: both get routes.
	w.a.Attach(w.east, "10.82.1.2/24")
	w.r = l.Router("wan", map[*Net]string{w.west: "10.82.2.1/24", w.east: "10.82.1.1/24"})
	w.b.Attach(w.west, "10.82.2.2/24")
	w.udpB = net.JoinHostPort(w.b.IP(w.west), "7100")
	w.tcpB = net.JoinHostPort(w.b.IP(w.west), "7101")
	w.udpR = net.JoinHostPort(w.r.IP(w.east), "7100")
	udpEcho(t, w.b, w.udpB)
	tcpEcho(t, w.b, w.tcpB)
	udpEcho(t, w.r.Host, w.udpR)
	return w
}

// TestRouterDelay: the router forwards between its nets; with a 40 ms
// delay every UDP round trip takes at least 80 ms and a 1 MiB TCP transfer
// arrives intact; traffic to the router itself is not delayed; SetDelay(0)
// restores the kernel's fast path.
func TestRouterDelay(t *testing.T) {
	t.Parallel()
	w := newWAN(t)
	if got := w.r.Iface(w.east); got != "eth0" {
		t.Errorf("router's interface on the first net made is %s, want eth0", got)
	}
	waitFor(t, "a to reach b through the router", 10*time.Second, func() bool {
		return tcpRoundTrip(w.a, w.tcpB, 500*time.Millisecond) == nil
	})

	const d = 40 * time.Millisecond
	w.r.SetDelay(d)
	rtts := udpPings(t, w.a, w.udpB, 20, 5*time.Millisecond, 5*time.Second)
	if m := percentile(rtts, 0); m < 2*d {
		t.Errorf("shortest UDP round trip through a %v router = %v, want at least %v", d, m, 2*d)
	}
	t.Logf("UDP round trips with %v each way: min %v, median %v, max %v", d, percentile(rtts, 0), percentile(rtts, 50), percentile(rtts, 100))

	// The router's own address is delivered locally, before the detour.
	local := udpPings(t, w.a, w.udpR, 10, 0, 5*time.Second)
	if m := percentile(local, 50); m >= d {
		t.Errorf("median round trip to the router itself = %v, want under %v (not delayed)", m, d)
	}

	transfer(t, w.a, w.tcpB, 1<<20)

	w.r.SetDelay(0)
	if out := w.lab.ip("-n", w.r.NS(), "rule", "show"); strings.Contains(out, "lookup "+delayTable) {
		t.Errorf("delay rules still in place after SetDelay(0):\n%s", out)
	}
	fast := udpPings(t, w.a, w.udpB, 20, 0, 5*time.Second)
	if m := percentile(fast, 50); m >= d {
		t.Errorf("median UDP round trip after SetDelay(0) = %v, want under %v", m, d)
	}
	transfer(t, w.a, w.tcpB, 1<<20)

	// And back on, now with an interface attached while the delay is off.
	n3 := w.lab.Net("north", "10.82.3.0/24")
	w.r.Attach(n3, "10.82.3.1/24")
	c := w.lab.Host("c")
	c.Attach(n3, "10.82.3.2/24")
	w.r.SetDelay(d)
	rtts = udpPings(t, c, w.udpB, 10, 5*time.Millisecond, 5*time.Second)
	if m := percentile(rtts, 0); m < 2*d {
		t.Errorf("shortest UDP round trip from a net attached later = %v, want at least %v", m, 2*d)
	}
}

// transfer sends size random bytes from h to the TCP echo at addr and
// checks that the same bytes come back.
func transfer(t *testing.T, h *Host, addr string, size int) {
	t.Helper()
	var c net.Conn
	if err := h.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, size)
	rand.Read(data)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := sha256.New()
	if _, err := io.CopyN(got, c, int64(size)); err != nil {
		t.Fatalf("reading the echo of %d bytes: %v", size, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("sending %d bytes: %v", size, err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got.Sum(nil), want[:]) {
		t.Fatalf("the %d bytes came back changed", size)
	}
	t.Logf("%d bytes there and back in %v", size, time.Since(start).Round(time.Millisecond))
}

// TestCutAcrossRouter cuts two hosts on different nets (matched by
// address, since packets arrive with the router's MAC) and heals them;
// the router itself stays reachable from both.
func TestCutAcrossRouter(t *testing.T) {
	t.Parallel()
	w := newWAN(t)
	tcpA := net.JoinHostPort(w.a.IP(w.east), "7101")
	tcpR := net.JoinHostPort(w.r.IP(w.west), "7102")
	tcpEcho(t, w.a, tcpA)
	tcpEcho(t, w.r.Host, tcpR)
	waitFor(t, "a to reach b through the router", 10*time.Second, func() bool {
		return tcpRoundTrip(w.a, w.tcpB, 500*time.Millisecond) == nil
	})
	w.lab.Cut(w.a, w.b)
	if err := tcpRoundTrip(w.a, w.tcpB, 400*time.Millisecond); err == nil {
		t.Errorf("a reaches b across the router after Cut")
	}
	if err := tcpRoundTrip(w.b, tcpA, 400*time.Millisecond); err == nil {
		t.Errorf("b reaches a across the router after Cut")
	}
	if err := tcpRoundTrip(w.b, tcpR, 2*time.Second); err != nil {
		t.Errorf("b no longer reaches the router after Cut(a, b): %v", err)
	}
	w.lab.Heal(w.a, w.b)
	waitFor(t, "a to reach b again", 10*time.Second, func() bool {
		return tcpRoundTrip(w.a, w.tcpB, 400*time.Millisecond) == nil
	})
	waitFor(t, "b to reach a again", 10*time.Second, func() bool {
		return tcpRoundTrip(w.b, tcpA, 400*time.Millisecond) == nil
	})
}
