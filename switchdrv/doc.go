// Package switchdrv drives the hardware that decides where a telephony
// cluster's phone lines and power go: layer 1 line switches (berofos, Rhino
// 1SPF) and power switches used for fencing (iBoot, any ClusterLabs fence
// agent).
//
// # Interfaces
//
// Each device is opened by driver name from the registry ([Open]) with the
// options of one node's config file, and then used through small
// interfaces, so that the agent's decision logic never sees a wire format:
//
//   - [LineSwitch]: read the real position, set a position and verify it by
//     reading it back, and say what the device can do ([Capabilities]).
//   - [Watchdog]: feed the device's hardware watchdog.
//   - [PowerSwitch]: list outlets, read, set and cycle an outlet.
//   - [Checker]: prove the device answers, for the status screen.
//
// A device implements whichever of these it can: a berofos is a line switch,
// a watchdog and a two-outlet power switch at once. Every call that talks to
// a device takes a [context.Context] and returns within its deadline.
//
// # Trust
//
// A state is only as good as the device's word for it. A driver that cannot
// read a position or an outlet back reports it with Verified false, and
// [Fenced] never counts an unverified "off" as fenced: the agent must not
// take over a group on the strength of a command it merely sent.
//
// # Errors
//
// Every failure is an [*Error] whose Kind is one of the sentinels
// [ErrUnreachable], [ErrAuth], [ErrBusy], [ErrVerifyTimeout],
// [ErrUnsupported], [ErrBadReply], [ErrConfig] or [ErrClosed], so callers
// test it with errors.Is and show the operator its hint.
//
// # Drivers
//
// Drivers live in subpackages and register themselves in init; import
// [github.com/hatui/hatui/switchdrv/drivers] to get all of them. Each
// driver package has a simulator subpackage that speaks the real wire
// protocol on loopback or a pseudo-terminal, for tests and the demo.
// The controller that makes the lines follow the active PBX node is in
// [github.com/hatui/hatui/switchdrv/follow].
package switchdrv
