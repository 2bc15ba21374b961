//go:build linux

package netns_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/failover"
	"github.com/hatui/hatui/agent/resource"
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

func crashToService(b *testing.B, o opts) { crashToServiceRuns(b, o, 20) }

func crashToServiceRuns(b *testing.B, o opts, runs int) {
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
	o := benchOpts
	o.vipStop, o.sipStop = "2s", "5s"
	switchoverGaps(b, o)
}

// BenchmarkSwitchoverUnavailabilityWarm is the same with a warm
// kamailio on both nodes: only the address moves.
func BenchmarkSwitchoverUnavailabilityWarm(b *testing.B) {
	o := benchOpts
	o.vipStop, o.sipStop, o.warm = "2s", "5s", true
	switchoverGaps(b, o)
}

// BenchmarkCrashToServiceWarm is BenchmarkCrashToService with a warm
// kamailio on both nodes: the standby's is already running, and the
// takeover delay counts the address's stop budget only.
func BenchmarkCrashToServiceWarm(b *testing.B) {
	o := benchOpts
	o.warm = true
	crashToService(b, o)
}

// BenchmarkCrashToServiceWarmFenced is the warm crash with fence_dummy
// as every node's fencing device.
func BenchmarkCrashToServiceWarmFenced(b *testing.B) {
	o := benchOpts
	o.warm, o.fence = true, "ok"
	crashToService(b, o)
}

func switchoverGaps(b *testing.B, o opts) {
	const runs = 10
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

// recipe is recipes/ha-agent-failover.toml, the configuration an
// installer starts from.
const recipe = "../../../recipes/ha-agent-failover.toml"

// recipeOpts are the recipe's timings as it ships them, untuned: its
// [failover.timing], raft at its defaults, the resources' stop timeouts at
// their types' defaults (vip, and sipp as an exec resource standing for
// the recipe's PBX unit), the recipe's SIP check of the VIP, a witness,
// and a watchdog (the harness's file stand-in; the kernel here has no
// softdog) with the default timeout the agent picks.
func recipeOpts(b *testing.B) opts {
	b.Helper()
	c, err := config.Load(recipe)
	if err != nil {
		b.Fatal(err)
	}
	fc := c.Failover
	t := fc.Timing
	var timing strings.Builder
	timing.WriteString("[failover.timing]\n")
	for _, kv := range []struct {
		key string
		d   config.Duration
	}{{"keepalive", t.Keepalive}, {"warntime", t.WarnTime}, {"deadtime", t.DeadTime}, {"initdead", t.InitDead},
		{"stop_deadline", t.StopDeadline}, {"stop_budget", t.StopBudget}, {"takeover_delay", t.TakeoverDelay},
		{"fence_retry", t.FenceRetry}, {"monitor_interval", t.MonitorInterval}} {
		if kv.d.Duration != 0 {
			fmt.Fprintf(&timing, "%s = %q\n", kv.key, kv.d.Duration)
		}
	}
	if fc.Watchdog == "" || fc.WatchdogTimeout.Duration != 0 || len(fc.Checks) != 1 || fc.Checks[0].Kind != "sip" {
		b.Fatalf("%s no longer has a watchdog with the default timeout and one SIP check: update recipeOpts", recipe)
	}
	ck := fc.Checks[0]
	checks := fmt.Sprintf("[[failover.check]]\nname = %q\nkind = \"sip\"\nresource = \"sip\"\nclass = %q\ninterval = %q\ntimeout = %q\nrise = %d\nfall = %d\nparams = { address = %q }\n",
		ck.Name, ck.Class, ck.Interval.Duration, ck.Timeout.Duration, ck.Rise, ck.Fall, vipAddr+":"+sipPort)
	// The watchdog timeout the agent picks: the takeover delay less two
	// keepalives, in whole seconds.
	budget := resource.DefaultTimeouts("vip").Stop + resource.DefaultTimeouts("exec").Stop
	ec := failover.Config{Timing: failover.Timing{Keepalive: t.Keepalive.Duration, WarnTime: t.WarnTime.Duration, DeadTime: t.DeadTime.Duration, InitDead: t.InitDead.Duration}}.WithDefaults(budget)
	wd := (ec.Timing.TakeoverDelay - 2*ec.Timing.Keepalive).Truncate(time.Second)
	b.Logf("recipe timings: keepalive %v, deadtime %v, stop budget %v, takeover delay %v, watchdog %v",
		ec.Timing.Keepalive, ec.Timing.DeadTime, budget, ec.Timing.TakeoverDelay, wd)
	return opts{witness: true, timing: timing.String(), vipStop: "default", sipStop: "default", checks: &checks, wdReset: wd}
}

// BenchmarkAgentCrashToSIPRecipe kills the agent of the node that holds
// the group (kill -9; node, link, VIP and sipp stay up) 10 times,
// alternating the nodes, with the recipe's timings (recipeOpts). The
// watchdog resets the node when the agent stops feeding it; the standby
// starts the group the takeover delay after its last contact. Measured:
// from the kill to the first SIP 200 the client gets from the other node
// (a probe every 20 ms), and the client's outage (from the reset, when
// the old holder's sipp went, to that answer).
func BenchmarkAgentCrashToSIPRecipe(b *testing.B) {
	const runs = 10
	o := recipeOpts(b)
	for range b.N {
		c := newCluster(b, o)
		p := c.startProber(20 * time.Millisecond)
		h := c.waitStarted(120*time.Second, "")
		c.waitAnswered(p, 60*time.Second, time.Now())
		var toSIP, outage []time.Duration
		for i := range runs {
			sb := c.other(h)
			kill := time.Now()
			h.killAgent()
			waitFor(b, 60*time.Second, "the watchdog to reset "+h.name, func() (bool, string) { return h.lastReset().After(kill), "not yet" })
			reset := h.lastReset()
			waitFor(b, 60*time.Second, sb.name+" to take the group over", func() (bool, string) {
				g, _, err := sb.group()
				return err == nil && g.Active == sb.name, fmt.Sprintf("%+v %v", g, err)
			})
			h.revive()
			if got := c.waitStarted(120*time.Second, h.name); got != sb {
				b.Fatalf("kill %d: the group is on %s", i+1, got.name)
			}
			at := c.waitAnswered(p, 60*time.Second, reset)
			toSIP = append(toSIP, at.Sub(kill))
			outage = append(outage, at.Sub(reset))
			b.Logf("kill %d of %s's agent: reset after %v, SIP from %s after %v (outage %v)", i+1, h.name,
				reset.Sub(kill).Round(time.Millisecond), sb.name, at.Sub(kill).Round(time.Millisecond), at.Sub(reset).Round(time.Millisecond))
			waitStandby(b, h, sb)
			h = sb
		}
		report(b, "agent-kill-to-sip", toSIP)
		report(b, "outage", outage)
	}
}

// BenchmarkCrashToSIPRecipe is BenchmarkCrashToService (the whole node
// crashes: agent, sipp, link) with the recipe's timings, 10 times.
func BenchmarkCrashToSIPRecipe(b *testing.B) { crashToServiceRuns(b, recipeOpts(b), 10) }
