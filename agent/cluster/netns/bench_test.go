//go:build linux

package netns_test

import (
	"slices"
	"testing"
	"time"
)

// benchTiming is a production-like profile made quick: heartbeats every
// 100 ms, failure after 1 s of silence (Serf's tuned LAN profile finds it
// in about the same time), with the stop timeouts of benchOpts (vip
// 200 ms, sip 800 ms) a takeover delay of 1 s + 1 s − 0.1 s + 0.2 s =
// 2.1 s.
const benchTiming = `
[failover.timing]
keepalive = "100ms"
warntime = "500ms"
deadtime = "1s"
initdead = "3s"
fence_retry = "500ms"
monitor_interval = "1s"
[failover.raft]
heartbeat_timeout = "300ms"
election_timeout = "300ms"
leader_lease_timeout = "150ms"
commit_timeout = "5ms"
transport_timeout = "1s"
`

var benchOpts = opts{witness: true, timing: benchTiming, vipStop: "200ms", sipStop: "800ms"}

// quantile returns the q-quantile of sorted ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func report(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(quantile(ds, 0.5).Seconds(), name+"-p50-s")
	b.ReportMetric(quantile(ds, 0.99).Seconds(), name+"-p99-s")
	b.ReportMetric(ds[len(ds)-1].Seconds(), name+"-max-s")
	b.ReportMetric(0, "ns/op")
	b.Logf("%s over %d runs: %v", name, len(ds), ds)
}

// BenchmarkCrashToService crashes the active 20 times (alternating
// n1 and n2: agent and sipp killed, link down) and measures from the
// crash (once the link is down) to the first SIP 200 that the client gets
// for a request sent after it (a probe every 20 ms). Without fencing the
// standby waits out the takeover delay, which guarantees that a holder
// cut off alive has stopped.
func BenchmarkCrashToService(b *testing.B) { crashToService(b, benchOpts) }

// BenchmarkCrashToServiceFenced is the same with fence_dummy as every
// node's fencing device: the standby takes over as soon as the off is
// verified, without the takeover delay.
func BenchmarkCrashToServiceFenced(b *testing.B) {
	o := benchOpts
	o.fence = "ok"
	crashToService(b, o)
}

func crashToService(b *testing.B, o opts) {
	const runs = 20
	for range b.N {
		c := newCluster(b, o)
		p := c.startProber(20 * time.Millisecond)
		h := c.waitStarted(60*time.Second, "")
		c.waitAnswered(p, 30*time.Second, time.Now())
		var ds []time.Duration
		for i := range runs {
			h.crash()
			crash := time.Now() // the service is gone once the link is down
			next := c.waitStarted(60*time.Second, h.name)
			at := c.waitAnswered(p, 60*time.Second, crash)
			ds = append(ds, at.Sub(crash))
			b.Logf("crash %d of %s: service back on %s after %v", i+1, h.name, next.name, at.Sub(crash).Round(time.Millisecond))
			// The crashed node boots again and must be a ready standby
			// before the next crash.
			h.revive()
			waitFor(b, 60*time.Second, h.name+" back as standby", func() (bool, string) {
				// Node scope lists only the answering node: ask h itself.
				g, cl, err := h.group()
				if err != nil {
					return false, err.Error()
				}
				for _, n := range cl.Nodes {
					if n.Name == h.name {
						return n.State == "online" && g.Active == next.name && g.State == "started", string(n.State)
					}
				}
				return false, "not listed"
			})
			h = next
		}
		report(b, "crash-to-service", ds)
	}
}

// BenchmarkSwitchoverUnavailability runs 10 planned switchovers
// (alternating direction) and measures the longest stretch the client
// got no SIP 200 (a probe every 10 ms) around each. The stop timeouts are
// generous: a planned move has no takeover delay to keep short, and a stop
// that times out fails the group (the node must then be fenced).
func BenchmarkSwitchoverUnavailability(b *testing.B) {
	const runs = 10
	o := benchOpts
	o.vipStop, o.sipStop = "2s", "5s"
	for range b.N {
		c := newCluster(b, o)
		p := c.startProber(10 * time.Millisecond)
		h := c.waitStarted(60*time.Second, "")
		c.waitAnswered(p, 30*time.Second, time.Now())
		var ds []time.Duration
		for i := range runs {
			to := c.other(h)
			// The standby must be online and seen before a switchover.
			waitFor(b, 60*time.Second, to.name+" ready", func() (bool, string) {
				// Node scope lists only the answering node: ask to itself.
				_, cl, err := to.group()
				if err != nil {
					return false, err.Error()
				}
				for _, n := range cl.Nodes {
					if n.Name == to.name {
						return n.State == "online", string(n.State)
					}
				}
				return false, "not listed"
			})
			begin := time.Now()
			res, err := to.do("switchover", group, to.name)
			if err != nil || !res.OK {
				b.Fatalf("switchover %d to %s: %+v %v", i+1, to.name, res, err)
			}
			if got := c.waitStarted(60*time.Second, h.name); got != to {
				b.Fatalf("switchover %d: the group is on %s, want %s", i+1, got.name, to.name)
			}
			// Wait for the answers to come back, then a little more so
			// that the gap is closed on both sides.
			back := c.waitAnswered(p, 30*time.Second, time.Now())
			gap := p.longestGap(begin, back)
			ds = append(ds, gap)
			b.Logf("switchover %d %s → %s: %v without SIP answers (verb took %v)", i+1, h.name, to.name, gap.Round(time.Millisecond), back.Sub(begin).Round(time.Millisecond))
			h = to
		}
		report(b, "switchover-gap", ds)
	}
}
