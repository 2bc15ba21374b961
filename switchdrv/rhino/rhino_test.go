package rhino_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/rhino"
	"github.com/hatui/hatui/switchdrv/rhino/rhinosim"
)

// startSim starts a simulated card on a pty. Without /dev/ptmx the test
// cannot run: skip locally, fail in CI.
func startSim(t *testing.T) *rhinosim.Sim {
	t.Helper()
	s, err := rhinosim.Start(rhinosim.Options{})
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no pseudo-terminal: %v", err)
		}
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t *testing.T, opts switchdrv.Options) switchdrv.LineSwitch {
	t.Helper()
	d, err := switchdrv.OpenLineSwitch("rhino", opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func with(base switchdrv.Options, extra switchdrv.Options) switchdrv.Options {
	out := switchdrv.Options{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bounded fails the test if f hangs; it is a guard, not a timing goal.
func bounded(t *testing.T, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("call hung")
		return nil
	}
}

func TestSerialCommands(t *testing.T) {
	s := startSim(t)
	d := open(t, s.DriverOptions())
	ctx := t.Context()

	caps := d.Capabilities()
	if caps.ReadBack || caps.Watchdog || caps.Failsafe != rhino.PositionNC {
		t.Errorf("capabilities = %+v; a Rhino cannot read back and fails to NC", caps)
	}
	if st, err := d.LineState(ctx); err != nil || st.Position != "" || st.Verified {
		t.Fatalf("initial state = %+v, %v; want unknown", st, err)
	}
	st, err := d.SetPosition(ctx, rhino.PositionNO)
	if err != nil || st.Position != rhino.PositionNO || st.Verified {
		t.Fatalf("SetPosition(NO) = %+v, %v; want NO, unverified", st, err)
	}
	if s.Position() != rhino.PositionNO {
		t.Fatalf("card relay at %s", s.Position())
	}
	if st, _ := d.LineState(ctx); st.Position != rhino.PositionNO || st.Verified {
		t.Fatalf("state = %+v; want NO, unverified", st)
	}
	if _, err := d.SetPosition(ctx, rhino.PositionNC); err != nil || s.Position() != rhino.PositionNC {
		t.Fatalf("SetPosition(NC) = %v; card at %s", err, s.Position())
	}
	if err := d.(switchdrv.Checker).Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := d.(*rhino.Device).Reset(ctx); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	want := []string{"RELAYON 0\r", "RELAYOFF 0\r", "STATUS\r", "RESET\r"}
	if got := s.Commands(); !slices.Equal(got, want) {
		t.Fatalf("card received %q, want %q", got, want)
	}
	if _, err := d.SetPosition(ctx, "A-B"); !errors.Is(err, switchdrv.ErrUnsupported) {
		t.Fatalf("SetPosition(A-B) = %v, want ErrUnsupported", err)
	}
}

func TestSerialFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault rhinosim.Fault
		opts  switchdrv.Options
		want  error
	}{
		{"silent card", rhinosim.FaultNoAnswer, nil, switchdrv.ErrUnreachable},
		{"busy", rhinosim.FaultBusy, nil, switchdrv.ErrBusy},
		{"corrupted reply", rhinosim.FaultGarbage, nil, switchdrv.ErrBadReply},
		{"slow", rhinosim.FaultSlow, nil, switchdrv.ErrUnreachable},
		{"error reply", rhinosim.FaultNone, switchdrv.Options{"cmd_on": `RELAYUP {relay}\r`}, switchdrv.ErrBadReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t)
			d := open(t, with(s.DriverOptions(), with(switchdrv.Options{"timeout": "300ms"}, tc.opts)))
			s.SetSlowDelay(3 * time.Second)
			s.SetFault(tc.fault)
			err := bounded(t, func() error {
				_, err := d.SetPosition(context.Background(), rhino.PositionNO)
				return err
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if st, _ := d.LineState(t.Context()); st.Position != "" {
				t.Fatalf("after a failed command the state is %+v; want unknown", st)
			}
			// The port stays usable: the next command works.
			s.SetFault(rhinosim.FaultNone)
			if _, err := d.SetPosition(t.Context(), rhino.PositionNC); err != nil {
				t.Fatalf("after the fault cleared: %v", err)
			}
		})
	}
}

func TestCloseDuringReadDoesNotHang(t *testing.T) {
	s := startSim(t)
	d := open(t, with(s.DriverOptions(), switchdrv.Options{"timeout": "1m"}))
	s.SetFault(rhinosim.FaultNoAnswer)
	errc := make(chan error, 1)
	go func() {
		_, err := d.SetPosition(context.Background(), rhino.PositionNO)
		errc <- err
	}()
	waitFor(t, "the command to reach the card", func() bool { return len(s.Commands()) == 1 })
	if err := bounded(t, d.Close); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := bounded(t, func() error { return <-errc })
	if !errors.Is(err, switchdrv.ErrClosed) {
		t.Fatalf("SetPosition after Close = %v, want ErrClosed", err)
	}
}

func TestExclusiveLock(t *testing.T) {
	s := startSim(t)
	first := open(t, s.DriverOptions())
	second := open(t, s.DriverOptions())
	if _, err := first.SetPosition(t.Context(), rhino.PositionNO); err != nil {
		t.Fatal(err)
	}
	_, err := second.SetPosition(t.Context(), rhino.PositionNC)
	if !errors.Is(err, switchdrv.ErrBusy) {
		t.Fatalf("second driver on the same port = %v, want ErrBusy", err)
	}
	if s.Position() != rhino.PositionNO {
		t.Fatal("the second driver reached the card despite the lock")
	}
	first.Close()
	if _, err := second.SetPosition(t.Context(), rhino.PositionNC); err != nil {
		t.Fatalf("after the first released the port: %v", err)
	}
}

func TestUnpluggedCardFallsToNC(t *testing.T) {
	s := startSim(t)
	d := open(t, s.DriverOptions())
	if _, err := d.SetPosition(t.Context(), rhino.PositionNO); err != nil {
		t.Fatal(err)
	}
	s.Unplug()
	if s.Position() != rhino.PositionNC {
		t.Fatalf("unplugged card at %s, want NC", s.Position())
	}
}

// tool copies a testdata script to an executable temporary file, so the
// test does not depend on the checkout keeping file modes.
func tool(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIMode(t *testing.T) {
	s := startSim(t)
	d := open(t, switchdrv.Options{"device": s.Path(), "cli": tool(t, "fake-rhinofailover"), "relay": "0"})
	if _, err := d.SetPosition(t.Context(), rhino.PositionNO); err != nil {
		t.Fatalf("SetPosition(NO): %v", err)
	}
	waitFor(t, "the card to switch on", func() bool { return s.Position() == rhino.PositionNO })
	if _, err := d.SetPosition(t.Context(), rhino.PositionNC); err != nil {
		t.Fatalf("SetPosition(NC): %v", err)
	}
	waitFor(t, "the card to switch off", func() bool { return s.Position() == rhino.PositionNC })
	if got := s.Commands(); !slices.Equal(got, []string{"RELAYON 0\r", "RELAYOFF 0\r"}) {
		t.Fatalf("card received %q", got)
	}
}

func TestCLIFailures(t *testing.T) {
	s := startSim(t)
	for _, tc := range []struct {
		name, cli string
		want      error
		msg       string
	}{
		{"tool fails", "false", switchdrv.ErrUnreachable, "exit status 1"},
		{"tool missing", "/nonexistent/rhinofailover", switchdrv.ErrConfig, "install the Rhino tools"},
		{"tool hangs", tool(t, "hung-rhinofailover"), switchdrv.ErrUnreachable, "did not finish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := open(t, switchdrv.Options{"device": s.Path(), "cli": tc.cli, "timeout": "300ms"})
			err := bounded(t, func() error {
				_, err := d.SetPosition(context.Background(), rhino.PositionNO)
				return err
			})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestMissingDevice(t *testing.T) {
	d := open(t, switchdrv.Options{"device": "/dev/ttyNOPE9", "mode": "serial", "cmd_on": "x", "cmd_off": "y"})
	if _, err := d.SetPosition(t.Context(), rhino.PositionNO); !errors.Is(err, switchdrv.ErrUnreachable) {
		t.Fatalf("SetPosition on a missing device = %v, want ErrUnreachable", err)
	}
	if err := d.(switchdrv.Checker).Check(t.Context()); !errors.Is(err, switchdrv.ErrUnreachable) {
		t.Fatalf("Check on a missing device = %v, want ErrUnreachable", err)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts switchdrv.Options
		want string
	}{
		{"no device", switchdrv.Options{}, `option "device": is required`},
		{"serial without commands", switchdrv.Options{"device": "/dev/x", "mode": "serial"}, "not public"},
		{"bad escape", switchdrv.Options{"device": "/dev/x", "mode": "serial", "cmd_on": `a\q`, "cmd_off": "b"}, "unknown escape"},
		{"short read timeout", switchdrv.Options{"device": "/dev/x", "read_timeout": "10ms"}, "at least 100ms"},
		{"bad mode", switchdrv.Options{"device": "/dev/x", "mode": "usb"}, "not one of cli, serial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := switchdrv.Open("rhino", tc.opts)
			if !errors.Is(err, switchdrv.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want ErrConfig containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkSetPosition measures one command and its reply over the pty.
func BenchmarkSetPosition(b *testing.B) {
	s, err := rhinosim.Start(rhinosim.Options{})
	if err != nil {
		b.Skip(err)
	}
	defer s.Close()
	d, err := switchdrv.OpenLineSwitch("rhino", s.DriverOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	pos := []switchdrv.Position{rhino.PositionNO, rhino.PositionNC}
	i := 0
	for b.Loop() {
		if _, err := d.SetPosition(context.Background(), pos[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
