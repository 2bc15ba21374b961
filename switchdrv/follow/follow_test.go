package follow

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/switchdrv"
)

// fakeSwitch stands where a line switch would: it keeps a position,
// counts writes and kicks, and fails on demand.
type fakeSwitch struct {
	mu       sync.Mutex
	readBack bool
	pos      switchdrv.Position
	wd       switchdrv.WatchdogState
	fail     error
	kickErr  error
	writes   int
	kicks    int
	timeout  time.Duration
}

func (f *fakeSwitch) Name() string { return "fake" }
func (f *fakeSwitch) Close() error { return nil }
func (f *fakeSwitch) Capabilities() switchdrv.Capabilities {
	return switchdrv.Capabilities{Positions: []switchdrv.Position{"A", "B"}, Failsafe: "B", ReadBack: f.readBack, Watchdog: true}
}

func (f *fakeSwitch) LineState(context.Context) (switchdrv.LineState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return switchdrv.LineState{}, f.fail
	}
	return switchdrv.LineState{Position: f.pos, Verified: f.readBack, Watchdog: f.wd}, nil
}

func (f *fakeSwitch) SetPosition(_ context.Context, p switchdrv.Position) (switchdrv.LineState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return switchdrv.LineState{}, f.fail
	}
	f.writes++
	f.pos = p
	if f.wd == switchdrv.WatchdogFailed {
		f.wd = switchdrv.WatchdogOn
	}
	return switchdrv.LineState{Position: p, Verified: f.readBack, Watchdog: f.wd}, nil
}

func (f *fakeSwitch) Kick(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kickErr != nil {
		return f.kickErr
	}
	f.kicks++
	return nil
}

func (f *fakeSwitch) WatchdogTimeout() time.Duration { return f.timeout }

func (f *fakeSwitch) set(fn func(*fakeSwitch)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeSwitch) get() (switchdrv.Position, int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos, f.writes, f.kicks
}

// source is a scripted active-node source.
type source struct {
	mu   sync.Mutex
	node string
	err  error
}

func (s *source) active(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node, s.err
}

func (s *source) set(node string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node, s.err = node, err
}

// eventLog collects events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) count(k EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

type rig struct {
	sw  *fakeSwitch
	src *source
	log *eventLog
	c   *Controller
}

func newRig(t *testing.T, readBack bool, start switchdrv.Position, tweak func(*Config)) *rig {
	t.Helper()
	r := &rig{
		sw:  &fakeSwitch{readBack: readBack, pos: start, timeout: time.Second},
		src: &source{},
		log: &eventLog{},
	}
	cfg := Config{
		Switch:      r.sw,
		Positions:   map[string]switchdrv.Position{"pbx-a1": "A", "pbx-a2": "B"},
		Active:      r.src.active,
		Confirm:     3,
		ConfirmBack: 5,
		OnEvent:     r.log.add,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	return r
}

// steps feeds the controller one observation per node given.
func (r *rig) steps(t *testing.T, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		r.src.set(n, nil)
		r.c.Step(t.Context())
	}
}

func repeat(node string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = node
	}
	return s
}

func TestMovesAfterConfirmObservations(t *testing.T) {
	r := newRig(t, true, "A", nil)
	r.steps(t, repeat("pbx-a1", 2)...)
	if st := r.c.Status(); st.Active != "pbx-a1" {
		t.Fatalf("lines already at pbx-a1's position: want it adopted, status %+v", st)
	}
	r.steps(t, repeat("pbx-a2", 2)...)
	if pos, writes, _ := r.sw.get(); pos != "A" || writes != 0 {
		t.Fatalf("after 2 of 3 observations: position %s, %d writes; want A, 0", pos, writes)
	}
	r.steps(t, "pbx-a2")
	if pos, writes, _ := r.sw.get(); pos != "B" || writes != 1 {
		t.Fatalf("after 3 observations: position %s, %d writes; want B, 1", pos, writes)
	}
	if r.log.count(EventMoved) != 1 {
		t.Fatalf("moved events = %d, want 1", r.log.count(EventMoved))
	}
	// Staying put writes nothing more.
	r.steps(t, repeat("pbx-a2", 10)...)
	if _, writes, _ := r.sw.get(); writes != 1 {
		t.Fatalf("writes = %d after a steady source, want 1", writes)
	}
}

