package berofos_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/berofos"
	"github.com/hatui/hatui/switchdrv/berofos/berofossim"
)

// startSim starts a simulator that is closed with the test.
func startSim(t *testing.T, o berofossim.Options) *berofossim.Sim {
	t.Helper()
	s, err := berofossim.Start(o)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// open opens the simulator through the registry, with extra options
// overriding the simulator's defaults.
func open(t *testing.T, s *berofossim.Sim, extra switchdrv.Options) *berofos.Device {
	t.Helper()
	opts := s.DriverOptions()
	for k, v := range extra {
		opts[k] = v
	}
	d, err := switchdrv.Open("berofos", opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d.(*berofos.Device)
}

// bounded runs f and fails the test if it has not returned after limit: a
// guard against hangs, not a timing goal.
func bounded[T any](t *testing.T, limit time.Duration, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() { v, err := f(); ch <- result{v, err} }()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(limit):
		t.Fatalf("call did not return within %v", limit)
		var zero T
		return zero, nil
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNormalOperation(t *testing.T) {
	s := startSim(t, berofossim.Options{})
	d := open(t, s, nil)
	ctx := t.Context()

	caps := d.Capabilities()
	if !caps.ReadBack || !caps.Watchdog || caps.Failsafe != berofos.PositionAD || !caps.Has(berofos.PositionAB) {
		t.Errorf("capabilities = %+v", caps)
	}
	st, err := d.LineState(ctx)
	if err != nil || st.Position != berofos.PositionAD || !st.Verified || st.Watchdog != switchdrv.WatchdogOff {
		t.Fatalf("initial state = %+v, %v; want A-D verified, watchdog off", st, err)
	}
	st, err = d.SetPosition(ctx, berofos.PositionAB)
	if err != nil || st.Position != berofos.PositionAB || !st.Verified {
		t.Fatalf("SetPosition(A-B) = %+v, %v", st, err)
	}
	if got := s.Position(); got != berofos.PositionAB {
		t.Fatalf("simulator relay at %s after SetPosition(A-B)", got)
	}
	if _, err := d.SetPosition(ctx, "A-C"); !errors.Is(err, switchdrv.ErrUnsupported) {
		t.Fatalf("SetPosition(A-C) = %v, want ErrUnsupported", err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	outs, err := d.Outlets(ctx)
	if err != nil || !slices.Equal(outs, []string{"0", "1"}) {
		t.Fatalf("Outlets = %v, %v", outs, err)
	}
	ps, err := d.SetPower(ctx, "1", false)
	if err != nil || ps.Power != switchdrv.PowerOff || !ps.Verified || !switchdrv.Fenced(ps) {
		t.Fatalf("SetPower(1, off) = %+v, %v", ps, err)
	}
	if s.Value("5_p1") != "0" || s.Value("5_p0") != "1" {
		t.Fatalf("simulator outlets p0=%s p1=%s", s.Value("5_p0"), s.Value("5_p1"))
	}
	ps, err = d.Cycle(ctx, "1")
	if err != nil || ps.Power != switchdrv.PowerOn || !ps.Verified {
		t.Fatalf("Cycle(1) = %+v, %v", ps, err)
	}
	if s.Writes(berofos.GroupPower) != 3 {
		t.Fatalf("power writes = %d, want 3 (off, off, on)", s.Writes(berofos.GroupPower))
	}
	if _, err := d.Power(ctx, "7"); !errors.Is(err, switchdrv.ErrConfig) {
		t.Fatalf("Power(7) = %v, want ErrConfig", err)
	}
	if st, err := switchdrv.Fence(ctx, d, "0"); err != nil || !switchdrv.Fenced(st) {
		t.Fatalf("Fence(0) = %+v, %v", st, err)
	}
}

func TestKickCarriesMAC(t *testing.T) {
	for _, tc := range []struct {
		name string
		mac  string
	}{
		{"configured", "00:19:32:00:12:1d"},
		{"learnt by discovery", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, berofossim.Options{})
			d := open(t, s, switchdrv.Options{"mac": tc.mac})
			for range 3 {
				if err := d.Kick(t.Context()); err != nil {
					t.Fatalf("Kick: %v", err)
				}
			}
			if s.Kicks() != 3 {
				t.Fatalf("simulator counted %d kicks, want 3", s.Kicks())
			}
			if got := s.LastKickMAC(); got.String() != berofossim.DefaultMAC.String() {
				t.Fatalf("kick carried MAC %s, want %s", got, berofossim.DefaultMAC)
			}
		})
	}
}

func TestKickWithWrongMACIsNotCounted(t *testing.T) {
	s := startSim(t, berofossim.Options{})
	d := open(t, s, switchdrv.Options{"mac": "00:19:32:00:00:01", "timeout": "200ms"})
	_, err := bounded(t, 5*time.Second, func() (struct{}, error) { return struct{}{}, d.Kick(t.Context()) })
	if !errors.Is(err, switchdrv.ErrUnreachable) {
		t.Fatalf("Kick = %v, want ErrUnreachable (the device ignores kicks for another MAC)", err)
	}
	if s.Kicks() != 0 || s.LastKickMAC().String() != "00:19:32:00:00:01" {
		t.Fatalf("kicks = %d, last MAC %s", s.Kicks(), s.LastKickMAC())
	}
}

func TestFaultModes(t *testing.T) {
	lineState := func(d *berofos.Device) error { _, err := d.LineState(context.Background()); return err }
	setPos := func(d *berofos.Device) error {
		_, err := d.SetPosition(context.Background(), berofos.PositionAB)
		return err
	}
	kick := func(d *berofos.Device) error { return d.Kick(context.Background()) }
	for _, tc := range []struct {
		name  string
		fault berofossim.Fault
		call  func(*berofos.Device) error
		want  error
	}{
		{"no answer http", berofossim.FaultNoAnswer, lineState, switchdrv.ErrUnreachable},
		{"no answer udp", berofossim.FaultNoAnswer, kick, switchdrv.ErrUnreachable},
		{"busy", berofossim.FaultBusy, lineState, switchdrv.ErrBusy},
		{"busy on write", berofossim.FaultBusy, setPos, switchdrv.ErrBusy},
		{"bad checksum", berofossim.FaultBadChecksum, kick, switchdrv.ErrBadReply},
		{"401", berofossim.FaultUnauthorized, lineState, switchdrv.ErrAuth},
		{"slow http", berofossim.FaultSlow, lineState, switchdrv.ErrUnreachable},
		{"slow udp", berofossim.FaultSlow, kick, switchdrv.ErrUnreachable},
		{"stuck relay", berofossim.FaultStuck, setPos, switchdrv.ErrVerifyTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, berofossim.Options{Password: "pw"})
			d := open(t, s, switchdrv.Options{
				"timeout": "300ms", "verify_timeout": "300ms", "mac": berofossim.DefaultMAC.String(),
			})
			s.SetSlowDelay(3 * time.Second)
			s.SetFault(tc.fault)
			_, err := bounded(t, 5*time.Second, func() (struct{}, error) { return struct{}{}, tc.call(d) })
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var se *switchdrv.Error
			if !errors.As(err, &se) || se.HintText() == "" {
				t.Fatalf("error %v carries no hint", err)
			}
			// The device recovers when the fault clears.
			s.SetFault(berofossim.FaultNone)
			if err := tc.call(d); err != nil {
				t.Fatalf("after the fault cleared: %v", err)
			}
		})
	}
}

func TestSlowButInTime(t *testing.T) {
	s := startSim(t, berofossim.Options{})
	d := open(t, s, switchdrv.Options{"timeout": "2s", "mac": berofossim.DefaultMAC.String()})
	s.SetSlowDelay(50 * time.Millisecond)
	s.SetFault(berofossim.FaultSlow)
	if _, err := d.LineState(t.Context()); err != nil {
		t.Fatalf("LineState: %v", err)
	}
	if err := d.Kick(t.Context()); err != nil {
		t.Fatalf("Kick: %v", err)
	}
}

func TestCloseEndsCallInFlight(t *testing.T) {
	s := startSim(t, berofossim.Options{})
	d := open(t, s, switchdrv.Options{"timeout": "1m"})
	s.SetFault(berofossim.FaultNoAnswer)
	errc := make(chan error, 1)
	go func() { _, err := d.LineState(context.Background()); errc <- err }()
	// Close only once the request is in the simulator's hands.
	waitFor(t, "the request to reach the simulator", 5*time.Second, func() bool { return s.Requests() > 0 })
	d.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, switchdrv.ErrClosed) {
			t.Fatalf("LineState after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the call in flight")
	}
	if _, err := d.LineState(context.Background()); !errors.Is(err, switchdrv.ErrClosed) {
		t.Fatalf("LineState on closed device = %v, want ErrClosed", err)
	}
}

