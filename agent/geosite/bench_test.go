//go:build linux

package geosite_test

import (
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/geosite"
)

// BenchmarkGeoConfirmToSIP measures the time from "geo confirm" to the
// new site answering SIP OPTIONS, over the 40 ms WAN: the serving site is
// cut off entirely until the ticket moves and the others see it
// unreachable, then the operator confirms (the commit crosses the WAN to
// the leader) and the new site starts sipp. The old site rejoins after
// each round and stops; each iteration moves the service to the other
// site.
//
//	go test -run '^$' -bench BenchmarkGeoConfirmToSIP -benchtime 3x -timeout 600s ./agent/geosite/
func BenchmarkGeoConfirmToSIP(b *testing.B) {
	w := newWAN(b, wanSpec{})
	w.waitAnswers("a", true, 60*time.Second)
	from, to := "a", "b"
	var total time.Duration
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		fh := w.sites[from].host
		fh.Isolate()
		w.waitPending(from, to, 60*time.Second, to, "arb")
		w.waitReach(from, false, 30*time.Second, to, "arb")
		b.StartTimer()
		start := time.Now()
		if _, err := w.do("arb", geosite.VerbConfirm, to); err != nil {
			b.Fatalf("geo confirm %s: %v", to, err)
		}
		agenttest.WaitFor(b, 20*time.Second, "site "+to+" to answer", func() (bool, string) {
			return w.probe.answers(w.sites[to].ip, 250*time.Millisecond), ""
		})
		took := time.Since(start)
		b.StopTimer()
		total += took
		b.Logf("confirm %s→%s: %v", from, to, took.Round(time.Millisecond))
		fh.Rejoin()
		w.waitAnswers(from, false, 30*time.Second)
		w.waitReach(from, true, 30*time.Second, to, "arb")
		from, to = to, from
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/confirm")
}
