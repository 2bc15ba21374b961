package follow_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/berofos"
	"github.com/hatui/hatui/switchdrv/berofos/berofossim"
	"github.com/hatui/hatui/switchdrv/follow"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFollowsTheActiveNodeOnABerofos runs the controller against the real
// driver and a simulated berofos on loopback: the lines follow the active
// node, a flapping source writes no relay, and when the controller (the
// agent) stops, the device's watchdog takes the lines to D.
func TestFollowsTheActiveNodeOnABerofos(t *testing.T) {
	sim, err := berofossim.Start(berofossim.Options{WatchdogTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	opts := sim.DriverOptions()
	opts["mac"] = sim.MAC().String()
	dev, err := switchdrv.Open("berofos", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	bf := dev.(*berofos.Device)
	if err := bf.EnableWatchdog(t.Context(), true); err != nil {
		t.Fatal(err)
	}

	var active atomic.Value
	active.Store("pbx-a1")
	var flap atomic.Bool
	var calls atomic.Int64
	var mu sync.Mutex
	var events []follow.Event
	c, err := follow.New(follow.Config{
		Switch:    bf,
		Watchdog:  bf,
		Positions: map[string]switchdrv.Position{"pbx-a1": berofos.PositionAB, "pbx-a2": berofos.PositionAD},
		Active: func(context.Context) (string, error) {
			n := calls.Add(1)
			if flap.Load() {
				if n%2 == 0 {
					return "pbx-a1", nil
				}
				return "pbx-a2", nil
			}
			return active.Load().(string), nil
		},
		Interval:    10 * time.Millisecond,
		Confirm:     3,
		ConfirmBack: 3,
		OnEvent: func(e follow.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "lines to pbx-a1 (A-B)", func() bool { return sim.Position() == berofos.PositionAB })
	waitFor(t, "kicks carrying the MAC", func() bool {
		return sim.Kicks() > 0 && sim.LastKickMAC().String() == sim.MAC().String()
	})

	active.Store("pbx-a2")
	waitFor(t, "lines to pbx-a2 (A-D)", func() bool { return sim.Position() == berofos.PositionAD })
	active.Store("pbx-a1")
	waitFor(t, "lines back to pbx-a1 (A-B)", func() bool { return sim.Position() == berofos.PositionAB })

	// A flapping source: many observations, no relay write.
	writes := sim.Writes(berofos.GroupRelay)
	flap.Store(true)
	steps := c.Status().Steps
	waitFor(t, "60 observations of a flapping source", func() bool { return c.Status().Steps >= steps+60 })
	if got := sim.Writes(berofos.GroupRelay); got != writes {
		t.Fatalf("a flapping source made %d relay writes", got-writes)
	}
	if sim.Position() != berofos.PositionAB {
		t.Fatalf("relay at %s after flapping", sim.Position())
	}

	// The agent dies: no more kicks, and the watchdog moves the lines.
	cancel()
	<-done
	waitFor(t, "the watchdog to take the lines to D", func() bool { return sim.Position() == berofos.PositionAD })

	mu.Lock()
	defer mu.Unlock()
	kinds := map[follow.EventKind]int{}
	for _, e := range events {
		kinds[e.Kind]++
	}
	if kinds[follow.EventMoved] != 3 || kinds[follow.EventStarted] != 1 || kinds[follow.EventStopped] != 1 || kinds[follow.EventWatchdogOK] != 1 {
		t.Fatalf("events by kind: %v", kinds)
	}
}
