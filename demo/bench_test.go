package demo

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// BenchmarkStartToConverged measures starting the demo until every agent
// sees all five nodes alive.
func BenchmarkStartToConverged(b *testing.B) {
	for i := 0; i < b.N; i++ {
		d, err := Start(Options{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := d.WaitConverged(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
}

// benchChange measures the time from an action's result to the console's
// watch showing target in the wanted state.
func benchChange(b *testing.B, via, target string) {
	d, err := Start(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := d.WaitConverged(ctx); err != nil {
		b.Fatal(err)
	}
	c, err := client.Connect(ctx, d.Dial(via), client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_, changes, err := c.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	verbs := []string{"standby", "online"}
	want := []protocol.NodeState{protocol.StateStandby, protocol.StateOnline}
	var samples []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % 2
		start := time.Now()
		if _, err := c.Do(ctx, protocol.Action{Verb: verbs[k], Args: []string{target}}, nil); err != nil {
			b.Fatal(err)
		}
		for {
			ch, ok := <-changes
			if !ok {
				b.Fatal("watch ended")
			}
			if n, _ := ch.Snapshot.FindNode(target); n.State == want[k] {
				break
			}
		}
		samples = append(samples, time.Since(start))
	}
	reportMedian(b, samples, "ms/change")
}

// reportMedian reports the median, the 99th percentile and the worst of
// samples in milliseconds.
func reportMedian(b *testing.B, samples []time.Duration, unit string) {
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(samples[len(samples)/2]), "median-"+unit)
	b.ReportMetric(ms(samples[(len(samples)*99)/100]), "p99-"+unit)
	b.ReportMetric(ms(samples[len(samples)-1]), "worst-"+unit)
}

// BenchmarkChangeToConsoleLocal: the entry agent's own flag.
func BenchmarkChangeToConsoleLocal(b *testing.B) { benchChange(b, "pbx-a1", "pbx-a1") }

// BenchmarkChangeToConsoleRemote: another node's flag, forwarded there
// and back by gossip.
func BenchmarkChangeToConsoleRemote(b *testing.B) { benchChange(b, "pbx-a1", "pbx-b2") }