func TestWatchdogFiresToFailsafe(t *testing.T) {
	s := startSim(t, berofossim.Options{WatchdogTimeout: 300 * time.Millisecond})
	d := open(t, s, switchdrv.Options{"mac": berofossim.DefaultMAC.String()})
	ctx := t.Context()
	if _, err := d.SetPosition(ctx, berofos.PositionAB); err != nil {
		t.Fatal(err)
	}
	if err := d.EnableWatchdog(ctx, true); err != nil {
		t.Fatalf("EnableWatchdog: %v", err)
	}
	// No kicks: the agent is dead. The device moves the lines to D.
	waitFor(t, "the watchdog to move the lines to A-D", 10*time.Second, func() bool {
		return s.Position() == berofos.PositionAD
	})
	st, err := d.LineState(ctx)
	if err != nil || st.Position != berofos.PositionAD || st.Watchdog != switchdrv.WatchdogFailed {
		t.Fatalf("state after watchdog fired = %+v, %v", st, err)
	}
	// Setting a position re-arms it.
	st, err = d.SetPosition(ctx, berofos.PositionAB)
	if err != nil || st.Watchdog != switchdrv.WatchdogOn || s.WatchdogState() != "1" {
		t.Fatalf("after SetPosition: %+v, %v, simulator wstate %s", st, err, s.WatchdogState())
	}
	if err := d.EnableWatchdog(ctx, false); err != nil || s.WatchdogState() != "0" {
		t.Fatalf("disable: %v, wstate %s", err, s.WatchdogState())
	}
}

