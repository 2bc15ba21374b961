package switchdrv

import (
	"context"
	"slices"
	"time"
)

// Device is an open device of any kind. Assert it to [LineSwitch],
// [Watchdog], [PowerSwitch] or [Checker] to use it, or use [AsLineSwitch]
// and friends, which say clearly when the device cannot do that.
type Device interface {
	// Name says which device this is, as "driver address", for messages.
	Name() string
	// Close releases the device's connection, port or lock. Calls in
	// progress return promptly with ErrClosed.
	Close() error
}

// Position is where a line switch connects the lines, in the device's own
// terms ("A-B" on a berofos, "NO" on a Rhino card). Which node sits at a
// position is the node config's business, not the driver's.
type Position string

// Capabilities say what a line switch can do, so the agent and the console
// need not know the model.
type Capabilities struct {
	// Positions are the positions the switch can be set to.
	Positions []Position
	// Failsafe is where the lines go when the device loses power or its
	// watchdog fires, or "" if the device has no such default.
	Failsafe Position
	// ReadBack is true when the device reports its real position; when
	// false, every state it returns is unverified.
	ReadBack bool
	// Watchdog is true when the device has a hardware watchdog.
	Watchdog bool
}

// Has reports whether p is one of the switch's positions.
func (c Capabilities) Has(p Position) bool { return slices.Contains(c.Positions, p) }

// WatchdogState is what a device says of its hardware watchdog.
type WatchdogState string

// Watchdog states. WatchdogFailed means it fired: the device has moved the
// lines to its failsafe position.
const (
	WatchdogUnknown WatchdogState = ""
	WatchdogOff     WatchdogState = "off"
	WatchdogOn      WatchdogState = "on"
	WatchdogFailed  WatchdogState = "failed"
)

// LineState is what is known of a line switch.
type LineState struct {
	// Position is where the lines go, or "" if unknown.
	Position Position
	// Verified is true only when Position was read from the device just
	// now. A driver that cannot read back reports the last position it
	// commanded, unverified.
	Verified bool
	// Watchdog is the device's watchdog state, if it reports one.
	Watchdog WatchdogState
}

// LineSwitch is a layer 1 switch that moves phone lines between nodes.
type LineSwitch interface {
	Device
	// Capabilities says what this switch can do. It does no I/O.
	Capabilities() Capabilities
	// LineState reads the switch's current position.
	LineState(ctx context.Context) (LineState, error)
	// SetPosition moves the lines to p and, when the device can read
	// back, returns only once a read shows p (ErrVerifyTimeout if it does
	// not before the deadline).
	SetPosition(ctx context.Context, p Position) (LineState, error)
}

// Watchdog is a device's hardware watchdog: if not kicked for Timeout, the
// device takes its failsafe action on its own.
type Watchdog interface {
	Device
	// Kick feeds the watchdog once.
	Kick(ctx context.Context) error
	// WatchdogTimeout is how long the device waits for a kick before it
	// fires. Kick at least twice as often.
	WatchdogTimeout() time.Duration
}

// Power is the state of an outlet.
type Power string

// Power values.
const (
	PowerUnknown Power = ""
	PowerOn      Power = "on"
	PowerOff     Power = "off"
)

// PowerState is what is known of one outlet.
type PowerState struct {
	Outlet string
	Power  Power
	// Verified is true only when Power was read from the device after the
	// last command, by a query separate from the command itself.
	Verified bool
}

// PowerSwitch is a remotely controlled power switch, used to fence nodes.
type PowerSwitch interface {
	Device
	// Outlets lists the outlets' names.
	Outlets(ctx context.Context) ([]string, error)
	// Power reads one outlet.
	Power(ctx context.Context, outlet string) (PowerState, error)
	// SetPower switches one outlet and verifies it by reading it back.
	SetPower(ctx context.Context, outlet string, on bool) (PowerState, error)
	// Cycle switches one outlet off and on again and verifies it is on.
	Cycle(ctx context.Context, outlet string) (PowerState, error)
}

// Checker is a device that can be asked whether it answers, without
// changing anything.
type Checker interface {
	Device
	// Check returns nil when the device answers with the configured
	// credentials.
	Check(ctx context.Context) error
}

// AsLineSwitch returns d as a LineSwitch, or an ErrUnsupported error.
func AsLineSwitch(d Device) (LineSwitch, error) {
	if s, ok := d.(LineSwitch); ok {
		return s, nil
	}
	return nil, Errorf(ErrUnsupported, d.Name(), "use as line switch", "the driver is not a line switch").
		WithHint("use this device as a power switch, or pick a line switch driver")
}

// AsPowerSwitch returns d as a PowerSwitch, or an ErrUnsupported error.
func AsPowerSwitch(d Device) (PowerSwitch, error) {
	if s, ok := d.(PowerSwitch); ok {
		return s, nil
	}
	return nil, Errorf(ErrUnsupported, d.Name(), "use as power switch", "the driver is not a power switch").
		WithHint("use this device as a line switch, or pick a power switch driver")
}

// AsWatchdog returns d as a Watchdog, or an ErrUnsupported error.
func AsWatchdog(d Device) (Watchdog, error) {
	if s, ok := d.(Watchdog); ok {
		return s, nil
	}
	return nil, Errorf(ErrUnsupported, d.Name(), "use watchdog", "the device has no hardware watchdog")
}
