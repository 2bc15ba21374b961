//go:build linux

package netlab

import (
	"net"
	"strings"
	"testing"
	"time"
)

// BenchmarkHasAddr measures one HasAddr on a host with a few addresses
// (netlink), against the ways it could have been done: net.InterfaceAddrs
// inside Do, and a fork of `ip -n NS addr`.
func BenchmarkHasAddr(b *testing.B) {
	l := New(b)
	n := l.Net("lan", "10.83.1.0/24")
	h := l.Host("node")
	h.Attach(n, "10.83.1.2/24")
	l.ip("-n", h.NS(), "addr", "add", "10.83.1.100/24", "dev", "eth0")
	b.Run("netlink", func(b *testing.B) {
		for b.Loop() {
			if ok, err := h.HasAddr("10.83.1.100"); err != nil || !ok {
				b.Fatalf("HasAddr = %v, %v", ok, err)
			}
		}
	})
	b.Run("do-interfaceaddrs", func(b *testing.B) {
		for b.Loop() {
			var found bool
			err := h.Do(func() error {
				as, err := net.InterfaceAddrs()
				for _, a := range as {
					found = found || strings.HasPrefix(a.String(), "10.83.1.100/")
				}
				return err
			})
			if err != nil || !found {
				b.Fatalf("InterfaceAddrs in Do = %v, %v", found, err)
			}
		}
	})
	b.Run("fork-ip", func(b *testing.B) {
		for b.Loop() {
			out, err := l.run("", "-n", h.NS(), "-br", "addr")
			if err != nil || !strings.Contains(out, "10.83.1.100/") {
				b.Fatalf("ip addr = %v, %s", err, out)
			}
		}
	})
}

// BenchmarkDelayAccuracy sends 200 UDP pings (one every 10 ms) through a
// router delaying 40 ms each way and reports by how much the round trip
// exceeds the 80 ms configured (p50, p99, max), next to the round trip
// without delay for comparison.
func BenchmarkDelayAccuracy(b *testing.B) {
	w := newWAN(b)
	const d = 40 * time.Millisecond
	waitFor(b, "a to reach b", 10*time.Second, func() bool {
		return tcpRoundTrip(w.a, w.tcpB, 500*time.Millisecond) == nil
	})
	base := udpPings(b, w.a, w.udpB, 200, time.Millisecond, 5*time.Second)
	w.r.SetDelay(d)
	b.ResetTimer()
	var extra []time.Duration
	for b.Loop() {
		for _, rtt := range udpPings(b, w.a, w.udpB, 200, 10*time.Millisecond, 5*time.Second) {
			extra = append(extra, rtt-2*d)
		}
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(percentile(extra, 50)), "extra-p50-µs")
	b.ReportMetric(us(percentile(extra, 99)), "extra-p99-µs")
	b.ReportMetric(us(percentile(extra, 100)), "extra-max-µs")
	b.ReportMetric(us(percentile(extra, 0)), "extra-min-µs")
	b.ReportMetric(us(percentile(base, 50)), "nodelay-rtt-p50-µs")
}