func TestKickRestartsTheCountdown(t *testing.T) {
	s := startSim(t, berofossim.Options{WatchdogTimeout: 10 * time.Second})
	d := open(t, s, switchdrv.Options{"mac": berofossim.DefaultMAC.String()})
	ctx := t.Context()
	if _, err := d.SetPosition(ctx, berofos.PositionAB); err != nil {
		t.Fatal(err)
	}
	if err := d.EnableWatchdog(ctx, true); err != nil {
		t.Fatal(err)
	}
	before := s.WatchdogDeadline()
	waitFor(t, "the clock to move", 5*time.Second, func() bool { return time.Until(before) < 10*time.Second-20*time.Millisecond })
	if err := d.Kick(ctx); err != nil {
		t.Fatal(err)
	}
	if after := s.WatchdogDeadline(); !after.After(before) {
		t.Fatalf("kick did not restart the countdown: deadline %v, before %v", after, before)
	}
	if s.Position() != berofos.PositionAB || s.WatchdogState() != "1" {
		t.Fatalf("kicked watchdog: relay %s, wstate %s", s.Position(), s.WatchdogState())
	}
}

func TestGroupReadModifyWrite(t *testing.T) {
	// This firmware resets every key of a group that a write leaves out.
	s := startSim(t, berofossim.Options{GroupQuirk: true})
	s.Set("2_mhost", "mail.example.org")
	s.Set("2_as", "1")
	d := open(t, s, switchdrv.Options{"wintv": "30"})
	if err := d.EnableWatchdog(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if got := s.Value("2_wintv"); got != "30" {
		t.Fatalf("2_wintv = %q, want 30", got)
	}
	if s.Value("2_mhost") != "mail.example.org" || s.Value("2_as") != "1" {
		t.Fatalf("other keys of group 2 lost: mhost=%q as=%q", s.Value("2_mhost"), s.Value("2_as"))
	}
}

func TestAdminPasswordSetup(t *testing.T) {
	s := startSim(t, berofossim.Options{GroupQuirk: true})
	d := open(t, s, nil)
	ctx := t.Context()
	if err := d.SetAdminPassword(ctx, "this-is-too-long-for-it"); !errors.Is(err, switchdrv.ErrConfig) {
		t.Fatalf("long password: %v, want ErrConfig", err)
	}
	if err := d.SetAdminPassword(ctx, "n0de-secret"); err != nil {
		t.Fatalf("SetAdminPassword: %v", err)
	}
	if s.Password() != "n0de-secret" {
		t.Fatalf("simulator password = %q", s.Password())
	}
	if s.Value("3_ip") != "127.0.0.1" {
		t.Fatalf("network settings lost by the group write: 3_ip=%q", s.Value("3_ip"))
	}
	// The driver goes on with the new password; others need it.
	if _, err := d.LineState(ctx); err != nil {
		t.Fatalf("LineState with new password: %v", err)
	}
	other := open(t, s, switchdrv.Options{"password": ""})
	if _, err := other.LineState(ctx); !errors.Is(err, switchdrv.ErrAuth) {
		t.Fatalf("LineState without password = %v, want ErrAuth", err)
	}
}

func TestAuthentication(t *testing.T) {
	for _, digest := range []bool{false, true} {
		name := "basic"
		if digest {
			name = "digest"
		}
		t.Run(name, func(t *testing.T) {
			s := startSim(t, berofossim.Options{Password: "right", Digest: digest})
			if _, err := open(t, s, nil).LineState(t.Context()); err != nil {
				t.Fatalf("right password: %v", err)
			}
			if _, err := open(t, s, switchdrv.Options{"password": "wrong"}).LineState(t.Context()); !errors.Is(err, switchdrv.ErrAuth) {
				t.Fatalf("wrong password: %v, want ErrAuth", err)
			}
		})
	}
}

func TestDeviceUnpowered(t *testing.T) {
	s := startSim(t, berofossim.Options{})
	d := open(t, s, switchdrv.Options{"timeout": "200ms"})
	if _, err := d.SetPosition(t.Context(), berofos.PositionAB); err != nil {
		t.Fatal(err)
	}
	s.SetPowered(false)
	if s.Position() != berofos.PositionAD {
		t.Fatalf("unpowered relay at %s, want A-D", s.Position())
	}
	if _, err := d.LineState(t.Context()); !errors.Is(err, switchdrv.ErrUnreachable) {
		t.Fatalf("LineState of unpowered device = %v", err)
	}
}

func TestDiscover(t *testing.T) {
	s := startSim(t, berofossim.Options{Password: "pw"})
	devs, err := berofos.Discover(t.Context(), berofos.DiscoverOptions{
		Target: s.UDPAddr().String(), Wait: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if len(devs) != 1 {
		t.Fatalf("found %d devices, want 1", len(devs))
	}
	got := devs[0]
	if got.MAC.String() != berofossim.DefaultMAC.String() || got.IP != netip.MustParseAddr("127.0.0.1") ||
		got.Name != "berofos" || got.Firmware != "1.6" || !got.HTTPAuth || got.HTTPPort != s.HTTPAddr().Port() ||
		!got.Operational() || got.From != s.UDPAddr() {
		t.Fatalf("discovered %+v", got)
	}

	s.SetFault(berofossim.FaultBadChecksum)
	devs, err = berofos.Discover(t.Context(), berofos.DiscoverOptions{
		Target: s.UDPAddr().String(), Wait: 300 * time.Millisecond,
	})
	var de *berofos.DiscoverError
	if len(devs) != 0 || !errors.As(err, &de) || len(de.Bad) != 1 {
		t.Fatalf("Discover with bad checksum = %v, %v; want a DiscoverError", devs, err)
	}
}

func TestDiscoverSkipsOtherModels(t *testing.T) {
	s := startSim(t, berofossim.Options{HWMagic: 0x0042})
	devs, err := berofos.Discover(t.Context(), berofos.DiscoverOptions{
		Target: s.UDPAddr().String(), Wait: 200 * time.Millisecond,
	})
	if err != nil || len(devs) != 0 {
		t.Fatalf("Discover = %v, %v; want nothing", devs, err)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts switchdrv.Options
		want string
	}{
		{"missing address", switchdrv.Options{}, `option "address": is required`},
		{"typo", switchdrv.Options{"address": "x", "pasword": "y"}, `unknown option "pasword"`},
		{"bad mac", switchdrv.Options{"address": "x", "mac": "zz"}, `option "mac"`},
		{"bad timeout", switchdrv.Options{"address": "x", "timeout": "-1s"}, `option "timeout"`},
		{"long password", switchdrv.Options{"address": "x", "password": "0123456789abcdef"}, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := switchdrv.Open("berofos", tc.opts)
			if !errors.Is(err, switchdrv.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want ErrConfig containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkKick measures one kick round trip to the simulator; a kick must
// take a small fraction of half the watchdog timeout.
func BenchmarkKick(b *testing.B) {
	s, err := berofossim.Start(berofossim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	opts := s.DriverOptions()
	opts["mac"] = berofossim.DefaultMAC.String()
	d, err := switchdrv.Open("berofos", opts)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	w := d.(switchdrv.Watchdog)
	for b.Loop() {
		if err := w.Kick(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetPosition measures a verified relay move (read, write, read
// back) against the simulator.
func BenchmarkSetPosition(b *testing.B) {
	s, err := berofossim.Start(berofossim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	d, err := switchdrv.OpenLineSwitch("berofos", s.DriverOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	pos := []switchdrv.Position{berofos.PositionAB, berofos.PositionAD}
	i := 0
	for b.Loop() {
		if _, err := d.SetPosition(context.Background(), pos[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
