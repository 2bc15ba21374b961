package switchdrv

import (
	"errors"
	"fmt"
)

// Kinds of failure. Test for them with errors.Is; every [*Error] matches
// exactly one.
var (
	// ErrUnreachable: the device did not answer in time, or the connection
	// to it failed. Nothing is known about its state.
	ErrUnreachable = errors.New("unreachable")
	// ErrAuth: the device refused the credentials.
	ErrAuth = errors.New("authentication failed")
	// ErrBusy: the device is serving another session, or another process
	// holds its port.
	ErrBusy = errors.New("busy")
	// ErrVerifyTimeout: the command was sent but reading back did not show
	// the new state before the deadline.
	ErrVerifyTimeout = errors.New("not verified in time")
	// ErrUnsupported: the device or driver cannot do this at all.
	ErrUnsupported = errors.New("unsupported")
	// ErrBadReply: the device answered something the driver cannot
	// understand (wrong checksum, unexpected text).
	ErrBadReply = errors.New("bad reply")
	// ErrConfig: the options given to the driver are wrong.
	ErrConfig = errors.New("bad configuration")
	// ErrClosed: the device was closed while or before the call ran.
	ErrClosed = errors.New("closed")
)

// kinds lists the sentinels in the order KindOf reports them.
var kinds = []error{
	ErrUnreachable, ErrAuth, ErrBusy, ErrVerifyTimeout,
	ErrUnsupported, ErrBadReply, ErrConfig, ErrClosed,
}

// defaultHints tell the operator what to do about each kind; a driver may
// give a sharper one.
var defaultHints = map[error]string{
	ErrUnreachable:   "check the device's power, cable and address",
	ErrAuth:          "check the user and password in the node config",
	ErrBusy:          "another session is using the device: retry shortly",
	ErrVerifyTimeout: "look at the device before trusting its state",
	ErrUnsupported:   "this device cannot do that",
	ErrBadReply:      "check that the driver matches the device and its firmware",
	ErrConfig:        "fix the switch options in the node config",
}

// Error is a device failure: which device, what was being done, what kind
// of failure and, in Err, the underlying cause.
type Error struct {
	Device string // driver and address, e.g. "berofos 192.0.2.7"
	Op     string // what was being done, e.g. "set position A-B"
	Kind   error  // one of the Err* sentinels
	Err    error  // the cause, may be nil
	Hint   string // what the operator should do; a default per Kind if empty
}

// NewError returns an *Error of the given kind. cause may be nil.
func NewError(kind error, device, op string, cause error) *Error {
	return &Error{Device: device, Op: op, Kind: kind, Err: cause}
}

// Errorf returns an *Error of the given kind whose cause is a formatted
// message.
func Errorf(kind error, device, op, format string, args ...any) *Error {
	return &Error{Device: device, Op: op, Kind: kind, Err: fmt.Errorf(format, args...)}
}

// WithHint sets the hint and returns e, for chaining.
func (e *Error) WithHint(hint string) *Error {
	e.Hint = hint
	return e
}

// Error implements error: "device: op: kind: cause (hint)".
func (e *Error) Error() string {
	s := ""
	if e.Device != "" {
		s = e.Device + ": "
	}
	if e.Op != "" {
		s += e.Op + ": "
	}
	if e.Kind != nil {
		s += e.Kind.Error()
	} else {
		s += "failed"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if h := e.HintText(); h != "" {
		s += " (" + h + ")"
	}
	return s
}

// HintText returns the hint, or the default hint of the kind.
func (e *Error) HintText() string {
	if e.Hint != "" {
		return e.Hint
	}
	return defaultHints[e.Kind]
}

// Unwrap returns the kind and the cause, so errors.Is matches both.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// KindOf returns the kind sentinel of err, or nil when err is nil or carries
// no kind.
func KindOf(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Kind != nil {
		return e.Kind
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
