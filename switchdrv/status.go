package switchdrv

import (
	"errors"

	"github.com/hatui/hatui/protocol"
)

// ProtocolError turns a device error into the wire's typed error, keeping
// the message and hint, so the console can say why an action on a switch
// failed. It returns nil for a nil err.
func ProtocolError(err error) *protocol.Error {
	if err == nil {
		return nil
	}
	code := protocol.CodeFailed
	switch KindOf(err) {
	case ErrUnreachable:
		code = protocol.CodeUnreachable
	case ErrBusy:
		code = protocol.CodeBusy
	case ErrUnsupported:
		code = protocol.CodeRefused
	}
	hint := ""
	var e *Error
	if errors.As(err, &e) {
		hint = e.HintText()
	}
	return &protocol.Error{Code: code, Message: err.Error(), Hint: hint}
}

// LineStatus describes a line switch for the status screen. name and driver
// come from the node config; nodeAt says which node sits at a position (""
// when none does); st and err are the result of the last LineState call.
func LineStatus(name, driver string, st LineState, err error, nodeAt func(Position) string) protocol.Switch {
	s := protocol.Switch{Name: name, Kind: "line", Driver: driver, Verified: st.Verified}
	if st.Position != "" {
		s.Position = string(st.Position)
		if nodeAt != nil {
			if n := nodeAt(st.Position); n != "" {
				s.Position = n
			}
		}
	}
	s.Reachable = KindOf(err) != ErrUnreachable && KindOf(err) != ErrClosed
	if err != nil {
		s.Error = err.Error()
	}
	return s
}

// PowerStatus describes a power switch for the status screen. nodeOf says
// which node an outlet feeds ("" when none); states and err are the
// result of the last reads.
func PowerStatus(name, driver string, states []PowerState, err error, nodeOf func(outlet string) string) protocol.Switch {
	s := protocol.Switch{Name: name, Kind: "power", Driver: driver, Verified: err == nil}
	for _, st := range states {
		o := protocol.Outlet{Name: st.Outlet, On: st.Power == PowerOn, Verified: st.Verified}
		if nodeOf != nil {
			o.Node = nodeOf(st.Outlet)
		}
		if !st.Verified {
			s.Verified = false
		}
		s.Outlets = append(s.Outlets, o)
	}
	s.Reachable = KindOf(err) != ErrUnreachable && KindOf(err) != ErrClosed
	if err != nil {
		s.Error = err.Error()
	}
	return s
}
