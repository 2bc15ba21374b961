package switchdrv_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/switchdrv"
	_ "github.com/hatui/hatui/switchdrv/drivers"
)

func TestErrorKinds(t *testing.T) {
	cause := errors.New("dial tcp 192.0.2.7:80: i/o timeout")
	err := fmt.Errorf("fence pbx-a2: %w", switchdrv.NewError(switchdrv.ErrUnreachable, "iboot 192.0.2.7", "switch off", cause))
	if !errors.Is(err, switchdrv.ErrUnreachable) || !errors.Is(err, cause) {
		t.Fatal("errors.Is does not see the kind and the cause")
	}
	if errors.Is(err, switchdrv.ErrAuth) {
		t.Fatal("an unreachable error matches ErrAuth")
	}
	if switchdrv.KindOf(err) != switchdrv.ErrUnreachable || switchdrv.KindOf(nil) != nil || switchdrv.KindOf(cause) != nil {
		t.Fatal("KindOf is wrong")
	}
	want := "fence pbx-a2: iboot 192.0.2.7: switch off: unreachable: dial tcp 192.0.2.7:80: i/o timeout (check the device's power, cable and address)"
	if err.Error() != want {
		t.Fatalf("message\n got %s\nwant %s", err, want)
	}
	e := switchdrv.Errorf(switchdrv.ErrAuth, "berofos x", "read", "HTTP 401").WithHint("use the admin password")
	if !strings.HasSuffix(e.Error(), "(use the admin password)") || e.HintText() != "use the admin password" {
		t.Fatalf("hint: %s", e)
	}
}

func TestProtocolError(t *testing.T) {
	for _, tc := range []struct {
		kind error
		code protocol.Code
	}{
		{switchdrv.ErrUnreachable, protocol.CodeUnreachable},
		{switchdrv.ErrBusy, protocol.CodeBusy},
		{switchdrv.ErrUnsupported, protocol.CodeRefused},
		{switchdrv.ErrAuth, protocol.CodeFailed},
		{switchdrv.ErrVerifyTimeout, protocol.CodeFailed},
	} {
		pe := switchdrv.ProtocolError(switchdrv.NewError(tc.kind, "dev", "op", nil))
		if pe.Code != tc.code || pe.Hint == "" {
			t.Errorf("%v → %+v, want code %s with a hint", tc.kind, pe, tc.code)
		}
	}
	if switchdrv.ProtocolError(nil) != nil {
		t.Error("nil error gave a protocol error")
	}
}

func TestFenced(t *testing.T) {
	for _, tc := range []struct {
		st   switchdrv.PowerState
		want bool
	}{
		{switchdrv.PowerState{Power: switchdrv.PowerOff, Verified: true}, true},
		{switchdrv.PowerState{Power: switchdrv.PowerOff, Verified: false}, false},
		{switchdrv.PowerState{Power: switchdrv.PowerOn, Verified: true}, false},
		{switchdrv.PowerState{Power: switchdrv.PowerUnknown, Verified: true}, false},
		{switchdrv.PowerState{}, false},
	} {
		if got := switchdrv.Fenced(tc.st); got != tc.want {
			t.Errorf("Fenced(%+v) = %v, want %v", tc.st, got, tc.want)
		}
	}
}

// blindSwitch is a power switch that cannot read back: its off is never
// proof.
type blindSwitch struct{ offs int }

func (b *blindSwitch) Name() string                              { return "blind" }
func (b *blindSwitch) Close() error                              { return nil }
func (b *blindSwitch) Outlets(context.Context) ([]string, error) { return []string{"1"}, nil }
func (b *blindSwitch) Cycle(context.Context, string) (switchdrv.PowerState, error) {
	return switchdrv.PowerState{}, nil
}
func (b *blindSwitch) Power(_ context.Context, o string) (switchdrv.PowerState, error) {
	return switchdrv.PowerState{Outlet: o, Power: switchdrv.PowerOff}, nil
}
func (b *blindSwitch) SetPower(_ context.Context, o string, on bool) (switchdrv.PowerState, error) {
	b.offs++
	return switchdrv.PowerState{Outlet: o, Power: switchdrv.PowerOff}, nil
}

