package switchdrv

import (
	"context"
	"fmt"
)

// Fenced reports whether s proves that the outlet's node is without power:
// the outlet reads off and the reading came from the device. An off that
// was only commanded, or read by a driver that cannot verify, is not proof,
// because a node that still runs while its peer takes over is split brain.
func Fenced(s PowerState) bool {
	return s.Verified && s.Power == PowerOff
}

// Fence switches the outlet off and returns nil only when [Fenced] holds for
// the state the switch then reports. Any other outcome is an error, so a
// caller can never mistake a failed fence for a successful one.
func Fence(ctx context.Context, ps PowerSwitch, outlet string) (PowerState, error) {
	op := "fence outlet " + outlet
	st, err := ps.SetPower(ctx, outlet, false)
	if err != nil {
		return st, err
	}
	if Fenced(st) {
		return st, nil
	}
	// The driver said it worked but could not prove it: ask once more
	// before giving up, as the fence agents' convention asks.
	st, err = ps.Power(ctx, outlet)
	if err != nil {
		return st, err
	}
	if Fenced(st) {
		return st, nil
	}
	return st, NewError(ErrVerifyTimeout, ps.Name(), op,
		fmt.Errorf("outlet reads %q, verified=%v", st.Power, st.Verified)).
		WithHint("the node may still have power: do not take over its resources; check the switch by hand")
}
