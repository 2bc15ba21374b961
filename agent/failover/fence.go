package failover

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hatui/hatui/switchdrv"
)

// Fencer powers nodes off. Fence returns nil only when the node is
// verifiably off: an off that was commanded but not read back is a
// failure, because a node that still runs while its peer takes over is
// split brain.
type Fencer interface {
	Fence(ctx context.Context, node string) error
	// CanFence reports whether node has a fencing device.
	CanFence(node string) bool
}

// Outlet is where one node's power comes from.
type Outlet struct {
	// Switch is a power switch driver, or a fence agent
	// (switchdrv/fenceagent), which is one too.
	Switch switchdrv.PowerSwitch
	// Outlet is the outlet's name on the switch (fenceagent.DefaultOutlet
	// for an agent that fences one machine).
	Outlet string
}

// PowerFencer fences through power switches and fence agents, one outlet
// per node.
type PowerFencer map[string]Outlet

// Fence implements Fencer with switchdrv.Fence: switch off, read back.
func (p PowerFencer) Fence(ctx context.Context, node string) error {
	o, ok := p[node]
	if !ok {
		return fmt.Errorf("no fencing device for %s: fencing is configured for %s", node, strings.Join(slices.Sorted(maps.Keys(p)), ", "))
	}
	st, err := switchdrv.Fence(ctx, o.Switch, o.Outlet)
	if err != nil {
		return fmt.Errorf("fencing %s through %s outlet %s: %w", node, o.Switch.Name(), o.Outlet, err)
	}
	if !switchdrv.Fenced(st) {
		// switchdrv.Fence already refuses this; never trust it blindly.
		return fmt.Errorf("fencing %s through %s outlet %s: the outlet reads %q (verified %v), not a verified off", node, o.Switch.Name(), o.Outlet, st.Power, st.Verified)
	}
	return nil
}

// CanFence implements Fencer.
func (p PowerFencer) CanFence(node string) bool {
	_, ok := p[node]
	return ok
}

// Check asks every fencing device whether it answers (a fence agent's
// monitor, a power switch's status), for activate's dry run.
func (p PowerFencer) Check(ctx context.Context) error {
	for _, n := range slices.Sorted(maps.Keys(p)) {
		o := p[n]
		if c, ok := o.Switch.(switchdrv.Checker); ok {
			if err := c.Check(ctx); err != nil {
				return fmt.Errorf("fencing device of %s (%s): %w", n, o.Switch.Name(), err)
			}
			continue
		}
		if _, err := o.Switch.Power(ctx, o.Outlet); err != nil {
			return fmt.Errorf("fencing device of %s (%s): %w", n, o.Switch.Name(), err)
		}
	}
	return nil
}