func TestFenceRefusesUnverifiedOff(t *testing.T) {
	b := &blindSwitch{}
	st, err := switchdrv.Fence(t.Context(), b, "1")
	if !errors.Is(err, switchdrv.ErrVerifyTimeout) || switchdrv.Fenced(st) || b.offs != 1 {
		t.Fatalf("Fence on a blind switch = %+v, %v (offs %d); want ErrVerifyTimeout", st, err, b.offs)
	}
}

func TestRegistry(t *testing.T) {
	if got := switchdrv.Drivers(); !slices.Equal(got, []string{"berofos", "fence", "iboot", "rhino"}) {
		t.Fatalf("Drivers() = %v", got)
	}
	_, err := switchdrv.Open("berofoss", switchdrv.Options{})
	if !errors.Is(err, switchdrv.ErrConfig) || !strings.Contains(err.Error(), "berofos, fence, iboot, rhino") {
		t.Fatalf("unknown driver: %v", err)
	}
	if _, err := switchdrv.OpenPowerSwitch("rhino", switchdrv.Options{"device": "/dev/x"}); !errors.Is(err, switchdrv.ErrUnsupported) {
		t.Fatalf("rhino as power switch: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a driver twice did not panic")
		}
	}()
	switchdrv.Register("berofos", func(switchdrv.Options) (switchdrv.Device, error) { return nil, nil })
}

func TestOptionReader(t *testing.T) {
	r := switchdrv.NewOptionReader("x", switchdrv.Options{
		"n": "7", "d": "250ms", "b": "yes", "s": " v ", "bad_n": "seven", "bad_d": "soon", "bad_b": "maybe", "typo": "1",
	})
	if r.Int("n", 0, 1, 10) != 7 || r.Duration("d", 0) != 250*time.Millisecond || !r.Bool("b", false) || r.String("s", "") != "v" {
		t.Fatal("good values misread")
	}
	if r.Int("missing", 3, 1, 10) != 3 || r.String("missing2", "def") != "def" {
		t.Fatal("defaults not applied")
	}
	r.Int("bad_n", 0, 0, 1)
	r.Duration("bad_d", time.Second)
	r.Bool("bad_b", false)
	err := r.Done()
	if !errors.Is(err, switchdrv.ErrConfig) {
		t.Fatalf("Done = %v", err)
	}
	for _, want := range []string{`option "bad_n"`, `option "bad_d"`, `option "bad_b"`, `unknown option "typo"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestStatusHelpers(t *testing.T) {
	nodeAt := func(p switchdrv.Position) string {
		return map[switchdrv.Position]string{"A-B": "pbx-a1"}[p]
	}
	s := switchdrv.LineStatus("lines", "berofos", switchdrv.LineState{Position: "A-B", Verified: true}, nil, nodeAt)
	if s.Kind != "line" || s.Position != "pbx-a1" || !s.Verified || !s.Reachable || s.Error != "" {
		t.Fatalf("LineStatus = %+v", s)
	}
	s = switchdrv.LineStatus("lines", "berofos", switchdrv.LineState{}, switchdrv.NewError(switchdrv.ErrUnreachable, "d", "o", nil), nodeAt)
	if s.Reachable || s.Error == "" {
		t.Fatalf("LineStatus of an unreachable switch = %+v", s)
	}
	p := switchdrv.PowerStatus("stonith", "iboot", []switchdrv.PowerState{
		{Outlet: "1", Power: switchdrv.PowerOff, Verified: true},
		{Outlet: "2", Power: switchdrv.PowerOn},
	}, nil, func(o string) string { return "pbx-" + o })
	if p.Kind != "power" || len(p.Outlets) != 2 || p.Outlets[0].On || !p.Outlets[0].Verified || p.Outlets[1].Node != "pbx-2" || p.Verified {
		t.Fatalf("PowerStatus = %+v", p)
	}
}
