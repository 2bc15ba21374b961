package failover

import (
	"testing"
	"time"
)

// BenchmarkCrashToTakeover measures, in process, the time from the
// holder losing power to the standby's resources running: three voters
// with the NIC path and the test timing (dead time 1 s, takeover delay
// 3.1 s). The takeover time is bounded below by the takeover delay; what
// is measured is the rest (detection granularity, the log, the start).
// The lead's network-namespace SIP version measures the real thing.
func BenchmarkCrashToTakeover(b *testing.B) {
	var total, delay time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := newCluster(b, opts{witness: true})
		c.waitHolder("pbx-a1", 10*time.Second)
		delay = c.a2Timing().TakeoverDelay
		b.StartTimer()
		crashed := time.Now()
		c.node("pbx-a1").powerOff()
		for !c.node("pbx-a2").holds() {
			time.Sleep(time.Millisecond)
		}
		took := time.Since(crashed)
		total += took
		b.StopTimer()
		c.close()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/takeover")
	b.ReportMetric(float64(delay.Milliseconds()), "ms-takeover-delay")
}
