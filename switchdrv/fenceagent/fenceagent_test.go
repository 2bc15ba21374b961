package fenceagent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/fenceagent"
)

const fenceDummy = "/usr/sbin/fence_dummy"

// dummy opens Debian's fence_dummy with its state in a fresh file. Without
// fence-agents installed the test skips locally and fails in CI.
func dummy(t *testing.T, extra switchdrv.Options) (switchdrv.PowerSwitch, string) {
	t.Helper()
	if _, err := os.Stat(fenceDummy); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s missing (apt-get install fence-agents): %v", fenceDummy, err)
		}
		t.Fatalf("%s missing (apt-get install fence-agents): %v", fenceDummy, err)
	}
	state := filepath.Join(t.TempDir(), "power")
	opts := switchdrv.Options{"agent": fenceDummy, "status_file": state, "timeout": "20s"}
	for k, v := range extra {
		opts[k] = v
	}
	ps, err := switchdrv.OpenPowerSwitch("fence", opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { ps.Close() })
	return ps, state
}

func TestFenceDummy(t *testing.T) {
	ps, state := dummy(t, nil)
	ctx := t.Context()
	out := fenceagent.DefaultOutlet

	// fence_dummy reads a missing state file as off: status exits 2.
	st, err := ps.Power(ctx, out)
	if err != nil || st.Power != switchdrv.PowerOff || !st.Verified {
		t.Fatalf("status = %+v, %v; want off (exit 2), verified", st, err)
	}
	st, err = ps.SetPower(ctx, out, true)
	if err != nil || st.Power != switchdrv.PowerOn || !st.Verified {
		t.Fatalf("on = %+v, %v", st, err)
	}
	if b, _ := os.ReadFile(state); string(b) != "on" {
		t.Fatalf("state file says %q after on", b)
	}
	st, err = ps.Power(ctx, out)
	if err != nil || st.Power != switchdrv.PowerOn {
		t.Fatalf("status after on = %+v, %v; want on (exit 0)", st, err)
	}
	st, err = switchdrv.Fence(ctx, ps, out)
	if err != nil || !switchdrv.Fenced(st) {
		t.Fatalf("fence = %+v, %v", st, err)
	}
	if b, _ := os.ReadFile(state); string(b) != "off" {
		t.Fatalf("state file says %q after off", b)
	}
	st, err = ps.Cycle(ctx, out)
	if err != nil || st.Power != switchdrv.PowerOn || !st.Verified {
		t.Fatalf("reboot = %+v, %v", st, err)
	}
	if err := ps.(switchdrv.Checker).Check(ctx); err != nil {
		t.Fatalf("monitor: %v", err)
	}
	if _, err := ps.Power(ctx, "7"); !errors.Is(err, switchdrv.ErrConfig) {
		t.Fatalf("status of an unknown outlet = %v, want ErrConfig", err)
	}
}

func TestFenceDummyErrors(t *testing.T) {
	t.Run("status error exit 1", func(t *testing.T) {
		ps, state := dummy(t, nil)
		// fence_dummy cannot make sense of this state: status exits 1.
		if err := os.WriteFile(state, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := ps.Power(t.Context(), fenceagent.DefaultOutlet)
		if !errors.Is(err, switchdrv.ErrUnreachable) || st.Verified || switchdrv.Fenced(st) {
			t.Fatalf("status = %+v, %v; want ErrUnreachable, unverified", st, err)
		}
	})
	t.Run("off fails", func(t *testing.T) {
		ps, _ := dummy(t, switchdrv.Options{"type": "fail", "power_timeout": "1", "status_file": ""})
		st, err := switchdrv.Fence(t.Context(), ps, fenceagent.DefaultOutlet)
		if !errors.Is(err, switchdrv.ErrUnreachable) || switchdrv.Fenced(st) {
			t.Fatalf("fence with a failing device = %+v, %v; want ErrUnreachable, not fenced", st, err)
		}
		if !strings.Contains(err.Error(), "Timed out waiting to power OFF") {
			t.Fatalf("error does not carry the agent's words: %v", err)
		}
	})
	t.Run("agent hangs", func(t *testing.T) {
		ps, _ := dummy(t, switchdrv.Options{"random_sleep_range": "30", "timeout": "500ms"})
		errc := make(chan error, 1)
		go func() { _, err := ps.Power(context.Background(), fenceagent.DefaultOutlet); errc <- err }()
		select {
		case err := <-errc:
			if !errors.Is(err, switchdrv.ErrUnreachable) || !strings.Contains(err.Error(), "did not finish") {
				t.Fatalf("hung agent = %v, want ErrUnreachable", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the hung agent was not killed")
		}
	})
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts switchdrv.Options
		want string
	}{
		{"no agent", switchdrv.Options{}, `option "agent": is required`},
		{"not a fence agent", switchdrv.Options{"agent": "/bin/rm"}, "must start with fence_"},
		{"action set", switchdrv.Options{"agent": "fence_x", "action": "off"}, "set by the driver"},
		{"multi-line value", switchdrv.Options{"agent": "fence_x", "password": "a\naction=off"}, "single lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := switchdrv.Open("fence", tc.opts)
			if !errors.Is(err, switchdrv.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want ErrConfig containing %q", err, tc.want)
			}
		})
	}
	ps, err := switchdrv.OpenPowerSwitch("fence", switchdrv.Options{"agent": "fence_does_not_exist_here"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Power(t.Context(), fenceagent.DefaultOutlet); !errors.Is(err, switchdrv.ErrConfig) {
		t.Fatalf("missing agent = %v, want ErrConfig", err)
	}
}

func TestPlugs(t *testing.T) {
	ps, err := switchdrv.OpenPowerSwitch("fence", switchdrv.Options{"agent": "fence_x", "plugs": "1, 2,,web-3"})
	if err != nil {
		t.Fatal(err)
	}
	outs, _ := ps.Outlets(t.Context())
	if strings.Join(outs, "|") != "1|2|web-3" {
		t.Fatalf("outlets = %q", outs)
	}
}