func TestMoveBackNeedsConfirmBack(t *testing.T) {
	r := newRig(t, true, "A", nil)
	r.steps(t, "pbx-a1")
	r.steps(t, repeat("pbx-a2", 3)...) // moved to B; A is where the lines left
	r.steps(t, repeat("pbx-a1", 4)...)
	if pos, _, _ := r.sw.get(); pos != "B" {
		t.Fatalf("moved back after 4 observations; ConfirmBack is 5")
	}
	r.steps(t, "pbx-a1")
	if pos, writes, _ := r.sw.get(); pos != "A" || writes != 2 {
		t.Fatalf("after 5 observations: position %s, %d writes; want A, 2", pos, writes)
	}
}

func TestFlappingSourceDoesNotFlapRelay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pattern []string
	}{
		{"alternating", []string{"pbx-a2", "pbx-a1"}},
		{"pairs", []string{"pbx-a2", "pbx-a2", "pbx-a1"}},
		{"with gaps", []string{"pbx-a2", "pbx-a2", "", "pbx-a2", "pbx-a2", "pbx-a1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, true, "A", nil)
			r.steps(t, "pbx-a1")
			for range 50 {
				r.steps(t, tc.pattern...)
			}
			if pos, writes, _ := r.sw.get(); pos != "A" || writes != 0 {
				t.Fatalf("flapping source: position %s, %d relay writes; want A, 0", pos, writes)
			}
			if n := r.log.count(EventMoved); n != 0 {
				t.Fatalf("%d moved events", n)
			}
		})
	}
}

func TestSourceErrorIsNoObservation(t *testing.T) {
	r := newRig(t, true, "A", nil)
	r.steps(t, "pbx-a1", "pbx-a2", "pbx-a2")
	r.src.set("pbx-a2", errors.New("failover state unknown"))
	r.c.Step(t.Context())
	r.steps(t, "pbx-a2", "pbx-a2")
	if pos, _, _ := r.sw.get(); pos != "A" {
		t.Fatal("an error in the source counted as an observation")
	}
	r.steps(t, "pbx-a2")
	if pos, _, _ := r.sw.get(); pos != "B" {
		t.Fatal("three observations after the error did not move the lines")
	}
}

func TestCorrectsDrift(t *testing.T) {
	r := newRig(t, true, "A", nil)
	r.steps(t, "pbx-a1", "pbx-a1")
	// The device's watchdog fired and moved the lines to its failsafe.
	r.sw.set(func(f *fakeSwitch) { f.pos, f.wd = "B", switchdrv.WatchdogFailed })
	r.steps(t, "pbx-a1")
	if pos, writes, _ := r.sw.get(); pos != "A" || writes != 1 {
		t.Fatalf("drift: position %s, %d writes; want A, 1", pos, writes)
	}
	if r.log.count(EventCorrected) != 1 || r.log.count(EventWatchdogFailed) != 1 || r.log.count(EventWatchdogOK) != 1 {
		t.Fatalf("events: %+v", r.log.events)
	}
}

func TestEventsOnlyOnChange(t *testing.T) {
	r := newRig(t, true, "A", nil)
	r.steps(t, "pbx-a1")
	r.sw.set(func(f *fakeSwitch) { f.fail = switchdrv.Errorf(switchdrv.ErrUnreachable, "fake", "read", "no answer") })
	r.steps(t, repeat("pbx-a1", 20)...)
	if n := r.log.count(EventSwitchFailed); n != 1 {
		t.Fatalf("20 failed reads gave %d events, want 1", n)
	}
	if err := r.c.Status().Err; !errors.Is(err, switchdrv.ErrUnreachable) {
		t.Fatalf("status error = %v", err)
	}
	r.sw.set(func(f *fakeSwitch) { f.fail = nil })
	r.steps(t, repeat("pbx-a1", 5)...)
	if n := r.log.count(EventSwitchOK); n != 1 {
		t.Fatalf("recovery gave %d events, want 1", n)
	}
	if r.c.Status().Err != nil {
		t.Fatal("status still shows the error")
	}
}

func TestUnverifiedSwitchWritesOnChangeOnly(t *testing.T) {
	r := newRig(t, false, "", nil)
	r.steps(t, repeat("pbx-a1", 2)...)
	if _, writes, _ := r.sw.get(); writes != 0 {
		t.Fatal("wrote before the active node was confirmed")
	}
	r.steps(t, "pbx-a1")
	r.steps(t, repeat("pbx-a1", 10)...)
	if pos, writes, _ := r.sw.get(); pos != "A" || writes != 1 {
		t.Fatalf("position %s, %d writes; want A, 1", pos, writes)
	}
	if st := r.c.Status(); st.Verified {
		t.Fatal("a switch without read-back shows as verified")
	}
	// A failed command is retried on the next observation.
	r.sw.set(func(f *fakeSwitch) { f.fail = errors.New("port gone") })
	r.steps(t, repeat("pbx-a2", 3)...)
	r.sw.set(func(f *fakeSwitch) { f.fail = nil })
	r.steps(t, "pbx-a2")
	if pos, _, _ := r.sw.get(); pos != "B" {
		t.Fatalf("position %s after the port came back, want B", pos)
	}
	if r.log.count(EventMoveFailed) != 1 {
		t.Fatalf("move failed events = %d", r.log.count(EventMoveFailed))
	}
}

