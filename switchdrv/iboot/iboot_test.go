package iboot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/iboot"
	"github.com/hatui/hatui/switchdrv/iboot/ibootsim"
)

var protocols = []string{"tcp", "http"}

func startSim(t *testing.T, o ibootsim.Options) *ibootsim.Sim {
	t.Helper()
	s, err := ibootsim.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t *testing.T, s *ibootsim.Sim, protocol string, extra switchdrv.Options) switchdrv.PowerSwitch {
	t.Helper()
	opts := s.DriverOptions(protocol)
	for k, v := range extra {
		opts[k] = v
	}
	ps, err := switchdrv.OpenPowerSwitch("iboot", opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { ps.Close() })
	return ps
}

// bounded fails the test if f hangs; it is a guard, not a timing goal.
func bounded(t *testing.T, limit time.Duration, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(limit):
		t.Fatalf("call did not return within %v", limit)
		return nil
	}
}

func TestNormalOperation(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			s := startSim(t, ibootsim.Options{})
			d := open(t, s, proto, nil)
			ctx := t.Context()
			outs, err := d.Outlets(ctx)
			if err != nil || len(outs) != 1 || outs[0] != iboot.Outlet {
				t.Fatalf("Outlets = %v, %v", outs, err)
			}
			st, err := d.Power(ctx, iboot.Outlet)
			if err != nil || st.Power != switchdrv.PowerOn || !st.Verified {
				t.Fatalf("Power = %+v, %v", st, err)
			}
			st, err = switchdrv.Fence(ctx, d, iboot.Outlet)
			if err != nil || !switchdrv.Fenced(st) || s.On() {
				t.Fatalf("Fence = %+v, %v; simulator on=%v", st, err, s.On())
			}
			st, err = d.SetPower(ctx, iboot.Outlet, true)
			if err != nil || st.Power != switchdrv.PowerOn || !st.Verified || !s.On() {
				t.Fatalf("SetPower(on) = %+v, %v; simulator on=%v", st, err, s.On())
			}
			changes := s.Changes()
			st, err = d.Cycle(ctx, iboot.Outlet)
			if err != nil || st.Power != switchdrv.PowerOn || !st.Verified || !s.On() {
				t.Fatalf("Cycle = %+v, %v", st, err)
			}
			if s.Changes() == changes {
				t.Fatal("Cycle changed nothing on the device")
			}
			if _, err := d.Power(ctx, "2"); !errors.Is(err, switchdrv.ErrConfig) {
				t.Fatalf("Power(2) = %v, want ErrConfig", err)
			}
		})
	}
}

func TestFaultModes(t *testing.T) {
	query := func(d switchdrv.PowerSwitch) error { _, err := d.Power(context.Background(), iboot.Outlet); return err }
	off := func(d switchdrv.PowerSwitch) error {
		_, err := d.SetPower(context.Background(), iboot.Outlet, false)
		return err
	}
	for _, proto := range protocols {
		for _, tc := range []struct {
			name  string
			fault ibootsim.Fault
			call  func(switchdrv.PowerSwitch) error
			want  error
		}{
			{"no answer", ibootsim.FaultNoAnswer, query, switchdrv.ErrUnreachable},
			{"busy", ibootsim.FaultBusy, query, switchdrv.ErrBusy},
			{"garbage", ibootsim.FaultGarbage, query, switchdrv.ErrBadReply},
			{"unauthorized", ibootsim.FaultUnauthorized, query, switchdrv.ErrAuth},
			{"slow", ibootsim.FaultSlow, query, switchdrv.ErrUnreachable},
			{"stuck", ibootsim.FaultStuck, off, switchdrv.ErrVerifyTimeout},
		} {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				s := startSim(t, ibootsim.Options{})
				d := open(t, s, proto, switchdrv.Options{"timeout": "300ms", "verify_timeout": "400ms"})
				s.SetSlowDelay(3 * time.Second)
				s.SetFault(tc.fault)
				err := bounded(t, 5*time.Second, func() error { return tc.call(d) })
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if strings.Contains(err.Error(), "PASS") {
					t.Fatalf("error leaks the password: %v", err)
				}
				// The device serves again once the fault clears and it has
				// noticed the abandoned session.
				s.SetFault(ibootsim.FaultNone)
				deadline := time.Now().Add(5 * time.Second)
				for err = tc.call(d); errors.Is(err, switchdrv.ErrBusy) && time.Now().Before(deadline); err = tc.call(d) {
					time.Sleep(10 * time.Millisecond)
				}
				if err != nil {
					t.Fatalf("after the fault cleared: %v", err)
				}
			})
		}
	}
}

func TestStuckOffIsNotFenced(t *testing.T) {
	s := startSim(t, ibootsim.Options{})
	d := open(t, s, "tcp", switchdrv.Options{"verify_timeout": "300ms"})
	s.SetFault(ibootsim.FaultStuck)
	st, err := switchdrv.Fence(t.Context(), d, iboot.Outlet)
	if err == nil || switchdrv.Fenced(st) {
		t.Fatalf("Fence on a stuck outlet = %+v, %v; want an error and not fenced", st, err)
	}
}

func TestWrongPassword(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			s := startSim(t, ibootsim.Options{})
			d := open(t, s, proto, switchdrv.Options{"password": "nope"})
			_, err := d.Power(t.Context(), iboot.Outlet)
			if !errors.Is(err, switchdrv.ErrAuth) {
				t.Fatalf("Power with a wrong password = %v, want ErrAuth", err)
			}
			if strings.Contains(err.Error(), "nope") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestSecondSessionIsBusy(t *testing.T) {
	s := startSim(t, ibootsim.Options{})
	d := open(t, s, "tcp", nil)
	release := s.HoldSession()
	_, err := d.Power(t.Context(), iboot.Outlet)
	if !errors.Is(err, switchdrv.ErrBusy) {
		t.Fatalf("Power while another session is open = %v, want ErrBusy", err)
	}
	release()
	if _, err := d.Power(t.Context(), iboot.Outlet); err != nil {
		t.Fatalf("Power once the other session ended = %v", err)
	}
}

func TestCloseEndsCallInFlight(t *testing.T) {
	s := startSim(t, ibootsim.Options{})
	d := open(t, s, "tcp", switchdrv.Options{"timeout": "1m"})
	s.SetFault(ibootsim.FaultNoAnswer)
	errc := make(chan error, 1)
	go func() { _, err := d.Power(context.Background(), iboot.Outlet); errc <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Sessions() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	d.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, switchdrv.ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the call")
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts switchdrv.Options
		want string
	}{
		{"no password", switchdrv.Options{"address": "x"}, `option "password": is required`},
		{"esc in password", switchdrv.Options{"address": "x", "password": "a\x1bb"}, "must not contain ESC"},
		{"bad protocol", switchdrv.Options{"address": "x", "password": "p", "protocol": "snmp"}, "not one of tcp, http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := switchdrv.Open("iboot", tc.opts)
			if !errors.Is(err, switchdrv.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want ErrConfig containing %q", err, tc.want)
			}
		})
	}
	if _, err := switchdrv.OpenLineSwitch("iboot", switchdrv.Options{"address": "x", "password": "p"}); !errors.Is(err, switchdrv.ErrUnsupported) {
		t.Fatalf("OpenLineSwitch(iboot) = %v, want ErrUnsupported", err)
	}
}