func TestUnknownNodeLeavesLines(t *testing.T) {
	r := newRig(t, true, "A", nil)
	r.steps(t, "pbx-a1")
	r.steps(t, repeat("pbx-zz", 10)...)
	if pos, writes, _ := r.sw.get(); pos != "A" || writes != 0 {
		t.Fatalf("unknown node moved the lines: %s, %d", pos, writes)
	}
	if r.log.count(EventUnknownNode) != 1 {
		t.Fatalf("unknown node events = %d, want 1", r.log.count(EventUnknownNode))
	}
}

func TestKickPolicyAndEvents(t *testing.T) {
	r := newRig(t, true, "A", func(c *Config) { c.Local = "pbx-a1" })
	r.c.cfg.Watchdog = r.sw
	r.c.cfg.KickEvery = time.Second
	ctx := t.Context()
	if r.c.Kick(ctx) {
		t.Fatal("kicked before this node was known to be active")
	}
	r.steps(t, "pbx-a1", "pbx-a1")
	if !r.c.Kick(ctx) {
		t.Fatal("did not kick while this node is active")
	}
	r.sw.set(func(f *fakeSwitch) { f.kickErr = errors.New("no reply") })
	for range 5 {
		r.c.Kick(ctx)
	}
	r.sw.set(func(f *fakeSwitch) { f.kickErr = nil })
	r.c.Kick(ctx)
	if ok, failed := r.log.count(EventWatchdogOK), r.log.count(EventWatchdogFailed); ok != 2 || failed != 1 {
		t.Fatalf("watchdog events: %d ok, %d failed; want 2, 1", ok, failed)
	}
	r.steps(t, repeat("pbx-a2", 3)...)
	if r.c.Kick(ctx) {
		t.Fatal("kicked after the group moved to the other node")
	}
}

func TestRunKicksAtHalfTimeout(t *testing.T) {
	r := newRig(t, true, "A", func(c *Config) { c.Interval = 10 * time.Millisecond })
	r.sw.timeout = 40 * time.Millisecond
	c, err := New(Config{
		Switch: r.sw, Watchdog: r.sw, Active: r.src.active, Interval: 10 * time.Millisecond,
		Positions: map[string]switchdrv.Position{"pbx-a1": "A", "pbx-a2": "B"}, OnEvent: r.log.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.KickEvery != 20*time.Millisecond {
		t.Fatalf("KickEvery = %v, want half of 40ms", c.cfg.KickEvery)
	}
	r.src.set("pbx-a2", nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pos, _, kicks := r.sw.get()
		if pos == "B" && kicks >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("position %s, %d kicks", pos, kicks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if r.log.count(EventStarted) != 1 || r.log.count(EventStopped) != 1 {
		t.Fatalf("events: %+v", r.log.events)
	}
}

func TestNewRejects(t *testing.T) {
	sw := &fakeSwitch{readBack: true}
	act := func(context.Context) (string, error) { return "", nil }
	for _, cfg := range []Config{
		{Active: act, Positions: map[string]switchdrv.Position{"x": "A"}},
		{Switch: sw, Positions: map[string]switchdrv.Position{"x": "A"}},
		{Switch: sw, Active: act},
		{Switch: sw, Active: act, Positions: map[string]switchdrv.Position{"x": "Z"}},
		{Switch: sw, Active: act, Positions: map[string]switchdrv.Position{"x": "A"}, Watchdog: sw},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestLatest(t *testing.T) {
	ch := make(chan string, 4)
	get := Latest(ch)
	if n, _ := get(t.Context()); n != "" {
		t.Fatalf("empty channel gave %q", n)
	}
	ch <- "pbx-a1"
	ch <- "pbx-a2"
	if n, _ := get(t.Context()); n != "pbx-a2" {
		t.Fatalf("got %q, want the newest", n)
	}
	if n, _ := get(t.Context()); n != "pbx-a2" {
		t.Fatalf("got %q, want the last seen", n)
	}
	close(ch)
	if n, _ := get(t.Context()); n != "pbx-a2" {
		t.Fatalf("closed channel gave %q", n)
	}
}
